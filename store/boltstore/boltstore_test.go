package boltstore

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/ssehub/ssehub/hub"
	"github.com/ssehub/ssehub/hub/logtest"
)

func openTest(t testing.TB, dir string, opts *Options) *Store {
	t.Helper()
	if opts == nil {
		opts = &Options{NoSync: true}
	}
	s, err := Open(filepath.Join(dir, "log.db"), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func TestLog(t *testing.T) {
	logtest.RunDurable(t, func(t *testing.T, dir string) hub.Log { return openTest(t, dir, nil) })
}

// TestLogSlowCommit runs the suite with a pause after each commit,
// before the committer publishes the commit's records: the window that a
// slow fsync of bbolt's meta page opens, during which new read
// transactions already see the records.
func TestLogSlowCommit(t *testing.T) {
	logtest.Run(t, func(t *testing.T) hub.Log {
		return openTest(t, t.TempDir(), &Options{NoSync: true, afterCommit: func() { time.Sleep(200 * time.Microsecond) }})
	})
}

// TestLogIndexFlush runs the suite with an index that goes to disk every
// few entries, so that Reads cross the disk and memory parts.
func TestLogIndexFlush(t *testing.T) {
	for _, lag := range []int{1, 5} {
		t.Run(fmt.Sprint("lag=", lag), func(t *testing.T) {
			logtest.RunDurable(t, func(t *testing.T, dir string) hub.Log {
				return openTest(t, dir, &Options{NoSync: true, indexLag: lag})
			})
		})
	}
}
