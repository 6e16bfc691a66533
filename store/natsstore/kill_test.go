package natsstore_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ssehub/ssehub/hub"
	"github.com/ssehub/ssehub/store/natsstore"
)

// TestKillRestart runs a Store against a nats-server of its own: it
// opens the Store before the server is up, kills the server with SIGKILL
// while a Tail runs, checks that operations fail while it is down, and
// restarts it on the same port and store directory. Every acknowledged
// record must survive, the Tail must deliver each position once and in
// order, and a new Store must read the same records from the stream.
func TestKillRestart(t *testing.T) {
	srv := newServer(t, "")
	url := "nats://" + srv.addr()
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
	srv.start(t)

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
	srv.kill(t)
	down("after SIGKILL")
	srv.start(t)
	appendSome(40, 40)

	mu.Lock()
	want := slices.Clone(acked)
	mu.Unlock()
	for i := range want {
		if want[i].Pos != uint64(i+1) {
			t.Fatalf("acknowledged record %d has position %d; want %d", i, want[i].Pos, i+1)
		}
	}
	deadline := time.After(15 * time.Second)
	for i := range want {
		select {
		case r := <-tailed:
			if r.Pos != want[i].Pos || r.ID != want[i].ID || r.Data != want[i].Data {
				t.Fatalf("Tail delivered position %d (%q); want %d (%q)", r.Pos, r.ID, want[i].Pos, want[i].ID)
			}
		case <-deadline:
			t.Fatalf("Tail delivered %d of %d records", i, len(want))
		}
	}
	select {
	case r := <-tailed:
		t.Errorf("Tail delivered position %d beyond the %d acknowledged", r.Pos, len(want))
	case <-time.After(50 * time.Millisecond):
	}
	cancel()
	<-tailErr

	// The records are in the stream: a new Store reads them all.
	s2, err := natsstore.Open(natsstore.Options{URL: url, Stream: "KILL"})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	ctx, cancel2 := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel2()
	if first, last, err := s2.Bounds(ctx); err != nil || first != 1 || last != uint64(len(want)) {
		t.Errorf("new Store: Bounds = %d, %d, %v; want 1, %d, nil", first, last, err, len(want))
	}
	var got []hub.Record
	if err := s2.Read(ctx, 0, sels(t, "**"), func(r *hub.Record) bool { got = append(got, *r); return true }); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("new Store: Read delivered %d records; want %d", len(got), len(want))
	}
	for i := range got {
		if got[i].Pos != want[i].Pos || got[i].ID != want[i].ID || got[i].Data != want[i].Data {
			t.Errorf("new Store: record %d = %d %q; want %d %q", i, got[i].Pos, got[i].ID, want[i].Pos, want[i].ID)
		}
	}
	for _, what := range []string{"before the first start", "after SIGKILL"} {
		if _, err := s2.Lookup(ctx, "refused-"+what); !errors.Is(err, hub.ErrNotFound) {
			t.Errorf("Lookup of the Append refused %s = %v; want ErrNotFound", what, err)
		}
	}
}
