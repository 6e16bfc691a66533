package web_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/ssehub/ssehub/internal/browsertest"
	"github.com/ssehub/ssehub/internal/web"
)

var screenshots = flag.String("screenshots", "", "write screenshots of the console page into this `directory`")

// A fakeHub stands in for package hub: it serves the console page at "/",
// subscriptions at GET /events as a real event stream, and publishing at
// POST /events, with the same request and answer formats. Its IDs are a
// counter. It keeps its state across the servers that serve it, so a test
// can stop the server and start another one on the same address.
type fakeHub struct {
	mu         sync.Mutex // guards everything below
	next       int
	used       map[string]bool      // event IDs given out
	streams    map[*fakeStream]bool // connected subscribers
	subscribes [][]string           // the topics of each subscribe request
	cookies    []string             // the Cookie header of each subscribe request
	publishes  []url.Values         // the form of each publish request
	auths      []string             // the Authorization header of each publish request
}

type fakeStream struct {
	selectors []string
	events    chan string // encoded events
}

func newFakeHub() *fakeHub {
	return &fakeHub{used: map[string]bool{}, streams: map[*fakeStream]bool{}}
}

func (h *fakeHub) handler() http.Handler {
	return h.handlerWith(web.Handler())
}

// handlerWith is handler with console as the console.
func (h *fakeHub) handlerWith(console http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", console)
	mux.HandleFunc("GET /events", h.subscribe)
	mux.HandleFunc("POST /events", h.publish)
	return mux
}

func problem(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{
		"type": "about:blank", "title": http.StatusText(status), "status": status, "detail": detail,
	})
}

func (h *fakeHub) subscribe(w http.ResponseWriter, r *http.Request) {
	sels := r.URL.Query()["topic"]
	h.mu.Lock()
	h.subscribes = append(h.subscribes, sels)
	h.cookies = append(h.cookies, r.Header.Get("Cookie"))
	h.mu.Unlock()
	if len(sels) == 0 {
		problem(w, http.StatusBadRequest, "topic is required")
		return
	}
	for _, s := range sels {
		if !validSelector(s) {
			problem(w, http.StatusBadRequest, fmt.Sprintf("bad topic selector %q", s))
			return
		}
	}
	st := &fakeStream{selectors: sels, events: make(chan string, 64)}
	h.mu.Lock()
	h.streams[st] = true
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.streams, st)
		h.mu.Unlock()
	}()

	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	rc := http.NewResponseController(w)
	if _, err := io.WriteString(w, "retry: 200\n: subscribed\n\n"); err != nil {
		return
	}
	if err := rc.Flush(); err != nil {
		return
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case ev := <-st.events:
			if _, err := io.WriteString(w, ev); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
		}
	}
}

func (h *fakeHub) publish(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		problem(w, http.StatusBadRequest, err.Error())
		return
	}
	f := r.PostForm
	h.mu.Lock()
	defer h.mu.Unlock()
	h.publishes = append(h.publishes, f)
	h.auths = append(h.auths, r.Header.Get("Authorization"))
	topics := f["topic"]
	if len(topics) == 0 {
		problem(w, http.StatusBadRequest, "topic is required")
		return
	}
	id, typ := f.Get("id"), f.Get("type")
	if strings.ContainsAny(id+typ, "\r\n\x00") {
		problem(w, http.StatusBadRequest, "id and type must not contain CR, LF or NUL")
		return
	}
	if id == "" {
		h.next++
		id = strconv.Itoa(h.next)
	}
	if h.used[id] {
		problem(w, http.StatusConflict, fmt.Sprintf("event ID %q is already used", id))
		return
	}
	h.used[id] = true

	var b strings.Builder
	if typ != "" {
		fmt.Fprintf(&b, "event: %s\n", typ)
	}
	fmt.Fprintf(&b, "id: %s\n", id)
	data := strings.ReplaceAll(strings.ReplaceAll(f.Get("data"), "\r\n", "\n"), "\r", "\n")
	for line := range strings.SplitSeq(data, "\n") {
		fmt.Fprintf(&b, "data: %s\n", line)
	}
	b.WriteString("\n")
	for st := range h.streams {
		if matchAny(st.selectors, topics) {
			select {
			case st.events <- b.String():
			default: // too slow: the test would notice the missing event
			}
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, id)
}

func (h *fakeHub) lastSubscribe() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.subscribes) == 0 {
		return nil
	}
	return h.subscribes[len(h.subscribes)-1]
}

// lastCookie returns the number of subscribe requests, and the
// Cookie header of the last one.
func (h *fakeHub) lastCookie() (int, string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.cookies) == 0 {
		return 0, ""
	}
	return len(h.cookies), h.cookies[len(h.cookies)-1]
}

func (h *fakeHub) lastAuth() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.auths) == 0 {
		return "(no publish)"
	}
	return h.auths[len(h.auths)-1]
}

func (h *fakeHub) lastPublish() url.Values {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.publishes) == 0 {
		return nil
	}
	return h.publishes[len(h.publishes)-1]
}

// validSelector reports whether s is a topic selector: non-empty
// segments, with "**" only at the end.
func validSelector(s string) bool {
	segs := strings.Split(s, "/")
	for i, seg := range segs {
		if seg == "" || (seg == "**" && i != len(segs)-1) {
			return false
		}
	}
	return true
}

// match reports whether the selector matches the topic: "*" matches one
// segment, a final "**" one or more.
func match(sel, topic string) bool {
	s, t := strings.Split(sel, "/"), strings.Split(topic, "/")
	for i, seg := range s {
		if seg == "**" && i == len(s)-1 {
			return len(t) > i
		}
		if i >= len(t) || (seg != "*" && seg != t[i]) {
			return false
		}
	}
	return len(s) == len(t)
}

func matchAny(sels, topics []string) bool {
	for _, s := range sels {
		for _, t := range topics {
			if match(s, t) {
				return true
			}
		}
	}
	return false
}

// A testServer serves a handler on a real listener, so that it can be
// stopped, dropping every connection, and another started on its address.
type testServer struct {
	URL  string
	addr string
	srv  *http.Server
	done chan struct{} // closed when Serve returns
	once sync.Once
}

// The caller must call stop.
func startServer(t *testing.T, addr string, h http.Handler) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on %s: %v", addr, err)
	}
	s := &testServer{
		URL:  "http://" + ln.Addr().String(),
		addr: ln.Addr().String(),
		srv:  &http.Server{Handler: h},
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		s.srv.Serve(ln)
	}()
	return s
}

// stop closes the listener and every connection, and waits for Serve.
func (s *testServer) stop() {
	s.once.Do(func() {
		s.srv.Close()
		<-s.done
	})
}

// publish posts an event form to the hub, as a publisher would, and returns
// the event's ID.
func publish(t *testing.T, base string, form url.Values) string {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	res, err := c.PostForm(base+"/events", form)
	if err != nil {
		t.Fatalf("publish %v: %v", form, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("publish %v: %s %s", form, res.Status, b)
	}
	return string(b)
}

// byTestID selects the element with the data-testid.
func byTestID(id string) chromedp.CSS {
	return chromedp.CSS(fmt.Sprintf("[data-testid=%q]", id))
}

// setValue sets the value of the field with the data-testid, as typing
// would, with input and change events.
func setValue(id, value string) chromedp.Action[chromedp.Void] {
	return chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(e => {
		e.value = %s;
		e.dispatchEvent(new Event("input", {bubbles: true}));
		e.dispatchEvent(new Event("change", {bubbles: true}));
	})(document.querySelector('[data-testid=%q]'))`, js(value), id))
}

func js(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// rowsJS evaluates to the page's event rows, newest first.
const rowsJS = `Array.from(document.querySelectorAll('[data-testid="event-row"]'), r => ({
	kind: r.dataset.kind,
	type: r.querySelector('[data-testid="event-type"]').textContent,
	id: r.querySelector('[data-testid="event-id"]').textContent,
	data: r.querySelector('[data-testid="event-data"]').textContent,
}))`

func hasRowJS(kind, typ, id, data string) string {
	return fmt.Sprintf(`%s.some(r => r.kind === %s && r.type === %s && r.id === %s && r.data === %s)`,
		rowsJS, js(kind), js(typ), js(id), js(data))
}

func stateIsJS(state string) string {
	return fmt.Sprintf(`document.querySelector('[data-testid="state"]').textContent === %s`, js(state))
}

// waitJS waits until the expression is true in the page, or fails the test
// with what the page shows.
func waitJS(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	_, err := chromedp.Run(ctx, chromedp.Poll[bool]("!!("+expr+")",
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(15*time.Second)))
	if err != nil {
		dump, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify({
			state: document.querySelector('[data-testid="state"]').textContent,
			result: document.querySelector('[data-testid="publish-result"]').textContent,
			log: Array.from(document.querySelectorAll('[data-testid="log"] li'), r => r.textContent).slice(0, 20),
		})`))
		t.Fatalf("waiting until %s: %v\nthe page shows: %s", what, err, dump)
	}
}

func do(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if *screenshots == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(*screenshots, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", path)
}

// TestConsole drives the console page in Chromium against a fake hub:
// subscribe, receive, publish, errors, escaping, and the readyState through
// a server restart.
func TestConsole(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test: skipped in -short mode")
	}
	ctx := browsertest.New(t, 2*time.Minute)
	hub := newFakeHub()
	srv := startServer(t, "127.0.0.1:0", hub.handler())
	t.Cleanup(func() { srv.stop() }) // the server of the moment: see "server restart"

	do(t, ctx, "open the console at desktop width",
		chromedp.EmulateViewport(1280, 900),
		chromedp.Navigate(srv.URL+"/"))
	waitJS(t, ctx, "the badge shows CLOSED before Connect", stateIsJS("CLOSED"))

	t.Run("no topic", func(t *testing.T) {
		do(t, ctx, "connect without a topic", chromedp.Click(byTestID("connect")))
		waitJS(t, ctx, "the page asks for a topic",
			`!document.querySelector('[data-testid="subscribe-error"]').hidden`)
	})

	t.Run("refused stream", func(t *testing.T) {
		do(t, ctx, "connect to a bad selector",
			chromedp.SendKeys(byTestID("topics"), "bad/**/x"),
			chromedp.Click(byTestID("connect")))
		waitJS(t, ctx, "the page reports the refused stream",
			`Array.from(document.querySelectorAll('[data-testid="status-row"]')).some(r => r.textContent.includes("refused"))`)
		waitJS(t, ctx, "the badge shows CLOSED", stateIsJS("CLOSED"))
		if eval[bool](t, ctx, `document.querySelector('[data-testid="subscribe-error"]').hidden`) != true {
			t.Error("the topic error is still shown after a Connect with a topic")
		}
	})

	t.Run("connect", func(t *testing.T) {
		do(t, ctx, "connect to chat/** and news",
			setValue("topics", ""),
			chromedp.SendKeys(byTestID("topics"), "chat/**, news"),
			setValue("types", "greet"),
			chromedp.Click(byTestID("connect")))
		waitJS(t, ctx, "the badge shows OPEN", stateIsJS("OPEN"))
		if got, want := hub.lastSubscribe(), []string{"chat/**", "news"}; !slices.Equal(got, want) {
			t.Errorf("subscribed with topics %q; want %q", got, want)
		}
		if d := eval[bool](t, ctx, `document.querySelector('[data-testid="disconnect"]').disabled`); d {
			t.Error("Disconnect is disabled while OPEN")
		}
	})

	t.Run("receive", func(t *testing.T) {
		id := publish(t, srv.URL, url.Values{"topic": {"chat/room1"}, "type": {"greet"}, "data": {"hello from go"}})
		waitJS(t, ctx, "the greet event is in the log", hasRowJS("event", "greet", id, "hello from go"))
		id = publish(t, srv.URL, url.Values{"topic": {"news"}, "data": {"line one\nline two"}})
		waitJS(t, ctx, "the message event is in the log", hasRowJS("event", "message", id, "line one\nline two"))
		id = publish(t, srv.URL, url.Values{"topic": {"chat/room1"}, "type": {"ssehub-gap"}, "data": {`{"missed":true}`}})
		waitJS(t, ctx, "the gap event is in the log, marked as a gap", hasRowJS("gap", "ssehub-gap", id, `{"missed":true}`))
		publish(t, srv.URL, url.Values{"topic": {"chat/room1"}, "type": {"ssehub-auth"}, "data": {`{"reason":"expired"}`}})
		waitJS(t, ctx, "the token expiry is reported",
			`Array.from(document.querySelectorAll('[data-testid="status-row"]')).some(r => r.textContent.includes("token expired"))`)
		// An unlisted type is not shown: EventSource needs a listener per type.
		publish(t, srv.URL, url.Values{"topic": {"chat/room1"}, "type": {"unlisted"}, "data": {"hidden"}})
		id = publish(t, srv.URL, url.Values{"topic": {"chat/room1"}, "data": {"after unlisted"}})
		waitJS(t, ctx, "the next event is in the log", hasRowJS("event", "message", id, "after unlisted"))
		if got := eval[string](t, ctx, rowsJS+`.map(r => r.data).join("|")`); strings.Contains(got, "hidden") {
			t.Errorf("log %q shows an event of a type not listed", got)
		}
		if got := eval[string](t, ctx, rowsJS+`[0].data`); got != "after unlisted" {
			t.Errorf("newest row %q; want the last event on top", got)
		}
		if got := eval[string](t, ctx, `document.querySelector('[data-testid="event-count"]').textContent`); got != "4" {
			t.Errorf("event count %q; want 4", got)
		}
		waitJS(t, ctx, "the chart counts the events",
			`parseInt(document.querySelector('[data-testid="rate-chart"]').getAttribute("aria-label")) === 4`)
	})

	t.Run("escaping", func(t *testing.T) {
		data := `<img src=x onerror="window.pwned=1"><b>bold</b>`
		id := publish(t, srv.URL, url.Values{"topic": {"chat/x"}, "data": {data}})
		waitJS(t, ctx, "the markup is shown as text", hasRowJS("event", "message", id, data))
		if n := eval[int](t, ctx, `document.querySelectorAll('[data-testid="log"] img, [data-testid="log"] b').length`); n != 0 {
			t.Errorf("the log holds %d elements made from event data; want 0", n)
		}
		if eval[bool](t, ctx, `window.pwned !== undefined`) {
			t.Error("event data ran a script")
		}
	})

	t.Run("publish from the page", func(t *testing.T) {
		do(t, ctx, "publish from the form",
			chromedp.SendKeys(byTestID("publish-topic"), "chat/room1, chat/room2"),
			chromedp.SendKeys(byTestID("publish-data"), "from the <page>"),
			chromedp.Click(byTestID("publish-private")),
			chromedp.Click(byTestID("publish-submit")))
		waitJS(t, ctx, "the page shows the returned ID",
			`document.querySelector('[data-testid="publish-result"]').dataset.status === "ok"`)
		id := eval[string](t, ctx, `document.querySelector('[data-testid="publish-event-id"]').textContent`)
		if id == "" {
			t.Fatal("the page shows an empty ID")
		}
		waitJS(t, ctx, "the published event is in the log", hasRowJS("event", "message", id, "from the <page>"))
		f := hub.lastPublish()
		if got, want := f["topic"], []string{"chat/room1", "chat/room2"}; !slices.Equal(got, want) {
			t.Errorf("published topics %q; want %q", got, want)
		}
		if got := f.Get("private"); got != "on" {
			t.Errorf("published private=%q; want on", got)
		}
		if _, ok := f["type"]; ok {
			t.Errorf("published type %q; want no type field when the field is empty", f["type"])
		}
		if got := hub.lastAuth(); got != "" {
			t.Errorf("published with Authorization %q; want none while the token field is empty", got)
		}

		do(t, ctx, "publish with a type and an ID",
			setValue("publish-type", "greet"),
			setValue("publish-id", "my-id"),
			chromedp.Click(byTestID("publish-submit")))
		waitJS(t, ctx, "the event with the given ID is in the log", hasRowJS("event", "greet", "my-id", "from the <page>"))
		waitJS(t, ctx, "the page shows the given ID",
			`document.querySelector('[data-testid="publish-event-id"]')?.textContent === "my-id"`)

		do(t, ctx, "publish with a token",
			setValue("publish-id", ""),
			setValue("publish-token", " tok.en-123 "),
			chromedp.Click(byTestID("publish-submit")))
		waitJS(t, ctx, "the page shows a new ID",
			`(e => e && e.textContent !== "my-id")(document.querySelector('[data-testid="publish-event-id"]'))`)
		if got := hub.lastAuth(); got != "Bearer tok.en-123" {
			t.Errorf("published with Authorization %q; want \"Bearer tok.en-123\"", got)
		}
		do(t, ctx, "clear the token; the ID again for the next test", setValue("publish-token", ""), setValue("publish-id", "my-id"))
	})

	t.Run("publish errors", func(t *testing.T) {
		do(t, ctx, "publish the same ID again", chromedp.Click(byTestID("publish-submit")))
		waitJS(t, ctx, "the page shows the problem's title and detail",
			`document.querySelector('[data-testid="publish-result"]').dataset.status === "error" &&
			document.querySelector('[data-testid="publish-error-title"]').textContent === "Conflict" &&
			document.querySelector('[data-testid="publish-error-detail"]').textContent === 'event ID "my-id" is already used'`)
		do(t, ctx, "publish without a topic",
			setValue("publish-topic", ""),
			chromedp.Click(byTestID("publish-submit")))
		waitJS(t, ctx, "the page shows the problem's title and detail",
			`document.querySelector('[data-testid="publish-error-title"]')?.textContent === "Bad Request" &&
			document.querySelector('[data-testid="publish-error-detail"]').textContent === "topic is required"`)
	})

	screenshot(t, ctx, "desktop")
	if w := eval[int](t, ctx, `document.documentElement.scrollWidth`); w > eval[int](t, ctx, `window.innerWidth`) {
		t.Errorf("the page is %dpx wide, wider than the window", w)
	}

	t.Run("server restart", func(t *testing.T) {
		srv.stop()
		waitJS(t, ctx, "the badge shows CONNECTING while the server is down", stateIsJS("CONNECTING"))
		srv = startServer(t, srv.addr, hub.handler())
		waitJS(t, ctx, "the badge shows OPEN after the reconnection", stateIsJS("OPEN"))
		if got, want := hub.lastSubscribe(), []string{"chat/**", "news"}; !slices.Equal(got, want) {
			t.Errorf("resubscribed with topics %q; want %q", got, want)
		}
		id := publish(t, srv.URL, url.Values{"topic": {"news"}, "data": {"after the restart"}})
		waitJS(t, ctx, "an event after the restart is in the log", hasRowJS("event", "message", id, "after the restart"))
	})

	t.Run("disconnect", func(t *testing.T) {
		do(t, ctx, "disconnect", chromedp.Click(byTestID("disconnect")))
		waitJS(t, ctx, "the badge shows CLOSED", stateIsJS("CLOSED"))
		waitJS(t, ctx, "the log says so", `document.querySelector('[data-testid="status-row"] .msg').textContent === "disconnected"`)
		if d := eval[bool](t, ctx, `document.querySelector('[data-testid="disconnect"]').disabled`); !d {
			t.Error("Disconnect is enabled after Disconnect")
		}
		do(t, ctx, "clear the log", chromedp.Click(byTestID("clear-log")))
		if n := eval[int](t, ctx, `document.querySelectorAll('[data-testid="log"] li').length`); n != 0 {
			t.Errorf("%d rows after Clear; want 0", n)
		}
	})
}

// TestConsolePhoneWidth checks that the console fits a 360px-wide phone
// screen, even with long unbroken event data, IDs, types and errors. The
// hub is mounted under a prefix, as behind a proxy, so the page must use
// relative URLs.
func TestConsolePhoneWidth(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test: skipped in -short mode")
	}
	ctx := browsertest.New(t, 2*time.Minute)
	hub := newFakeHub()
	mux := http.NewServeMux()
	mux.Handle("/console/", http.StripPrefix("/console", hub.handler()))
	root := startServer(t, "127.0.0.1:0", mux)
	t.Cleanup(root.stop)
	srv := struct{ URL string }{root.URL + "/console"}

	long := strings.Repeat("x", 300)
	do(t, ctx, "open the console at phone width",
		chromedp.EmulateViewport(360, 780, chromedp.EmulateMobile, chromedp.EmulateScale(2)),
		chromedp.Navigate(srv.URL+"/"),
		chromedp.SendKeys(byTestID("topics"), "chat/**"),
		setValue("types", "type-"+long),
		chromedp.Click(byTestID("connect")))
	waitJS(t, ctx, "the badge shows OPEN", stateIsJS("OPEN"))

	publish(t, srv.URL, url.Values{"topic": {"chat/a"}, "data": {"hello, small screen"}})
	publish(t, srv.URL, url.Values{"topic": {"chat/a"}, "id": {"id-" + long}, "data": {long}})
	publish(t, srv.URL, url.Values{"topic": {"chat/a"}, "type": {"type-" + long}, "data": {`{"json": "with spaces", "n": 1}`}})
	publish(t, srv.URL, url.Values{"topic": {"chat/a"}, "type": {"ssehub-gap"}, "data": {"some events were lost"}})
	id := publish(t, srv.URL, url.Values{"topic": {"chat/a"}, "data": {"last"}})
	waitJS(t, ctx, "the last event is in the log", hasRowJS("event", "message", id, "last"))
	do(t, ctx, "publish an event that fails",
		setValue("publish-id", "id-"+long),
		chromedp.SendKeys(byTestID("publish-topic"), "chat/a"),
		chromedp.Click(byTestID("publish-submit")))
	waitJS(t, ctx, "the page shows the error",
		`document.querySelector('[data-testid="publish-result"]').dataset.status === "error"`)

	if w := eval[int](t, ctx, `document.documentElement.scrollWidth`); w > 360 {
		t.Errorf("document.documentElement.scrollWidth = %d at a 360px viewport; want <= 360 (no horizontal scroll)", w)
	}
	if w := eval[int](t, ctx, `window.innerWidth`); w != 360 {
		t.Errorf("window.innerWidth = %d; want 360 (the viewport emulation did not apply)", w)
	}
	screenshot(t, ctx, "phone")
}

// TestConsoleSubscribeToken checks the subscriber token field: the token
// goes with the stream in the token cookie, which the page scopes to the
// events URL (the page itself cannot read it) and removes at Disconnect;
// what cannot be a token is refused before connecting. The console is
// mounted under a prefix, with the cookie name a hub's --token-cookie
// would give it.
func TestConsoleSubscribeToken(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test: skipped in -short mode")
	}
	ctx := browsertest.New(t, 2*time.Minute)
	hub := newFakeHub()
	mux := http.NewServeMux()
	mux.Handle("/console/", http.StripPrefix("/console", hub.handlerWith(web.NewHandler(&web.Options{TokenCookie: "my_tok"}))))
	root := startServer(t, "127.0.0.1:0", mux)
	t.Cleanup(root.stop)
	const token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl-_~+/="

	do(t, ctx, "connect with a token",
		chromedp.Navigate(root.URL+"/console/"),
		setValue("topics", "chat/**"),
		setValue("subscribe-token", " "+token+" "),
		chromedp.Click(byTestID("connect")))
	waitJS(t, ctx, "the badge shows OPEN", stateIsJS("OPEN"))
	n, cookie := hub.lastCookie()
	if cookie != "my_tok="+token {
		t.Errorf("subscribed with Cookie %q; want %q", cookie, "my_tok="+token)
	}
	if c := eval[string](t, ctx, `document.cookie`); strings.Contains(c, "my_tok") {
		t.Errorf("the page at /console/ sees the cookie (%q); want it scoped to /console/events", c)
	}
	if got := eval[string](t, ctx, `document.querySelector('[data-testid="stream-url"]').textContent`); strings.Contains(got, token) {
		t.Errorf("the page shows the token in the stream URL %q", got)
	}

	// The browser sends the cookie again when it reconnects by itself.
	root.stop()
	waitJS(t, ctx, "the badge shows CONNECTING while the server is down", stateIsJS("CONNECTING"))
	root = startServer(t, root.addr, mux)
	waitJS(t, ctx, "the badge shows OPEN after the reconnection", stateIsJS("OPEN"))
	if m, cookie := hub.lastCookie(); m == n || cookie != "my_tok="+token {
		t.Errorf("after %d subscribe requests, reconnected with Cookie %q; want a new request with %q", m, cookie, "my_tok="+token)
	}

	do(t, ctx, "disconnect, then connect without a token",
		chromedp.Click(byTestID("disconnect")),
		setValue("subscribe-token", ""),
		chromedp.Click(byTestID("connect")))
	waitJS(t, ctx, "the badge shows OPEN", stateIsJS("OPEN"))
	n, cookie = hub.lastCookie()
	if cookie != "" {
		t.Errorf("subscribed without a token, with Cookie %q; want none", cookie)
	}

	do(t, ctx, "connect with what is not a token",
		setValue("subscribe-token", "a b; Path=/"),
		chromedp.Click(byTestID("connect")))
	waitJS(t, ctx, "the page says it is not a token",
		`(e => !e.hidden && e.textContent.includes("not a token"))(document.querySelector('[data-testid="subscribe-error"]'))`)
	if m, _ := hub.lastCookie(); m != n {
		t.Errorf("%d subscribe requests after a bad token; want still %d", m, n)
	}
}

// TestConsoleFieldsLookAlike checks that the token fields, which are
// type=password, are styled as the other text fields.
func TestConsoleFieldsLookAlike(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test: skipped in -short mode")
	}
	ctx := browsertest.New(t, time.Minute)
	srv := startServer(t, "127.0.0.1:0", newFakeHub().handler())
	t.Cleanup(srv.stop)
	do(t, ctx, "open the console", chromedp.EmulateViewport(1280, 900), chromedp.Navigate(srv.URL+"/"))
	const styleJS = `(id => {
		const s = getComputedStyle(document.querySelector('[data-testid="' + id + '"]'));
		return ["width", "padding-top", "padding-left", "border-top-width", "border-top-style", "border-top-color",
			"border-top-left-radius", "background-color", "font-family", "font-size"].map(p => p + ": " + s.getPropertyValue(p)).join("; ");
	})`
	want := eval[string](t, ctx, styleJS+`("topics")`)
	for _, id := range []string{"subscribe-token", "publish-token", "publish-topic"} {
		if got := eval[string](t, ctx, styleJS+`(`+js(id)+`)`); got != want {
			t.Errorf("field %s is styled\n%s\nwant, as the topics field,\n%s", id, got, want)
		}
	}
}
