package hub_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/ssehub/ssehub/hub"
	"github.com/ssehub/ssehub/sse"
	"github.com/ssehub/ssehub/store/memstore"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitTimeout bounds every wait in these tests; the race detector on a
// busy 2-core machine is slow, so it is generous.
const waitTimeout = 10 * time.Second

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %v", timeout)
		}
		<-tick.C
	}
}

// A testHub is a Hub over a Log, served by an httptest server (HTTP/1.1),
// with Run running. Cleanup shuts everything down and checks that Run
// returned nil.
type testHub struct {
	h      *hub.Hub
	log    hub.Log
	srv    *httptest.Server
	reg    *prometheus.Registry
	client *http.Client
	runErr chan error
}

// newTestHub starts a hub over log (a new memstore when nil).
func newTestHub(t *testing.T, opts *hub.Options, log hub.Log) *testHub {
	t.Helper()
	th := startHub(t, opts, log, true)
	waitFor(t, waitTimeout, th.ready)
	return th
}

// startHub is newTestHub, with Run started only if run is set.
func startHub(t *testing.T, opts *hub.Options, log hub.Log, run bool) *testHub {
	t.Helper()
	return startHubWith(t, opts, log, run, httptest.NewServer)
}

// startHubWith is startHub with the hub served by the server newServer
// starts for it.
func startHubWith(t *testing.T, opts *hub.Options, log hub.Log, run bool, newServer func(http.Handler) *httptest.Server) *testHub {
	t.Helper()
	var o hub.Options
	if opts != nil {
		o = *opts
	}
	reg := prometheus.NewRegistry()
	o.Registerer = reg
	if o.Logger == nil {
		// The hub's debug log says why each stream ended: shown when the
		// test fails.
		lb := &logTail{}
		o.Logger = slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug}))
		t.Cleanup(func() { // after the hub's shutdown, registered below
			if t.Failed() {
				t.Logf("the hub's last %d log lines:\n%s", logTailLines, lb.String())
			}
		})
	}
	if log == nil {
		ms := memstore.New()
		t.Cleanup(func() { ms.Close() }) // after the hub is shut down
		log = ms
	}
	h := hub.New(log, &o)
	srv := newServer(h)
	th := &testHub{h: h, log: log, srv: srv, reg: reg, client: srv.Client(), runErr: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	if run {
		th.startRun(ctx)
	}
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), waitTimeout)
		defer scancel()
		if err := h.Shutdown(sctx); err != nil {
			t.Errorf("Shutdown = %v; want nil", err)
		}
		cancel()
		if run {
			if err := <-th.runErr; err != nil {
				t.Errorf("Run = %v; want nil", err)
			}
		}
		th.client.CloseIdleConnections()
		srv.Close()
	})
	return th
}

// tlsServer returns a newServer for startHubWith that serves over TLS,
// offering HTTP/2 when h2 is set.
func tlsServer(h2 bool) func(http.Handler) *httptest.Server {
	return func(h http.Handler) *httptest.Server {
		srv := httptest.NewUnstartedServer(h)
		srv.EnableHTTP2 = h2
		srv.StartTLS()
		return srv
	}
}

func (th *testHub) startRun(ctx context.Context) {
	go func() { th.runErr <- th.h.Run(ctx) }()
}

// ready reports whether GET /readyz answers 200.
func (th *testHub) ready() bool {
	rec := httptest.NewRecorder()
	th.h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	return rec.Code == http.StatusOK
}

// metric returns the value of the counter or gauge name with the given
// label pairs (name, value, ...), or -1 if there is none.
func (th *testHub) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := th.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return -1
}

// post sends a POST /events with the content type and body, and returns
// the status, the body and the response's Content-Type.
func (th *testHub) post(t *testing.T, contentType, body string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, th.srv.URL+"/events", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := th.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b), resp.Header.Get("Content-Type")
}

// publish publishes one form-encoded event and returns its ID. Without
// a data field, it sends data "d", so that tests can tell the events
// apart from those with empty data.
func (th *testHub) publish(t *testing.T, form url.Values) string {
	t.Helper()
	if !form.Has("data") {
		form.Set("data", "d")
	}
	status, body, _ := th.post(t, "application/x-www-form-urlencoded", form.Encode())
	if status != http.StatusOK {
		t.Fatalf("publish %v = %d %s; want 200", form, status, body)
	}
	return strings.TrimSuffix(body, "\n")
}

// appendN appends n events to topic straight to the Log and returns the
// position of the last.
func appendN(t *testing.T, log hub.Log, topic string, n int) uint64 {
	t.Helper()
	recs := make([]hub.Record, n)
	for i := range recs {
		recs[i] = hub.Record{Topics: []string{topic}, Data: "d" + strconv.Itoa(i)}
	}
	if err := log.Append(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	return recs[n-1].Pos
}

// A testSub is an open subscription whose events a goroutine decodes and
// collects. Cleanup closes it and waits for that goroutine.
type testSub struct {
	resp *http.Response
	done chan struct{} // closed when the stream has ended

	mu     sync.Mutex // guards events and err
	events []sse.Event
	err    error // why decoding stopped
}

// subscribe opens GET /events?query with the header, which must succeed.
func (th *testHub) subscribe(t *testing.T, query string, header http.Header) *testSub {
	t.Helper()
	return th.subscribeAt(t, "/events?"+query, header)
}

// subscribeAt opens GET path (with its query) with the header, which
// must succeed.
func (th *testHub) subscribeAt(t *testing.T, path string, header http.Header) *testSub {
	t.Helper()
	return th.subscribeMax(t, path, header, 0)
}

// subscribeMax is subscribeAt with a decoder that holds events of up to
// maxEvent bytes (sse.DefaultMaxEventSize if 0).
func (th *testHub) subscribeMax(t *testing.T, path string, header http.Header, maxEvent int) *testSub {
	t.Helper()
	resp := th.get(t, path, header)
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("GET %s = %d %s; want 200", path, resp.StatusCode, b)
	}
	s := &testSub{resp: resp, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		dec := sse.NewDecoder(resp.Body)
		if maxEvent > 0 {
			dec.SetMaxEventSize(maxEvent)
		}
		for {
			var ev sse.Event
			err := dec.Decode(&ev)
			s.mu.Lock()
			if err != nil {
				s.err = err
				s.mu.Unlock()
				return
			}
			s.events = append(s.events, ev)
			s.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		resp.Body.Close()
		<-s.done
	})
	return s
}

// get sends a GET for path with the header.
func (th *testHub) get(t *testing.T, path string, header http.Header) *http.Response {
	t.Helper()
	return th.send(t, http.MethodGet, path, header, "")
}

// send sends a request for path with the header and body.
func (th *testHub) send(t *testing.T, method, path string, header http.Header, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, th.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := th.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// snapshot returns the events received so far and, once the stream has
// ended, why.
func (s *testSub) snapshot() ([]sse.Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sse.Event(nil), s.events...), s.err
}

// waitUntil waits until cut, given the events so far, returns how many
// of them to return (a negative number: not yet), failing the test with
// what it waited for, want, if the stream ends or waitTimeout passes.
func (s *testSub) waitUntil(t *testing.T, want string, cut func([]sse.Event) int) []sse.Event {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		got, err := s.snapshot()
		if n := cut(got); n >= 0 {
			return got[:n]
		}
		if err != nil {
			t.Fatalf("stream ended (%v) after %d events, before %s: %s", err, len(got), want, summary(ids(got)))
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s after %v; got %d events: %s", want, waitTimeout, len(got), summary(ids(got)))
		}
		<-tick.C
	}
}

// wait returns the first n events, waiting for them.
func (s *testSub) wait(t *testing.T, n int) []sse.Event {
	t.Helper()
	return s.waitUntil(t, fmt.Sprintf("%d events", n), func(got []sse.Event) int {
		if len(got) >= n {
			return n
		}
		return -1
	})
}

// waitID waits for the event with the given ID and returns every event up
// to it.
func (s *testSub) waitID(t *testing.T, id string) []sse.Event {
	t.Helper()
	return s.waitUntil(t, fmt.Sprintf("event %q", id), func(got []sse.Event) int {
		for i, ev := range got {
			if ev.ID == id {
				return i + 1
			}
		}
		return -1
	})
}

// waitEnd waits for the stream to end and returns why.
func (s *testSub) waitEnd(t *testing.T) error {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(waitTimeout):
		t.Fatalf("stream still open after %v", waitTimeout)
	}
	_, err := s.snapshot()
	return err
}

// summary shows the first and last few of ids, for failure messages.
func summary(ids []string) string {
	const n = 3
	if len(ids) <= 2*n {
		return fmt.Sprint(ids)
	}
	return fmt.Sprintf("%v … %v", ids[:n], ids[len(ids)-n:])
}

// ids returns the IDs of evs.
func ids(evs []sse.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.ID
	}
	return out
}

// seq returns the decimal strings from..to.
func seq(from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, strconv.Itoa(i))
	}
	return out
}

// A rawStream reads an event stream's lines, for tests of the exact bytes.
type rawStream struct {
	resp *http.Response
	br   *bufio.Reader
}

// rawSubscribe opens GET /events?query and returns its lines' reader.
func (th *testHub) rawSubscribe(t *testing.T, query string, header http.Header) *rawStream {
	t.Helper()
	resp := th.get(t, "/events?"+query, header)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /events?%s = %d; want 200", query, resp.StatusCode)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return &rawStream{resp: resp, br: bufio.NewReader(resp.Body)}
}

// lines reads n lines, without their LF, failing after waitTimeout.
func (r *rawStream) lines(t *testing.T, n int) []string {
	t.Helper()
	timer := time.AfterFunc(waitTimeout, func() { r.resp.Body.Close() })
	defer timer.Stop()
	var out []string
	for range n {
		line, err := r.br.ReadString('\n')
		if err != nil {
			t.Fatalf("after lines %q: %v", out, err)
		}
		out = append(out, strings.TrimSuffix(line, "\n"))
	}
	return out
}

// checkProblem checks that a response is an RFC 9457 problem with status,
// whose detail contains want.
func checkProblem(t *testing.T, status int, contentType, body string, wantStatus int, want string) map[string]any {
	t.Helper()
	if status != wantStatus {
		t.Errorf("status = %d; want %d (body %s)", status, wantStatus, body)
	}
	if contentType != "application/problem+json" {
		t.Errorf("Content-Type = %q; want application/problem+json", contentType)
	}
	var p map[string]any
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatalf("problem body %q: %v", body, err)
	}
	if p["type"] != "about:blank" || p["title"] != http.StatusText(wantStatus) || p["status"] != float64(wantStatus) {
		t.Errorf("problem = %v; want type about:blank, title %q, status %d", p, http.StatusText(wantStatus), wantStatus)
	}
	if d, _ := p["detail"].(string); !strings.Contains(d, want) {
		t.Errorf("problem detail = %q; want it to contain %q", d, want)
	}
	return p
}

// slowLog is a Log whose Bounds, once armed, blocks until released,
// whatever its context says: a store that does not answer.
type slowLog struct {
	*memstore.Store
	mu      sync.Mutex    // guards armed and skip
	armed   chan struct{} // closed to release; nil when not armed
	skip    int           // Bounds calls to let through before blocking
	blocked chan struct{} // receives when a Bounds call blocks
}

// arm makes the Bounds calls after the next skip block until release is
// called.
func (l *slowLog) arm(skip int) (release func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ch := make(chan struct{})
	l.armed, l.skip = ch, skip
	return func() {
		l.mu.Lock()
		l.armed = nil
		l.mu.Unlock()
		close(ch)
	}
}

func (l *slowLog) Bounds(ctx context.Context) (uint64, uint64, error) {
	l.mu.Lock()
	ch := l.armed
	if ch != nil && l.skip > 0 {
		l.skip--
		ch = nil
	}
	l.mu.Unlock()
	if ch != nil {
		l.blocked <- struct{}{}
		<-ch
	}
	return l.Store.Bounds(ctx)
}

// failLog is a Log whose Append fails while fail is set.
type failLog struct {
	*memstore.Store
	mu   sync.Mutex // guards fail
	fail bool
}

var errStore = errors.New("store down")

func (l *failLog) setFail(v bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fail = v
}

func (l *failLog) Append(ctx context.Context, recs []hub.Record) error {
	l.mu.Lock()
	fail := l.fail
	l.mu.Unlock()
	if fail {
		return errStore
	}
	return l.Store.Append(ctx, recs)
}

// logTailLines is how many of a test hub's last log lines a failed test
// shows.
const logTailLines = 60

// A logTail keeps the last logTailLines lines written to it. It is safe
// for concurrent use.
type logTail struct {
	mu    sync.Mutex // guards lines
	lines []string
}

func (l *logTail) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for line := range strings.Lines(string(p)) {
		if len(l.lines) == logTailLines {
			l.lines = append(l.lines[:0], l.lines[1:]...)
		}
		l.lines = append(l.lines, line)
	}
	return len(p), nil
}

func (l *logTail) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "")
}
