package ssehttp_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// protos lists the HTTP versions the end-to-end tests run under.
var protos = []string{"HTTP/1.1", "HTTP/2"}

// newServer starts a test server speaking proto ("HTTP/1.1", or "HTTP/2"
// over TLS) and returns it with a client for it. The server is closed when
// the test ends.
func newServer(t *testing.T, proto string, h http.HandlerFunc) (*httptest.Server, *http.Client) {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	switch proto {
	case "HTTP/1.1":
		srv.Start()
	case "HTTP/2":
		srv.EnableHTTP2 = true
		srv.StartTLS()
	default:
		t.Fatalf("newServer: unknown protocol %q", proto)
	}
	t.Cleanup(srv.Close)
	return srv, srv.Client()
}

// get sends a GET request for url with the given headers, bounded by a
// deadline so that a stream that never arrives fails the test rather than
// hanging it. The response body is closed when the test ends.
func get(t *testing.T, c *http.Client, url string, header http.Header) *http.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// recv waits up to 20s for a value from ch.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	timer := time.NewTimer(20 * time.Second)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}

// fakeWriter is a ResponseWriter that can flush and set write deadlines,
// and logs each call, with deadlines relative to its creation. It is safe
// for concurrent use, so a heartbeat may write to it, and it works inside a
// synctest bubble, where the logged deadlines are exact.
type fakeWriter struct {
	start time.Time

	mu         sync.Mutex // guards the fields below
	header     http.Header
	body       bytes.Buffer
	ops        []string
	writeErr   error // returned by Write when set
	noDeadline bool  // SetWriteDeadline is not supported
}

func newFakeWriter() *fakeWriter {
	return &fakeWriter{start: time.Now(), header: make(http.Header)}
}

func (f *fakeWriter) Header() http.Header { return f.header }

func (f *fakeWriter) WriteHeader(code int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ops = append(f.ops, fmt.Sprint("header ", code))
}

func (f *fakeWriter) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.writeErr != nil {
		f.ops = append(f.ops, "write failed")
		return 0, f.writeErr
	}
	f.ops = append(f.ops, "write")
	return f.body.Write(p)
}

func (f *fakeWriter) FlushError() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ops = append(f.ops, "flush")
	return nil
}

func (f *fakeWriter) SetWriteDeadline(d time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.noDeadline {
		return fmt.Errorf("fake: %w", http.ErrNotSupported)
	}
	if d.IsZero() {
		f.ops = append(f.ops, "deadline none")
	} else {
		f.ops = append(f.ops, fmt.Sprint("deadline ", d.Sub(f.start)))
	}
	return nil
}

func (f *fakeWriter) failWrites(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writeErr = err
}

// Body returns what has been written so far.
func (f *fakeWriter) Body() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.body.String()
}

// Ops returns the calls logged since the last call to Ops.
func (f *fakeWriter) Ops() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	ops := f.ops
	f.ops = nil
	return ops
}

// count returns the number of times sub occurs in the body.
func (f *fakeWriter) count(sub string) int {
	return strings.Count(f.Body(), sub)
}

// unwrapper wraps a ResponseWriter the way a well-behaved middleware does:
// it hides the optional methods but keeps Unwrap.
type unwrapper struct{ http.ResponseWriter }

func (u unwrapper) Unwrap() http.ResponseWriter { return u.ResponseWriter }

// opaque wraps a ResponseWriter without Unwrap, deliberately, as a
// middleware that breaks flushing does.
type opaque struct{ http.ResponseWriter }
