package hub

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"testing"
	"unsafe"
)

// Internal tests of the subscriber queue and the fan-out index. They
// cannot use store/memstore, which imports hub; the external tests do.

// nopLog is a Log that holds nothing; Tail waits for its context.
type nopLog struct{}

func (nopLog) Append(context.Context, []Record) error { return nil }
func (nopLog) Read(context.Context, uint64, []Selector, func(*Record) bool) error {
	return nil
}
func (nopLog) Tail(ctx context.Context, _ uint64, _ func([]Record) error) error {
	<-ctx.Done()
	return ctx.Err()
}
func (nopLog) Lookup(context.Context, string) (uint64, error) { return 0, ErrNotFound }
func (nopLog) Bounds(context.Context) (uint64, uint64, error) { return 0, 0, nil }
func (nopLog) Trim(context.Context, Retention) (int, error)   { return 0, nil }
func (nopLog) Close() error                                   { return nil }

// runningHub returns a Hub marked as running, without a Run goroutine,
// for tests that call fanout themselves.
func runningHub(t testing.TB, opts *Options) *Hub {
	t.Helper()
	h := New(nopLog{}, opts)
	h.running = true
	t.Cleanup(func() { h.Close() })
	return h
}

// runHub returns a Hub over a nopLog with Run running, which Cleanup
// closes, waiting for Run to return.
func runHub(t testing.TB, opts *Options) *Hub {
	t.Helper()
	h := New(nopLog{}, opts)
	errc := make(chan error, 1)
	go func() { errc <- h.Run(context.Background()) }()
	t.Cleanup(func() {
		h.Close()
		if err := <-errc; err != nil {
			t.Errorf("Run = %v", err)
		}
	})
	for {
		h.mu.RLock()
		running := h.running
		h.mu.RUnlock()
		if running {
			return h
		}
		runtime.Gosched()
	}
}

func mustSelectors(t testing.TB, raw ...string) []Selector {
	t.Helper()
	lim := Limits{}.resolve()
	sels, err := lim.parseSelectors(nativeDialect, raw)
	if err != nil {
		t.Fatal(err)
	}
	return sels
}

// queued returns the positions in s's queue.
func queued(s *subscriber) []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []uint64
	for _, f := range s.q {
		out = append(out, f.pos)
	}
	return out
}

func signalled(s *subscriber) bool {
	select {
	case <-s.signal:
		return true
	default:
		return false
	}
}

func TestSubscriberQueue(t *testing.T) {
	s := newSubscriber(nativeDialect, nil, 3)
	for pos := uint64(1); pos <= 3; pos++ {
		if got := s.push(&frame{pos: pos}); got != pushed {
			t.Fatalf("push %d = %d; want pushed", pos, got)
		}
	}
	if !signalled(s) || signalled(s) {
		t.Error("three pushes did not leave exactly one signal")
	}
	q, end, _ := s.take(nil)
	if got := positions(q); !slices.Equal(got, []uint64{1, 2, 3}) || end != nil {
		t.Errorf("take = %v, %v; want [1 2 3], nil", got, end)
	}

	// Floor: queued frames at or below it go, and later ones are dropped.
	s.push(&frame{pos: 4})
	s.push(&frame{pos: 5})
	s.setFloor(4)
	if got := s.push(&frame{pos: 3}); got != dropped {
		t.Errorf("push below the floor = %d; want dropped", got)
	}
	s.push(&frame{pos: 6})
	if got := queued(s); !slices.Equal(got, []uint64{5, 6}) {
		t.Errorf("queue after floor 4 = %v; want [5 6]", got)
	}

	// Full: the next push ends the subscription and drops the queue.
	s.push(&frame{pos: 7})
	signalled(s)
	if got := s.push(&frame{pos: 8}); got != evicted {
		t.Fatalf("push to a full queue = %d; want evicted", got)
	}
	if !signalled(s) {
		t.Error("eviction did not signal the writer")
	}
	if got := s.push(&frame{pos: 9}); got != dropped {
		t.Errorf("push after eviction = %d; want dropped", got)
	}
	if q, end, _ := s.take(nil); len(q) != 0 || !errors.Is(end, errSlow) {
		t.Errorf("take after eviction = %v, %v; want nothing, errSlow", positions(q), end)
	}
	s.stop(errStopped)
	if _, end, _ := s.take(nil); !errors.Is(end, errSlow) {
		t.Errorf("end after a second stop = %v; want the first, errSlow", end)
	}
}

func positions(q []*frame) []uint64 {
	var out []uint64
	for _, f := range q {
		out = append(out, f.pos)
	}
	return out
}

// TestFanout checks the index: exact and pattern subscribers, an event
// with several topics queued once per subscriber, private events queued
// for no one, and one encoding shared by all.
func TestFanout(t *testing.T) {
	h := runningHub(t, nil)
	subs := map[string]*subscriber{}
	for _, sels := range [][]string{
		{"a"}, {"b"}, {"a", "b"}, {"*"}, {"a", "*"}, {"c/**"}, {"c/d", "c/*"},
	} {
		s := newSubscriber(nativeDialect, mustSelectors(t, sels...), 16)
		if ok, err := h.register(s); !ok || err != nil {
			t.Fatalf("register = %v, %v", ok, err)
		}
		subs[sels[0]+"|"+sels[len(sels)-1]] = s
	}
	h.fanout([]Record{
		{Pos: 1, Topics: []string{"a"}, Data: "1"},
		{Pos: 2, Topics: []string{"a", "b"}, Data: "2"},
		{Pos: 3, Topics: []string{"b"}, Data: "3", Private: true},
		{Pos: 4, Topics: []string{"c/d", "c/e/f"}, Data: "4"},
		{Pos: 5, Topics: []string{"z"}, Data: "5"},
	})
	want := map[string][]uint64{
		"a|a":       {1, 2},
		"b|b":       {2},
		"a|b":       {1, 2},
		"*|*":       {1, 2, 5},
		"a|*":       {1, 2, 5},
		"c/**|c/**": {4},
		"c/d|c/*":   {4},
	}
	frames := map[uint64]*frame{}
	for name, s := range subs {
		if got := queued(s); !slices.Equal(got, want[name]) {
			t.Errorf("subscriber %s queued %v; want %v", name, got, want[name])
		}
		s.mu.Lock()
		for _, f := range s.q {
			if g, ok := frames[f.pos]; ok && unsafe.SliceData(g.b) != unsafe.SliceData(f.b) {
				t.Errorf("event %d encoded more than once", f.pos)
			}
			frames[f.pos] = f
		}
		s.mu.Unlock()
	}
	if got, want := string(frames[2].b), "data: 2\n\n"; got != want { // no ID: made by hand
		t.Errorf("event 2 encoded as %q; want %q", got, want)
	}

	for _, s := range subs {
		h.unregister(s)
	}
	if len(h.exact) != 0 || len(h.patterns) != 0 || h.streams != 0 {
		t.Errorf("after unregistering all: %d exact topics, %d pattern subscribers, %d streams; want none",
			len(h.exact), len(h.patterns), h.streams)
	}
}

// TestRegisterStates checks that registration follows the Hub's state.
func TestRegisterStates(t *testing.T) {
	h := New(nopLog{}, nil)
	s := newSubscriber(nativeDialect, mustSelectors(t, "a"), 1)
	if ok, err := h.register(s); ok || err != nil {
		t.Errorf("register before Run = %v, %v; want false, nil", ok, err)
	}
	h.running = true
	if ok, err := h.register(s); !ok || err != nil {
		t.Errorf("register while running = %v, %v; want true, nil", ok, err)
	}
	h.stopRunning()
	if _, end, _ := s.take(nil); !errors.Is(end, errStopped) {
		t.Errorf("subscription after Run stopped: end = %v; want errStopped", end)
	}
	h.unregister(s)
	h.Close()
	if ok, err := h.register(newSubscriber(nativeDialect, mustSelectors(t, "a"), 1)); ok || !errors.Is(err, errClosed) {
		t.Errorf("register after Close = %v, %v; want false, errClosed", ok, err)
	}
}

// TestPushSchedule checks how a push tells the fan-out to put a
// subscriber written by a shard on the shard's ready list: once until the
// shard takes its queue, with urgency when the queue passes half full,
// and without the writer goroutine's signal.
func TestPushSchedule(t *testing.T) {
	s := newSubscriber(nativeDialect, nil, 4)
	s.owner = ownerShard
	for i, want := range []int{pushed | needSchedule, pushed, pushed | needUrgent} {
		if got := s.push(&frame{pos: uint64(i + 1), b: []byte{'a' + byte(i)}}); got != want {
			t.Errorf("push %d = %#x; want %#x", i+1, got, want)
		}
	}
	if signalled(s) {
		t.Error("a push to a shard's subscriber signalled a writer goroutine")
	}
	s.mu.Lock() // as the shard does
	s.scheduled = false
	b := s.appendQueuedLocked(nil)
	s.mu.Unlock()
	if string(b) != "abc" || len(queued(s)) != 0 {
		t.Errorf("took %q, leaving %v; want abc, nothing", b, queued(s))
	}
	if got := s.push(&frame{pos: 4}); got != pushed|needSchedule {
		t.Errorf("push after the shard took the queue = %#x; want pushed|needSchedule", got)
	}
	for pos := uint64(5); pos <= 7; pos++ {
		s.push(&frame{pos: pos})
	}
	if got := s.push(&frame{pos: 8}); got != evicted {
		t.Errorf("push to a full queue, scheduled already = %#x; want evicted", got)
	}
	s.mu.Lock()
	s.scheduled = false
	s.mu.Unlock()
	if got := s.push(&frame{pos: 9}); got != dropped {
		t.Errorf("push after eviction = %#x; want dropped", got)
	}
	// An end while not scheduled asks for scheduling: the shard closes
	// the connection.
	s2 := newSubscriber(nativeDialect, nil, 4)
	s2.owner = ownerShard
	s2.mu.Lock()
	sched := s2.endLocked(errStopped)
	s2.mu.Unlock()
	if !sched {
		t.Error("endLocked of an idle shard subscriber did not ask for scheduling")
	}
}

// TestFanoutBatch checks that the fan-out puts a shard's subscriber on
// the ready list once per batch, however many records of the batch it
// queues, and wakes the shard.
func TestFanoutBatch(t *testing.T) {
	h := runningHub(t, nil)
	sh := newShard(h, 0)
	h.shards = []*shard{sh}
	h.pending = make([]pendingShard, 1)
	subs := make([]*subscriber, 3)
	for i := range subs {
		subs[i] = newSubscriber(nativeDialect, mustSelectors(t, "a"), 16)
		if ok, err := h.register(subs[i]); !ok || err != nil {
			t.Fatalf("register = %v, %v", ok, err)
		}
		if subs[i].sh != sh {
			t.Fatal("registered subscriber not given the shard")
		}
		subs[i].owner = ownerShard
	}
	h.fanout([]Record{
		{Pos: 1, Topics: []string{"a"}, Data: "1"},
		{Pos: 2, Topics: []string{"a"}, Data: "2"},
		{Pos: 3, Topics: []string{"a"}, Data: "3"},
	})
	if !slices.Equal(sh.ready, subs) {
		t.Errorf("ready list = %v; want each subscriber once: %v", sh.ready, subs)
	}
	for _, s := range subs {
		if got := queued(s); !slices.Equal(got, []uint64{1, 2, 3}) {
			t.Errorf("queued %v; want [1 2 3]", got)
		}
	}
	select {
	case <-sh.wake:
	default:
		t.Error("the shard was not woken")
	}
	h.shards, h.pending = nil, nil
	for _, s := range subs {
		h.unregister(s)
	}
}
