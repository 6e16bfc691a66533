package ssehttp_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ssehub/ssehub/sse"
	"github.com/ssehub/ssehub/ssehttp"
)

// Unit tests against a fake or recording ResponseWriter; the ones that
// involve time run in a synctest bubble.

var errBoom = errors.New("boom")

func newTestStream(t *testing.T, w http.ResponseWriter, r *http.Request, opts *ssehttp.Options) *ssehttp.Stream {
	t.Helper()
	if r == nil {
		r = httptest.NewRequest(http.MethodGet, "/", nil)
	}
	s, err := ssehttp.NewStream(w, r, opts)
	if err != nil {
		t.Fatalf("NewStream: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func isDone(s *ssehttp.Stream) bool {
	select {
	case <-s.Done():
		return true
	default:
		return false
	}
}

func TestHeartbeat(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fw := newFakeWriter()
		s := newTestStream(t, fw, nil, &ssehttp.Options{Heartbeat: 10 * time.Second})
		steps := []struct {
			name      string
			do        func()
			wantPings int
		}{
			{"idle just under a period", func() { time.Sleep(10*time.Second - time.Millisecond) }, 0},
			{"idle a full period", func() { time.Sleep(time.Millisecond) }, 1},
			{"idle a second period", func() { time.Sleep(10 * time.Second) }, 2},
			{"an event every 5s for a minute", func() {
				for range 12 {
					time.Sleep(5 * time.Second)
					if err := s.Send(sse.Event{Data: "tick"}); err != nil {
						t.Fatalf("Send: %v", err)
					}
				}
			}, 2},
			{"idle 9s after the last event", func() { time.Sleep(9 * time.Second) }, 2},
			{"idle 10s after the last event", func() { time.Sleep(time.Second) }, 3},
			{"a comment postpones the heartbeat", func() {
				time.Sleep(5 * time.Second)
				if err := s.Comment("hello"); err != nil {
					t.Fatalf("Comment: %v", err)
				}
				time.Sleep(9 * time.Second)
			}, 3},
			{"and the heartbeat follows it", func() { time.Sleep(time.Second) }, 4},
			{"none after Close", func() {
				if err := s.Close(); err != nil {
					t.Fatalf("Close: %v", err)
				}
				time.Sleep(time.Hour)
			}, 4},
		}
		for _, st := range steps {
			st.do()
			synctest.Wait()
			if got := fw.count(": ping\n"); got != st.wantPings {
				t.Errorf("%s: %d heartbeats so far; want %d", st.name, got, st.wantPings)
			}
		}
	})
}

func TestHeartbeatDisabled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fw := newFakeWriter()
		newTestStream(t, fw, nil, &ssehttp.Options{Heartbeat: -1})
		time.Sleep(24 * time.Hour)
		synctest.Wait()
		if got := fw.count(": ping\n"); got != 0 {
			t.Errorf("with Heartbeat < 0: %d heartbeats in a day; want 0", got)
		}
	})
}

// TestHeartbeatFindsDeadPeer checks that a failing heartbeat ends an idle
// stream, so a handler waiting on Done learns the peer is gone.
func TestHeartbeatFindsDeadPeer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fw := newFakeWriter()
		s := newTestStream(t, fw, nil, &ssehttp.Options{Heartbeat: 10 * time.Second})
		fw.failWrites(errBoom)
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if !isDone(s) {
			t.Fatal("Done not closed after a failed heartbeat")
		}
		if err := s.Err(); !errors.Is(err, errBoom) {
			t.Errorf("Err() = %v; want %v", err, errBoom)
		}
		fw.Ops()
		time.Sleep(time.Hour)
		synctest.Wait()
		if ops := fw.Ops(); len(ops) != 0 {
			t.Errorf("after the stream ended: %q; want no calls", ops)
		}
	})
}

// TestWriteDeadlines checks that each write and flush runs under a fresh
// deadline, cleared afterwards, and that Close leaves one for the server's
// end of the response.
func TestWriteDeadlines(t *testing.T) {
	write := func(d string) []string { return []string{"deadline " + d, "write", "flush", "deadline none"} }
	open := func(d string) []string { return append([]string{"flush", "deadline none"}, write(d)...) }
	tests := []struct {
		name       string
		opts       *ssehttp.Options
		noDeadline bool
		wantOpen   []string // NewStream
		wantSend   []string // a Send at 1m
		wantClose  []string // Close at 2m
	}{
		// NewStream flushes the headers, then probes for deadline support
		// by clearing the deadline.
		{"default", &ssehttp.Options{Heartbeat: -1}, false, open("10s"), write("1m10s"), []string{"deadline 2m10s"}},
		{"3s", &ssehttp.Options{WriteTimeout: 3 * time.Second, Heartbeat: -1}, false, open("3s"), write("1m3s"), []string{"deadline 2m3s"}},
		{"disabled", &ssehttp.Options{WriteTimeout: -1, Heartbeat: -1}, false, []string{"flush", "write", "flush"}, []string{"write", "flush"}, nil},
		{"unsupported", &ssehttp.Options{Heartbeat: -1}, true, []string{"flush", "write", "flush"}, []string{"write", "flush"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				fw := newFakeWriter()
				fw.noDeadline = tt.noDeadline
				s := newTestStream(t, fw, nil, tt.opts)
				ops := fw.Ops()
				if !reflect.DeepEqual(ops, tt.wantOpen) {
					t.Errorf("NewStream: %q; want %q", ops, tt.wantOpen)
				}
				time.Sleep(time.Minute)
				if err := s.Send(sse.Event{Data: "x"}); err != nil {
					t.Fatalf("Send: %v", err)
				}
				if ops := fw.Ops(); !reflect.DeepEqual(ops, tt.wantSend) {
					t.Errorf("Send: %q; want %q", ops, tt.wantSend)
				}
				time.Sleep(time.Minute)
				if err := s.Close(); err != nil {
					t.Fatalf("Close: %v", err)
				}
				if ops := fw.Ops(); !reflect.DeepEqual(ops, tt.wantClose) {
					t.Errorf("Close: %q; want %q", ops, tt.wantClose)
				}
			})
		})
	}
}

// TestWire checks the exact bytes each method writes.
func TestWire(t *testing.T) {
	tests := []struct {
		name string
		opts *ssehttp.Options
		do   func(s *ssehttp.Stream) error
		want string // after the opening bytes
	}{
		{"event", nil, func(s *ssehttp.Stream) error {
			return s.Send(sse.Event{ID: "7", Type: "price", Data: "a\nb"})
		}, "id: 7\nevent: price\ndata: a\ndata: b\n\n"},
		{"empty event writes nothing", nil, func(s *ssehttp.Stream) error {
			return s.Send(sse.Event{})
		}, ""},
		{"empty comment", nil, func(s *ssehttp.Stream) error { return s.Comment("") }, ":\n"},
		{"multi-line comment", nil, func(s *ssehttp.Stream) error { return s.Comment("a\r\nb") }, ": a\n: b\n"},
		{"raw bytes", nil, func(s *ssehttp.Stream) error {
			return s.WriteRaw([]byte("data: 1\n\ndata: 2\n\n"))
		}, "data: 1\n\ndata: 2\n\n"},
		{"empty raw", nil, func(s *ssehttp.Stream) error { return s.WriteRaw(nil) }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			s := newTestStream(t, rec, nil, &ssehttp.Options{Heartbeat: -1})
			if err := tt.do(s); err != nil {
				t.Fatal(err)
			}
			if got, want := rec.Body.String(), ": open\n"+tt.want; got != want {
				t.Errorf("body = %q; want %q", got, want)
			}
		})
	}
}

// TestOpening checks the opening bytes with and without a retry field.
func TestOpening(t *testing.T) {
	tests := []struct {
		retry time.Duration
		want  string
	}{
		{0, ": open\n"},
		{-time.Second, ": open\n"},
		{1500 * time.Millisecond, ": open\nretry: 1500\n\n"},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		newTestStream(t, rec, nil, &ssehttp.Options{Retry: tt.retry, Heartbeat: -1})
		if !rec.Flushed {
			t.Errorf("Retry %v: opening bytes not flushed", tt.retry)
		}
		if got := rec.Body.String(); got != tt.want {
			t.Errorf("Retry %v: opening = %q; want %q", tt.retry, got, tt.want)
		}
	}
}

// TestInvalidEvent checks that an event that would break the stream is
// refused, writes nothing, and leaves the stream open.
func TestInvalidEvent(t *testing.T) {
	tests := []struct {
		ev   sse.Event
		want error
	}{
		{sse.Event{ID: "1\ndata: injected", Data: "x"}, sse.ErrInvalidID},
		{sse.Event{ID: "1\r", Data: "x"}, sse.ErrInvalidID},
		{sse.Event{ID: "1\x00", Data: "x"}, sse.ErrInvalidID},
		{sse.Event{Type: "a\nb", Data: "x"}, sse.ErrInvalidType},
		{sse.Event{Data: "x", Retry: -time.Second}, sse.ErrInvalidRetry},
	}
	for _, tt := range tests {
		fw := newFakeWriter()
		s := newTestStream(t, fw, nil, &ssehttp.Options{Heartbeat: -1})
		before := fw.Body()
		fw.Ops()
		if err := s.Send(tt.ev); err != tt.want {
			t.Errorf("Send(%+v) = %v; want %v", tt.ev, err, tt.want)
		}
		if ops := fw.Ops(); len(ops) != 0 || fw.Body() != before {
			t.Errorf("Send(%+v) wrote %q; want nothing", tt.ev, fw.Body()[len(before):])
		}
		if err := s.Send(sse.Event{Data: "ok"}); err != nil || isDone(s) {
			t.Errorf("after Send(%+v): valid Send = %v, done %v; want the stream open", tt.ev, err, isDone(s))
		}
	}
}

// TestEnd checks how each way of ending a stream is reported, and that an
// ended stream writes nothing more.
func TestEnd(t *testing.T) {
	errGone := errors.New("client gone")
	tests := []struct {
		name string
		end  func(fw *fakeWriter, s *ssehttp.Stream, cancel context.CancelCauseFunc)
		want error // Err, and what later sends return
	}{
		{"Close", func(_ *fakeWriter, s *ssehttp.Stream, _ context.CancelCauseFunc) {
			if err := s.Close(); err != nil {
				t.Errorf("Close = %v", err)
			}
		}, ssehttp.ErrClosed},
		{"write error", func(fw *fakeWriter, s *ssehttp.Stream, _ context.CancelCauseFunc) {
			fw.failWrites(errBoom)
			if err := s.Send(sse.Event{Data: "x"}); !errors.Is(err, errBoom) {
				t.Errorf("Send on a failing writer = %v; want %v", err, errBoom)
			}
		}, errBoom},
		{"context canceled", func(_ *fakeWriter, _ *ssehttp.Stream, cancel context.CancelCauseFunc) {
			cancel(nil)
		}, context.Canceled},
		{"context canceled with a cause", func(_ *fakeWriter, _ *ssehttp.Stream, cancel context.CancelCauseFunc) {
			cancel(errGone)
		}, errGone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := context.WithCancelCause(t.Context())
				defer cancel(nil)
				fw := newFakeWriter()
				r := httptest.NewRequestWithContext(ctx, http.MethodGet, "/", nil)
				s := newTestStream(t, fw, r, &ssehttp.Options{Heartbeat: time.Second})
				if isDone(s) || s.Err() != nil {
					t.Fatalf("new stream: done %v, Err() = %v; want open", isDone(s), s.Err())
				}

				tt.end(fw, s, cancel)
				synctest.Wait()
				if !isDone(s) {
					t.Fatal("Done not closed")
				}
				if err := s.Err(); !errors.Is(err, tt.want) {
					t.Errorf("Err() = %v; want %v", err, tt.want)
				}
				fw.Ops()
				time.Sleep(time.Minute) // no heartbeat either
				for name, send := range map[string]func() error{
					"Send":     func() error { return s.Send(sse.Event{Data: "late"}) },
					"Comment":  func() error { return s.Comment("late") },
					"WriteRaw": func() error { return s.WriteRaw([]byte("data: late\n\n")) },
				} {
					if err := send(); !errors.Is(err, tt.want) {
						t.Errorf("%s after end = %v; want %v", name, err, tt.want)
					}
				}
				if ops := fw.Ops(); len(ops) != 0 {
					t.Errorf("after end: %q; want nothing written", ops)
				}
				for range 2 {
					if err := s.Close(); err != nil {
						t.Errorf("Close after end = %v; want nil", err)
					}
				}
				if err := s.Err(); !errors.Is(err, tt.want) {
					t.Errorf("Err() after Close = %v; want %v still", err, tt.want)
				}
			})
		})
	}
}

// TestFlushUnsupported checks that NewStream refuses a ResponseWriter that
// cannot flush, leaving the response untouched so the handler can still
// send an error, and finds the flusher behind a wrapper's Unwrap.
func TestFlushUnsupported(t *testing.T) {
	tests := []struct {
		name    string
		wrap    func(http.ResponseWriter) http.ResponseWriter
		wantErr error
	}{
		{"plain", func(w http.ResponseWriter) http.ResponseWriter { return w }, nil},
		{"wrapper with Unwrap", func(w http.ResponseWriter) http.ResponseWriter { return unwrapper{w} }, nil},
		{"wrapper without Unwrap", func(w http.ResponseWriter) http.ResponseWriter { return opaque{w} }, ssehttp.ErrFlushUnsupported},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			rec.Header().Set("Vary", "Origin")
			rec.Header().Set("X-Request-Id", "abc")
			before := rec.Header().Clone()
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.Header.Set("Accept-Encoding", "gzip")

			s, err := ssehttp.NewStream(tt.wrap(rec), r, &ssehttp.Options{Gzip: true, Heartbeat: -1})
			if err != tt.wantErr {
				t.Fatalf("NewStream = %v; want %v", err, tt.wantErr)
			}
			if err != nil {
				if !reflect.DeepEqual(rec.Header(), before) {
					t.Errorf("headers after failure = %v; want %v as before", rec.Header(), before)
				}
				if rec.Body.Len() != 0 || rec.Flushed {
					t.Errorf("after failure: body %q, flushed %v; want nothing sent", rec.Body, rec.Flushed)
				}
				return
			}
			defer s.Close()
			if !rec.Flushed || rec.Header().Get("Content-Encoding") != "gzip" {
				t.Errorf("flushed %v, headers %v; want flushed gzip stream", rec.Flushed, rec.Header())
			}
		})
	}
}

// TestResponseHeaders checks the headers NewStream sets, and which of the
// handler's own it keeps.
func TestResponseHeaders(t *testing.T) {
	tests := []struct {
		name       string
		protoMajor int
		preset     http.Header
		want       http.Header
	}{
		{"HTTP/1.1", 1, nil, http.Header{
			"Content-Type":      {"text/event-stream"},
			"Cache-Control":     {"no-cache"},
			"X-Accel-Buffering": {"no"},
			"Connection":        {"keep-alive"},
		}},
		{"HTTP/2", 2, nil, http.Header{
			"Content-Type":      {"text/event-stream"},
			"Cache-Control":     {"no-cache"},
			"X-Accel-Buffering": {"no"},
		}},
		{"handler's own kept", 1, http.Header{
			"Cache-Control":     {"no-store"},
			"X-Accel-Buffering": {"yes"},
			"Content-Type":      {"text/plain"},
			"Content-Length":    {"12"},
			"X-Request-Id":      {"abc"},
		}, http.Header{
			"Content-Type":      {"text/event-stream"},
			"Cache-Control":     {"no-store"},
			"X-Accel-Buffering": {"yes"},
			"Connection":        {"keep-alive"},
			"X-Request-Id":      {"abc"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			for k, v := range tt.preset {
				rec.Header()[k] = v
			}
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.ProtoMajor = tt.protoMajor
			newTestStream(t, rec, r, &ssehttp.Options{Heartbeat: -1})
			if got := rec.Result().Header; !reflect.DeepEqual(got, tt.want) {
				t.Errorf("headers = %v; want %v", got, tt.want)
			}
		})
	}
}

// TestGzipNegotiation checks when a stream is compressed, and that the
// body reads back either way.
func TestGzipNegotiation(t *testing.T) {
	tests := []struct {
		name     string
		gzip     bool
		accept   []string // Accept-Encoding lines
		vary     []string // preset Vary
		wantGzip bool
		wantVary []string
	}{
		{"off", false, []string{"gzip"}, nil, false, nil},
		{"on, not accepted", true, nil, nil, false, []string{"Accept-Encoding"}},
		{"on, accepted", true, []string{"gzip"}, nil, true, []string{"Accept-Encoding"}},
		{"on, refused with q=0", true, []string{"gzip;q=0"}, nil, false, []string{"Accept-Encoding"}},
		{"on, identity only", true, []string{"identity"}, nil, false, []string{"Accept-Encoding"}},
		{"on, among others", true, []string{"br;q=1.0, gzip;q=0.5, deflate"}, nil, true, []string{"Accept-Encoding"}},
		{"on, wildcard", true, []string{"*"}, nil, true, []string{"Accept-Encoding"}},
		{"on, wildcard refused", true, []string{"*;q=0"}, nil, false, []string{"Accept-Encoding"}},
		{"on, two header lines", true, []string{"br", "gzip"}, nil, true, []string{"Accept-Encoding"}},
		{"on, Vary kept", true, []string{"gzip"}, []string{"Origin"}, true, []string{"Origin", "Accept-Encoding"}},
		{"on, Vary not repeated", true, []string{"gzip"}, []string{"Origin, accept-encoding"}, true, []string{"Origin, accept-encoding"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			if tt.vary != nil {
				rec.Header()["Vary"] = tt.vary
			}
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.Header["Accept-Encoding"] = tt.accept
			s := newTestStream(t, rec, r, &ssehttp.Options{Gzip: tt.gzip, Heartbeat: -1})
			if err := s.Send(sse.Event{Data: "hi"}); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}

			h := rec.Result().Header
			wantCE := map[bool]string{true: "gzip"}[tt.wantGzip]
			if got := h.Get("Content-Encoding"); got != wantCE {
				t.Errorf("Content-Encoding = %q; want %q", got, wantCE)
			}
			if got := h.Values("Vary"); !reflect.DeepEqual(got, tt.wantVary) {
				t.Errorf("Vary = %q; want %q", got, tt.wantVary)
			}
			var body io.Reader = rec.Body
			if tt.wantGzip {
				zr, err := gzip.NewReader(body)
				if err != nil {
					t.Fatalf("gzip.NewReader: %v", err)
				}
				body = zr
			}
			got, err := io.ReadAll(body)
			if want := ": open\ndata: hi\n\n"; string(got) != want || err != nil {
				t.Errorf("body = %q, %v; want %q, nil", got, err, want)
			}
		})
	}
}

// TestGzipPooled checks that a compressor reused from an earlier stream
// starts clean.
func TestGzipPooled(t *testing.T) {
	for i := range 3 {
		rec := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Accept-Encoding", "gzip")
		s := newTestStream(t, rec, r, &ssehttp.Options{Gzip: true, Heartbeat: -1})
		data := strings.Repeat("n", i+1)
		if err := s.Send(sse.Event{Data: data}); err != nil {
			t.Fatal(err)
		}
		s.Close()
		zr, err := gzip.NewReader(bytes.NewReader(rec.Body.Bytes()))
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		got, err := io.ReadAll(zr)
		if want := ": open\ndata: " + data + "\n\n"; string(got) != want || err != nil {
			t.Errorf("stream %d: body = %q, %v; want %q, nil", i, got, err, want)
		}
	}
}

// TestGzipCompresses checks that events flushed one at a time still
// compress, through the repetition between them.
func TestGzipCompresses(t *testing.T) {
	rec := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Accept-Encoding", "gzip")
	s := newTestStream(t, rec, r, &ssehttp.Options{Gzip: true, Heartbeat: -1})
	var plain []byte
	for i := range 200 {
		ev := sse.Event{ID: strconv.Itoa(i), Type: "price", Data: fmt.Sprintf(`{"symbol":"ACME","usd":%d.%02d}`, 40+i%7, i%100)}
		if err := s.Send(ev); err != nil {
			t.Fatal(err)
		}
		plain, _ = sse.AppendEvent(plain, &ev)
	}
	s.Close()
	if got, limit := rec.Body.Len(), len(plain)/2; got > limit {
		t.Errorf("%d bytes of events compressed to %d; want at most %d", len(plain), got, limit)
	}
}

func TestLastEventID(t *testing.T) {
	tests := []struct {
		name   string
		header []string
		target string
		want   string
	}{
		{"absent", nil, "/events", ""},
		{"header", []string{"42"}, "/events", "42"},
		{"query", nil, "/events?topic=a&lastEventID=17", "17"},
		{"query, escaped", nil, "/events?lastEventID=a%2Fb%20c", "a/b c"},
		{"header wins", []string{"42"}, "/events?lastEventID=17", "42"},
		{"empty header falls back", []string{""}, "/events?lastEventID=17", "17"},
		{"query name is case-sensitive", nil, "/events?lasteventid=17", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, tt.target, nil)
			if tt.header != nil {
				r.Header["Last-Event-Id"] = tt.header
			}
			if got := ssehttp.LastEventID(r); got != tt.want {
				t.Errorf("LastEventID(%s, header %q) = %q; want %q", tt.target, tt.header, got, tt.want)
			}
			s := newTestStream(t, httptest.NewRecorder(), r, &ssehttp.Options{Heartbeat: -1})
			if got := s.LastEventID(); got != tt.want {
				t.Errorf("Stream.LastEventID() = %q; want %q", got, tt.want)
			}
		})
	}
}
