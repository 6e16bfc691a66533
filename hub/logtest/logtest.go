package logtest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ssehub/ssehub/hub"
)

// timeout bounds every wait of the suite, so a broken backend fails a
// subtest instead of hanging the test binary.
const timeout = 10 * time.Second

// Run runs the contract suite as subtests of t. open must return a new,
// empty Log each time it is called; it may call t.Fatal, t.TempDir and
// t.Cleanup. The suite closes every Log it opens, at the latest in a
// Cleanup; it never calls a Log's Close twice.
func Run(t *testing.T, open func(t *testing.T) hub.Log) {
	t.Helper()
	s := suite{open: open}
	tests := []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"Empty", s.testEmpty},
		{"Positions", s.testPositions},
		{"IDs", s.testIDs},
		{"DigitIDs", s.testDigitIDs},
		{"DuplicateID", s.testDuplicateID},
		{"Time", s.testTime},
		{"RoundTrip", s.testRoundTrip},
		{"AppendCopiesInput", s.testAppendCopiesInput},
		{"Read", s.testRead},
		{"ReadStop", s.testReadStop},
		{"ReadContext", s.testReadContext},
		{"ReadRetain", s.testReadRetain},
		{"TailExisting", s.testTailExisting},
		{"TailAfterFuture", s.testTailAfterFuture},
		{"TailConcurrentAppenders", s.testTailConcurrent},
		{"TailContext", s.testTailContext},
		{"TailFnError", s.testTailFnError},
		{"TailClose", s.testTailClose},
		{"Lookup", s.testLookup},
		{"TrimCount", s.testTrimCount},
		{"TrimAge", s.testTrimAge},
		{"TrimAll", s.testTrimAll},
		{"TrimDuringRead", s.testTrimDuringRead},
		{"ConcurrentAppend", s.testConcurrentAppend},
		{"ConcurrentDuplicateID", s.testConcurrentDuplicate},
		{"ReadAfterBounds", s.testReadAfterBounds},
		{"AppendVisible", s.testAppendVisible},
		{"TailWithinBounds", s.testTailWithinBounds},
		{"HubResume", s.testHubResume},
		{"Closed", s.testClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.fn)
	}
}

// RunDurable runs Run, then checks that records survive Close and a new
// open of the same directory. open must return a Log that keeps its data
// under dir: called with a new empty directory it returns an empty Log,
// and called again with the same directory after Close it returns a Log
// holding everything the closed one held. The suite closes every Log it
// opens.
func RunDurable(t *testing.T, open func(t *testing.T, dir string) hub.Log) {
	t.Helper()
	Run(t, func(t *testing.T) hub.Log { return open(t, t.TempDir()) })
	d := durable{open: open}
	t.Run("Reopen", d.testReopen)
	t.Run("ReopenAfterTrimAll", d.testReopenAfterTrimAll)
	t.Run("TailAfterReopen", d.testTailAfterReopen)
}

type suite struct {
	open func(t *testing.T) hub.Log
}

// closeOnce wraps a Log so that the suite's explicit Close and its
// Cleanup never close the backend twice.
type closeOnce struct {
	hub.Log
	once sync.Once
	err  error
}

func (c *closeOnce) Close() error {
	c.once.Do(func() { c.err = c.Log.Close() })
	return c.err
}

// fresh opens a new Log and registers its Close with t.Cleanup.
func (s suite) fresh(t *testing.T) hub.Log {
	t.Helper()
	return track(t, s.open(t))
}

func track(t *testing.T, l hub.Log) hub.Log {
	t.Helper()
	if l == nil {
		t.Fatal("open returned a nil Log")
	}
	c := &closeOnce{Log: l}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	t.Cleanup(cancel)
	return ctx
}

// Selectors parses each of ss with hub.ParseSelector, failing tb on an
// error: the selectors of a Read, for the suite and for backends' own
// tests and benchmarks.
func Selectors(tb testing.TB, ss ...string) []hub.Selector {
	tb.Helper()
	out := make([]hub.Selector, 0, len(ss))
	for _, s := range ss {
		sel, err := hub.ParseSelector(s)
		if err != nil {
			tb.Fatalf("ParseSelector(%q): %v", s, err)
		}
		out = append(out, sel)
	}
	return out
}

// rec returns a record on the given topics with data d.
func rec(d string, topics ...string) hub.Record {
	return hub.Record{Topics: topics, Data: d}
}

func mustAppend(t *testing.T, l hub.Log, recs ...hub.Record) []hub.Record {
	t.Helper()
	if err := l.Append(testContext(t), recs); err != nil {
		t.Fatalf("Append(%d records): %v", len(recs), err)
	}
	return recs
}

// appendN appends n records on topic, in one batch.
func appendN(t *testing.T, l hub.Log, n int, topic string) []hub.Record {
	t.Helper()
	recs := make([]hub.Record, n)
	for i := range recs {
		recs[i] = rec(fmt.Sprintf("%s #%d", topic, i), topic)
	}
	return mustAppend(t, l, recs...)
}

// readAll returns the records Read delivers for sels after after.
func readAll(t *testing.T, l hub.Log, after uint64, sel []hub.Selector) []hub.Record {
	t.Helper()
	got, err := read(t, l, after, sel)
	if err != nil {
		t.Fatalf("Read(after %d, %v): %v", after, sel, err)
	}
	return got
}

// read returns what Read after after delivers, and its error.
func read(t *testing.T, l hub.Log, after uint64, sel []hub.Selector) ([]hub.Record, error) {
	var got []hub.Record
	err := l.Read(testContext(t), after, sel, func(r *hub.Record) bool {
		got = append(got, *r)
		return true
	})
	return got, err
}

// checkTrimmed checks that Read after after returns an error wrapping
// hub.ErrTrimmed, having delivered n records.
func checkTrimmed(t *testing.T, l hub.Log, after uint64, sel []hub.Selector, n int) {
	t.Helper()
	got, err := read(t, l, after, sel)
	if !errors.Is(err, hub.ErrTrimmed) || len(got) != n {
		t.Errorf("Read(after %d, %v) = %v after %d records; want ErrTrimmed after %d", after, sel, err, len(got), n)
	}
}

func positions(recs []hub.Record) []uint64 {
	out := make([]uint64, len(recs))
	for i, r := range recs {
		out[i] = r.Pos
	}
	return out
}

func span(from, to uint64) []uint64 {
	var out []uint64
	for p := from; p <= to; p++ {
		out = append(out, p)
	}
	return out
}

func checkBounds(t *testing.T, l hub.Log, first, last uint64) {
	t.Helper()
	f, n, err := l.Bounds(testContext(t))
	if err != nil {
		t.Fatalf("Bounds: %v", err)
	}
	if f != first || n != last {
		t.Errorf("Bounds() = %d, %d; want %d, %d", f, n, first, last)
	}
}

func checkNotFound(t *testing.T, l hub.Log, id string) {
	t.Helper()
	pos, err := l.Lookup(testContext(t), id)
	if !errors.Is(err, hub.ErrNotFound) {
		t.Errorf("Lookup(%q) = %d, %v; want an error wrapping hub.ErrNotFound", id, pos, err)
	}
}

func checkLookup(t *testing.T, l hub.Log, id string, want uint64) {
	t.Helper()
	pos, err := l.Lookup(testContext(t), id)
	if err != nil || pos != want {
		t.Errorf("Lookup(%q) = %d, %v; want %d, nil", id, pos, err, want)
	}
}

// diff describes how got differs from want, or returns "".
func diff(got, want hub.Record) string {
	var d []string
	if got.Pos != want.Pos {
		d = append(d, fmt.Sprintf("Pos %d, want %d", got.Pos, want.Pos))
	}
	if got.ID != want.ID {
		d = append(d, fmt.Sprintf("ID %q, want %q", got.ID, want.ID))
	}
	if !slices.Equal(got.Topics, want.Topics) {
		d = append(d, fmt.Sprintf("Topics %q, want %q", got.Topics, want.Topics))
	}
	if got.Type != want.Type {
		d = append(d, fmt.Sprintf("Type %q, want %q", got.Type, want.Type))
	}
	if got.Data != want.Data {
		d = append(d, fmt.Sprintf("Data %.60q, want %.60q", got.Data, want.Data))
	}
	if got.Retry != want.Retry {
		d = append(d, fmt.Sprintf("Retry %v, want %v", got.Retry, want.Retry))
	}
	if got.Private != want.Private {
		d = append(d, fmt.Sprintf("Private %v, want %v", got.Private, want.Private))
	}
	if !got.Time.Equal(want.Time) {
		d = append(d, fmt.Sprintf("Time %v, want %v", got.Time, want.Time))
	}
	return strings.Join(d, "; ")
}

func checkRecords(t *testing.T, what string, got, want []hub.Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d records at %v; want %d at %v", what, len(got), positions(got), len(want), positions(want))
	}
	for i := range got {
		if d := diff(got[i], want[i]); d != "" {
			t.Errorf("%s: record %d: %s", what, i, d)
		}
	}
}

func (s suite) testEmpty(t *testing.T) {
	l := s.fresh(t)
	ctx := testContext(t)
	checkBounds(t, l, 0, 0)
	if got := readAll(t, l, 0, Selectors(t, "**")); len(got) != 0 {
		t.Errorf("Read on an empty Log delivered %d records", len(got))
	}
	checkNotFound(t, l, "x")
	checkNotFound(t, l, "1")
	for _, r := range []hub.Retention{{}, {MaxCount: 1}, {MaxAge: time.Nanosecond}} {
		if n, err := l.Trim(ctx, r); n != 0 || err != nil {
			t.Errorf("Trim(%+v) on an empty Log = %d, %v; want 0, nil", r, n, err)
		}
	}
	if err := l.Append(ctx, nil); err != nil {
		t.Errorf("Append(nil) = %v; want nil", err)
	}
	checkBounds(t, l, 0, 0)
}

func (s suite) testPositions(t *testing.T) {
	l := s.fresh(t)
	var all []hub.Record
	all = append(all, appendN(t, l, 3, "a")...)
	all = append(all, appendN(t, l, 1, "b")...)
	all = append(all, mustAppend(t, l, rec("x", "a", "b"), rec("y", "c"))...)
	all = append(all, appendN(t, l, 5, "d/e")...)
	if got, want := positions(all), span(1, 11); !slices.Equal(got, want) {
		t.Errorf("positions assigned by Append = %v; want %v", got, want)
	}
	checkBounds(t, l, 1, 11)
	checkRecords(t, "Read(**)", readAll(t, l, 0, Selectors(t, "**")), all)
}

func (s suite) testIDs(t *testing.T) {
	l := s.fresh(t)
	recs := mustAppend(t, l,
		hub.Record{Topics: []string{"a"}, Data: "1"},
		hub.Record{Topics: []string{"a"}, Data: "2", ID: "pub-1"},
		hub.Record{Topics: []string{"a"}, Data: "3"},
		hub.Record{Topics: []string{"a"}, Data: "4", ID: "évènement/ü 1"},
	)
	want := []string{"1", "pub-1", "3", "évènement/ü 1"}
	for i, r := range recs {
		if r.ID != want[i] {
			t.Errorf("record %d (Pos %d): ID = %q; want %q", i, r.Pos, r.ID, want[i])
		}
		checkLookup(t, l, want[i], uint64(i+1))
	}
	checkRecords(t, "Read", readAll(t, l, 0, Selectors(t, "a")), recs)
}

// testDigitIDs checks the promise that a publisher's ID never collides
// with an assigned one, whether the backend refuses digit-only IDs or
// accepts them and keeps the IDs unique.
func (s suite) testDigitIDs(t *testing.T) {
	l := s.fresh(t)
	ctx := testContext(t)
	err := l.Append(ctx, []hub.Record{{Topics: []string{"a"}, ID: "3"}})
	if err != nil {
		checkBounds(t, l, 0, 0)
	}
	appendN(t, l, 5, "a")
	got := readAll(t, l, 0, Selectors(t, "a"))
	seen := map[string]uint64{}
	for _, r := range got {
		if p, dup := seen[r.ID]; dup {
			t.Errorf("ID %q is held by positions %d and %d", r.ID, p, r.Pos)
		}
		seen[r.ID] = r.Pos
	}
	for id, pos := range seen {
		checkLookup(t, l, id, pos)
	}
}

func (s suite) testDuplicateID(t *testing.T) {
	tests := []struct {
		name  string
		batch []hub.Record
	}{
		{"existing", []hub.Record{{Topics: []string{"a"}, ID: "new-1"}, {Topics: []string{"a"}, ID: "taken"}}},
		{"existing first", []hub.Record{{Topics: []string{"a"}, ID: "taken"}, {Topics: []string{"a"}}}},
		{"within batch", []hub.Record{{Topics: []string{"a"}, ID: "new-2"}, {Topics: []string{"b"}}, {Topics: []string{"a"}, ID: "new-2"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := s.fresh(t)
			ctx := testContext(t)
			mustAppend(t, l, rec("0", "a"), hub.Record{Topics: []string{"a"}, ID: "taken"})
			err := l.Append(ctx, tt.batch)
			if !errors.Is(err, hub.ErrDuplicateID) {
				t.Fatalf("Append(%s) = %v; want an error wrapping hub.ErrDuplicateID", tt.name, err)
			}
			checkBounds(t, l, 1, 2)
			if got := readAll(t, l, 0, Selectors(t, "**")); len(got) != 2 {
				t.Errorf("after a refused batch, Read delivered %d records; want 2", len(got))
			}
			for _, r := range tt.batch {
				if r.ID != "" && r.ID != "taken" {
					checkNotFound(t, l, r.ID)
				}
			}
			// The refused batch used no positions.
			next := appendN(t, l, 2, "a")
			if got, want := positions(next), span(3, 4); !slices.Equal(got, want) {
				t.Errorf("positions after a refused batch = %v; want %v", got, want)
			}
		})
	}
}

func (s suite) testTime(t *testing.T) {
	l := s.fresh(t)
	before := time.Now()
	recs := appendN(t, l, 3, "a")
	after := time.Now()
	// A remote backend may stamp records with its own clock; allow skew.
	const skew = time.Minute
	for _, r := range recs {
		if r.Time.IsZero() {
			t.Fatalf("record %d: Append left Time zero", r.Pos)
		}
		if r.Time.Before(before.Add(-skew)) || r.Time.After(after.Add(skew)) {
			t.Errorf("record %d: Time = %v; want within a minute of [%v, %v]", r.Pos, r.Time, before, after)
		}
	}
	checkRecords(t, "Read", readAll(t, l, 0, Selectors(t, "a")), recs)
}

// sample returns records exercising every field.
func sample() []hub.Record {
	big := strings.Repeat("0123456789abcdef\n", 64<<10/17)
	return []hub.Record{
		{Topics: []string{"a"}},
		{Topics: []string{"b", "a", "c/d"}, Type: "update", Data: "line 1\nline 2\r\nline 3\r", Retry: 1500 * time.Millisecond},
		{Topics: []string{"a"}, ID: "id with spaces & ünïcode ✓", Data: "nul \x00 inside, tab \t, emoji 🎉, 世界", Private: true},
		{Topics: []string{"c/d"}, Type: "t", Data: "", Retry: time.Hour},
		{Topics: []string{"a"}, Data: big},
		{Topics: []string{"z"}, Data: "\n\n", Private: true, Retry: time.Millisecond},
	}
}

func (s suite) testRoundTrip(t *testing.T) {
	l := s.fresh(t)
	in := sample()
	mustAppend(t, l, in[:2]...)
	mustAppend(t, l, in[2:]...)
	want := sample()
	for i := range want {
		want[i].Pos, want[i].Time = in[i].Pos, in[i].Time
		if want[i].ID == "" {
			want[i].ID = strconv.FormatUint(in[i].Pos, 10)
		}
	}
	checkRecords(t, "records after Append", in, want)
	checkRecords(t, "Read", readAll(t, l, 0, Selectors(t, "**")), want)
	checkRecords(t, "Tail", tailN(t, l, 0, len(want)), want)
}

func (s suite) testAppendCopiesInput(t *testing.T) {
	l := s.fresh(t)
	recs := mustAppend(t, l, rec("x", "a", "b"))
	want := recs[0]
	want.Topics = slices.Clone(want.Topics)
	recs[0].Topics[0] = "mutated"
	recs[0].Topics = append(recs[0].Topics[:1], "also mutated")
	checkRecords(t, "Read after the caller changed its slice", readAll(t, l, 0, Selectors(t, "**")), []hub.Record{want})
}

// readFixture fills l with about 240 records on a mix of topics, some on
// several (once the same topic twice), and a quiet topic that few
// records have, in batches of varied size.
func readFixture(t *testing.T, l hub.Log) []hub.Record {
	t.Helper()
	topics := []string{"a", "b", "a/x", "a/y", "a/x/1", "b/x", "c/d/e"}
	rng := rand.New(rand.NewPCG(1, 2))
	var all []hub.Record
	for len(all) < 240 {
		batch := make([]hub.Record, 1+rng.IntN(7))
		for i := range batch {
			r := hub.Record{Data: fmt.Sprintf("r%d", len(all)+i)}
			switch n := rng.IntN(40); {
			case n < 24:
				r.Topics = []string{topics[rng.IntN(len(topics))]}
			case n < 36:
				r.Topics = []string{topics[rng.IntN(len(topics))], topics[rng.IntN(len(topics))]}
			case n < 38:
				r.Topics = []string{"c/d/e", "a", "b/x", "a"}
			default:
				r.Topics = []string{topics[rng.IntN(len(topics))], "quiet"}
			}
			if rng.IntN(4) == 0 {
				r.ID = fmt.Sprintf("pub-%d", len(all)+i)
			}
			batch[i] = r
		}
		all = append(all, mustAppend(t, l, batch...)...)
	}
	return all
}

func (s suite) testRead(t *testing.T) {
	l := s.fresh(t)
	all := readFixture(t, l)
	last := uint64(len(all))
	if n := len(readAll(t, l, 0, Selectors(t, "quiet"))); n < 3 || n > 30 {
		t.Fatalf("fixture has %d records on the quiet topic; want a few", n)
	}

	selSets := [][]string{
		{"a"}, {"quiet"}, {"a/x"}, {"a/*"}, {"a/**"}, {"*"}, {"**"}, {"*/x"},
		{"a", "b"}, {"a/x", "a/**"}, {"a", "a"}, {"nomatch"}, {"b/*", "c/**"},
		{"a/*/1"}, {"c/d/e", "quiet", "b"}, {"*/*/*"},
	}
	afters := []uint64{0, 1, 57, 150, last - 1, last, last + 10}
	for _, ss := range selSets {
		sel := Selectors(t, ss...)
		for _, after := range afters {
			var want []hub.Record
			for _, r := range all {
				if r.Pos > after && hub.MatchAny(sel, r.Topics) {
					want = append(want, r)
				}
			}
			got := readAll(t, l, after, sel)
			checkRecords(t, fmt.Sprintf("Read(after %d, %q)", after, ss), got, want)
		}
	}
	if got := readAll(t, l, 0, nil); len(got) != 0 {
		t.Errorf("Read with no selectors delivered %d records; want 0", len(got))
	}
}

func (s suite) testReadStop(t *testing.T) {
	l := s.fresh(t)
	appendN(t, l, 20, "a")
	for _, stop := range []int{1, 3, 20} {
		calls := 0
		err := l.Read(testContext(t), 0, Selectors(t, "a"), func(*hub.Record) bool {
			calls++
			return calls < stop
		})
		if err != nil || calls != stop {
			t.Errorf("Read stopping after %d: fn called %d times, err %v; want %d, nil", stop, calls, err, stop)
		}
	}
}

func (s suite) testReadContext(t *testing.T) {
	l := s.fresh(t)
	for range 6 {
		appendN(t, l, 500, "a")
	}
	t.Run("cancelled before", func(t *testing.T) {
		ctx, cancel := context.WithCancel(testContext(t))
		cancel()
		calls := 0
		err := l.Read(ctx, 0, Selectors(t, "a"), func(*hub.Record) bool { calls++; return true })
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Read with a cancelled context = %v; want context.Canceled", err)
		}
		if calls != 0 {
			t.Errorf("Read with a cancelled context called fn %d times; want 0", calls)
		}
	})
	t.Run("cancelled during", func(t *testing.T) {
		ctx, cancel := context.WithCancel(testContext(t))
		defer cancel()
		calls := 0
		err := l.Read(ctx, 0, Selectors(t, "a"), func(*hub.Record) bool {
			calls++
			cancel()
			return true
		})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Read cancelled from fn after %d calls = %v; want context.Canceled", calls, err)
		}
	})
}

// testReadRetain checks that records given to fn stay intact after fn
// returns, through later Appends, Reads and Trims.
func (s suite) testReadRetain(t *testing.T) {
	l := s.fresh(t)
	recs := mustAppend(t, l, rec("1", "a", "b"), rec("2", "a"), rec("3", "b", "a"))
	var kept []*hub.Record
	err := l.Read(testContext(t), 0, Selectors(t, "a"), func(r *hub.Record) bool {
		kept = append(kept, r)
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	tailed := tailN(t, l, 0, 3)
	appendN(t, l, 50, "a")
	readAll(t, l, 0, Selectors(t, "**"))
	if _, err := l.Trim(testContext(t), hub.Retention{MaxCount: 1}); err != nil {
		t.Fatal(err)
	}
	var got []hub.Record
	for _, r := range kept {
		got = append(got, *r)
	}
	checkRecords(t, "records retained from Read", got, recs)
	checkRecords(t, "records retained from Tail", tailed, recs)
}

// tail runs Tail in a goroutine and sends what it delivers on a channel.
// Cancel the context to stop it; wait for its error on done.
type tail struct {
	recs   chan hub.Record
	done   chan error
	cancel context.CancelFunc
}

func startTail(t *testing.T, l hub.Log, after uint64) *tail {
	t.Helper()
	ctx, cancel := context.WithCancel(testContext(t))
	tl := &tail{recs: make(chan hub.Record, 1<<16), done: make(chan error, 1), cancel: cancel}
	var empty sync.Once
	go func() {
		tl.done <- l.Tail(ctx, after, func(batch []hub.Record) error {
			if len(batch) == 0 {
				empty.Do(func() { t.Errorf("Tail called fn with an empty batch") })
			}
			for _, r := range batch {
				select {
				case tl.recs <- r:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return nil
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-tl.done:
		case <-time.After(timeout):
			t.Errorf("Tail did not return after its context was cancelled")
		}
	})
	return tl
}

// next returns the next n records the tail delivers.
func (tl *tail) next(t *testing.T, n int) []hub.Record {
	t.Helper()
	deadline := time.After(timeout)
	var got []hub.Record
	for len(got) < n {
		select {
		case r := <-tl.recs:
			got = append(got, r)
		case err := <-tl.done:
			t.Fatalf("Tail returned %v after delivering %d of %d records", err, len(got), n)
		case <-deadline:
			t.Fatalf("Tail delivered %d of %d records in %v", len(got), n, timeout)
		}
	}
	return got
}

// quiet checks that the tail delivers nothing more for a short while.
func (tl *tail) quiet(t *testing.T) {
	t.Helper()
	select {
	case r := <-tl.recs:
		t.Errorf("Tail delivered record %d; want nothing", r.Pos)
	case <-time.After(20 * time.Millisecond):
	}
}

// stop cancels the tail and checks that it returns the context's error.
func (tl *tail) stop(t *testing.T) {
	t.Helper()
	tl.cancel()
	select {
	case err := <-tl.done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Tail after cancel = %v; want context.Canceled", err)
		}
		tl.done <- err // for the Cleanup
	case <-time.After(timeout):
		t.Fatalf("Tail did not return after its context was cancelled")
	}
}

// tailN returns the first n records a Tail after after delivers.
func tailN(t *testing.T, l hub.Log, after uint64, n int) []hub.Record {
	t.Helper()
	tl := startTail(t, l, after)
	got := tl.next(t, n)
	tl.stop(t)
	return got
}

func (s suite) testTailExisting(t *testing.T) {
	l := s.fresh(t)
	all := appendN(t, l, 10, "a")
	tl := startTail(t, l, 4)
	checkRecords(t, "Tail(after 4) of held records", tl.next(t, 6), all[4:])
	tl.quiet(t)
	more := mustAppend(t, l, rec("x", "b"), rec("y", "c", "a"))
	checkRecords(t, "Tail of new records", tl.next(t, 2), more)
	tl.stop(t)
}

func (s suite) testTailAfterFuture(t *testing.T) {
	l := s.fresh(t)
	appendN(t, l, 2, "a")
	tl := startTail(t, l, 5)
	tl.quiet(t)
	all := appendN(t, l, 6, "a")
	checkRecords(t, "Tail(after 5)", tl.next(t, 3), all[3:])
	tl.stop(t)
}

// testTailConcurrent is the bus check: with 8 appenders, Tails started
// before and during the appends deliver every record once, in order.
func (s suite) testTailConcurrent(t *testing.T) {
	l := s.fresh(t)
	const appenders, appends = 8, 40
	early := startTail(t, l, 0)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		byPos   = map[uint64]hub.Record{}
		started = make(chan struct{})
		total   int
	)
	for g := range appenders {
		wg.Go(func() {
			<-started
			for i := range appends {
				batch := make([]hub.Record, 1+(g+i)%4)
				for j := range batch {
					batch[j] = rec(fmt.Sprintf("g%d i%d j%d", g, i, j), fmt.Sprintf("t/%d", g))
				}
				if err := l.Append(testContext(t), batch); err != nil {
					t.Errorf("Append: %v", err)
					return
				}
				mu.Lock()
				for _, r := range batch {
					byPos[r.Pos] = r
				}
				mu.Unlock()
			}
		})
		for i := range appends {
			total += 1 + (g+i)%4
		}
	}
	close(started)
	// A second Tail joins while the appenders run.
	gotEarly := early.next(t, total/3)
	late := startTail(t, l, 0)
	gotEarly = append(gotEarly, early.next(t, total-total/3)...)
	gotLate := late.next(t, total)
	wg.Wait()
	early.quiet(t)
	early.stop(t)
	late.stop(t)

	want := make([]hub.Record, total)
	for i := range want {
		r, ok := byPos[uint64(i+1)]
		if !ok {
			t.Fatalf("no Append returned position %d of %d", i+1, total)
		}
		want[i] = r
	}
	checkRecords(t, "Tail started before the appends", gotEarly, want)
	checkRecords(t, "Tail started during the appends", gotLate, want)
}

func (s suite) testTailContext(t *testing.T) {
	l := s.fresh(t)
	appendN(t, l, 3, "a")
	tl := startTail(t, l, 0)
	tl.next(t, 3)
	tl.stop(t)

	ctx, cancel := context.WithCancel(testContext(t))
	cancel()
	err := l.Tail(ctx, 3, func([]hub.Record) error { return nil })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Tail with a cancelled context = %v; want context.Canceled", err)
	}
}

func (s suite) testTailFnError(t *testing.T) {
	l := s.fresh(t)
	appendN(t, l, 3, "a")
	errStop := errors.New("stop here")
	calls := 0
	err := l.Tail(testContext(t), 0, func([]hub.Record) error {
		calls++
		return errStop
	})
	if !errors.Is(err, errStop) || calls != 1 {
		t.Errorf("Tail whose fn fails = %v after %d calls; want %v after 1", err, calls, errStop)
	}
}

func (s suite) testTailClose(t *testing.T) {
	l := s.fresh(t)
	appendN(t, l, 2, "a")
	tl := startTail(t, l, 0)
	tl.next(t, 2)
	tl.quiet(t) // now Tail waits for new records
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-tl.done:
		if !errors.Is(err, hub.ErrLogClosed) {
			t.Errorf("Tail after Close = %v; want hub.ErrLogClosed", err)
		}
		tl.done <- err
	case <-time.After(timeout):
		t.Fatalf("Tail did not return after Close")
	}
}

func (s suite) testLookup(t *testing.T) {
	l := s.fresh(t)
	mustAppend(t, l, rec("1", "a"), hub.Record{Topics: []string{"b"}, ID: "x"})
	tests := []struct {
		id   string
		want uint64
	}{
		{"1", 1}, {"x", 2}, {"2", 0}, {"3", 0}, {"01", 0}, {"X", 0}, {"", 0}, {"18446744073709551616", 0},
	}
	for _, tt := range tests {
		if tt.want == 0 {
			checkNotFound(t, l, tt.id)
		} else {
			checkLookup(t, l, tt.id, tt.want)
		}
	}
}

func (s suite) testTrimCount(t *testing.T) {
	l := s.fresh(t)
	ctx := testContext(t)
	mustAppend(t, l, hub.Record{Topics: []string{"a"}, ID: "first"}, rec("2", "b"))
	all := append([]hub.Record(nil), appendN(t, l, 8, "a")...)
	tests := []struct {
		r    hub.Retention
		want int
	}{
		{hub.Retention{}, 0},
		{hub.Retention{MaxCount: 100}, 0},
		{hub.Retention{MaxCount: 10}, 0},
		{hub.Retention{MaxCount: 4}, 6},
		{hub.Retention{MaxCount: 4}, 0},
		{hub.Retention{MaxCount: 4, MaxAge: time.Hour}, 0},
	}
	for _, tt := range tests {
		if n, err := l.Trim(ctx, tt.r); n != tt.want || err != nil {
			t.Errorf("Trim(%+v) = %d, %v; want %d, nil", tt.r, n, err, tt.want)
		}
	}
	checkBounds(t, l, 7, 10)
	checkNotFound(t, l, "first")
	checkNotFound(t, l, "2")
	checkNotFound(t, l, "6")
	checkLookup(t, l, "7", 7)
	checkRecords(t, "Read after Trim", readAll(t, l, 6, Selectors(t, "**")), all[4:])
	checkRecords(t, "Read(a) after Trim", readAll(t, l, 6, Selectors(t, "a")), all[4:])
	if got := readAll(t, l, 6, Selectors(t, "b")); len(got) != 0 {
		t.Errorf("Read(b) after its only record was trimmed delivered %v", positions(got))
	}
	for _, after := range []uint64{0, 1, 5} {
		checkTrimmed(t, l, after, Selectors(t, "**"), 0)
		checkTrimmed(t, l, after, Selectors(t, "b"), 0)
	}
	checkRecords(t, "Tail after Trim", tailN(t, l, 0, 4), all[4:])
	more := appendN(t, l, 1, "b")
	if more[0].Pos != 11 {
		t.Errorf("position after Trim = %d; want 11", more[0].Pos)
	}
}

// testTrimAge appends two groups a quarter of a second apart and trims
// the older one by age. MaxAge is derived from the Time values the
// backend stored, measured so that scheduling delays can only make the
// cut later than aimed, and the aim is just after the old group: the
// check fails only if Append's return and Trim's call together take
// longer than the gap.
func (s suite) testTrimAge(t *testing.T) {
	const gap = 250 * time.Millisecond
	l := s.fresh(t)
	ctx := testContext(t)
	old := mustAppend(t, l, rec("o1", "a"), hub.Record{Topics: []string{"b"}, ID: "old"}, rec("o3", "a"))
	// Let real time pass so the two groups differ in age; this is not a
	// wait for another goroutine.
	<-time.After(gap)
	recent := mustAppend(t, l, rec("r1", "a"), hub.Record{Topics: []string{"b"}, ID: "recent"})
	appended := time.Now()

	tOld, tRecent := old[0].Time, recent[0].Time
	for _, r := range old {
		if r.Time.After(tOld) {
			tOld = r.Time
		}
	}
	for _, r := range recent {
		if r.Time.Before(tRecent) {
			tRecent = r.Time
		}
	}
	if tRecent.Sub(tOld) < gap/2 {
		t.Fatalf("records appended %v apart have Times %v and %v", gap, tOld, tRecent)
	}

	if n, err := l.Trim(ctx, hub.Retention{MaxAge: time.Hour}); n != 0 || err != nil {
		t.Errorf("Trim(MaxAge 1h) = %d, %v; want 0, nil", n, err)
	}
	maxAge := tRecent.Sub(tOld) - time.Millisecond + time.Since(appended)
	n, err := l.Trim(ctx, hub.Retention{MaxAge: maxAge})
	if err != nil || n != len(old) {
		t.Fatalf("Trim(MaxAge %v) = %d, %v; want %d, nil", maxAge, n, err, len(old))
	}
	checkBounds(t, l, recent[0].Pos, recent[len(recent)-1].Pos)
	checkNotFound(t, l, "old")
	checkNotFound(t, l, strconv.FormatUint(old[0].Pos, 10))
	checkLookup(t, l, "recent", recent[1].Pos)
	checkRecords(t, "Read after Trim by age", readAll(t, l, recent[0].Pos-1, Selectors(t, "a", "b")), recent)
	checkTrimmed(t, l, 0, Selectors(t, "a", "b"), 0)

	// Both bounds together: MaxCount removes what MaxAge keeps.
	n, err = l.Trim(ctx, hub.Retention{MaxCount: 1, MaxAge: time.Hour})
	if err != nil || n != 1 {
		t.Errorf("Trim(MaxCount 1, MaxAge 1h) = %d, %v; want 1, nil", n, err)
	}
	checkRecords(t, "Read after Trim by count", readAll(t, l, recent[0].Pos, Selectors(t, "a", "b")), recent[1:])
}

// testTrimDuringRead trims records that a Read in progress has not
// reached: the Read must say so with ErrTrimmed rather than go on from
// the oldest record held, and what it delivered must be whole.
func (s suite) testTrimDuringRead(t *testing.T) {
	const n, keep = 3000, 100 // n is more than a backend reads at once
	l := s.fresh(t)
	ctx := testContext(t)
	appendN(t, l, n, "a")
	var got []uint64
	err := l.Read(ctx, 0, Selectors(t, "a"), func(r *hub.Record) bool {
		if len(got) == 0 {
			if _, err := l.Trim(ctx, hub.Retention{MaxCount: keep}); err != nil {
				t.Errorf("Trim: %v", err)
			}
		}
		got = append(got, r.Pos)
		return true
	})
	if !errors.Is(err, hub.ErrTrimmed) {
		t.Errorf("Read while its records are trimmed = %v after %d records; want ErrTrimmed", err, len(got))
	}
	if len(got) == 0 || len(got) >= n-keep || !slices.Equal(got, span(1, uint64(len(got)))) {
		t.Errorf("Read delivered %d records, from 1 without a hole: %v; want 1..k for some 0 < k < %d",
			len(got), slices.Equal(got, span(1, uint64(len(got)))), n-keep)
	}
	if got := positions(readAll(t, l, n-keep, Selectors(t, "a"))); !slices.Equal(got, span(n-keep+1, n)) {
		t.Errorf("Read after first-1 delivered %d records; want %d..%d", len(got), n-keep+1, n)
	}
}

func (s suite) testTrimAll(t *testing.T) {
	l := s.fresh(t)
	ctx := testContext(t)
	appendN(t, l, 5, "a")
	mustAppend(t, l, hub.Record{Topics: []string{"b"}, ID: "x"})
	n, err := l.Trim(ctx, hub.Retention{MaxAge: time.Nanosecond})
	if err != nil || n != 6 {
		t.Fatalf("Trim(MaxAge 1ns) = %d, %v; want 6, nil", n, err)
	}
	checkBounds(t, l, 0, 6)
	checkNotFound(t, l, "x")
	checkTrimmed(t, l, 0, Selectors(t, "**"), 0)
	checkTrimmed(t, l, 5, Selectors(t, "b"), 0)
	if got := readAll(t, l, 6, Selectors(t, "**")); len(got) != 0 {
		t.Errorf("Read after trimming everything delivered %v", positions(got))
	}
	tl := startTail(t, l, 0)
	tl.quiet(t)
	more := mustAppend(t, l, rec("7", "a"), hub.Record{Topics: []string{"b"}, ID: "x"})
	if got, want := positions(more), span(7, 8); !slices.Equal(got, want) {
		t.Errorf("positions after trimming everything = %v; want %v (never reused)", got, want)
	}
	checkRecords(t, "Tail after trimming everything", tl.next(t, 2), more)
	tl.stop(t)
	checkBounds(t, l, 7, 8)
}

func (s suite) testConcurrentAppend(t *testing.T) {
	l := s.fresh(t)
	const goroutines, appends = 16, 25
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		byPos = map[uint64]hub.Record{}
		ids   = map[string]bool{}
	)
	for g := range goroutines {
		wg.Go(func() {
			for i := range appends {
				batch := make([]hub.Record, 1+(g+i)%3)
				for j := range batch {
					batch[j] = rec(fmt.Sprintf("g%d i%d j%d", g, i, j), "a")
					if j == 1 {
						batch[j].ID = fmt.Sprintf("g%d-i%d", g, i)
					}
				}
				if err := l.Append(testContext(t), batch); err != nil {
					t.Errorf("Append: %v", err)
					return
				}
				for j := 1; j < len(batch); j++ {
					if batch[j].Pos <= batch[j-1].Pos {
						t.Errorf("positions within one batch not increasing: %v", positions(batch))
					}
				}
				mu.Lock()
				for _, r := range batch {
					if _, dup := byPos[r.Pos]; dup {
						t.Errorf("position %d assigned twice", r.Pos)
					}
					if ids[r.ID] {
						t.Errorf("ID %q assigned twice", r.ID)
					}
					byPos[r.Pos], ids[r.ID] = r, true
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	total := uint64(len(byPos))
	for p := uint64(1); p <= total; p++ {
		if _, ok := byPos[p]; !ok {
			t.Fatalf("positions of %d records are not dense: %d missing", total, p)
		}
	}
	checkBounds(t, l, 1, total)
	got := readAll(t, l, 0, Selectors(t, "a"))
	want := make([]hub.Record, 0, total)
	for p := uint64(1); p <= total; p++ {
		want = append(want, byPos[p])
	}
	checkRecords(t, "Read after concurrent Appends", got, want)
}

func (s suite) testConcurrentDuplicate(t *testing.T) {
	l := s.fresh(t)
	const goroutines = 8
	var (
		wg         sync.WaitGroup
		mu         sync.Mutex
		ok, refuse int
	)
	for g := range goroutines {
		wg.Go(func() {
			batch := []hub.Record{rec(fmt.Sprint(g), "a"), {Topics: []string{"a"}, ID: "same"}}
			err := l.Append(testContext(t), batch)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, hub.ErrDuplicateID):
				refuse++
			default:
				t.Errorf("Append: %v", err)
			}
		})
	}
	wg.Wait()
	if ok != 1 || refuse != goroutines-1 {
		t.Errorf("%d concurrent Appends of one ID: %d succeeded, %d refused; want 1, %d", goroutines, ok, refuse, goroutines-1)
	}
	checkBounds(t, l, 1, 2)
}

func (s suite) testClosed(t *testing.T) {
	l := s.fresh(t)
	appendN(t, l, 2, "a")
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ctx := testContext(t)
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, hub.ErrLogClosed) {
			t.Errorf("%s after Close = %v; want hub.ErrLogClosed", what, err)
		}
	}
	check("Append", l.Append(ctx, []hub.Record{rec("x", "a")}))
	check("Read", l.Read(ctx, 0, Selectors(t, "a"), func(*hub.Record) bool { return true }))
	check("Tail", l.Tail(ctx, 0, func([]hub.Record) error { return nil }))
	_, err := l.Lookup(ctx, "1")
	check("Lookup", err)
	_, _, err = l.Bounds(ctx)
	check("Bounds", err)
	_, err = l.Trim(ctx, hub.Retention{MaxCount: 1})
	check("Trim", err)
}

type durable struct {
	open func(t *testing.T, dir string) hub.Log
}

// reopen closes l and opens dir again.
func (d durable) reopen(t *testing.T, l hub.Log, dir string) hub.Log {
	t.Helper()
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return track(t, d.open(t, dir))
}

func (d durable) testReopen(t *testing.T) {
	dir := t.TempDir()
	l := track(t, d.open(t, dir))
	var all []hub.Record
	all = append(all, mustAppend(t, l, sample()...)...)
	all = append(all, appendN(t, l, 20, "a/b")...)
	all = append(all, mustAppend(t, l, hub.Record{Topics: []string{"q", "a/b"}, ID: "pub"})...)
	last := uint64(len(all))

	l = d.reopen(t, l, dir)
	checkBounds(t, l, 1, last)
	checkRecords(t, "Read after reopen", readAll(t, l, 0, Selectors(t, "**")), all)
	checkRecords(t, "Read(a/*) after reopen", readAll(t, l, 0, Selectors(t, "a/*")), all[len(sample()):])
	checkLookup(t, l, "pub", last)
	checkLookup(t, l, "id with spaces & ünïcode ✓", 3)
	checkLookup(t, l, "1", 1)

	err := l.Append(testContext(t), []hub.Record{{Topics: []string{"a"}, ID: "pub"}})
	if !errors.Is(err, hub.ErrDuplicateID) {
		t.Errorf("Append of an ID stored before reopen = %v; want hub.ErrDuplicateID", err)
	}
	more := appendN(t, l, 3, "a")
	if got, want := positions(more), span(last+1, last+3); !slices.Equal(got, want) {
		t.Errorf("positions after reopen = %v; want %v", got, want)
	}
	all = append(all, more...)

	// And once more, after a trim.
	if _, err := l.Trim(testContext(t), hub.Retention{MaxCount: 10}); err != nil {
		t.Fatal(err)
	}
	l = d.reopen(t, l, dir)
	checkBounds(t, l, last+3-9, last+3)
	checkRecords(t, "Read after trim and reopen", readAll(t, l, last+3-10, Selectors(t, "**")), all[len(all)-10:])
	checkTrimmed(t, l, 0, Selectors(t, "**"), 0)
	checkNotFound(t, l, "1")
	ids := map[string]bool{}
	for _, r := range all {
		ids[r.ID] = true
	}
	for _, r := range appendN(t, l, 5, "a") {
		if ids[r.ID] {
			t.Errorf("ID %q at position %d was assigned before reopen", r.ID, r.Pos)
		}
	}
}

func (d durable) testReopenAfterTrimAll(t *testing.T) {
	dir := t.TempDir()
	l := track(t, d.open(t, dir))
	appendN(t, l, 5, "a")
	if n, err := l.Trim(testContext(t), hub.Retention{MaxAge: time.Nanosecond}); n != 5 || err != nil {
		t.Fatalf("Trim(MaxAge 1ns) = %d, %v; want 5, nil", n, err)
	}
	l = d.reopen(t, l, dir)
	checkBounds(t, l, 0, 5)
	more := appendN(t, l, 2, "a")
	if got, want := positions(more), span(6, 7); !slices.Equal(got, want) {
		t.Errorf("positions after trimming everything and reopening = %v; want %v (never reused)", got, want)
	}
}

func (d durable) testTailAfterReopen(t *testing.T) {
	dir := t.TempDir()
	l := track(t, d.open(t, dir))
	all := appendN(t, l, 6, "a")
	l = d.reopen(t, l, dir)
	tl := startTail(t, l, 3)
	checkRecords(t, "Tail(after 3) after reopen", tl.next(t, 3), all[3:])
	more := appendN(t, l, 2, "b")
	checkRecords(t, "Tail of records appended after reopen", tl.next(t, 2), more)
	tl.stop(t)
}

// testReadAfterBounds checks the promise the hub's resumption rests on,
// while appenders run: a Read that starts after Bounds reported last
// delivers every matching record up to last. Each try reads a few
// records behind the newest, as a client resuming from a recent ID does,
// through an exact selector, a pattern, and a pattern matching a second
// topic of the same records (the hub's multi-topic subscriptions). A Log
// that shows a record to Bounds before its per-topic index holds it
// fails here: the replay would stop short of the record, and the hub's
// live queue, which starts after last, would drop it.
func (s suite) testReadAfterBounds(t *testing.T) {
	l := s.fresh(t)
	ctx := testContext(t)
	const (
		appenders = 4
		tries     = 300 // per selector set
		maxBehind = 8
	)
	// Every record is on "r/a"; the ones of appender g also on "r/x/g".
	// So each selector set below matches every record.
	selSets := [][]hub.Selector{
		Selectors(t, "r/a"),
		Selectors(t, "r/*"),
		Selectors(t, "r/x/**", "r/a"),
	}
	// For each try the appenders append one batch each, concurrently,
	// while the try waits for Bounds to report a new last and reads
	// right away: right after a commit becomes visible, where a Log
	// that shows a commit before it can read all of it is caught.
	appendOne := make(chan struct{})
	appended := make(chan struct{}, appenders)
	var wg sync.WaitGroup
	for g := range appenders {
		wg.Go(func() {
			i := 0
			for range appendOne {
				i++
				batch := make([]hub.Record, 1+(g+i)%3)
				for j := range batch {
					batch[j] = rec(fmt.Sprintf("g%d i%d", g, i), "r/a", fmt.Sprintf("r/x/%d", g))
				}
				if err := l.Append(ctx, batch); err != nil {
					t.Errorf("Append: %v", err)
				}
				appended <- struct{}{}
			}
		})
	}
	defer func() {
		close(appendOne)
		wg.Wait()
	}()

	rng := rand.New(rand.NewPCG(1, 2))
	failures := 0
	for n := range tries * len(selSets) {
		sel := selSets[n%len(selSets)]
		_, prev, err := l.Bounds(ctx)
		if err != nil {
			t.Fatalf("Bounds: %v", err)
		}
		for range appenders {
			appendOne <- struct{}{}
		}
		var first, last uint64
		deadline := time.Now().Add(timeout)
		for last <= prev {
			var err error
			if first, last, err = l.Bounds(ctx); err != nil {
				t.Fatalf("Bounds: %v", err)
			}
			if time.Now().After(deadline) {
				t.Fatalf("try %d: Bounds still reports last %d after %v of appending", n, last, timeout)
			}
		}
		after := last - min(last, uint64(rng.IntN(maxBehind+1)))
		after = max(after, first-min(first, 1))
		var got []uint64
		err = l.Read(ctx, after, sel, func(r *hub.Record) bool {
			if r.Pos > last {
				return false
			}
			got = append(got, r.Pos)
			return true
		})
		if err != nil {
			t.Fatalf("try %d: Read(after %d, %v): %v", n, after, sel, err)
		}
		if d := firstDifference(got, span(after+1, last)); d != "" {
			failures++
			if failures <= 3 {
				t.Errorf("try %d: Bounds reported last %d; Read(after %d, %v) delivered %d records: %s", n, last, after, sel, len(got), d)
			}
		}
		for range appenders {
			<-appended
		}
	}
	if failures > 0 {
		t.Errorf("%d of %d Reads after Bounds missed records at or below its last", failures, tries*len(selSets))
	}
}

// testTailWithinBounds checks, while appenders run, that Tail never hands
// fn a record before Bounds reports it: a Bounds called from fn reports a
// last at or beyond the batch.
func (s suite) testTailWithinBounds(t *testing.T) {
	l := s.fresh(t)
	ctx := testContext(t)
	const appenders, appends = 4, 150
	var wg sync.WaitGroup
	for g := range appenders {
		wg.Go(func() {
			for i := range appends {
				batch := make([]hub.Record, 1+(g+i)%3)
				for j := range batch {
					batch[j] = rec("t", fmt.Sprintf("t/%d", g))
				}
				if err := l.Append(ctx, batch); err != nil {
					t.Errorf("Append: %v", err)
					return
				}
			}
		})
	}
	var (
		seen  atomic.Uint64 // the last position handed to fn
		early atomic.Int64  // batches handed to fn before Bounds reported them
	)
	tctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- l.Tail(tctx, 0, func(recs []hub.Record) error {
			_, last, err := l.Bounds(ctx)
			if err != nil {
				return err
			}
			if p := recs[len(recs)-1].Pos; p > last && early.Add(1) <= 3 {
				t.Errorf("Tail handed fn position %d; Bounds, called then, reports last %d", p, last)
			}
			seen.Store(recs[len(recs)-1].Pos)
			return nil
		})
	}()
	wg.Wait()
	_, last, err := l.Bounds(ctx)
	if err != nil {
		t.Fatalf("Bounds: %v", err)
	}
	waitUntil(t, func() bool { return seen.Load() >= last })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Tail = %v; want context.Canceled", err)
	}
	if n := early.Load(); n > 0 {
		t.Errorf("Tail delivered %d batches before Bounds reported them", n)
	}
}

// testAppendVisible checks, while other appenders run, that once Append
// has returned its records are visible everywhere: Bounds reports a last
// at or beyond them, Read delivers them, and Lookup finds their IDs.
func (s suite) testAppendVisible(t *testing.T) {
	l := s.fresh(t)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 3 {
		wg.Go(func() {
			for i := 0; i < 20000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := l.Append(testContext(t), []hub.Record{rec("noise", fmt.Sprintf("n/%d", g))}); err != nil {
					t.Errorf("Append: %v", err)
					return
				}
			}
		})
	}
	defer func() {
		close(stop)
		wg.Wait()
	}()
	for i := range 300 {
		batch := []hub.Record{rec("v", "v"), {Topics: []string{"v", "w"}, Data: "v", ID: fmt.Sprintf("v-%d", i)}}
		mustAppend(t, l, batch...)
		_, last, err := l.Bounds(testContext(t))
		if err != nil {
			t.Fatalf("Bounds: %v", err)
		}
		if last < batch[1].Pos {
			t.Fatalf("append %d: Bounds reports last %d after Append returned position %d", i, last, batch[1].Pos)
		}
		got := readAll(t, l, batch[0].Pos-1, Selectors(t, "v"))
		if len(got) < 2 || got[0].Pos != batch[0].Pos || got[1].Pos != batch[1].Pos {
			t.Fatalf("append %d: Read after %d delivered %v; want %d and %d first", i, batch[0].Pos-1, positions(got), batch[0].Pos, batch[1].Pos)
		}
		checkLookup(t, l, batch[1].ID, batch[1].Pos)
	}
}
