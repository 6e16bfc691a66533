package ssehttp_test

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ssehub/ssehub/sse"
	"github.com/ssehub/ssehub/ssehttp"
)

// End-to-end tests: a real server and client, under HTTP/1.1 and HTTP/2.

var testEvents = []sse.Event{
	{ID: "1", Data: "hello"},
	{ID: "2", Type: "update", Data: "line one\nline two"},
	{Data: "no id"}, // a decoder reports the last ID, "2"
}

// decodeAll decodes n events from r.
func decodeAll(t *testing.T, dec *sse.Decoder, n int) []sse.Event {
	t.Helper()
	var got []sse.Event
	for range n {
		var ev sse.Event
		if err := dec.Decode(&ev); err != nil {
			t.Fatalf("Decode after %d events: %v", len(got), err)
		}
		got = append(got, ev)
	}
	return got
}

func checkEvents(t *testing.T, got []sse.Event) {
	t.Helper()
	want := []sse.Event{
		{ID: "1", Data: "hello"},
		{ID: "2", Type: "update", Data: "line one\nline two"},
		{ID: "2", Data: "no id"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("events = %+v; want %+v", got, want)
	}
}

// sendAll is a handler that opens a stream with opts, sends testEvents and
// closes, reporting the outcome on errc.
func sendAll(opts *ssehttp.Options, errc chan<- error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		errc <- func() error {
			s, err := ssehttp.NewStream(w, r, opts)
			if err != nil {
				return err
			}
			defer s.Close()
			for _, ev := range testEvents {
				if err := s.Send(ev); err != nil {
					return err
				}
			}
			return s.Close()
		}()
	}
}

func TestHeaders(t *testing.T) {
	for _, proto := range protos {
		t.Run(proto, func(t *testing.T) {
			errc := make(chan error, 1)
			srv, c := newServer(t, proto, sendAll(&ssehttp.Options{Retry: 2500 * time.Millisecond}, errc))
			resp := get(t, c, srv.URL, nil)

			if resp.StatusCode != http.StatusOK {
				t.Errorf("status = %d; want 200", resp.StatusCode)
			}
			wantMajor := map[string]int{"HTTP/1.1": 1, "HTTP/2": 2}[proto]
			if resp.ProtoMajor != wantMajor {
				t.Errorf("ProtoMajor = %d; want %d", resp.ProtoMajor, wantMajor)
			}
			wantConn := map[string]string{"HTTP/1.1": "keep-alive", "HTTP/2": ""}[proto]
			for _, h := range []struct{ name, want string }{
				{"Content-Type", "text/event-stream"},
				{"Cache-Control", "no-cache"},
				{"X-Accel-Buffering", "no"},
				{"Connection", wantConn},
				{"Content-Encoding", ""}, // Gzip is off, though the client accepts it
				{"Vary", ""},
			} {
				if got := resp.Header.Get(h.name); got != h.want {
					t.Errorf("%s = %q; want %q", h.name, got, h.want)
				}
			}

			dec := sse.NewDecoder(resp.Body)
			checkEvents(t, decodeAll(t, dec, len(testEvents)))
			if err := dec.Decode(new(sse.Event)); err != io.EOF {
				t.Errorf("Decode at end = %v; want io.EOF", err)
			}
			if d, ok := dec.Retry(); d != 2500*time.Millisecond || !ok {
				t.Errorf("Retry() = %v, %v; want 2.5s, true", d, ok)
			}
			if err := recv(t, errc, "handler"); err != nil {
				t.Errorf("handler: %v", err)
			}
		})
	}
}

// TestOpeningFlushed checks that the client reads the opening comment
// before the handler sends anything.
func TestOpeningFlushed(t *testing.T) {
	for _, proto := range protos {
		t.Run(proto, func(t *testing.T) {
			release := make(chan struct{})
			errc := make(chan error, 1)
			srv, c := newServer(t, proto, func(w http.ResponseWriter, r *http.Request) {
				errc <- func() error {
					s, err := ssehttp.NewStream(w, r, &ssehttp.Options{Heartbeat: -1})
					if err != nil {
						return err
					}
					defer s.Close()
					select {
					case <-release:
					case <-r.Context().Done():
						return r.Context().Err()
					}
					return s.Send(sse.Event{Data: "first"})
				}()
			})
			resp := get(t, c, srv.URL, nil)
			br := bufio.NewReader(resp.Body)
			line, err := br.ReadString('\n')
			if line != ": open\n" || err != nil {
				t.Fatalf("first line = %q, %v; want %q, nil", line, err, ": open\n")
			}
			close(release)
			var ev sse.Event
			if err := sse.NewDecoder(br).Decode(&ev); err != nil || ev.Data != "first" {
				t.Errorf("Decode = %+v, %v; want data %q", ev, err, "first")
			}
			if err := recv(t, errc, "handler"); err != nil {
				t.Errorf("handler: %v", err)
			}
		})
	}
}

// TestHeartbeatNetwork checks that heartbeats, written from the timer's
// goroutine, reach a real client. TestHeartbeat checks their timing.
func TestHeartbeatNetwork(t *testing.T) {
	for _, proto := range protos {
		t.Run(proto, func(t *testing.T) {
			srv, c := newServer(t, proto, func(w http.ResponseWriter, r *http.Request) {
				s, err := ssehttp.NewStream(w, r, &ssehttp.Options{Heartbeat: 10 * time.Millisecond})
				if err != nil {
					t.Errorf("NewStream: %v", err)
					return
				}
				defer s.Close()
				<-s.Done()
			})
			resp := get(t, c, srv.URL, nil)
			br := bufio.NewReader(resp.Body)
			for pings := 0; pings < 3; {
				line, err := br.ReadString('\n')
				if err != nil {
					t.Fatalf("after %d heartbeats: %v", pings, err)
				}
				if line == ": ping\n" {
					pings++
				}
			}
		})
	}
}

// TestContextEnd checks that a client going away ends the stream, that the
// handler learns of it through Done and Send, and that nothing is left
// running.
func TestContextEnd(t *testing.T) {
	for _, proto := range protos {
		t.Run(proto, func(t *testing.T) {
			ignore := goleak.IgnoreCurrent()
			t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // runs after the server is closed

			type result struct{ err, sendErr, closeErr error }
			res := make(chan result, 1)
			srv, c := newServer(t, proto, func(w http.ResponseWriter, r *http.Request) {
				s, err := ssehttp.NewStream(w, r, &ssehttp.Options{Heartbeat: time.Hour})
				if err != nil {
					res <- result{err: err}
					return
				}
				defer s.Close()
				<-s.Done()
				res <- result{err: s.Err(), sendErr: s.Send(sse.Event{Data: "late"}), closeErr: s.Close()}
			})

			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if line, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil {
				t.Fatalf("reading opening comment: %q, %v", line, err)
			}
			cancel()

			got := recv(t, res, "the handler to see the client go")
			if !errors.Is(got.err, context.Canceled) {
				t.Errorf("Err() = %v; want context.Canceled", got.err)
			}
			if got.sendErr != got.err {
				t.Errorf("Send after end = %v; want %v", got.sendErr, got.err)
			}
			if got.closeErr != nil {
				t.Errorf("Close = %v; want nil", got.closeErr)
			}
		})
	}
}

// TestWriteDeadline checks that a client which stops reading makes Send
// fail within about WriteTimeout, rather than block forever.
func TestWriteDeadline(t *testing.T) {
	const writeTimeout = 200 * time.Millisecond
	payload := strings.Repeat("x", 64<<10)

	type result struct {
		err  error
		n    int           // events sent before the failure
		took time.Duration // how long the failing Send took
	}
	handler := func(res chan<- result) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			s, err := ssehttp.NewStream(w, r, &ssehttp.Options{Heartbeat: -1, WriteTimeout: writeTimeout})
			if err != nil {
				res <- result{err: err}
				return
			}
			defer s.Close()
			// Far more than any socket and flow-control buffers hold.
			for n := range 16 << 10 {
				start := time.Now()
				if err := s.Send(sse.Event{Data: payload}); err != nil {
					res <- result{err: err, n: n, took: time.Since(start)}
					return
				}
			}
			res <- result{n: 16 << 10}
		}
	}

	tests := []struct {
		proto string
		// stall opens a stream to srv and never reads it; it returns a
		// function that lets go of the connection.
		stall func(t *testing.T, srv string, c *http.Client) func()
	}{
		{"HTTP/1.1", func(t *testing.T, addr string, _ *http.Client) func() {
			conn, err := net.Dial("tcp", strings.TrimPrefix(addr, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			if tc, ok := conn.(*net.TCPConn); ok {
				tc.SetReadBuffer(4 << 10)
			}
			if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: test\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			return func() { conn.Close() }
		}},
		{"HTTP/2", func(t *testing.T, url string, c *http.Client) func() {
			resp := get(t, c, url, nil)
			return func() { resp.Body.Close() }
		}},
	}
	for _, tt := range tests {
		t.Run(tt.proto, func(t *testing.T) {
			res := make(chan result, 1)
			srv, c := newServer(t, tt.proto, handler(res))
			release := tt.stall(t, srv.URL, c)
			defer release()

			got := recv(t, res, "Send to fail against a client that does not read")
			if got.err == nil {
				t.Fatalf("sent %d events of %d bytes to a client that does not read; want an error", got.n, len(payload))
			}
			if got.took > writeTimeout+5*time.Second {
				t.Errorf("failing Send took %v; want about WriteTimeout (%v)", got.took, writeTimeout)
			}
			if tt.proto == "HTTP/1.1" && !errors.Is(got.err, os.ErrDeadlineExceeded) {
				t.Errorf("Send error = %v; want os.ErrDeadlineExceeded", got.err)
			}
			t.Logf("Send failed after %d events, in %v: %v", got.n, got.took, got.err)
		})
	}
}

// TestGzipStream checks that a compressed stream delivers each event as it
// is sent: the client decodes the first event while the handler waits to
// send the second.
func TestGzipStream(t *testing.T) {
	for _, proto := range protos {
		t.Run(proto, func(t *testing.T) {
			next := make(chan struct{})
			errc := make(chan error, 1)
			srv, c := newServer(t, proto, func(w http.ResponseWriter, r *http.Request) {
				errc <- func() error {
					s, err := ssehttp.NewStream(w, r, &ssehttp.Options{Gzip: true, Heartbeat: -1})
					if err != nil {
						return err
					}
					defer s.Close()
					for i, ev := range testEvents {
						if i > 0 {
							select {
							case <-next:
							case <-r.Context().Done():
								return r.Context().Err()
							}
						}
						if err := s.Send(ev); err != nil {
							return err
						}
					}
					return s.Close()
				}()
			})
			// Setting Accept-Encoding ourselves stops the transport from
			// decompressing transparently.
			resp := get(t, c, srv.URL, http.Header{"Accept-Encoding": {"gzip"}})
			if got := resp.Header.Get("Content-Encoding"); got != "gzip" {
				t.Fatalf("Content-Encoding = %q; want gzip", got)
			}
			if got := resp.Header.Get("Vary"); got != "Accept-Encoding" {
				t.Errorf("Vary = %q; want Accept-Encoding", got)
			}
			zr, err := gzip.NewReader(resp.Body)
			if err != nil {
				t.Fatalf("gzip.NewReader: %v", err)
			}
			dec := sse.NewDecoder(zr)
			var got []sse.Event
			for i := range testEvents {
				if i > 0 {
					next <- struct{}{}
				}
				got = append(got, decodeAll(t, dec, 1)...)
			}
			checkEvents(t, got)
			// A clean end means Close finished the gzip data: its trailer and
			// checksum were read and verified.
			if err := dec.Decode(new(sse.Event)); err != io.EOF {
				t.Errorf("Decode at end = %v; want io.EOF", err)
			}
			if err := recv(t, errc, "handler"); err != nil {
				t.Errorf("handler: %v", err)
			}
		})
	}
}

// TestConcurrentSend checks that events sent from many goroutines at once,
// with heartbeats in between, arrive whole.
func TestConcurrentSend(t *testing.T) {
	const senders, each = 8, 50
	payload := strings.Repeat("0123456789\n", 100)
	for _, proto := range protos {
		t.Run(proto, func(t *testing.T) {
			errc := make(chan error, 1)
			srv, c := newServer(t, proto, func(w http.ResponseWriter, r *http.Request) {
				s, err := ssehttp.NewStream(w, r, &ssehttp.Options{Heartbeat: time.Millisecond, Gzip: true})
				if err != nil {
					errc <- err
					return
				}
				defer s.Close()
				var wg sync.WaitGroup
				errs := make([]error, senders)
				for g := range senders {
					wg.Go(func() {
						for i := range each {
							if err := s.Send(sse.Event{ID: fmt.Sprint(g, "-", i), Data: payload}); err != nil {
								errs[g] = err
								return
							}
						}
					})
				}
				wg.Wait()
				errc <- errors.Join(append(errs, s.Close())...)
			})
			resp := get(t, c, srv.URL, nil) // the transport asks for gzip and decompresses
			seen := make(map[string]bool)
			dec := sse.NewDecoder(resp.Body)
			for _, ev := range decodeAll(t, dec, senders*each) {
				if ev.Data != payload {
					t.Fatalf("event %s: data mangled: %q", ev.ID, ev.Data)
				}
				if seen[ev.ID] {
					t.Fatalf("event %s received twice", ev.ID)
				}
				seen[ev.ID] = true
			}
			if err := recv(t, errc, "handler"); err != nil {
				t.Errorf("handler: %v", err)
			}
		})
	}
}

// TestIdleOutlivesWriteTimeout checks that a stream may stay idle for
// longer than WriteTimeout: the deadline bounds each write, not the stream.
// On HTTP/2 a deadline left armed would reset the stream while it idles.
func TestIdleOutlivesWriteTimeout(t *testing.T) {
	const writeTimeout = 250 * time.Millisecond
	for _, proto := range protos {
		t.Run(proto, func(t *testing.T) {
			errc := make(chan error, 1)
			srv, c := newServer(t, proto, func(w http.ResponseWriter, r *http.Request) {
				errc <- func() error {
					s, err := ssehttp.NewStream(w, r, &ssehttp.Options{WriteTimeout: writeTimeout, Heartbeat: -1})
					if err != nil {
						return err
					}
					defer s.Close()
					if err := s.Send(sse.Event{Data: "before"}); err != nil {
						return err
					}
					// Idle on purpose, for several write timeouts.
					idle := time.NewTimer(3 * writeTimeout)
					defer idle.Stop()
					select {
					case <-idle.C:
					case <-r.Context().Done():
						return context.Cause(r.Context())
					}
					if err := s.Send(sse.Event{Data: "after"}); err != nil {
						return err
					}
					return s.Close()
				}()
			})
			resp := get(t, c, srv.URL, nil)
			got, err := io.ReadAll(resp.Body)
			if want := ": open\ndata: before\n\ndata: after\n\n"; string(got) != want || err != nil {
				t.Errorf("body = %q, %v; want %q, nil", got, err, want)
			}
			if err := recv(t, errc, "handler"); err != nil {
				t.Errorf("handler: %v", err)
			}
		})
	}
}
