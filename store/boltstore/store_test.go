package boltstore

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/ssehub/ssehub/hub"
	"github.com/ssehub/ssehub/hub/logtest"
)

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met in %v", timeout)
		}
		time.Sleep(time.Millisecond)
	}
}

func records(n int, topics ...string) []hub.Record {
	recs := make([]hub.Record, n)
	for i := range recs {
		recs[i] = hub.Record{Topics: topics, Data: fmt.Sprintf("event %d", i)}
	}
	return recs
}

// holdFirstCommit makes the Store's first commit wait, and returns a
// function that appends one record, returning once the committer holds
// it, and a function that lets the commit go on.
func holdFirstCommit(t *testing.T, s *Store) (block func() <-chan error, release func()) {
	entered, gate := make(chan struct{}), make(chan struct{})
	var once sync.Once
	s.beforeCommit = func() {
		once.Do(func() {
			close(entered)
			<-gate
		})
	}
	block = func() <-chan error {
		done := make(chan error, 1)
		go func() { done <- s.Append(context.Background(), records(1, "blocker")) }()
		select {
		case <-entered:
		case <-time.After(5 * time.Second):
			t.Fatal("the committer did not start the first commit")
		}
		return done
	}
	return block, func() { close(gate) }
}

// TestGroupCommit holds a commit until 16 Appends are queued behind it,
// and checks that they all go into the next commit.
func TestGroupCommit(t *testing.T) {
	s := openTest(t, t.TempDir(), nil)
	defer s.Close()
	block, release := holdFirstCommit(t, s)
	blocked := block()

	const publishers = 16
	var wg sync.WaitGroup
	errs := make(chan error, publishers)
	for i := range publishers {
		wg.Go(func() {
			errs <- s.Append(context.Background(), []hub.Record{{Topics: []string{"a"}, ID: fmt.Sprint("p", i)}, {Topics: []string{"b"}}})
		})
	}
	waitFor(t, 5*time.Second, func() bool { return s.queueLen() == publishers })
	release()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
	}
	if err := <-blocked; err != nil {
		t.Fatal(err)
	}
	if got, want := s.Stats(), (Stats{Commits: 2, Appends: publishers + 1, Records: 2*publishers + 1}); got != want {
		t.Errorf("Stats() = %+v; want %+v", got, want)
	}
}

// TestGroupCommitIsolation commits in one transaction Appends of which
// some fail, and checks that only those fail and use no position.
func TestGroupCommitIsolation(t *testing.T) {
	s := openTest(t, t.TempDir(), nil)
	defer s.Close()
	ctx := context.Background()
	if err := s.Append(ctx, []hub.Record{{Topics: []string{"a"}, ID: "taken"}}); err != nil {
		t.Fatal(err)
	}
	block, release := holdFirstCommit(t, s)
	blocker := block()

	batches := [][]hub.Record{
		{{Topics: []string{"a"}, ID: "n1"}},
		{{Topics: []string{"a"}}, {Topics: []string{"a"}, ID: "taken"}}, // taken before
		{{Topics: []string{"a"}, ID: "n2"}, {Topics: []string{"a"}}},
		{{Topics: []string{"a"}, ID: "n1"}}, // taken by the first, in this commit
		{{Topics: []string{"a"}, ID: "n3"}, {Topics: []string{"a"}, ID: "n3"}},
		{{Topics: []string{"a"}}},
	}
	wantErr := []bool{false, true, false, true, true, false}
	errs := make([]chan error, len(batches))
	for i, b := range batches {
		errs[i] = make(chan error, 1)
		go func() { errs[i] <- s.Append(ctx, b) }()
		waitFor(t, 5*time.Second, func() bool { return s.queueLen() == i+1 })
	}
	release()
	if err := <-blocker; err != nil {
		t.Fatal(err)
	}
	next := uint64(3)
	for i := range batches {
		err := <-errs[i]
		if wantErr[i] {
			if !errors.Is(err, hub.ErrDuplicateID) {
				t.Errorf("batch %d: Append = %v; want hub.ErrDuplicateID", i, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("batch %d: Append = %v; want nil", i, err)
			continue
		}
		for _, r := range batches[i] {
			if r.Pos != next {
				t.Errorf("batch %d: Pos = %d; want %d", i, r.Pos, next)
			}
			next++
		}
	}
	if got := s.Stats().Commits; got != 3 {
		t.Errorf("Commits = %d; want 3", got)
	}
}

// TestGroupCommitSynced appends from 16 goroutines with fsync on and
// checks that commits carry several Appends each.
func TestGroupCommitSynced(t *testing.T) {
	if testing.Short() {
		t.Skip("fsyncs")
	}
	s := openTest(t, t.TempDir(), &Options{})
	defer s.Close()
	const publishers, appends = 16, 20
	var wg sync.WaitGroup
	for range publishers {
		wg.Go(func() {
			for range appends {
				if err := s.Append(context.Background(), records(1, "a")); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	st := s.Stats()
	t.Logf("%d Appends in %d commits (%.1f per commit)", st.Appends, st.Commits, float64(st.Appends)/float64(st.Commits))
	if st.Appends != publishers*appends || st.Commits*3 > st.Appends {
		t.Errorf("Stats() = %+v; want %d Appends in at most a third as many commits", st, publishers*appends)
	}
}

// TestReadQuietTopic checks that Read of a quiet topic decodes only that
// topic's records, however many other records the Log holds.
func TestReadQuietTopic(t *testing.T) {
	s := openTest(t, t.TempDir(), nil)
	defer s.Close()
	ctx := context.Background()
	const busy = 20000
	for i := range busy / 1000 {
		recs := records(1000, "busy/a")
		recs[i*37].Topics = []string{"quiet/x", "busy/a"}
		if err := s.Append(ctx, recs); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Append(ctx, []hub.Record{{Topics: []string{"quiet/y"}}, {Topics: []string{"quiet/x"}}}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		sels    []string
		after   uint64
		want    int
		visited uint64 // most records Read may decode
	}{
		{[]string{"quiet/x"}, 0, 21, 21},
		{[]string{"quiet/y"}, 0, 1, 1},
		{[]string{"quiet/*"}, 0, 22, 22},
		{[]string{"quiet/**", "quiet/x"}, 0, 22, 22},
		{[]string{"quiet/x"}, busy / 2, 11, 11},
		{[]string{"nothing"}, 0, 0, 0},
		{[]string{"nothing/*"}, 0, 0, 0},
		{[]string{"*/x"}, busy, 1, 2},        // no prefix: scans
		{[]string{"busy/a"}, busy - 5, 5, 5}, // a busy topic from near its end
		{[]string{"busy/**"}, busy, 0, 0},
	}
	for _, tt := range tests {
		before := s.visited.Load()
		got := 0
		err := s.Read(ctx, tt.after, logtest.Selectors(t, tt.sels...), func(*hub.Record) bool { got++; return true })
		if err != nil {
			t.Fatal(err)
		}
		visited := s.visited.Load() - before
		if got != tt.want || visited > tt.visited {
			t.Errorf("Read(after %d, %q): %d records, %d decoded; want %d, at most %d", tt.after, tt.sels, got, visited, tt.want, tt.visited)
		}
	}
}

func TestReadManyTopicsScans(t *testing.T) {
	s := openTest(t, t.TempDir(), nil)
	defer s.Close()
	ctx := context.Background()
	var recs []hub.Record
	for i := range 2 * maxTopics {
		recs = append(recs, hub.Record{Topics: []string{fmt.Sprintf("t/%d", i), "all"}})
	}
	if err := s.Append(ctx, recs); err != nil {
		t.Fatal(err)
	}
	// Merging 512 topics would be slower than scanning 512 records;
	// either way, each record once and in order.
	var got []uint64
	if err := s.Read(ctx, 0, logtest.Selectors(t, "t/*", "all"), func(r *hub.Record) bool { got = append(got, r.Pos); return true }); err != nil {
		t.Fatal(err)
	}
	for i, p := range got {
		if p != uint64(i+1) {
			t.Fatalf("Read delivered positions %v...; want 1 to %d", got[:i+1], len(recs))
		}
	}
	if len(got) != len(recs) {
		t.Errorf("Read delivered %d records; want %d", len(got), len(recs))
	}
}

func TestAppendInvalid(t *testing.T) {
	s := openTest(t, t.TempDir(), nil)
	defer s.Close()
	tests := []struct {
		name string
		rec  hub.Record
		want error
	}{
		{"NUL in topic", hub.Record{Topics: []string{"a\x00b"}}, ErrInvalidRecord},
		{"empty topic", hub.Record{Topics: []string{"a", ""}}, ErrInvalidRecord},
		{"long topic", hub.Record{Topics: []string{strings.Repeat("t", maxKeyLen+1)}}, ErrInvalidRecord},
		{"long ID", hub.Record{Topics: []string{"a"}, ID: strings.Repeat("i", maxKeyLen+1)}, ErrInvalidRecord},
		{"digit ID", hub.Record{Topics: []string{"a"}, ID: "42"}, hub.ErrDuplicateID},
		{"zero ID", hub.Record{Topics: []string{"a"}, ID: "0"}, hub.ErrDuplicateID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Append(context.Background(), []hub.Record{{Topics: []string{"ok"}}, tt.rec})
			if !errors.Is(err, tt.want) {
				t.Errorf("Append = %v; want %v", err, tt.want)
			}
		})
	}
	if _, last, _ := s.Bounds(context.Background()); last != 0 {
		t.Errorf("after refused Appends, last = %d; want 0", last)
	}
	// Near the limits is fine.
	long := hub.Record{Topics: []string{strings.Repeat("t", maxKeyLen)}, ID: strings.Repeat("i", maxKeyLen), Data: strings.Repeat("d", 1<<20)}
	if err := s.Append(context.Background(), []hub.Record{long}); err != nil {
		t.Errorf("Append of a record at the limits: %v", err)
	}
}

// TestTrimBatches trims in many small transactions and checks that the
// index entries of the removed records are gone, whether they were on
// disk or still in memory when the trim ran.
func TestTrimBatches(t *testing.T) {
	for _, lag := range []int{1, 25, 1000} {
		t.Run(fmt.Sprint("lag=", lag), func(t *testing.T) {
			s := openTest(t, t.TempDir(), &Options{NoSync: true, TrimBatch: 7, indexLag: lag})
			defer s.Close()
			ctx := context.Background()
			for i := range 10 {
				recs := records(10, "a", fmt.Sprintf("b/%d", i))
				recs[3].ID = fmt.Sprint("id-", i)
				if err := s.Append(ctx, recs); err != nil {
					t.Fatal(err)
				}
			}
			n, err := s.Trim(ctx, hub.Retention{MaxCount: 15})
			if err != nil || n != 85 {
				t.Fatalf("Trim(MaxCount 15) = %d, %v; want 85, nil", n, err)
			}
			// One more record, then everything to disk.
			if err := s.Append(ctx, records(1, "a", "c")); err != nil {
				t.Fatal(err)
			}
			err = s.db.Update(func(tx *bolt.Tx) error { return flushIndex(tx, s.idx.entries(nil), s.last.Load()) })
			if err != nil {
				t.Fatal(err)
			}
			err = s.db.View(func(tx *bolt.Tx) error {
				counts := map[string]int{}
				for _, b := range [][]byte{bucketRecs, bucketTopics, bucketIDs} {
					counts[string(b)] = tx.Bucket(b).Stats().KeyN
				}
				want := map[string]int{"recs": 16, "topics": 32, "ids": 1} // id-9 at 94
				for k, v := range want {
					if counts[k] != v {
						t.Errorf("bucket %s holds %d keys; want %d", k, counts[k], v)
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestTrimContext(t *testing.T) {
	s := openTest(t, t.TempDir(), &Options{NoSync: true, TrimBatch: 3})
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.Append(ctx, records(10, "a")); err != nil {
		t.Fatal(err)
	}
	cancel()
	if n, err := s.Trim(ctx, hub.Retention{MaxCount: 1}); !errors.Is(err, context.Canceled) || n != 0 {
		t.Errorf("Trim with a cancelled context = %d, %v; want 0, context.Canceled", n, err)
	}
}

// TestCloseDuringAppends closes the Store while Appends run, then
// reopens it: every acknowledged record is there, and Appends after
// Close fail with hub.ErrLogClosed.
func TestCloseDuringAppends(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, nil)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		acked []uint64
	)
	for range 8 {
		wg.Go(func() {
			for {
				recs := records(2, "a")
				err := s.Append(context.Background(), recs)
				if errors.Is(err, hub.ErrLogClosed) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				acked = append(acked, recs[0].Pos, recs[1].Pos)
				mu.Unlock()
			}
		})
	}
	waitFor(t, 5*time.Second, func() bool { return s.Stats().Records > 200 })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	s = openTest(t, dir, nil)
	defer s.Close()
	for _, p := range acked {
		if _, err := s.Lookup(context.Background(), fmt.Sprint(p)); err != nil {
			t.Fatalf("acknowledged record %d missing after reopen: %v", p, err)
		}
	}
	if _, last, _ := s.Bounds(context.Background()); last != uint64(len(acked)) {
		t.Errorf("last = %d after %d acknowledged records", last, len(acked))
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, nil)
	_, err := Open(filepath.Join(dir, "log.db"), &Options{LockTimeout: 50 * time.Millisecond})
	if !errors.Is(err, berrors.ErrTimeout) {
		t.Errorf("second Open of a locked file = %v; want a timeout", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v; want nil", err)
	}

	db, err := bolt.Open(filepath.Join(dir, "log.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyFormat, []byte{9}) }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := Open(filepath.Join(dir, "log.db"), nil); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Open of format 9 = %v; want ErrCorrupt", err)
	}
	if _, err := Open(filepath.Join(dir, "missing", "log.db"), nil); err == nil {
		t.Errorf("Open in a missing directory succeeded")
	}
}

func TestCodec(t *testing.T) {
	ts := time.Unix(1700000000, 123456789)
	tests := []hub.Record{
		{Pos: 1, ID: "1", Topics: []string{"a"}, Time: ts},
		{Pos: 7, ID: "pub", Topics: []string{"b", "a/b/c"}, Type: "t", Data: "x\ny\x00z", Retry: 3 * time.Second, Private: true, Time: ts},
		{Pos: 1 << 40, ID: "1099511627776", Topics: []string{"ü"}, Data: strings.Repeat("é", 1000), Retry: -1, Time: time.Unix(0, 0)},
		{Pos: 9, ID: "09", Topics: []string{"a"}, Time: ts}, // not the decimal position: stored
	}
	for _, want := range tests {
		posID := want.ID == fmt.Sprint(want.Pos)
		v := appendRecord(nil, &want, posID)
		got, err := decode(want.Pos, v)
		if err != nil {
			t.Fatalf("decode(appendRecord(%+v)): %v", want, err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) || !got.Time.Equal(want.Time) {
			t.Errorf("decode(appendRecord(r)) = %+v; want %+v", got, want)
		}
		// Every truncation is an error, never a panic or a wrong record.
		for n := 0; n < len(v); n++ {
			if got, err := decode(want.Pos, v[:n]); err == nil && fmt.Sprint(got) == fmt.Sprint(want) {
				t.Errorf("decode of %d of %d bytes = %+v, nil", n, len(v), got)
			} else if err != nil && !errors.Is(err, ErrCorrupt) {
				t.Errorf("decode of %d bytes: %v; want ErrCorrupt", n, err)
			}
		}
		bad := append([]byte{2}, v[1:]...)
		if _, err := decode(want.Pos, bad); !errors.Is(err, ErrCorrupt) {
			t.Errorf("decode of version 2 = %v; want ErrCorrupt", err)
		}
	}
}

func TestReadCorrupt(t *testing.T) {
	s := openTest(t, t.TempDir(), nil)
	defer s.Close()
	ctx := context.Background()
	if err := s.Append(ctx, records(3, "a")); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketRecs).Put(posKey(2), []byte{1, 2, 3}) }); err != nil {
		t.Fatal(err)
	}
	err := s.Read(ctx, 0, logtest.Selectors(t, "a"), func(*hub.Record) bool { return true })
	if !errors.Is(err, ErrCorrupt) {
		t.Errorf("Read over a damaged record = %v; want ErrCorrupt", err)
	}
	err = s.Tail(ctx, 0, func([]hub.Record) error { return nil })
	if !errors.Is(err, ErrCorrupt) {
		t.Errorf("Tail over a damaged record = %v; want ErrCorrupt", err)
	}
}
