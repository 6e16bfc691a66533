package eventsource

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// testTimeout bounds every wait in the tests that use real sockets, so a
// broken EventSource fails a test instead of hanging it.
const testTimeout = 10 * time.Second

// checkLeaks verifies, after every other cleanup of t has run (servers
// closed, idle connections dropped), that no goroutine is left. Call it
// first in a test.
func checkLeaks(t *testing.T) {
	t.Helper()
	t.Cleanup(func() { goleak.VerifyNone(t) })
}

// testCtx returns a context that ends after testTimeout.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// A script is a test server's handler: the n-th request is answered by
// steps[n], and requests past the last step by a stream that stays open
// and silent. It records every request.
type script struct {
	mu    sync.Mutex // guards reqs
	reqs  []*http.Request
	steps []http.HandlerFunc
}

func newScript(steps ...http.HandlerFunc) *script { return &script{steps: steps} }

func (s *script) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	n := len(s.reqs)
	s.reqs = append(s.reqs, r.Clone(context.Background()))
	s.mu.Unlock()
	step := hold("")
	if n < len(s.steps) {
		step = s.steps[n]
	}
	step(w, r)
}

// requests returns the requests received so far.
func (s *script) requests() []*http.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*http.Request(nil), s.reqs...)
}

// header returns the value of header name in the n-th request.
func (s *script) header(t *testing.T, n int, name string) string {
	t.Helper()
	reqs := s.requests()
	if n >= len(reqs) {
		t.Fatalf("request %d of %d: no such request", n, len(reqs))
	}
	return reqs[n].Header.Get(name)
}

// stream answers with an event stream that sends body and ends cleanly.
func stream(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, body)
	}
}

// hold answers with an event stream that sends body and stays open until
// the client goes away.
func hold(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, body)
		http.NewResponseController(w).Flush()
		<-r.Context().Done()
	}
}

// drop answers with an event stream that sends body and then breaks the
// connection (HTTP/1) or resets the stream (HTTP/2) without ending it.
func drop(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, body)
		http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler)
	}
}

// respond answers with status and content type ct ("" for none) and a
// body that looks like a stream.
func respond(status int, ct string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if ct != "" {
			w.Header().Set("Content-Type", ct)
		} else {
			w.Header()["Content-Type"] = nil // keep net/http from sniffing one
		}
		w.WriteHeader(status)
		io.WriteString(w, "data: not for you\n\n")
	}
}

// newServer starts an HTTP/1.1 test server, or an HTTP/2 one over TLS,
// and returns it with a client of its own transport. Both are closed when
// the test ends.
func newServer(t *testing.T, h http.Handler, http2 bool) (*httptest.Server, *http.Client) {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	if http2 {
		srv.EnableHTTP2 = true
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close) // also closes the client's idle connections
	return srv, srv.Client()
}

// newES returns an EventSource for url, failing the test on error.
func newES(t *testing.T, url string, opts *Options) *EventSource {
	t.Helper()
	es, err := New(url, opts)
	if err != nil {
		t.Fatalf("New(%q) error: %v", url, err)
	}
	return es
}

// describe returns a one-line summary of ev for comparisons.
func describe(ev Event) string {
	s := ev.Type + " " + ev.ReadyState.String()
	if ev.Data != "" || ev.LastEventID != "" {
		s += fmt.Sprintf(" %q id=%q", ev.Data, ev.LastEventID)
	}
	if ev.Err != nil {
		s += " err"
	}
	return s
}

// collect ranges over es.Events, recording each event, until until
// reports true for one (it may be nil) or the iteration ends.
func collect(ctx context.Context, es *EventSource, until func(Event) bool) []Event {
	var got []Event
	for ev := range es.Events(ctx) {
		got = append(got, ev)
		if until != nil && until(ev) {
			break
		}
	}
	return got
}

// describeAll describes each event.
func describeAll(evs []Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = describe(ev)
	}
	return out
}

// runBounded runs es.Run on a goroutine and returns its result, failing
// the test if Run has not returned within testTimeout (and then closing
// es to end it).
func runBounded(t *testing.T, ctx context.Context, es *EventSource) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- es.Run(ctx) }()
	timer := time.NewTimer(testTimeout)
	defer timer.Stop()
	select {
	case err := <-done:
		return err
	case <-timer.C:
		es.Close()
		err := <-done
		t.Fatalf("Run did not return within %v (returned %v after Close)", testTimeout, err)
		return err
	}
}

// dataIs returns a condition true for an event with the given data.
func dataIs(data string) func(Event) bool {
	return func(ev Event) bool { return ev.Data == data }
}
