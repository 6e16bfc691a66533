package hub_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ssehub/ssehub/hub"
	"github.com/ssehub/ssehub/store/memstore"
)

// TestSlowSubscriber checks that a subscriber that stops reading is
// disconnected once its queue is full, while a fast subscriber receives
// every event and each publish returns promptly.
func TestSlowSubscriber(t *testing.T) {
	th := newTestHub(t, &hub.Options{QueueSize: 64, Heartbeat: -1, WriteTimeout: time.Minute}, nil)
	fast := th.subscribe(t, "topic=t", nil)

	conn, err := net.Dial("tcp", th.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetReadBuffer(4 << 10)
	}
	if _, err := io.WriteString(conn, "GET /events?topic=t HTTP/1.1\r\nHost: test\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, waitTimeout, func() bool { return th.metric(t, "ssehub_connections") == 2 })

	data := strings.Repeat("x", 60<<10)
	var last string
	for i := 0; th.metric(t, "ssehub_slow_disconnects_total") == 0; i++ {
		if i == 2000 {
			t.Fatal("the slow subscriber was not disconnected after 2000 events of 60 KiB")
		}
		start := time.Now()
		last = th.publish(t, url.Values{"topic": {"t"}, "data": {data}})
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("publish %d took %v; want no wait for subscribers", i, d)
		}
	}
	got := fast.waitID(t, last)
	checkSequence(t, "fast subscriber", ids(got), 1, len(got))
	for i, ev := range got {
		if ev.Data != data {
			t.Fatalf("fast subscriber's event %d has %d bytes of data; want %d", i, len(ev.Data), len(data))
		}
	}
	// The slow subscriber's handler may be blocked in a write for up to
	// WriteTimeout; going away frees it at once.
	conn.Close()
	waitFor(t, waitTimeout, func() bool { return th.metric(t, "ssehub_connections") == 1 })
	if n := th.metric(t, "ssehub_slow_disconnects_total"); n != 1 {
		t.Errorf("ssehub_slow_disconnects_total = %v; want 1", n)
	}
}

// TestSlowSubscriberEnded checks that an evicted subscriber's stream is
// ended by the hub, so that its client reconnects: here the client reads,
// only too slowly, and so sees the end of the response.
func TestSlowSubscriberEnded(t *testing.T) {
	th := newTestHub(t, &hub.Options{QueueSize: 1, Heartbeat: -1}, nil)
	sub := th.subscribe(t, "topic=t", nil)
	// One batch: the fan-out queues its events faster than any writer
	// drains them.
	recs := make([]hub.Record, 64)
	for i := range recs {
		recs[i] = hub.Record{Topics: []string{"t"}, Data: "x"}
	}
	if err := th.log.Append(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	if err := sub.waitEnd(t); !errors.Is(err, io.EOF) {
		t.Errorf("stream ended with %v; want io.EOF", err)
	}
	// The eviction is counted as the stream is ended: the client can see
	// the end a moment before the count.
	waitFor(t, waitTimeout, func() bool { return th.metric(t, "ssehub_slow_disconnects_total") == 1 })
}

// TestShutdown checks that Shutdown ends every stream, refuses new
// subscriptions with 503, and stops Run.
func TestShutdown(t *testing.T) {
	th := newTestHub(t, nil, nil)
	subs := []*testSub{th.subscribe(t, "topic=a", nil), th.subscribe(t, "topic=**", nil)}
	waitFor(t, waitTimeout, func() bool { return th.metric(t, "ssehub_connections") == 2 })

	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := th.h.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown = %v; want nil", err)
	}
	for i, s := range subs {
		if err := s.waitEnd(t); !errors.Is(err, io.EOF) {
			t.Errorf("stream %d ended with %v; want io.EOF", i, err)
		}
	}
	select {
	case err := <-th.runErr:
		if err != nil {
			t.Errorf("Run = %v; want nil", err)
		}
		th.runErr <- nil // for the cleanup
	case <-time.After(waitTimeout):
		t.Fatal("Run still running after Shutdown")
	}

	resp := th.get(t, "/events?topic=a", nil)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	checkProblem(t, resp.StatusCode, resp.Header.Get("Content-Type"), string(b), http.StatusServiceUnavailable, "shutting down")
	if resp.Header.Get("Retry-After") == "" {
		t.Error("no Retry-After on 503")
	}
	if th.ready() {
		t.Error("ready after Shutdown")
	}
	// Publishing still works while the Log is open.
	if id := th.publish(t, url.Values{"topic": {"a"}}); id != "1" {
		t.Errorf("publish after Shutdown: id %q; want 1", id)
	}
	if got := th.metric(t, "ssehub_connections"); got != 0 {
		t.Errorf("ssehub_connections = %v; want 0", got)
	}
	if got := th.metric(t, "ssehub_subscriptions"); got != 0 {
		t.Errorf("ssehub_subscriptions = %v; want 0", got)
	}
}

// TestShutdownTimeout checks that Shutdown gives up when its context ends
// while a subscription handler is still running, here one waiting for a
// store that does not answer, and that it succeeds once that handler
// returns.
func TestShutdownTimeout(t *testing.T) {
	log := &slowLog{Store: memstore.New(), blocked: make(chan struct{}, 1)}
	t.Cleanup(func() { log.Close() })
	th := newTestHub(t, nil, log)
	release := log.arm(1) // past the look before registering: block once registered
	got := make(chan *http.Response, 1)
	go func() {
		resp, err := th.client.Get(th.srv.URL + "/events?topic=t")
		if err != nil {
			t.Error(err)
		}
		got <- resp
	}()
	<-log.blocked

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := th.h.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown with a handler blocked in the store = %v; want context.DeadlineExceeded", err)
	}
	release()
	ctx, cancel = context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := th.h.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown after the store answered = %v; want nil", err)
	}
	if resp := <-got; resp != nil {
		resp.Body.Close()
	}
	if got := th.metric(t, "ssehub_connections"); got != 0 {
		t.Errorf("ssehub_connections = %v; want 0", got)
	}
}

// TestNotRunning checks the hub before Run: subscriptions get a stream
// that ends at once (so EventSource retries), readiness is 503; then Run
// makes it ready, and a second Run is refused.
func TestNotRunning(t *testing.T) {
	th := startHub(t, nil, nil, false)
	if th.ready() {
		t.Error("ready before Run")
	}
	s := th.subscribe(t, "topic=t", nil)
	if err := s.waitEnd(t); !errors.Is(err, io.EOF) {
		t.Errorf("stream before Run ended with %v; want io.EOF", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	errc := make(chan error, 1)
	go func() { errc <- th.h.Run(ctx) }()
	waitFor(t, waitTimeout, th.ready)
	if err := th.h.Run(ctx); !errors.Is(err, hub.ErrRunning) {
		t.Errorf("second Run = %v; want ErrRunning", err)
	}
	sub := th.subscribe(t, "topic=t", nil)
	id := th.publish(t, url.Values{"topic": {"t"}})
	sub.waitID(t, id)
	cancel()
	if err := <-errc; err != nil {
		t.Errorf("Run = %v; want nil after ctx is done", err)
	}
	if err := sub.waitEnd(t); !errors.Is(err, io.EOF) {
		t.Errorf("stream after Run returned ended with %v; want io.EOF", err)
	}
	if th.ready() {
		t.Error("ready after Run returned")
	}
}

// TestRunLogFailure checks that Run returns the Log's error when the Log
// fails, and ends the subscriptions.
func TestRunLogFailure(t *testing.T) {
	log := memstore.New()
	th := startHub(t, nil, log, false)
	errc := make(chan error, 1)
	go func() { errc <- th.h.Run(context.Background()) }()
	waitFor(t, waitTimeout, th.ready)
	sub := th.subscribe(t, "topic=t", nil)
	log.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, hub.ErrLogClosed) {
			t.Errorf("Run = %v; want an error wrapping ErrLogClosed", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Run still running after the Log closed")
	}
	if err := sub.waitEnd(t); !errors.Is(err, io.EOF) {
		t.Errorf("stream ended with %v; want io.EOF", err)
	}
	rec := httptest.NewRecorder()
	th.h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	checkProblem(t, rec.Code, rec.Header().Get("Content-Type"), rec.Body.String(), http.StatusServiceUnavailable, "not running")
}

// TestRoutes checks the routes other than /events, and the refusals of
// unknown paths and methods.
func TestRoutes(t *testing.T) {
	th := newTestHub(t, nil, nil)
	tests := []struct {
		method, path string
		status       int
		body         string // for 200; a detail substring otherwise
		allow        string
	}{
		{"GET", "/healthz", 200, "ok\n", ""},
		{"HEAD", "/healthz", 200, "", ""},
		{"GET", "/readyz", 200, "ready\n", ""},
		{"POST", "/healthz", 405, "use GET", "GET, HEAD"},
		{"DELETE", "/readyz", 405, "use GET", "GET, HEAD"},
		{"PUT", "/events", 405, "use GET to subscribe or POST to publish", "GET, POST, OPTIONS"},
		{"HEAD", "/events", 405, "", "GET, POST, OPTIONS"},
		{"GET", "/", 404, `no such resource: "/"`, ""},
		{"GET", "/events/x", 404, "no such resource", ""},
		{"GET", "/metrics", 404, "no such resource", ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, th.srv.URL+tt.path, nil)
			resp, err := th.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if got := resp.Header.Get("Allow"); got != tt.allow {
				t.Errorf("Allow = %q; want %q", got, tt.allow)
			}
			switch {
			case tt.status == 200:
				if resp.StatusCode != 200 || string(b) != tt.body || resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
					t.Errorf("= %d %q %q; want 200 %q text/plain", resp.StatusCode, resp.Header.Get("Content-Type"), b, tt.body)
				}
			case tt.method == "HEAD":
				if resp.StatusCode != tt.status {
					t.Errorf("status = %d; want %d", resp.StatusCode, tt.status)
				}
			default:
				checkProblem(t, resp.StatusCode, resp.Header.Get("Content-Type"), string(b), tt.status, tt.body)
			}
		})
	}
}

// TestMetrics checks the gauges and counters of a small session.
func TestMetrics(t *testing.T) {
	th := newTestHub(t, nil, nil)
	a := th.subscribe(t, "topic=a&topic=b/*", nil)
	b := th.subscribe(t, "topic=a", nil)
	waitFor(t, waitTimeout, func() bool { return th.metric(t, "ssehub_connections") == 2 })
	th.publish(t, url.Values{"topic": {"a"}})
	id := th.publish(t, url.Values{"topic": {"b/c", "a"}})
	a.waitID(t, id)
	b.waitID(t, id)
	th.post(t, ctForm, "data=x") // 400
	for _, m := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"ssehub_connections", nil, 2},
		{"ssehub_subscriptions", nil, 3},
		{"ssehub_publishes_total", []string{"outcome", "ok"}, 2},
		{"ssehub_publishes_total", []string{"outcome", "invalid"}, 1},
		{"ssehub_publishes_total", []string{"outcome", "too_large"}, 0},
		{"ssehub_events_appended_total", nil, 2},
		{"ssehub_events_tailed_total", nil, 2},
		{"ssehub_deliveries_total", nil, 4},
		{"ssehub_slow_disconnects_total", nil, 0},
		{"ssehub_replays_total", nil, 0},
		{"ssehub_gaps_total", []string{"reason", "unknown"}, 0},
		{"ssehub_store_duration_seconds", []string{"op", "append"}, 2},
	} {
		if got := th.metric(t, m.name, m.labels...); got != m.want {
			t.Errorf("%s%v = %v; want %v", m.name, m.labels, got, m.want)
		}
	}
}
