package hub_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ssehub/ssehub/hub"
	"github.com/ssehub/ssehub/store/memstore"
)

// errDown is what a downLog's methods return while it is down.
var errDown = errors.New("log unreachable")

// A downLog is a Log that can be cut off, as a backend on another machine
// is when it or the network fails: while down, every method fails with
// errDown and a Tail in progress returns errDown. Its Store stays
// reachable to the test, which appends through it as another node would.
type downLog struct {
	*memstore.Store
	mu   sync.Mutex
	down bool
	cut  chan struct{} // closed when the log goes down; a new one after
}

func newDownLog(t *testing.T, down bool) *downLog {
	ms := memstore.New()
	t.Cleanup(func() { ms.Close() })
	return &downLog{Store: ms, down: down, cut: make(chan struct{})}
}

func (l *downLog) setDown(v bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case v && !l.down:
		close(l.cut)
	case !v && l.down:
		l.cut = make(chan struct{})
	}
	l.down = v
}

// state returns errDown when down, and the channel closed when it next goes down.
func (l *downLog) state() (chan struct{}, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.down {
		return nil, errDown
	}
	return l.cut, nil
}

func (l *downLog) Append(ctx context.Context, recs []hub.Record) error {
	if _, err := l.state(); err != nil {
		return err
	}
	return l.Store.Append(ctx, recs)
}

func (l *downLog) Read(ctx context.Context, after uint64, sels []hub.Selector, fn func(*hub.Record) bool) error {
	if _, err := l.state(); err != nil {
		return err
	}
	return l.Store.Read(ctx, after, sels, fn)
}

func (l *downLog) Lookup(ctx context.Context, id string) (uint64, error) {
	if _, err := l.state(); err != nil {
		return 0, err
	}
	return l.Store.Lookup(ctx, id)
}

func (l *downLog) Bounds(ctx context.Context) (uint64, uint64, error) {
	if _, err := l.state(); err != nil {
		return 0, 0, err
	}
	return l.Store.Bounds(ctx)
}

func (l *downLog) Tail(ctx context.Context, after uint64, fn func([]hub.Record) error) error {
	cut, err := l.state()
	if err != nil {
		return err
	}
	tctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, cancel)
	defer stop()
	go func() {
		select {
		case <-cut:
			cancel()
		case <-tctx.Done():
		}
	}()
	err = l.Store.Tail(tctx, after, fn)
	if ctx.Err() == nil && tctx.Err() != nil {
		return errDown
	}
	return err
}

// publishRaw posts a form-encoded event and returns the response's
// status, Retry-After and body.
func publishRaw(t *testing.T, th *testHub, form url.Values) (int, string, string) {
	t.Helper()
	resp := th.send(t, http.MethodPost, "/events", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, form.Encode())
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Retry-After"), string(b)
}

// TestRunWaitsForLog checks that a hub whose Log does not answer at start
// keeps trying: it is not ready, refuses publishing with 503 and
// Retry-After, and serves normally once the Log answers.
func TestRunWaitsForLog(t *testing.T) {
	log := newDownLog(t, true)
	th := startHub(t, &hub.Options{RetryBackoff: 100 * time.Millisecond}, log, true)
	for range 5 {
		if th.ready() {
			t.Fatal("ready while the log is down")
		}
		time.Sleep(50 * time.Millisecond)
	}
	status, retry, body := publishRaw(t, th, url.Values{"topic": {"t"}, "data": {"x"}})
	if status != http.StatusServiceUnavailable || retry == "" {
		t.Errorf("publish while down = %d, Retry-After %q (%s); want 503 with Retry-After", status, retry, body)
	}
	if got := th.metric(t, "ssehub_store_errors_total", "op", "bounds"); got < 1 {
		t.Errorf("ssehub_store_errors_total{op=bounds} = %v; want at least 1", got)
	}

	log.setDown(false)
	waitFor(t, waitTimeout, th.ready)
	sub := th.subscribe(t, "topic=t", nil)
	id := th.publish(t, url.Values{"topic": {"t"}})
	if got := ids(sub.waitID(t, id)); !equal(got, []string{id}) {
		t.Errorf("events = %v; want [%s]", got, id)
	}
}

func equal(a, b []string) bool {
	return strings.Join(a, ",") == strings.Join(b, ",")
}

// TestTailOutage checks what subscribers see while the Log is
// unreachable: their streams stay open with heartbeats, publishing gets
// 503, /readyz 503, and once the Log is back they receive every record
// appended meanwhile by other nodes, once each and in order.
func TestTailOutage(t *testing.T) {
	log := newDownLog(t, false)
	th := newTestHub(t, &hub.Options{RetryBackoff: 100 * time.Millisecond, Heartbeat: 50 * time.Millisecond}, log)
	sub := th.subscribe(t, "topic=t", nil)
	raw := th.rawSubscribe(t, "topic=t", nil)
	raw.lines(t, 2) // retry: and the blank line after it
	appendN(t, log.Store, "t", 5)
	sub.waitID(t, "5")

	log.setDown(true)
	waitFor(t, waitTimeout, func() bool { return !th.ready() })
	status, retry, body := publishRaw(t, th, url.Values{"topic": {"t"}, "data": {"x"}})
	if status != http.StatusServiceUnavailable || retry == "" {
		t.Errorf("publish while down = %d, Retry-After %q (%s); want 503 with Retry-After", status, retry, body)
	}
	// Another node appends meanwhile, straight to the backend.
	appendN(t, log.Store, "t", 20)
	// Heartbeats go on through the outage: four comments (with the
	// events 1 to 5 before them, read through).
	heartbeats := 0
	for heartbeats < 4 {
		for _, l := range raw.lines(t, 1) {
			if strings.HasPrefix(l, ":") {
				heartbeats++
			}
		}
	}
	if got := th.metric(t, "ssehub_tailing"); got != 0 {
		t.Errorf("ssehub_tailing = %v while down; want 0", got)
	}
	if got := th.metric(t, "ssehub_store_errors_total", "op", "tail"); got < 1 {
		t.Errorf("ssehub_store_errors_total{op=tail} = %v; want at least 1", got)
	}

	log.setDown(false)
	waitFor(t, waitTimeout, th.ready)
	id := th.publish(t, url.Values{"topic": {"t"}})
	if id != "26" {
		t.Errorf("publish after the outage = %s; want 26", id)
	}
	if got, want := ids(sub.waitID(t, id)), seq(1, 26); !equal(got, want) {
		t.Errorf("got %d events (%s); want 1 to 26 once each", len(got), summary(got))
	}
	if got := th.metric(t, "ssehub_tailing"); got != 1 {
		t.Errorf("ssehub_tailing = %v after the outage; want 1", got)
	}
}

// TestTailOutagesUnderLoad cuts the Log off a hundred times, briefly,
// while publishers append to it without pause: every subscriber must
// receive every record once, in order, across every retry of Run's Tail.
func TestTailOutagesUnderLoad(t *testing.T) {
	log := newDownLog(t, false)
	th := newTestHub(t, &hub.Options{RetryBackoff: 20 * time.Millisecond, QueueSize: 1 << 16}, log)
	subs := []*testSub{
		th.subscribe(t, "topic=t/a", nil),
		th.subscribe(t, "topic=t/**", nil),
		th.subscribe(t, "topic=t/b&topic=t/a", nil),
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for p := range 3 {
		wg.Go(func() {
			topic := []string{"t/a", "t/b", "t/c"}[p]
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				recs := []hub.Record{{Topics: []string{topic}, Data: strconv.Itoa(n)}, {Topics: []string{topic}}}
				if err := log.Store.Append(context.Background(), recs); err != nil {
					t.Error(err)
					return
				}
				time.Sleep(200 * time.Microsecond)
			}
		})
	}
	for range 100 {
		time.Sleep(2 * time.Millisecond)
		log.setDown(true)
		time.Sleep(3 * time.Millisecond)
		log.setDown(false)
	}
	close(stop)
	wg.Wait()
	_, last, err := log.Store.Bounds(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	everything, err := hub.ParseSelector("t/**")
	if err != nil {
		t.Fatal(err)
	}
	var all []hub.Record
	if err := log.Store.Read(context.Background(), 0, []hub.Selector{everything}, func(r *hub.Record) bool { all = append(all, *r); return true }); err != nil {
		t.Fatal(err)
	}
	want := func(topics ...string) []string {
		var out []string
		for _, r := range all {
			for _, tp := range topics {
				if r.Topics[0] == tp {
					out = append(out, r.ID)
				}
			}
		}
		return out
	}
	wants := [][]string{want("t/a"), want("t/a", "t/b", "t/c"), want("t/a", "t/b")}
	lastID := strconv.FormatUint(last, 10)
	for i, s := range subs {
		w := wants[i]
		got := ids(s.waitID(t, w[len(w)-1]))
		if !equal(got, w) {
			t.Errorf("subscriber %d: got %d events (%s); want %d (%s), up to %s", i, len(got), summary(got), len(w), summary(w), lastID)
		}
	}
	if n := th.metric(t, "ssehub_store_errors_total", "op", "tail"); n < 10 {
		t.Errorf("ssehub_store_errors_total{op=tail} = %v; want at least 10 of the 100 outages to have cut a Tail", n)
	}
}

// A resetLog is a Log whose backend can lose everything, as a Redis
// without persistence does when it restarts: reset swaps in an empty
// store, whose positions start again from 1. A Tail in progress goes on
// from the same position in the new store, as XREAD would.
type resetLog struct {
	mu    sync.Mutex
	cur   *memstore.Store
	swaps chan struct{} // closed at each reset; a new one after
	all   []*memstore.Store
}

func newResetLog(t *testing.T) *resetLog {
	l := &resetLog{swaps: make(chan struct{})}
	l.reset()
	t.Cleanup(func() {
		for _, s := range l.all {
			s.Close()
		}
	})
	return l
}

func (l *resetLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cur = memstore.New()
	l.all = append(l.all, l.cur)
	close(l.swaps)
	l.swaps = make(chan struct{})
}

func (l *resetLog) store() (*memstore.Store, chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cur, l.swaps
}

func (l *resetLog) Append(ctx context.Context, recs []hub.Record) error {
	s, _ := l.store()
	return s.Append(ctx, recs)
}

func (l *resetLog) Read(ctx context.Context, after uint64, sels []hub.Selector, fn func(*hub.Record) bool) error {
	s, _ := l.store()
	return s.Read(ctx, after, sels, fn)
}

func (l *resetLog) Lookup(ctx context.Context, id string) (uint64, error) {
	s, _ := l.store()
	return s.Lookup(ctx, id)
}

func (l *resetLog) Bounds(ctx context.Context) (uint64, uint64, error) {
	s, _ := l.store()
	return s.Bounds(ctx)
}

func (l *resetLog) Trim(ctx context.Context, r hub.Retention) (int, error) {
	s, _ := l.store()
	return s.Trim(ctx, r)
}

func (l *resetLog) Close() error { return nil }

func (l *resetLog) Tail(ctx context.Context, after uint64, fn func([]hub.Record) error) error {
	for {
		s, swapped := l.store()
		tctx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-swapped:
				cancel()
			case <-tctx.Done():
			}
		}()
		err := s.Tail(tctx, after, func(recs []hub.Record) error {
			after = recs[len(recs)-1].Pos
			return fn(recs)
		})
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		select {
		case <-swapped:
			continue // the same position, in the new store
		default:
			return err
		}
	}
}

// TestLogWentBack checks what the hub does when its Log's backend loses
// its records and positions start over: it notices within seconds, ends
// every stream (their cursors and queue floors belong to the lost
// history), and delivers the new history's events live.
func TestLogWentBack(t *testing.T) {
	log := newResetLog(t)
	th := newTestHub(t, &hub.Options{RetryBackoff: 100 * time.Millisecond}, log)
	sub := th.subscribe(t, "topic=t", nil)
	for range 5 {
		th.publish(t, url.Values{"topic": {"t"}})
	}
	sub.waitID(t, "5")

	log.reset()
	if id := th.publish(t, url.Values{"topic": {"t"}}); id != "1" {
		t.Fatalf("first ID after the reset = %s; want 1", id)
	}
	if err := sub.waitEnd(t); !errors.Is(err, io.EOF) {
		t.Errorf("stream across the reset ended with %v; want io.EOF", err)
	}
	waitFor(t, waitTimeout, th.ready)
	next := th.subscribe(t, "topic=t", nil)
	id := th.publish(t, url.Values{"topic": {"t"}})
	if got := ids(next.waitID(t, id)); !equal(got, []string{id}) {
		t.Errorf("events after the reset = %v; want [%s]", got, id)
	}
	if got := th.metric(t, "ssehub_store_errors_total", "op", "tail"); got < 1 {
		t.Errorf("ssehub_store_errors_total{op=tail} = %v; want at least 1", got)
	}
}
