package hub_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ssehub/ssehub/eventsource"
	"github.com/ssehub/ssehub/hub"
	"github.com/ssehub/ssehub/store/memstore"
)

// TestReplay checks resumption after a Last-Event-ID, given as the header
// or the lastEventID query parameter: the matching events after it, then
// live events, none repeated.
func TestReplay(t *testing.T) {
	// History: 1 a, 2 b, custom(3) a, 4 a, 5 b, x-6(6) a.
	history := []url.Values{
		{"topic": {"a"}}, {"topic": {"b"}}, {"topic": {"a"}, "id": {"custom"}},
		{"topic": {"a"}}, {"topic": {"b"}}, {"topic": {"a"}, "id": {"x-6"}},
	}
	tests := []struct {
		name   string
		query  string
		header string
		want   []string
	}{
		{"header position", "topic=a", "2", []string{"custom", "4", "x-6"}},
		{"query position", "topic=a&lastEventID=2", "", []string{"custom", "4", "x-6"}},
		{"header wins", "topic=a&lastEventID=4", "2", []string{"custom", "4", "x-6"}},
		{"publisher id", "topic=a", "custom", []string{"4", "x-6"}},
		{"publisher id, other topic", "topic=b", "custom", []string{"5"}},
		{"query publisher id", "topic=b&lastEventID=custom", "", []string{"5"}},
		{"newest", "topic=a", "x-6", nil},
		{"from zero", "topic=a", "0", []string{"1", "custom", "4", "x-6"}},
		{"all topics", "topic=**", "0", []string{"1", "2", "custom", "4", "5", "x-6"}},
		{"two selectors", "topic=b&topic=a", "4", []string{"5", "x-6"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			th := newTestHub(t, nil, nil)
			for _, v := range history {
				th.publish(t, v)
			}
			var header http.Header
			if tt.header != "" {
				header = http.Header{"Last-Event-Id": {tt.header}}
			}
			sub := th.subscribe(t, tt.query, header)
			marker := th.publish(t, url.Values{"topic": {"a", "b"}, "data": {"live"}})
			got := ids(sub.waitID(t, marker))
			if want := append(tt.want, marker); !slices.Equal(got, want) {
				t.Errorf("events = %q; want %q", got, want)
			}
			if got := th.metric(t, "ssehub_replays_total"); got != 1 {
				t.Errorf("ssehub_replays_total = %v; want 1", got)
			}
			if got := th.metric(t, "ssehub_replayed_events_total"); got != float64(len(tt.want)) {
				t.Errorf("ssehub_replayed_events_total = %v; want %d", got, len(tt.want))
			}
		})
	}
}

// TestGap checks resumption from a position older than the Log holds (a
// gap event, then what is held), from an ID the Log does not hold (a gap
// event, then live events only: the hub cannot tell where such a client
// was, and replaying everything held would let any request cost a whole
// history), and that there is no gap when nothing was lost.
func TestGap(t *testing.T) {
	type gapWant struct {
		id     string // the gap event's id
		reason string
		first  string
	}
	tests := []struct {
		name   string
		trim   hub.Retention
		lastID string
		gap    *gapWant // nil: no gap event
		from   int      // the first position replayed
	}{
		// A Last-Event-ID the Log does not hold: the gap event, then
		// live events only, however much history is held.
		{"unknown", hub.Retention{MaxCount: 5}, "nope", &gapWant{"11", "unknown", "12"}, 12},
		{"unknown, untrimmed", hub.Retention{}, "nope", &gapWant{"11", "unknown", "12"}, 12},
		{"future position", hub.Retention{MaxCount: 5}, "999", &gapWant{"11", "unknown", "12"}, 12},
		{"far future position", hub.Retention{}, "18446744073709551615", &gapWant{"11", "unknown", "12"}, 12},
		{"position beyond uint64", hub.Retention{}, "99999999999999999999999", &gapWant{"11", "unknown", "12"}, 12},
		{"negative", hub.Retention{}, "-5", &gapWant{"11", "unknown", "12"}, 12},
		{"not ASCII", hub.Retention{}, "é", &gapWant{"11", "unknown", "12"}, 12},
		{"trimmed publisher id", hub.Retention{MaxCount: 5}, "pub-2", &gapWant{"11", "unknown", "12"}, 12},
		{"expired position", hub.Retention{MaxCount: 5}, "3", &gapWant{"6", "expired", "7"}, 7},
		{"zero, trimmed", hub.Retention{MaxCount: 5}, "0", &gapWant{"6", "expired", "7"}, 7},
		{"just before the oldest", hub.Retention{MaxCount: 5}, "6", nil, 7},
		{"held", hub.Retention{MaxCount: 5}, "8", nil, 9},
		{"zero, untrimmed", hub.Retention{}, "0", nil, 1},
		{"all gone, newest", hub.Retention{MaxAge: time.Nanosecond}, "11", nil, 12},
		{"all gone, older", hub.Retention{MaxAge: time.Nanosecond}, "9", &gapWant{"11", "expired", "12"}, 12},
		{"all gone, unknown", hub.Retention{MaxAge: time.Nanosecond}, "what", &gapWant{"11", "unknown", "12"}, 12},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			th := newTestHub(t, nil, nil)
			// Positions 1 to 11; 2 has a publisher id.
			for i := 1; i <= 11; i++ {
				v := url.Values{"topic": {"t"}, "data": {strconv.Itoa(i)}}
				if i == 2 {
					v.Set("id", "pub-2")
				}
				th.publish(t, v)
			}
			if tt.trim != (hub.Retention{}) {
				waitFor(t, waitTimeout, func() bool { // MaxAge needs the clock to move
					_, err := th.log.Trim(context.Background(), tt.trim)
					first, _, _ := th.log.Bounds(context.Background())
					return err == nil && first != 1
				})
			}
			sub := th.subscribe(t, "topic=t", http.Header{"Last-Event-Id": {tt.lastID}})
			marker := th.publish(t, url.Values{"topic": {"t"}, "data": {"live"}})
			got := sub.waitID(t, marker)

			if tt.gap != nil {
				ev := got[0]
				got = got[1:]
				var g hub.Gap
				if err := json.Unmarshal([]byte(ev.Data), &g); err != nil {
					t.Fatalf("gap data %q: %v", ev.Data, err)
				}
				want := hub.Gap{LastEventID: tt.lastID, Reason: tt.gap.reason, First: tt.gap.first}
				if ev.Type != hub.GapEventType || ev.ID != tt.gap.id || g != want {
					t.Errorf("first event = %+v (data %+v); want type %s, id %s, data %+v", ev, g, hub.GapEventType, tt.gap.id, want)
				}
				if n := th.metric(t, "ssehub_gaps_total", "reason", tt.gap.reason); n != 1 {
					t.Errorf("ssehub_gaps_total{reason=%s} = %v; want 1", tt.gap.reason, n)
				}
			}
			var want []string
			for i := tt.from; i <= 12; i++ {
				want = append(want, strconv.Itoa(i))
				if i == 2 {
					want[len(want)-1] = "pub-2"
				}
			}
			if got := ids(got); !slices.Equal(got, want) {
				t.Errorf("events = %q; want %q", got, want)
			}
		})
	}
}

// TestReplayBudget checks Limits.MaxReplay: a subscription that has more
// history to catch up than the budget gets that many events, then its
// stream ends right after one; an EventSource's reconnections go on from
// there, and in the end it has every event exactly once, in order.
func TestReplayBudget(t *testing.T) {
	const budget, n = 10, 35
	th := newTestHub(t, &hub.Options{Retry: time.Millisecond, Limits: hub.Limits{MaxReplay: budget}}, nil)
	for i := 1; i <= n; i++ {
		topic := "a"
		if i%5 == 0 {
			topic = "b" // not counted: the budget is of events sent
		}
		th.publish(t, url.Values{"topic": {topic}, "data": {strconv.Itoa(i)}})
	}
	var want []string
	for i := 1; i <= n; i++ {
		if i%5 != 0 {
			want = append(want, strconv.Itoa(i))
		}
	}

	t.Run("one request", func(t *testing.T) {
		s := th.subscribe(t, "topic=a&lastEventID=0", nil)
		if err := s.waitEnd(t); !errors.Is(err, io.EOF) {
			t.Fatalf("stream ended with %v; want EOF", err)
		}
		got, _ := s.snapshot()
		if !slices.Equal(ids(got), want[:budget]) {
			t.Errorf("events = %s; want the first %d of %s", summary(ids(got)), budget, summary(want))
		}
	})
	t.Run("within the budget", func(t *testing.T) {
		s := th.subscribe(t, "topic=a", http.Header{"Last-Event-Id": {want[len(want)-budget-1]}})
		marker := th.publish(t, url.Values{"topic": {"a"}, "data": {"live"}})
		if got := ids(s.waitID(t, marker)); !slices.Equal(got, append(slices.Clone(want[len(want)-budget:]), marker)) {
			t.Errorf("events = %s; want the last %d, then %s", summary(got), budget, marker)
		}
		want = append(want, marker)
	})
	t.Run("EventSource catches up", func(t *testing.T) {
		cuts := th.metric(t, "ssehub_replay_budget_reached_total")
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		es, err := eventsource.New(th.srv.URL+"/events?topic=a", &eventsource.Options{Client: th.client, LastEventID: "0", Retry: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		opens := 0
		for ev := range es.Events(ctx) {
			switch {
			case ev.Type == "open":
				opens++
			case ev.IsMessage():
				got = append(got, ev.LastEventID)
			}
			if len(got) == len(want) {
				break
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("events = %s; want %s (%v)", summary(got), summary(want), es.Err())
		}
		if wantOpens := (len(want)-1)/budget + 1; opens != wantOpens {
			t.Errorf("%d connections; want %d", opens, wantOpens)
		}
		if n := th.metric(t, "ssehub_replay_budget_reached_total") - cuts; n != float64(opens-1) {
			t.Errorf("ssehub_replay_budget_reached_total grew by %v; want %d", n, opens-1)
		}
	})
}

// TestGapOnEmptyLog checks the gap event of a Log that never held an event.
func TestGapOnEmptyLog(t *testing.T) {
	th := newTestHub(t, nil, nil)
	sub := th.subscribe(t, "topic=t&lastEventID=somewhere", nil)
	id := th.publish(t, url.Values{"topic": {"t"}})
	got := sub.waitID(t, id)
	if len(got) != 2 || got[0].Type != hub.GapEventType || got[0].ID != "0" ||
		got[0].Data != `{"lastEventId":"somewhere","reason":"unknown","first":"1"}` || got[1].ID != "1" {
		t.Errorf("events = %+v; want a gap event with id 0 and first 1, then event 1", got)
	}
}

// TestLiveOnly checks that a subscriber without a Last-Event-ID gets no
// history, and that the position it is told at the start resumes it
// without loss.
func TestLiveOnly(t *testing.T) {
	th := newTestHub(t, nil, nil)
	appendN(t, th.log, "t", 5)
	rs := th.rawSubscribe(t, "topic=t", nil)
	lines := rs.lines(t, 5)
	if lines[3] != "id: 5" {
		t.Fatalf("start lines = %q; want an id-only event with id 5", lines)
	}
	rs.resp.Body.Close()
	appendN(t, th.log, "t", 2) // missed while disconnected
	sub := th.subscribe(t, "topic=t", http.Header{"Last-Event-Id": {"5"}})
	if got := ids(sub.wait(t, 2)); !slices.Equal(got, []string{"6", "7"}) {
		t.Errorf("resumed events = %q; want 6, 7", got)
	}
}

// subscriberPlan is one subscriber of the concurrency tests.
type subscriberPlan struct {
	query  string
	lastID string // "" for live only
}

var concurrentPlans = []subscriberPlan{
	{"topic=t/**", "0"},
	{"topic=**", "100"},
	{"topic=t/0&topic=t/1&topic=t/2&topic=t/3", "250"},
	{"topic=t/*&topic=t/2", "399"},
	{"topic=t/**", ""},
	{"topic=t/**&topic=x", "1"},
	{"topic=*/*", ""},
}

// publishConcurrently runs publishers on every topic t/0…t/3, one through
// HTTP NDJSON and the others straight to the Log, in batches of 1 to 7,
// until stop is closed or they have published limit events (give or take
// a batch each). Each publishes a batch at most every every, or without
// pause if it is zero. It returns a channel closed once they have all
// ended, and counts what they published in n.
//
// Unpaced publishers that append straight to the Log are much faster than
// a subscriber's reader: on a loaded machine they once got 65,536 events
// ahead of one in TestReplayLiveConcurrent, which the hub then rightly
// disconnected as too slow.
func publishConcurrently(t *testing.T, th *testHub, n *atomic.Int64, limit int64, every time.Duration, stop <-chan struct{}) (done <-chan struct{}) {
	var wg sync.WaitGroup
	for p := range 4 {
		wg.Go(func() {
			topic := fmt.Sprint("t/", p)
			var tick <-chan time.Time
			if every > 0 {
				ticker := time.NewTicker(every)
				defer ticker.Stop()
				tick = ticker.C
			}
			for i := 0; n.Load() < limit; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if tick != nil {
					select {
					case <-stop:
						return
					case <-tick:
					}
				}
				batch := 1 + i%7
				if p == 0 {
					var b strings.Builder
					for range batch {
						fmt.Fprintf(&b, `{"topic":[%q,"x"],"data":"p%d"}`+"\n", topic, p)
					}
					resp, err := th.client.Post(th.srv.URL+"/events", ctNDJSON, strings.NewReader(b.String()))
					if err != nil {
						t.Errorf("publisher %d: %v", p, err)
						return
					}
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						t.Errorf("publisher %d: status %d", p, resp.StatusCode)
						return
					}
				} else {
					recs := make([]hub.Record, batch)
					for j := range recs {
						recs[j] = hub.Record{Topics: []string{topic}, Data: fmt.Sprint("p", p)}
					}
					if err := th.log.Append(context.Background(), recs); err != nil {
						t.Errorf("publisher %d: %v", p, err)
						return
					}
				}
				n.Add(int64(batch))
			}
		})
	}
	ended := make(chan struct{})
	go func() {
		wg.Wait()
		close(ended)
	}()
	t.Cleanup(func() { <-ended })
	return ended
}

// checkSequence checks that got holds consecutive positions from first
// (or from its own first, when first is 0) to last. A failure names the
// first position missing, repeated or out of place, not whole lists.
func checkSequence(t *testing.T, name string, got []string, first, last int) {
	t.Helper()
	if len(got) == 0 {
		t.Errorf("%s: no events; want up to %d", name, last)
		return
	}
	if first == 0 {
		first, _ = strconv.Atoi(got[0])
	}
	want := seq(first, last)
	for i := range min(len(got), len(want)) {
		if got[i] == want[i] {
			continue
		}
		what := "out of place"
		switch g, _ := strconv.Atoi(got[i]); {
		case slices.Contains(got[:i], got[i]):
			what = "repeated"
		case g > first+i:
			what = fmt.Sprintf("after %s, which is missing", want[i])
		}
		t.Errorf("%s: event %d of %d is %s, %s; want %s (events %s)", name, i, len(got), got[i], what, want[i], summary(got))
		return
	}
	if len(got) != len(want) {
		t.Errorf("%s: got %d events (%s); want %d, %s…%s", name, len(got), summary(got), len(want), want[0], want[len(want)-1])
	}
}

// TestReplayLiveConcurrent subscribes, with and without Last-Event-IDs,
// while publishers run, and checks that every subscriber receives every
// position after its start exactly once and in order: the replay and the
// live events meet without a gap or a repeat.
//
// The publishers are paced, and stop at half a queue's worth of events,
// so that no subscriber can be disconnected as too slow: an ended stream
// is a failure. Should they stop before the last subscriber joins, the
// marker published at the end still reaches every subscriber.
func TestReplayLiveConcurrent(t *testing.T) {
	const queue = 1 << 16
	th := newTestHub(t, &hub.Options{QueueSize: queue, Heartbeat: -1}, nil)
	appendN(t, th.log, "t/0", 400)

	var published atomic.Int64
	stop := make(chan struct{})
	done := publishConcurrently(t, th, &published, queue/2, time.Millisecond, stop)
	// advanced reports whether the publishers have published n more
	// events since since, or have stopped.
	advanced := func(since, n int64) func() bool {
		return func() bool {
			select {
			case <-done:
				return true
			default:
				return published.Load() >= since+n
			}
		}
	}
	subs := make([]*testSub, len(concurrentPlans))
	for i, p := range concurrentPlans {
		// Join once the publishers have moved on since the last join.
		waitFor(t, waitTimeout, advanced(published.Load(), 40))
		var header http.Header
		if p.lastID != "" {
			header = http.Header{"Last-Event-Id": {p.lastID}}
		}
		subs[i] = th.subscribe(t, p.query, header)
	}
	waitFor(t, waitTimeout, advanced(published.Load(), 200))
	close(stop)
	<-done
	// A marker on a topic every plan matches: the last event of all.
	marker := th.publish(t, url.Values{"topic": {"t/0"}, "data": {"marker"}})
	last, _ := strconv.Atoi(marker)

	for i, p := range concurrentPlans {
		name := fmt.Sprintf("subscriber %d (%s, Last-Event-ID %q)", i, p.query, p.lastID)
		got := ids(subs[i].waitID(t, marker))
		first := 0
		if p.lastID != "" {
			first, _ = strconv.Atoi(p.lastID)
			first++
		}
		checkSequence(t, name, got, first, last)
	}
	t.Logf("%d events published while %d subscribers joined", last, len(subs))
}

// TestReplayLiveEvictions is TestReplayLiveConcurrent with queues so short
// that subscribers are disconnected as too slow again and again: each
// reconnects (an eventsource client) with its Last-Event-ID and still
// receives every event exactly once, in order.
func TestReplayLiveEvictions(t *testing.T) {
	th := newTestHub(t, &hub.Options{QueueSize: 2, Retry: time.Millisecond, Heartbeat: -1}, nil)
	appendN(t, th.log, "t/0", 100)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		ids    []string
		opens  int
		reason string
	}
	var target atomic.Uint64 // the last position, once known
	var lastSeen sync.Map    // subscriber → last id, for failure messages
	results := make([]chan result, 3)
	for i := range results {
		results[i] = make(chan result, 1)
		es, err := eventsource.New(th.srv.URL+"/events?topic=t/**", &eventsource.Options{
			Client: th.client, LastEventID: "0", Retry: time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			var r result
			for ev := range es.Events(ctx) {
				switch {
				case ev.Type == "open":
					r.opens++
				case ev.IsMessage():
					r.ids = append(r.ids, ev.LastEventID)
					lastSeen.Store(i, ev.LastEventID)
				}
				if want := target.Load(); want != 0 && len(r.ids) > 0 && r.ids[len(r.ids)-1] == strconv.FormatUint(want, 10) {
					break
				}
			}
			r.reason = fmt.Sprint(es.Err())
			results[i] <- r
		}()
	}

	var published atomic.Int64
	stop := make(chan struct{})
	done := publishConcurrently(t, th, &published, 1<<20, 0, stop)
	waitFor(t, waitTimeout, func() bool {
		return published.Load() >= 600 && th.metric(t, "ssehub_slow_disconnects_total") >= 3
	})
	close(stop)
	<-done
	_, last, _ := th.log.Bounds(context.Background())
	// Publish once more, after setting target, so that every client sees
	// an event once target is set, and stops on it.
	last++
	target.Store(last)
	if id := th.publish(t, url.Values{"topic": {"t/9"}}); id != strconv.FormatUint(last, 10) {
		t.Fatalf("marker id = %s; want %d", id, last)
	}

	timeout := time.After(waitTimeout)
	for i := range results {
		select {
		case r := <-results[i]:
			checkSequence(t, fmt.Sprintf("client %d (%d connections)", i, r.opens), r.ids, 1, int(last))
			if r.opens < 2 {
				t.Logf("client %d was never disconnected", i)
			}
		case <-timeout:
			v, _ := lastSeen.Load(i)
			t.Fatalf("client %d did not reach event %d; last saw %v", i, last, v)
		}
	}
	t.Logf("slow disconnects: %v", th.metric(t, "ssehub_slow_disconnects_total"))
}

// trimmingLog trims, once, while the first Read it serves is under way:
// the retention edge overtakes a replay in progress.
type trimmingLog struct {
	hub.Log
	keep int
	once sync.Once
}

func (l *trimmingLog) Read(ctx context.Context, after uint64, sels []hub.Selector, fn func(*hub.Record) bool) error {
	return l.Log.Read(ctx, after, sels, func(r *hub.Record) bool {
		l.once.Do(func() {
			if _, err := l.Log.Trim(ctx, hub.Retention{MaxCount: l.keep}); err != nil {
				panic(err)
			}
		})
		return fn(r)
	})
}

// TestGapDuringReplay: when retention removes records that a replay has
// not reached yet, the subscriber is told with a gap event, where the
// records are missing, and the replay goes on from the oldest record
// held: nothing goes missing in silence.
func TestGapDuringReplay(t *testing.T) {
	ms := memstore.New()
	t.Cleanup(func() { ms.Close() })
	const n, keep = 1000, 100
	appendN(t, ms, "a", n)
	th := newTestHub(t, nil, &trimmingLog{Log: ms, keep: keep})
	s := th.subscribe(t, "topic=a&lastEventID=0", nil)
	evs := s.waitID(t, strconv.Itoa(n))

	var gaps []int
	for i, ev := range evs {
		if ev.Type == hub.GapEventType {
			gaps = append(gaps, i)
		}
	}
	if len(gaps) != 1 {
		t.Fatalf("%d gap events; want 1 (events %v)", len(gaps), ids(evs))
	}
	g := gaps[0]
	before, gap, after := evs[:g], evs[g], evs[g+1:]
	if len(before) == 0 || !slices.Equal(ids(before), seq(1, len(before))) {
		t.Errorf("before the gap: %v; want 1..k", ids(before))
	}
	if !slices.Equal(ids(after), seq(n-keep+1, n)) {
		t.Errorf("after the gap: %d events from %v; want %d..%d", len(after), ids(after)[:1], n-keep+1, n)
	}
	var data hub.Gap
	if err := json.Unmarshal([]byte(gap.Data), &data); err != nil {
		t.Fatal(err)
	}
	want := hub.Gap{LastEventID: before[len(before)-1].ID, Reason: "expired", First: strconv.Itoa(n - keep + 1)}
	if data != want || gap.ID != strconv.Itoa(n-keep) {
		t.Errorf("gap event id %q, data %+v; want id %d, data %+v", gap.ID, data, n-keep, want)
	}
}
