package redisstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ssehub/ssehub/hub"
	"github.com/ssehub/ssehub/hub/logtest"
	"github.com/ssehub/ssehub/internal/testserver"
)

// TestKilled kills the test's own redis-server (AOF, appendfsync always)
// with SIGKILL while a publisher appends and a Tail follows, and starts
// it again on the same port and directory. While it is down the methods
// fail; afterwards they work again, every record acknowledged before the
// kill is there at its position, and a Tail called again from its last
// position goes on with nothing skipped or repeated.
func TestKilled(t *testing.T) {
	srv := testserver.Redis(t, testserver.RedisOptions{AppendOnly: true})
	s, err := Open(Options{URL: srv.URL(), Prefix: "killed"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	// A tailer that, like the hub, calls Tail again from its last
	// position after an error.
	var (
		mu      sync.Mutex // guards tailed and tailErr
		tailed  []uint64
		tailErr []error
	)
	tctx, tcancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() {
		tcancel()
		wg.Wait()
	}()
	wg.Go(func() {
		var after uint64
		for tctx.Err() == nil {
			err := s.Tail(tctx, after, func(recs []hub.Record) error {
				mu.Lock()
				defer mu.Unlock()
				for _, r := range recs {
					tailed = append(tailed, r.Pos)
				}
				after = recs[len(recs)-1].Pos
				return nil
			})
			if tctx.Err() != nil {
				return
			}
			mu.Lock()
			tailErr = append(tailErr, err)
			mu.Unlock()
			select {
			case <-tctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	})

	// A publisher appending single records with IDs until told to stop,
	// through the kill.
	var (
		acked   = map[string]uint64{} // ID → position
		failed  int
		pubStop = make(chan struct{})
		pubDone = make(chan struct{})
		pubMu   sync.Mutex // guards acked and failed
	)
	go func() {
		defer close(pubDone)
		for i := 0; ; i++ {
			select {
			case <-pubStop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			recs := []hub.Record{{Topics: []string{"k"}, ID: fmt.Sprint("k-", i), Data: fmt.Sprint(i)}}
			err := s.Append(ctx, recs)
			cancel()
			pubMu.Lock()
			if err == nil {
				acked[recs[0].ID] = recs[0].Pos
			} else {
				failed++
			}
			pubMu.Unlock()
			if err != nil {
				time.Sleep(20 * time.Millisecond)
			}
		}
	}()
	count := func() int {
		pubMu.Lock()
		defer pubMu.Unlock()
		return len(acked)
	}
	waitFor(t, 10*time.Second, "200 acknowledged appends", func() bool { return count() >= 200 })
	srv.Kill()
	before := count()

	// Down: Tail returns an error that is not ErrLogClosed, and every
	// method fails promptly.
	waitFor(t, 5*time.Second, "Tail failing", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(tailErr) > 0
	})
	mu.Lock()
	if err := tailErr[0]; errors.Is(err, hub.ErrLogClosed) {
		t.Errorf("Tail with Redis killed = %v; want an error other than ErrLogClosed", err)
	}
	mu.Unlock()
	checkDown(t, s)
	if n := count(); n > before {
		t.Errorf("%d appends were acknowledged while Redis was down", n-before)
	}

	srv.Start()
	waitFor(t, 10*time.Second, "appends after the restart", func() bool { return count() >= before+100 })
	close(pubStop)
	<-pubDone

	// Every acknowledged record is there, at its position, once.
	_, last, err := s.Bounds(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	byPos := map[uint64]hub.Record{}
	err = s.Read(t.Context(), 0, logtest.Selectors(t, "k"), func(r *hub.Record) bool {
		byPos[r.Pos] = *r
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	if uint64(len(byPos)) != last {
		t.Errorf("Read delivered %d records; Bounds reports last %d", len(byPos), last)
	}
	pubMu.Lock()
	for id, pos := range acked {
		if r, ok := byPos[pos]; !ok || r.ID != id {
			t.Errorf("acknowledged %s at %d; the log holds %+v", id, pos, r)
		}
	}
	t.Logf("%d appends acknowledged, %d failed, last position %d", len(acked), failed, last)
	pubMu.Unlock()

	// The tailer, calling Tail again, has everything once, in order.
	waitFor(t, 10*time.Second, "the tailer to catch up", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(tailed) > 0 && tailed[len(tailed)-1] >= last
	})
	mu.Lock()
	defer mu.Unlock()
	want := make([]uint64, last)
	for i := range want {
		want[i] = uint64(i + 1)
	}
	if !slices.Equal(tailed, want) {
		t.Errorf("the tailer got %d positions, not 1..%d once each in order", len(tailed), last)
	}
}
