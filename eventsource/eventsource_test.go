package eventsource

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ssehub/ssehub/sse"
)

func TestReadyStateString(t *testing.T) {
	tests := []struct {
		s    ReadyState
		want string
	}{
		{Connecting, "CONNECTING"},
		{Open, "OPEN"},
		{Closed, "CLOSED"},
		{7, "ReadyState(7)"},
	}
	for _, tt := range tests {
		if got := tt.s.String(); got != tt.want {
			t.Errorf("ReadyState(%d).String() = %q; want %q", int32(tt.s), got, tt.want)
		}
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		url     string
		opts    *Options
		wantErr error
		wantURL string
	}{
		{name: "http", url: "http://example.com/events", wantURL: "http://example.com/events"},
		{name: "https upper-case scheme", url: "HTTPS://example.com/e?x=1", wantURL: "https://example.com/e?x=1"},
		{name: "unparsable", url: "http://[::1", wantErr: ErrInvalidURL},
		{name: "ftp", url: "ftp://example.com/", wantErr: ErrInvalidURL},
		{name: "relative", url: "/events", wantErr: ErrInvalidURL},
		{name: "no host", url: "http:///events", wantErr: ErrInvalidURL},
		{name: "empty", url: "", wantErr: ErrInvalidURL},
		{name: "bad header value", url: "http://x/", opts: &Options{Header: http.Header{"X-A": {"a\nb"}}}, wantErr: ErrInvalidHeader},
		{name: "bad header name", url: "http://x/", opts: &Options{Header: http.Header{"X A": {"a"}}}, wantErr: ErrInvalidHeader},
		{name: "bad last event id", url: "http://x/", opts: &Options{LastEventID: "a\rb"}, wantErr: ErrInvalidHeader},
		{name: "good options", url: "http://x/", opts: &Options{Header: http.Header{"X-A": {"a\tb"}}, LastEventID: "7"}, wantURL: "http://x/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			es, err := New(tt.url, tt.opts)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("New(%q) error = %v; want %v", tt.url, err, tt.wantErr)
				}
				if es != nil {
					t.Errorf("New(%q) = %v, %v; want nil EventSource", tt.url, es, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("New(%q) error = %v; want nil", tt.url, err)
			}
			if got := es.URL(); got != tt.wantURL {
				t.Errorf("URL() = %q; want %q", got, tt.wantURL)
			}
			if got := es.ReadyState(); got != Connecting {
				t.Errorf("ReadyState() = %v; want CONNECTING", got)
			}
			wantID := ""
			if tt.opts != nil {
				wantID = tt.opts.LastEventID
			}
			if got := es.LastEventID(); got != wantID {
				t.Errorf("LastEventID() = %q; want %q", got, wantID)
			}
		})
	}
}

func TestResponseErrorMessage(t *testing.T) {
	tests := []struct {
		err  ResponseError
		want string
		is   error
	}{
		{ResponseError{StatusCode: 500, ContentType: "text/plain"}, "eventsource: status 500", ErrStatus},
		{ResponseError{StatusCode: 204}, "eventsource: status 204", ErrStatus},
		{ResponseError{StatusCode: 200, ContentType: "text/html"}, `eventsource: content type "text/html" is not text/event-stream`, ErrContentType},
		{ResponseError{StatusCode: 200}, `eventsource: content type "" is not text/event-stream`, ErrContentType},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("%+v.Error() = %q; want %q", tt.err, got, tt.want)
		}
		if !errors.Is(&tt.err, tt.is) {
			t.Errorf("errors.Is(%v, %v) = false; want true", &tt.err, tt.is)
		}
	}
}

func TestBackoff(t *testing.T) {
	const s = time.Second
	tests := []struct {
		base, max time.Duration
		failures  int
		want      time.Duration
	}{
		{3 * s, 30 * s, 0, 3 * s}, // after a stream that opened: the delay itself
		{3 * s, 30 * s, 1, 3 * s},
		{3 * s, 30 * s, 2, 6 * s},
		{3 * s, 30 * s, 3, 12 * s},
		{3 * s, 30 * s, 4, 24 * s},
		{3 * s, 30 * s, 5, 30 * s},
		{3 * s, 30 * s, 1000, 30 * s},
		{60 * s, 30 * s, 3, 60 * s}, // the cap never shortens the retry delay
		{0, 30 * s, 0, 0},           // retry: 0 after an open stream reconnects at once
		{0, 30 * s, 1, minBackoff},  // but failed attempts wait at least minBackoff
		{0, 30 * s, 3, 4 * minBackoff},
		{0, 10 * time.Millisecond, 3, 10 * time.Millisecond},
		{time.Duration(1 << 62), time.Duration(1<<63 - 1), 10, time.Duration(1<<63 - 1)},
	}
	for _, tt := range tests {
		if got := backoff(tt.base, tt.max, tt.failures); got != tt.want {
			t.Errorf("backoff(%v, %v, %d) = %v; want %v", tt.base, tt.max, tt.failures, got, tt.want)
		}
	}
	for _, d := range []time.Duration{0, 1, time.Second, time.Duration(1<<63 - 1)} {
		for range 100 {
			hi := d + d/5
			if hi < d {
				hi = d // saturated
			}
			if got := withJitter(d); got < d || got > hi {
				t.Fatalf("withJitter(%v) = %v; want within [%v, %v]", d, got, d, hi)
			}
		}
	}
}

func TestRequestHeaders(t *testing.T) {
	checkLeaks(t)
	s := newScript()
	srv, client := newServer(t, s, false)
	es := newES(t, srv.URL, &Options{
		Client:      client,
		LastEventID: "41",
		Header: http.Header{
			"Authorization": {"Bearer tok"},
			"X-Multi":       {"a", "b"},
			"Accept":        {"application/json"}, // replaced
		},
	})
	collect(testCtx(t), es, func(ev Event) bool { return ev.Type == "open" })

	r := s.requests()[0]
	if r.Method != http.MethodGet {
		t.Errorf("method = %q; want GET", r.Method)
	}
	want := map[string][]string{
		"Accept":        {"text/event-stream"},
		"Cache-Control": {"no-cache"},
		"Last-Event-Id": {"41"},
		"Authorization": {"Bearer tok"},
		"X-Multi":       {"a", "b"},
	}
	for name, vs := range want {
		if got := r.Header.Values(name); !slices.Equal(got, vs) {
			t.Errorf("header %s = %q; want %q", name, got, vs)
		}
	}

	// Without an ID, no Last-Event-ID header at all.
	es = newES(t, srv.URL, &Options{Client: client})
	collect(testCtx(t), es, func(ev Event) bool { return ev.Type == "open" })
	if vs, ok := s.requests()[1].Header["Last-Event-Id"]; ok {
		t.Errorf("Last-Event-ID = %q; want no header", vs)
	}
}

func TestReconnectSendsLastEventID(t *testing.T) {
	checkLeaks(t)
	s := newScript(
		stream("id: 1\ndata: a\n\nid: 2\ndata: b\n\n"),
		// An ID-only block dispatches nothing but still moves the ID.
		stream("data: c\n\nid: 3\n\n"),
		// An unterminated block's ID does not count.
		stream("id: 4\ndata: d\n"),
		hold("data: e\n\n"),
	)
	srv, client := newServer(t, s, false)
	es := newES(t, srv.URL, &Options{Client: client, Retry: time.Millisecond, LastEventID: "0"})
	got := describeAll(collect(testCtx(t), es, dataIs("e")))

	want := []string{
		"open OPEN",
		`message OPEN "a" id="1"`,
		`message OPEN "b" id="2"`,
		"error CONNECTING err",
		"open OPEN",
		`message OPEN "c" id="2"`,
		"error CONNECTING err",
		"open OPEN",
		"error CONNECTING err",
		"open OPEN",
		`message OPEN "e" id="3"`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for i, want := range []string{"0", "2", "3", "3"} {
		if got := s.header(t, i, "Last-Event-ID"); got != want {
			t.Errorf("request %d: Last-Event-ID = %q; want %q", i, got, want)
		}
	}
	if got := es.LastEventID(); got != "3" {
		t.Errorf("LastEventID() = %q; want %q", got, "3")
	}
}

func TestFailTheConnection(t *testing.T) {
	tests := []struct {
		name   string
		status int
		ct     string
		is     error
	}{
		{"204", http.StatusNoContent, "text/event-stream", ErrStatus},
		{"500", http.StatusInternalServerError, "text/event-stream", ErrStatus},
		{"404 html", http.StatusNotFound, "text/html", ErrStatus},
		{"301 without location", http.StatusMovedPermanently, "text/event-stream", ErrStatus},
		{"wrong type", http.StatusOK, "text/html; charset=utf-8", ErrContentType},
		{"no type", http.StatusOK, "", ErrContentType},
		{"prefix of the type", http.StatusOK, "text/event-streaming", ErrContentType},
		{"plain text", http.StatusOK, "text/plain", ErrContentType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkLeaks(t)
			s := newScript(respond(tt.status, tt.ct))
			srv, client := newServer(t, s, false)
			es := newES(t, srv.URL, &Options{Client: client, Retry: time.Millisecond})
			var opens atomic.Int32
			es.OnOpen(func(Event) { opens.Add(1) })
			var errEvents []Event
			es.OnError(func(ev Event) {
				errEvents = append(errEvents, ev)
				if ev.ReadyState != Closed {
					t.Errorf("error event with ReadyState %v, Err %v; want CLOSED", ev.ReadyState, ev.Err)
					es.Close() // it would reconnect: end the test now
				}
			})

			err := runBounded(t, testCtx(t), es)

			var re *ResponseError
			if !errors.As(err, &re) {
				t.Fatalf("Run() = %v; want a *ResponseError", err)
			}
			if re.StatusCode != tt.status || re.ContentType != tt.ct {
				t.Errorf("ResponseError = {%d %q}; want {%d %q}", re.StatusCode, re.ContentType, tt.status, tt.ct)
			}
			if !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(%v, %v) = false; want true", err, tt.is)
			}
			if len(errEvents) != 1 || errEvents[0].ReadyState != Closed || errEvents[0].Err != err {
				t.Errorf("error events = %+v; want one with ReadyState CLOSED and Err %v", errEvents, err)
			}
			if n := opens.Load(); n != 0 {
				t.Errorf("%d open events; want none", n)
			}
			if got := es.ReadyState(); got != Closed {
				t.Errorf("ReadyState() = %v; want CLOSED", got)
			}
			if got := es.Err(); got != err {
				t.Errorf("Err() = %v; want %v", got, err)
			}
			if n := len(s.requests()); n != 1 {
				t.Errorf("%d requests; want 1 (no reconnection)", n)
			}
		})
	}
}

func TestFailTheConnectionEvents(t *testing.T) {
	checkLeaks(t)
	s := newScript(stream("data: a\n\n"), respond(http.StatusServiceUnavailable, "text/plain"))
	srv, client := newServer(t, s, false)
	es := newES(t, srv.URL, &Options{Client: client, Retry: time.Millisecond})
	evs := collect(testCtx(t), es, nil)

	want := []string{"open OPEN", `message OPEN "a" id=""`, "error CONNECTING err", "error CLOSED err"}
	if got := describeAll(evs); !slices.Equal(got, want) {
		t.Errorf("events = %q; want %q", got, want)
	}
	var re *ResponseError
	if err := es.Err(); !errors.As(err, &re) || re.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("Err() = %v; want status 503", err)
	}
	if last := evs[len(evs)-1]; last.Err != es.Err() {
		t.Errorf("last error event Err = %v; want %v", last.Err, es.Err())
	}
}

func TestContentTypeAccepted(t *testing.T) {
	tests := []string{
		"text/event-stream",
		"text/event-stream; charset=utf-8",
		"Text/Event-Stream;charset=ISO-8859-1", // charset ignored: still UTF-8
		"text/event-stream; charset",           // a malformed parameter is ignored
	}
	for _, ct := range tests {
		t.Run(ct, func(t *testing.T) {
			checkLeaks(t)
			h := func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", ct)
				io.WriteString(w, "data: caf\xc3\xa9 \xff\n\n")
				http.NewResponseController(w).Flush()
				<-r.Context().Done()
			}
			srv, client := newServer(t, http.HandlerFunc(h), false)
			es := newES(t, srv.URL, &Options{Client: client})
			got := describeAll(collect(testCtx(t), es, func(ev Event) bool { return ev.Type != "open" }))
			want := []string{"open OPEN", "message OPEN \"café \uFFFD\" id=\"\""}
			if !slices.Equal(got, want) {
				t.Errorf("events = %q; want %q", got, want)
			}
		})
	}
}

func TestNetworkDropReconnects(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		name := "HTTP1"
		if h2 {
			name = "HTTP2"
		}
		t.Run(name, func(t *testing.T) {
			checkLeaks(t)
			s := newScript(drop("id: 1\ndata: a\n\n"), stream("data: b\n\n"), hold("data: c\n\n"))
			srv, client := newServer(t, s, h2)
			es := newES(t, srv.URL, &Options{Client: client, Retry: time.Millisecond})
			evs := collect(testCtx(t), es, dataIs("c"))

			want := []string{
				"open OPEN", `message OPEN "a" id="1"`,
				"error CONNECTING err",
				"open OPEN", `message OPEN "b" id="1"`,
				"error CONNECTING err",
				"open OPEN", `message OPEN "c" id="1"`,
			}
			if got := describeAll(evs); !slices.Equal(got, want) {
				t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			// A broken stream is not a clean end; a clean end is io.EOF.
			if err := evs[2].Err; err == nil || errors.Is(err, io.EOF) {
				t.Errorf("error after the drop: Err = %v; want a read error, not io.EOF", err)
			}
			if err := evs[5].Err; !errors.Is(err, io.EOF) {
				t.Errorf("error after the clean end: Err = %v; want io.EOF", err)
			}
			if got := s.header(t, 1, "Last-Event-ID"); got != "1" {
				t.Errorf("Last-Event-ID after the drop = %q; want %q", got, "1")
			}
			if h2 && s.requests()[0].ProtoMajor != 2 {
				t.Errorf("request protocol = %s; want HTTP/2", s.requests()[0].Proto)
			}
		})
	}
}

func TestConnectionRefused(t *testing.T) {
	checkLeaks(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	es := newES(t, "http://"+addr+"/", &Options{Client: &http.Client{Transport: tr}, Retry: time.Millisecond})
	n := 0
	evs := collect(testCtx(t), es, func(ev Event) bool { n++; return n == 2 })

	for _, ev := range evs {
		if ev.Type != "error" || ev.ReadyState != Connecting {
			t.Errorf("event %s; want error CONNECTING", describe(ev))
		}
		if !errors.Is(ev.Err, syscall.ECONNREFUSED) {
			t.Errorf("Err = %v; want connection refused", ev.Err)
		}
	}
	if got := es.ReadyState(); got != Closed {
		t.Errorf("ReadyState() after break = %v; want CLOSED", got)
	}
	if err := es.Err(); err != nil {
		t.Errorf("Err() = %v; want nil after break", err)
	}
}

func TestCloseDuringConnect(t *testing.T) {
	checkLeaks(t)
	entered := make(chan struct{}, 1)
	h := func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-r.Context().Done() // never writes the headers
	}
	srv, client := newServer(t, http.HandlerFunc(h), false)
	es := newES(t, srv.URL, &Options{Client: client})
	var events atomic.Int32
	for _, typ := range []string{"open", "error", "message"} {
		es.AddEventListener(typ, func(Event) { events.Add(1) })
	}

	ctx := testCtx(t)
	done := make(chan error, 1)
	go func() { done <- es.Run(ctx) }()
	timer := time.NewTimer(testTimeout)
	defer timer.Stop()
	select {
	case <-entered:
	case <-timer.C:
		t.Fatal("request did not arrive")
	}
	es.Close()
	if got := es.ReadyState(); got != Closed {
		t.Errorf("ReadyState() right after Close = %v; want CLOSED", got)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run() = %v; want nil", err)
		}
	case <-timer.C:
		t.Fatal("Run did not return after Close")
	}
	if n := events.Load(); n != 0 {
		t.Errorf("%d events fired; want none", n)
	}
	es.Close() // idempotent
}

func TestCloseBeforeRun(t *testing.T) {
	checkLeaks(t)
	s := newScript()
	srv, client := newServer(t, s, false)
	es := newES(t, srv.URL, &Options{Client: client})
	es.Close()
	if err := runBounded(t, testCtx(t), es); err != nil {
		t.Errorf("Run() = %v; want nil", err)
	}
	if n := len(s.requests()); n != 0 {
		t.Errorf("%d requests; want none", n)
	}
	if err := es.Run(testCtx(t)); !errors.Is(err, ErrAlreadyStarted) {
		t.Errorf("second Run() = %v; want ErrAlreadyStarted", err)
	}
}

func TestRunTwice(t *testing.T) {
	checkLeaks(t)
	srv, client := newServer(t, newScript(stream("data: a\n\n")), false)
	es := newES(t, srv.URL, &Options{Client: client})
	es.OnMessage(func(Event) { es.Close() })
	if err := runBounded(t, testCtx(t), es); err != nil {
		t.Fatalf("Run() = %v; want nil", err)
	}
	if err := es.Run(testCtx(t)); !errors.Is(err, ErrAlreadyStarted) {
		t.Errorf("second Run() = %v; want ErrAlreadyStarted", err)
	}
	if evs := collect(testCtx(t), es, nil); len(evs) != 0 {
		t.Errorf("Events after Run yielded %q; want nothing", describeAll(evs))
	}
	if err := es.Err(); err != nil {
		t.Errorf("Err() = %v; want nil, the first Run's result", err)
	}
}

func TestCloseInHandler(t *testing.T) {
	checkLeaks(t)
	s := newScript(hold("data: 1\n\ndata: 2\n\n"))
	srv, client := newServer(t, s, false)
	es := newES(t, srv.URL, &Options{Client: client})
	var log []string
	es.AddEventListener("message", func(ev Event) {
		log = append(log, "first "+ev.Data)
		es.Close()
		if got := es.ReadyState(); got != Closed {
			t.Errorf("ReadyState() after Close in handler = %v; want CLOSED", got)
		}
	})
	// As in the DOM, the event being dispatched still reaches the rest of
	// its listeners; no later event fires.
	es.AddEventListener("message", func(ev Event) { log = append(log, "second "+ev.Data) })
	es.OnError(func(ev Event) { log = append(log, "error") })

	if err := runBounded(t, testCtx(t), es); err != nil {
		t.Errorf("Run() = %v; want nil", err)
	}
	if want := []string{"first 1", "second 1"}; !slices.Equal(log, want) {
		t.Errorf("calls = %q; want %q", log, want)
	}
	if n := len(s.requests()); n != 1 {
		t.Errorf("%d requests; want 1", n)
	}
}

func TestContextCancel(t *testing.T) {
	tests := []struct {
		name  string
		steps []http.HandlerFunc
		on    string // the event type whose listener cancels
		want  []string
	}{
		{
			name:  "while open",
			steps: []http.HandlerFunc{hold("data: a\n\ndata: b\n\n")},
			on:    "message",
			want:  []string{"open", "message"},
		},
		{
			name:  "while waiting to reconnect",
			steps: []http.HandlerFunc{stream("data: a\n\n")},
			on:    "error",
			want:  []string{"open", "message", "error"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkLeaks(t)
			srv, client := newServer(t, newScript(tt.steps...), false)
			// An hour's delay: Run returns in time only if the wait is aborted.
			es := newES(t, srv.URL, &Options{Client: client, Retry: time.Hour})
			ctx, cancel := context.WithCancel(testCtx(t))
			defer cancel()
			var got []string
			for _, typ := range []string{"open", "message", "error"} {
				es.AddEventListener(typ, func(ev Event) {
					got = append(got, ev.Type)
					if ev.Type == tt.on {
						cancel()
					}
				})
			}
			if err := runBounded(t, ctx, es); err != nil {
				t.Errorf("Run() = %v; want nil", err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("events = %q; want %q", got, tt.want)
			}
			if got := es.ReadyState(); got != Closed {
				t.Errorf("ReadyState() = %v; want CLOSED", got)
			}
		})
	}
}

func TestNamedEvents(t *testing.T) {
	checkLeaks(t)
	body := "data: m1\n\n" +
		"event: tick\ndata: t1\n\n" +
		"event: message\ndata: m2\n\n" +
		"event: error\ndata: e1\n\n" + // a named event, not a connection error
		"event: done\ndata: end\n\n"
	srv, client := newServer(t, newScript(hold(body)), false)
	es := newES(t, srv.URL, &Options{Client: client})
	var log []string
	rec := func(who string) func(Event) {
		return func(ev Event) { log = append(log, fmt.Sprintf("%s %s msg=%v", who, describe(ev), ev.IsMessage())) }
	}
	es.OnOpen(rec("onopen"))
	es.AddEventListener("message", rec("message"))
	es.OnMessage(rec("onmessage"))
	es.AddEventListener("tick", rec("tick"))
	es.OnError(rec("onerror"))
	es.AddEventListener("done", func(Event) { es.Close() })
	if err := runBounded(t, testCtx(t), es); err != nil {
		t.Fatalf("Run() = %v; want nil", err)
	}
	want := []string{
		`onopen open OPEN msg=false`,
		`message message OPEN "m1" id="" msg=true`,
		`onmessage message OPEN "m1" id="" msg=true`,
		`tick tick OPEN "t1" id="" msg=true`,
		`message message OPEN "m2" id="" msg=true`,
		`onmessage message OPEN "m2" id="" msg=true`,
		`onerror error OPEN "e1" id="" msg=true`,
	}
	if !slices.Equal(log, want) {
		t.Errorf("calls:\n%s\nwant:\n%s", strings.Join(log, "\n"), strings.Join(want, "\n"))
	}
}

func TestListeners(t *testing.T) {
	checkLeaks(t)
	srv, client := newServer(t, newScript(hold("data: 1\n\ndata: 2\n\ndata: 3\n\ndata: 4\n\n")), false)
	es := newES(t, srv.URL, &Options{Client: client})
	var log []string
	var calls []string
	rec := func(name string) func(Event) {
		return func(Event) { calls = append(calls, name) }
	}
	removeA := es.AddEventListener("message", rec("A"))
	es.OnMessage(rec("X"))
	es.AddEventListener("message", rec("B"))
	var removeD func()
	es.AddEventListener("message", func(ev Event) {
		calls = append(calls, "C")
		if ev.Data == "1" {
			removeD() // removed before its turn: not called
			removeD() // idempotent
			es.AddEventListener("message", func(ev Event) {
				calls = append(calls, "E")
				switch ev.Data {
				case "2":
					removeA()
					es.OnMessage(nil)
				case "3":
					es.OnMessage(rec("Z")) // set again: goes last
				}
			}) // added during dispatch: from the next event on
			es.OnMessage(rec("Y")) // replaced: keeps X's place
		}
	})
	removeD = es.AddEventListener("message", rec("D"))
	es.AddEventListener("message", rec("R"))() // added, removed at once
	es.AddEventListener("message", nil)()      // a nil fn is ignored

	for ev := range es.Events(testCtx(t)) {
		if ev.Type != "message" {
			continue
		}
		log = append(log, ev.Data+": "+strings.Join(calls, " "))
		calls = nil
		if ev.Data == "4" {
			break
		}
	}
	want := []string{
		"1: A X B C",
		"2: A Y B C E",
		"3: B C E",
		"4: B C E Z",
	}
	if !slices.Equal(log, want) {
		t.Errorf("calls:\n%s\nwant:\n%s", strings.Join(log, "\n"), strings.Join(want, "\n"))
	}
}

func TestEventsOrder(t *testing.T) {
	checkLeaks(t)
	s := newScript(
		stream("retry: 1\ndata: a\n\nevent: tick\nid: 9\ndata: b\n\n"),
		hold("data: c\n\n"),
	)
	srv, client := newServer(t, s, false)
	es := newES(t, srv.URL, &Options{Client: client})
	var listenerSaw []string
	es.OnMessage(func(ev Event) { listenerSaw = append(listenerSaw, ev.Data) })
	// Within each event, ReadyState() is the state the event reports.
	for _, typ := range []string{"open", "message", "tick", "error"} {
		es.AddEventListener(typ, func(ev Event) {
			if got := es.ReadyState(); got != ev.ReadyState {
				t.Errorf("during %s event: ReadyState() = %v; want %v", ev.Type, got, ev.ReadyState)
			}
		})
	}

	var got []string
	for ev := range es.Events(testCtx(t)) {
		got = append(got, describe(ev))
		if ev.Data == "c" {
			break
		}
	}
	want := []string{
		"open OPEN",
		`message OPEN "a" id=""`,
		`tick OPEN "b" id="9"`,
		"error CONNECTING err",
		"open OPEN",
		`message OPEN "c" id="9"`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if want := []string{"a", "c"}; !slices.Equal(listenerSaw, want) {
		t.Errorf("onmessage saw %q; want %q", listenerSaw, want)
	}
	if got := es.ReadyState(); got != Closed {
		t.Errorf("ReadyState() after break = %v; want CLOSED", got)
	}
	if err := es.Err(); err != nil {
		t.Errorf("Err() = %v; want nil", err)
	}
}

func TestRedirect(t *testing.T) {
	checkLeaks(t)
	s := newScript(stream("id: 5\ndata: a\n\n"), hold("data: b\n\n"))
	var paths atomic.Pointer[[]string]
	paths.Store(&[]string{})
	mux := http.NewServeMux()
	mux.HandleFunc("/old", func(w http.ResponseWriter, r *http.Request) {
		p := append(*paths.Load(), r.URL.Path)
		paths.Store(&p)
		http.Redirect(w, r, "/stream", http.StatusTemporaryRedirect)
	})
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		p := append(*paths.Load(), r.URL.Path)
		paths.Store(&p)
		s.ServeHTTP(w, r)
	})
	srv, client := newServer(t, mux, false)
	es := newES(t, srv.URL+"/old", &Options{Client: client, Retry: time.Millisecond})
	got := describeAll(collect(testCtx(t), es, dataIs("b")))

	want := []string{"open OPEN", `message OPEN "a" id="5"`, "error CONNECTING err", "open OPEN", `message OPEN "b" id="5"`}
	if !slices.Equal(got, want) {
		t.Errorf("events = %q; want %q", got, want)
	}
	if got, want := *paths.Load(), []string{"/old", "/stream", "/old", "/stream"}; !slices.Equal(got, want) {
		t.Errorf("paths = %q; want %q (each reconnection starts from the original URL)", got, want)
	}
	if got := s.header(t, 1, "Last-Event-ID"); got != "5" {
		t.Errorf("Last-Event-ID after redirect = %q; want %q", got, "5")
	}
	if got, want := es.URL(), srv.URL+"/old"; got != want {
		t.Errorf("URL() = %q; want %q", got, want)
	}
}

func TestCookieJar(t *testing.T) {
	checkLeaks(t)
	var cookie atomic.Value
	h := func(w http.ResponseWriter, r *http.Request) {
		if c, err := r.Cookie("session"); err == nil {
			cookie.Store(c.Value)
		}
		hold("")(w, r)
	}
	srv, client := newServer(t, http.HandlerFunc(h), false)
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(srv.URL)
	jar.SetCookies(u, []*http.Cookie{{Name: "session", Value: "s3cret"}})
	client.Jar = jar
	es := newES(t, srv.URL, &Options{Client: client})
	collect(testCtx(t), es, func(ev Event) bool { return ev.Type == "open" })
	if got, _ := cookie.Load().(string); got != "s3cret" {
		t.Errorf("cookie session = %q; want %q", got, "s3cret")
	}
}

func TestMaxEventSize(t *testing.T) {
	checkLeaks(t)
	big := strings.Repeat("x", 100)
	s := newScript(hold("data: small\n\ndata: "+big+"\n\n"), hold("data: after\n\n"))
	srv, client := newServer(t, s, false)
	es := newES(t, srv.URL, &Options{Client: client, MaxEventSize: 64, Retry: time.Millisecond})
	evs := collect(testCtx(t), es, dataIs("after"))

	want := []string{"open OPEN", `message OPEN "small" id=""`, "error CONNECTING err", "open OPEN", `message OPEN "after" id=""`}
	if got := describeAll(evs); !slices.Equal(got, want) {
		t.Fatalf("events = %q; want %q", got, want)
	}
	if err := evs[2].Err; !errors.Is(err, sse.ErrEventTooLarge) {
		t.Errorf("Err = %v; want sse.ErrEventTooLarge", err)
	}
}

func TestUnsendableLastEventID(t *testing.T) {
	checkLeaks(t)
	s := newScript(stream("id: a\x01b\ndata: x\n\n"))
	srv, client := newServer(t, s, false)
	es := newES(t, srv.URL, &Options{Client: client, Retry: time.Millisecond})
	evs := collect(testCtx(t), es, nil)

	want := []string{"open OPEN", "message OPEN \"x\" id=\"a\\x01b\"", "error CONNECTING err", "error CLOSED err"}
	if got := describeAll(evs); !slices.Equal(got, want) {
		t.Fatalf("events = %q; want %q", got, want)
	}
	if err := es.Err(); !errors.Is(err, ErrInvalidHeader) {
		t.Errorf("Err() = %v; want ErrInvalidHeader", err)
	}
	if n := len(s.requests()); n != 1 {
		t.Errorf("%d requests; want 1", n)
	}
}

func TestHandlerPanicPropagates(t *testing.T) {
	checkLeaks(t)
	srv, client := newServer(t, newScript(hold("data: boom\n\n")), false)
	es := newES(t, srv.URL, &Options{Client: client})
	es.OnMessage(func(Event) { panic("handler panic") })

	func() {
		defer func() {
			if r := recover(); r != "handler panic" {
				t.Errorf("recovered %v; want the handler's panic", r)
			}
		}()
		es.Run(testCtx(t))
		t.Error("Run returned; want a panic")
	}()
	if got := es.ReadyState(); got != Closed {
		t.Errorf("ReadyState() after panic = %v; want CLOSED", got)
	}
}
