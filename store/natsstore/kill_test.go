package natsstore_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ssehub/ssehub/hub"
	"github.com/ssehub/ssehub/hub/logtest"
	"github.com/ssehub/ssehub/internal/testserver"
	"github.com/ssehub/ssehub/store/natsstore"
)

// TestKillRestart runs a Store against a nats-server of its own: it
// opens the Store before the server is up, kills the server with SIGKILL
// while a Tail runs, checks that operations fail while it is down, and
// restarts it on the same port and store directory. Every acknowledged
// record must survive, the Tail must deliver each position once and in
// order, and a new Store must read the same records from the stream.
func TestKillRestart(t *testing.T) {
	srv := testserver.NATS(t, testserver.NATSOptions{Stopped: true})
	url := srv.URL()
	s, err := natsstore.Open(natsstore.Options{URL: url, Stream: "KILL"})
	if err != nil {
		t.Fatalf("Open while the server is down: %v", err)
	}
	defer s.Close()

	down := func(what string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		start := time.Now()
		_, _, err := s.Bounds(ctx)
		if err == nil || errors.Is(err, hub.ErrLogClosed) {
			t.Errorf("%s: Bounds = %v; want an error other than ErrLogClosed", what, err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("%s: Bounds took %v to fail; want within its 2s context", what, d)
		}
		err = s.Append(ctx, []hub.Record{{Topics: []string{"t"}, ID: "refused-" + what}})
		if err == nil {
			t.Errorf("%s: Append = nil; want an error", what)
		}
		if _, err := s.Lookup(ctx, "nothing"); err == nil || errors.Is(err, hub.ErrNotFound) {
			t.Errorf("%s: Lookup = %v; want an error other than ErrNotFound", what, err)
		}
	}
	down("before the first start")
	srv.Start()

	var (
		mu    sync.Mutex
		acked []hub.Record // by position
	)
	appendSome := func(from, n int) {
		t.Helper()
		for i := from; i < from+n; i++ {
			batch := make([]hub.Record, 1+i%3)
			for j := range batch {
				batch[j] = hub.Record{Topics: []string{fmt.Sprintf("t/%d", j)}, Data: fmt.Sprintf("%d.%d", i, j), ID: fmt.Sprintf("r%d.%d", i, j)}
			}
			// Right after a (re)start the Store may need a moment to
			// reconnect: retry, but only Appends that failed at once.
			deadline := time.Now().Add(15 * time.Second)
			for {
				ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
				err := s.Append(ctx, batch)
				cancel()
				if err == nil {
					break
				}
				if errors.Is(err, context.DeadlineExceeded) || time.Now().After(deadline) {
					t.Fatalf("Append %d: %v", i, err)
				}
				time.Sleep(50 * time.Millisecond)
			}
			mu.Lock()
			acked = append(acked, batch...)
			mu.Unlock()
		}
	}

	// A Tail from the start, across the kill.
	tctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	tailed := make(chan hub.Record, 1<<12)
	tailErr := make(chan error, 1)
	go func() {
		var after uint64
		for {
			err := s.Tail(tctx, after, func(recs []hub.Record) error {
				for _, r := range recs {
					tailed <- r
					after = r.Pos
				}
				return nil
			})
			if tctx.Err() != nil {
				tailErr <- nil
				return
			}
			// The hub calls Tail again from its last position.
			t.Logf("Tail: %v; again after %d", err, after)
			time.Sleep(100 * time.Millisecond)
		}
	}()

	appendSome(0, 40)
	// Concurrent appenders run into the kill: what they were acknowledged
	// must survive; what failed may or may not have been stored (a
	// message stored whose acknowledgement the kill lost).
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				r := []hub.Record{{Topics: []string{"c"}, Data: "c", ID: fmt.Sprintf("c%d.%d", g, i)}}
				ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
				err := s.Append(ctx, r)
				cancel()
				if err == nil {
					mu.Lock()
					acked = append(acked, r...)
					mu.Unlock()
				}
			}
		})
	}
	time.Sleep(100 * time.Millisecond)
	srv.Kill()
	time.Sleep(100 * time.Millisecond)
	close(stop)
	wg.Wait()
	down("after SIGKILL")
	srv.Start()
	appendSome(40, 40)

	ctx, cancel2 := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel2()
	_, last, err := s.Bounds(ctx)
	if err != nil {
		t.Fatalf("Bounds after restart: %v", err)
	}
	var got []hub.Record
	deadline := time.After(15 * time.Second)
	for len(got) < int(last) {
		select {
		case r := <-tailed:
			if r.Pos != uint64(len(got)+1) {
				t.Fatalf("Tail delivered position %d after %d records; want %d", r.Pos, len(got), len(got)+1)
			}
			got = append(got, r)
		case <-deadline:
			t.Fatalf("Tail delivered %d of %d records", len(got), last)
		}
	}
	select {
	case r := <-tailed:
		t.Errorf("Tail delivered position %d beyond the last, %d", r.Pos, last)
	case <-time.After(50 * time.Millisecond):
	}
	cancel()
	<-tailErr
	mu.Lock()
	defer mu.Unlock()
	byID := map[string]hub.Record{}
	for _, r := range got {
		byID[r.ID] = r
	}
	for _, w := range acked {
		if r, ok := byID[w.ID]; !ok || r.Pos != w.Pos || r.Data != w.Data {
			t.Errorf("acknowledged record %q at %d: Tail delivered %+v", w.ID, w.Pos, r)
		}
	}
	t.Logf("%d records acknowledged, %d stored", len(acked), len(got))

	// The records are in the stream: a new Store reads the same.
	s2, err := natsstore.Open(natsstore.Options{URL: url, Stream: "KILL"})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if first, l2, err := s2.Bounds(ctx); err != nil || first != 1 || l2 != last {
		t.Errorf("new Store: Bounds = %d, %d, %v; want 1, %d, nil", first, l2, err, last)
	}
	var read []hub.Record
	if err := s2.Read(ctx, 0, logtest.Selectors(t, "**"), func(r *hub.Record) bool { read = append(read, *r); return true }); err != nil {
		t.Fatal(err)
	}
	if len(read) != len(got) {
		t.Fatalf("new Store: Read delivered %d records; want %d", len(read), len(got))
	}
	for i := range read {
		if read[i].Pos != got[i].Pos || read[i].ID != got[i].ID || read[i].Data != got[i].Data {
			t.Errorf("new Store: record %d = %d %q; want %d %q", i, read[i].Pos, read[i].ID, got[i].Pos, got[i].ID)
		}
	}
	for _, what := range []string{"before the first start", "after SIGKILL"} {
		if _, err := s2.Lookup(ctx, "refused-"+what); !errors.Is(err, hub.ErrNotFound) {
			t.Errorf("Lookup of the Append refused %s = %v; want ErrNotFound", what, err)
		}
	}
}

// TestStreamLost wipes the server's data while a Store uses it, as a
// server whose disk was replaced (or a memory store restarted) does: the
// stream, its sequences and the Log's positions start over. The Store
// must notice, start its index over, and take Appends again; Bounds then
// reports the new, lower end, which tells the hub to end its streams.
func TestStreamLost(t *testing.T) {
	srv := testserver.NATS(t, testserver.NATSOptions{})
	s, err := natsstore.Open(natsstore.Options{URL: srv.URL(), Stream: "LOST"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	for i := range 5 {
		if err := s.Append(ctx, []hub.Record{{Topics: []string{"t"}, ID: fmt.Sprintf("old-%d", i)}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, last, err := s.Bounds(ctx); err != nil || last != 5 {
		t.Fatalf("Bounds = %d, %v; want 5", last, err)
	}

	srv.Kill()
	entries, err := os.ReadDir(srv.Dir())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(srv.Dir(), e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	srv.Start()

	// The hub calls Bounds every second; within 10 s, the Store must
	// take an Append again, at position 1.
	deadline := time.Now().Add(10 * time.Second)
	var rec hub.Record
	for {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		s.Bounds(actx)
		rec = hub.Record{Topics: []string{"t"}, ID: "old-0"} // free again: the old record is gone
		err = s.Append(actx, []hub.Record{rec})
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Append after the data was lost: %v (still failing after 10s)", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	first, last, err := s.Bounds(ctx)
	if err != nil || first != 1 || last != 1 {
		t.Errorf("Bounds after the data was lost = %d, %d, %v; want 1, 1", first, last, err)
	}
	if pos, err := s.Lookup(ctx, "old-0"); err != nil || pos != 1 {
		t.Errorf("Lookup(old-0) = %d, %v; want 1", pos, err)
	}
	if _, err := s.Lookup(ctx, "old-3"); !errors.Is(err, hub.ErrNotFound) {
		t.Errorf("Lookup(old-3) = %v; want ErrNotFound: the index must start over", err)
	}
}
