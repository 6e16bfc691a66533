package hub_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ssehub/ssehub/hub"
	"github.com/ssehub/ssehub/store/memstore"
)

// Tests of streams over HTTP/1.x, whose connections the hub takes over,
// and of those it leaves to ssehttp (HTTP/2, TLS).

// noLeaks checks, once the test and its cleanups are done, that no
// goroutine it started is left.
func noLeaks(t *testing.T) {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // runs last
}

// A rawConn is a client connection that speaks HTTP/1.x by hand.
type rawConn struct {
	net.Conn
	br *bufio.Reader
}

// dialRaw connects to th's server and sends request (a request line and
// header fields, without the blank line); the connection is closed by
// Cleanup.
func (th *testHub) dialRaw(t *testing.T, request string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", th.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, request+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	return &rawConn{Conn: c, br: bufio.NewReader(c)}
}

// line reads one line, without its line break, failing after
// waitTimeout.
func (c *rawConn) line(t *testing.T) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(waitTimeout))
	line, err := c.br.ReadString('\n')
	if err != nil {
		t.Fatalf("after %q: %v", line, err)
	}
	return strings.TrimRight(line, "\r\n")
}

// head reads a response head and returns its status line and fields.
func (c *rawConn) head(t *testing.T) (string, http.Header) {
	t.Helper()
	status := c.line(t)
	hd := http.Header{}
	for {
		l := c.line(t)
		if l == "" {
			return status, hd
		}
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			t.Fatalf("header line %q", l)
		}
		hd.Add(k, strings.TrimSpace(v))
	}
}

// rest reads until the connection ends, and returns what it read and how
// it ended.
func (c *rawConn) rest(t *testing.T) (string, error) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(waitTimeout))
	b, err := io.ReadAll(c.br)
	return string(b), err
}

// TestTakenOverResponse checks the exact bytes of a stream over HTTP/1.1
// and HTTP/1.0: a close-delimited response with the event stream's
// fields, the opening, live events without chunk framing, and the end
// of the connection when the hub shuts down.
func TestTakenOverResponse(t *testing.T) {
	for _, proto := range []string{"HTTP/1.1", "HTTP/1.0"} {
		t.Run(proto, func(t *testing.T) {
			noLeaks(t)
			th := newTestHub(t, &hub.Options{Heartbeat: -1}, nil)
			appendN(t, th.log, "t", 2)
			c := th.dialRaw(t, "GET /events?topic=t "+proto+"\r\nHost: test")
			status, hd := c.head(t)
			if status != "HTTP/1.1 200 OK" {
				t.Errorf("status line = %q; want %q", status, "HTTP/1.1 200 OK")
			}
			for _, f := range []struct{ name, want string }{
				{"Content-Type", "text/event-stream"},
				{"Cache-Control", "no-cache"},
				{"X-Accel-Buffering", "no"},
				{"Connection", "close"},
				{"Content-Length", ""},
				{"Transfer-Encoding", ""},
			} {
				if got := strings.Join(hd.Values(f.name), ", "); got != f.want {
					t.Errorf("%s = %q; want %q", f.name, got, f.want)
				}
			}
			if _, err := http.ParseTime(hd.Get("Date")); err != nil {
				t.Errorf("Date = %q: %v", hd.Get("Date"), err)
			}
			var got []string
			for range 5 {
				got = append(got, c.line(t))
			}
			if want := []string{": open", "retry: 2000", "", "id: 2", ""}; !slices.Equal(got, want) {
				t.Errorf("opening = %q; want %q", got, want)
			}

			// Live events, as they are: no chunk framing.
			th.publish(t, url.Values{"topic": {"t"}, "data": {"one\ntwo"}})
			th.publish(t, url.Values{"topic": {"t"}, "data": {"three"}})
			want := "id: 3\ndata: one\ndata: two\n\nid: 4\ndata: three\n\n"
			c.SetReadDeadline(time.Now().Add(waitTimeout))
			buf := make([]byte, len(want))
			if _, err := io.ReadFull(c.br, buf); err != nil || string(buf) != want {
				t.Errorf("events = %q, %v; want %q, nil", buf, err, want)
			}

			// Shutdown ends the stream, and so the response.
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			if err := th.h.Shutdown(ctx); err != nil {
				t.Fatalf("Shutdown = %v", err)
			}
			if rest, err := c.rest(t); rest != "" || err != nil {
				t.Errorf("after Shutdown, read %q, %v; want the end of the connection", rest, err)
			}
		})
	}
}

// TestTakenOverHeaders checks that the fields a middleware sets before
// the hub's handler runs are in a taken-over response, and that the
// hub's framing and event stream fields win over the middleware's.
func TestTakenOverHeaders(t *testing.T) {
	noLeaks(t)
	th := startHubWith(t, &hub.Options{Heartbeat: -1}, nil, true, func(h http.Handler) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hd := w.Header()
			hd.Set("Access-Control-Allow-Origin", "https://app.example")
			hd.Set("Access-Control-Allow-Credentials", "true")
			hd.Set("Cache-Control", "no-store")
			hd.Set("Content-Length", "12")
			hd.Set("Content-Type", "text/plain")
			hd.Set("Connection", "keep-alive")
			h.ServeHTTP(wrapped{w}, r) // with Unwrap, as middleware should
		}))
	})
	waitFor(t, waitTimeout, th.ready)
	c := th.dialRaw(t, "GET /events?topic=t HTTP/1.1\r\nHost: test")
	_, hd := c.head(t)
	for _, f := range []struct{ name, want string }{
		{"Access-Control-Allow-Origin", "https://app.example"},
		{"Access-Control-Allow-Credentials", "true"},
		{"Cache-Control", "no-store"},
		{"Content-Type", "text/event-stream"},
		{"Content-Length", ""},
		{"Connection", "close"},
	} {
		if got := strings.Join(hd.Values(f.name), ", "); got != f.want {
			t.Errorf("%s = %q; want %q", f.name, got, f.want)
		}
	}
	if got := c.line(t); got != ": open" {
		t.Errorf("first body line = %q; want %q", got, ": open")
	}
}

// wrapped is a middleware's ResponseWriter, which unwraps.
type wrapped struct{ http.ResponseWriter }

func (w wrapped) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// TestClientGone checks that a client that closes its connection ends
// its stream, whether the stream is idle (no events, no heartbeats: the
// hub looks at idle connections) or busy (a write fails).
func TestClientGone(t *testing.T) {
	for _, busy := range []bool{false, true} {
		t.Run(map[bool]string{false: "idle", true: "busy"}[busy], func(t *testing.T) {
			noLeaks(t)
			th := newTestHub(t, &hub.Options{Heartbeat: -1}, nil)
			keep := th.subscribe(t, "topic=t", nil)
			c := th.dialRaw(t, "GET /events?topic=t HTTP/1.1\r\nHost: test")
			c.head(t)
			waitFor(t, waitTimeout, func() bool { return th.metric(t, "ssehub_connections") == 2 })
			c.Close()
			var last string
			waitFor(t, waitTimeout, func() bool {
				if busy {
					last = th.publish(t, url.Values{"topic": {"t"}})
				}
				return th.metric(t, "ssehub_connections") == 1
			})
			if got := th.metric(t, "ssehub_subscriptions"); got != 1 {
				t.Errorf("ssehub_subscriptions = %v; want 1", got)
			}
			if busy {
				keep.waitID(t, last) // the other stream goes on
			}
		})
	}
}

// TestWriteTimeout checks that a client that stops reading, with a queue
// long enough never to fill, has its stream ended once a write cannot
// finish within WriteTimeout, without delaying the publisher or another
// subscriber.
func TestWriteTimeout(t *testing.T) {
	noLeaks(t)
	th := newTestHub(t, &hub.Options{QueueSize: 1 << 20, Heartbeat: -1, WriteTimeout: 200 * time.Millisecond}, nil)
	fast := th.subscribe(t, "topic=t", nil)
	c := th.dialRaw(t, "GET /events?topic=t HTTP/1.1\r\nHost: test")
	if tc, ok := c.Conn.(*net.TCPConn); ok {
		tc.SetReadBuffer(4 << 10)
	}
	c.head(t)
	waitFor(t, waitTimeout, func() bool { return th.metric(t, "ssehub_connections") == 2 })

	data := strings.Repeat("x", 60<<10)
	var last string
	for i := 0; th.metric(t, "ssehub_connections") == 2; i++ {
		if i == 2000 {
			t.Fatal("the stalled stream did not end after 2000 events of 60 KiB")
		}
		start := time.Now()
		last = th.publish(t, url.Values{"topic": {"t"}, "data": {data}})
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("publish %d took %v; want no wait for subscribers", i, d)
		}
	}
	fast.waitID(t, last)
	if n := th.metric(t, "ssehub_slow_disconnects_total"); n != 0 {
		t.Errorf("ssehub_slow_disconnects_total = %v; want 0: the write timed out", n)
	}
	// The hub reset the connection, rather than leave the kernel to
	// send what it holds to a peer that does not read.
	if _, err := c.rest(t); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("the stalled client's connection ended with %v; want a reset", err)
	}
}

// TestHTTP2 checks that streams over HTTP/2 (with TLS), which the hub
// cannot take over, and over HTTP/1.1 with TLS, which it does not, work
// through ssehttp: the opening, live events, and the end on Shutdown.
func TestHTTP2(t *testing.T) {
	for _, h2 := range []bool{true, false} {
		name := map[bool]string{true: "HTTP/2", false: "HTTP/1.1+TLS"}[h2]
		t.Run(name, func(t *testing.T) {
			noLeaks(t)
			th := startHubWith(t, &hub.Options{Heartbeat: -1}, nil, true, tlsServer(h2)) // HTTP/2 only if the server offers it
			waitFor(t, waitTimeout, th.ready)
			h := th.h

			rs := th.rawSubscribe(t, "topic=t", nil)
			if want := map[bool]int{true: 2, false: 1}[h2]; rs.resp.ProtoMajor != want {
				t.Errorf("ProtoMajor = %d; want %d", rs.resp.ProtoMajor, want)
			}
			if !h2 && !slices.Equal(rs.resp.TransferEncoding, []string{"chunked"}) {
				t.Errorf("TransferEncoding = %q; want chunked (ssehttp's stream)", rs.resp.TransferEncoding)
			}
			if got, want := rs.lines(t, 5), []string{": open", "retry: 2000", "", "id: 0", ""}; !slices.Equal(got, want) {
				t.Errorf("opening = %q; want %q", got, want)
			}
			th.publish(t, url.Values{"topic": {"t"}, "data": {"hi"}})
			if got, want := rs.lines(t, 3), []string{"id: 1", "data: hi", ""}; !slices.Equal(got, want) {
				t.Errorf("event = %q; want %q", got, want)
			}
			sctx, scancel := context.WithTimeout(context.Background(), waitTimeout)
			defer scancel()
			if err := h.Shutdown(sctx); err != nil {
				t.Fatalf("Shutdown = %v", err)
			}
			if _, err := rs.br.ReadString('\n'); err != io.EOF {
				t.Errorf("read after Shutdown = %v; want io.EOF", err)
			}
		})
	}
}

// TestTakenOverReplay checks a resumption over a taken-over connection:
// the replay, written by the handler, then live events, written by a
// shard, with no gap or repeat, and the events queued while the replay
// was written delivered once it is.
func TestTakenOverReplay(t *testing.T) {
	noLeaks(t)
	th := newTestHub(t, &hub.Options{Heartbeat: -1}, nil)
	appendN(t, th.log, "t", 3000) // several replay chunks
	sub := th.subscribe(t, "topic=t", http.Header{"Last-Event-Id": {"10"}})
	last := th.publish(t, url.Values{"topic": {"t"}, "data": {"live"}})
	got := ids(sub.waitID(t, last))
	checkSequence(t, "resumed subscriber", got, 11, 3001)
}

// lagLog makes the fan-out lag the Log's end at a chosen moment: the
// fan-out's Tail holds every batch until open is closed, and the first
// Bounds call after arm opens it and waits until the fan-out has handled
// every record up to until before it answers.
type lagLog struct {
	hub.Log
	until    uint64
	armed    atomic.Bool
	open     chan struct{}
	caughtUp chan struct{}
}

func (l *lagLog) Tail(ctx context.Context, after uint64, fn func([]hub.Record) error) error {
	return l.Log.Tail(ctx, after, func(recs []hub.Record) error {
		select {
		case <-l.open:
		case <-ctx.Done():
			return ctx.Err()
		}
		err := fn(recs)
		if recs[len(recs)-1].Pos == l.until {
			close(l.caughtUp)
		}
		return err
	})
}

func (l *lagLog) Bounds(ctx context.Context) (uint64, uint64, error) {
	if l.armed.CompareAndSwap(true, false) {
		close(l.open)
		<-l.caughtUp
	}
	return l.Log.Bounds(ctx)
}

// TestSubscribeWhileFanoutLags: a subscriber that registers while the
// fan-out is behind the Log's end by more than its queue holds is not
// evicted as too slow. Here the fan-out catches up with 200 events, past
// a queue of 16, during the subscription's first look at the Log.
func TestSubscribeWhileFanoutLags(t *testing.T) {
	for _, header := range []http.Header{nil, {"Last-Event-Id": {"10"}}} {
		ms := memstore.New()
		t.Cleanup(func() { ms.Close() })
		ll := &lagLog{Log: ms, until: 200, open: make(chan struct{}), caughtUp: make(chan struct{})}
		th := startHub(t, &hub.Options{Heartbeat: -1, QueueSize: 16}, ll, true)
		waitFor(t, waitTimeout, th.ready)
		appendN(t, ms, "t", 200) // the fan-out holds them

		ll.armed.Store(true)
		s := th.subscribe(t, "topic=t", header)
		last := th.publish(t, url.Values{"topic": {"t"}, "data": {"live"}})
		first := 201 // live only
		if header != nil {
			first = 11
		}
		checkSequence(t, fmt.Sprintf("subscriber with %v", header), ids(s.waitID(t, last)), first, 201)
		if n := th.metric(t, "ssehub_slow_disconnects_total"); n != 0 {
			t.Errorf("ssehub_slow_disconnects_total = %v; want 0", n)
		}
	}
}
