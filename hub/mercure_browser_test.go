package hub_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ssehub/ssehub/hub"
	"github.com/ssehub/ssehub/internal/browsertest"
)

// These tests drive the Mercure endpoint with Chromium's own EventSource,
// as Mercure's JavaScript clients do: the page opens the streams, and
// what each EventSource dispatched is read back from the page.

// mercurePage opens no stream by itself: the test calls
// openStream(name, url) for each EventSource it wants, and reads
// streams[name].got, the events that EventSource dispatched, in order.
const mercurePage = `<!doctype html><meta charset="utf-8"><title>mercure</title><script>
window.streams = {};
function openStream(name, url) {
	const s = {got: [], errors: 0};
	s.es = new EventSource(url);
	s.es.onmessage = e => s.got.push({id: e.lastEventId, data: e.data});
	s.es.onerror = () => { s.errors++; };
	streams[name] = s;
	return "";
}
function closeAll() {
	for (const s of Object.values(streams)) s.es.close();
	return "";
}
function state() {
	const out = {};
	for (const [name, s] of Object.entries(streams)) out[name] = {readyState: s.es.readyState, errors: s.errors, got: s.got};
	return JSON.stringify(out);
}
</script>`

// Where mercureSite serves the test page and the application's login.
const (
	mercurePagePath  = "/mercure-page"
	mercureLoginPath = "/mercure-login"
)

// mercureSite serves mercurePage, and a login that sets the Mercure
// cookie to its token parameter, HttpOnly, as the application beside a
// hub does, or removes it when the parameter is empty; it passes every
// other request to next.
func mercureSite(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case mercurePagePath:
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprint(w, mercurePage)
		case mercureLoginPath:
			c := &http.Cookie{
				Name: hub.DefaultMercureCookie, Value: r.URL.Query().Get("token"),
				Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
			}
			if c.Value == "" { // log out
				c.MaxAge = -1
			}
			http.SetCookie(w, c)
			fmt.Fprint(w, "logged in")
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// newMercureSiteHub starts a hub with opts, served with mercureSite
// around it: the page, its streams and its cookie share the hub's
// origin.
func newMercureSiteHub(t *testing.T, opts *hub.Options) *testHub {
	t.Helper()
	th := startHubWith(t, opts, nil, true, func(h http.Handler) *httptest.Server {
		return httptest.NewServer(mercureSite(h))
	})
	waitFor(t, waitTimeout, th.ready)
	return th
}

// A mercureEvent is what mercurePage records of an event: its
// lastEventId and data.
type mercureEvent struct {
	ID   string `json:"id"`
	Data string `json:"data"`
}

// A mercureTab is a Chromium tab on mercurePage.
type mercureTab struct {
	browserPage
}

// openMercurePage opens mercurePage of the site at siteURL in the tab of
// ctx (from browsertest.New). When the test ends, the page closes its
// EventSources, so that they neither hold the servers' connections open
// nor reconnect.
func openMercurePage(t *testing.T, ctx context.Context, siteURL string) *mercureTab {
	t.Helper()
	p := &mercureTab{browserPage{t: t, ctx: ctx, stateExpr: "state()"}}
	if err := chromedp.Do(ctx, chromedp.Navigate(siteURL+mercurePagePath)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = p.evaluate("closeAll()") })
	p.poll("the page loads", `typeof openStream === "function"`)
	return p
}

// jsString returns s as a JavaScript string literal.
func jsString(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err) // a string always marshals
	}
	return string(b)
}

// eval evaluates expr, which must succeed.
func (p *mercureTab) eval(expr string) string {
	p.t.Helper()
	s, err := p.evaluate(expr)
	if err != nil {
		p.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return s
}

// open opens an EventSource named name on path (with its query), and
// waits until it is open: its subscription is then registered, and
// every event published from now on that it selects reaches it.
func (p *mercureTab) open(name, path string) {
	p.t.Helper()
	p.eval(fmt.Sprintf("openStream(%s, %s)", jsString(name), jsString(path)))
	p.poll(name+" opens", fmt.Sprintf("streams[%s].es.readyState === 1", jsString(name)))
}

// waitEvent waits until the EventSource name has dispatched the event
// with the ID id.
func (p *mercureTab) waitEvent(name, id string) {
	p.t.Helper()
	p.poll(fmt.Sprintf("%s dispatches %s", name, id),
		fmt.Sprintf("streams[%s].got.some(e => e.id === %s)", jsString(name), jsString(id)))
}

// events returns the events the EventSource name has dispatched.
func (p *mercureTab) events(name string) []mercureEvent {
	p.t.Helper()
	s := p.eval(fmt.Sprintf("JSON.stringify(streams[%s].got)", jsString(name)))
	var got []mercureEvent
	if err := json.Unmarshal([]byte(s), &got); err != nil {
		p.t.Fatalf("events of %s, %s: %v", name, s, err)
	}
	return got
}

// check waits until the EventSource name has dispatched the last of
// want, and checks that it has dispatched exactly want, in order.
// Events reach a subscriber in the Log's order, so once the last has
// come, any other would have come before it.
func (p *mercureTab) check(name string, want []mercureEvent) {
	p.t.Helper()
	p.waitEvent(name, want[len(want)-1].ID)
	if got := p.events(name); !slices.Equal(got, want) {
		p.t.Errorf("%s dispatched %+v; want %+v", name, got, want)
	}
}

// hubIRI is the form of the IDs the hub assigns, on the Mercure endpoint.
var hubIRI = regexp.MustCompile(`^urn:ssehub:[1-9][0-9]*$`)

// publishMercure publishes a Mercure form with the header, which must
// succeed, and returns the event as the page should record it. Without
// an id field, the hub assigns the ID, which must be an IRI
// urn:ssehub:<n>; with one, the ID is that one.
func publishMercure(t *testing.T, th *testHub, header http.Header, form url.Values) mercureEvent {
	t.Helper()
	id := th.mercurePublish(t, form, header)
	switch {
	case !form.Has("id") && !hubIRI.MatchString(id):
		t.Fatalf("publish %v answered %q; want an ID urn:ssehub:<n>", form, id)
	case form.Has("id") && id != form.Get("id"):
		t.Fatalf("publish %v answered %q; want its id", form, id)
	}
	return mercureEvent{ID: id, Data: form.Get("data")}
}

// TestMercureBrowserSelectors: EventSources with an exact topic, two
// topics, a URI template and "*" each dispatch exactly the events whose
// topics, canonical or alternate, they select, once each, in order, with
// the hub's IDs as IRIs.
func TestMercureBrowserSelectors(t *testing.T) {
	ctx := browsertest.New(t, 90*time.Second)
	th := newMercureSiteHub(t, nil)
	p := openMercurePage(t, ctx, th.srv.URL)

	const (
		author7 = "https://example.com/authors/7"
		book3   = "https://example.com/books/3"
		reviews = "https://example.com/books/1/reviews"
	)
	p.open("exact", mercureQuery(book1))
	p.open("multi", mercureQuery(book2, author7))
	p.open("template", mercureQuery(books))
	p.open("all", mercureQuery("*"))

	pub := func(data string, topics ...string) mercureEvent {
		t.Helper()
		return publishMercure(t, th, nil, url.Values{"topic": topics, "data": {data}})
	}
	b1 := pub("book 1", book1)
	a7 := pub("author 7", author7)
	b2 := pub("book 2", book2)
	rv := pub("reviews of book 1", reviews)       // not one segment: only "*"
	tp := pub("the template itself", books)       // a selector matches itself
	b3 := pub("book 3, author 7", book3, author7) // an alternate topic
	// Published on /events: the same Log, shown with an IRI here.
	nid := th.publish(t, url.Values{"topic": {"chat/a"}, "data": {"native"}})
	nat := mercureEvent{ID: "urn:ssehub:" + nid, Data: "native"}
	own := publishMercure(t, th, nil, url.Values{"topic": {book1}, "data": {"own id"}, "id": {"https://example.com/events/own"}})
	end := pub("the end", book1, book2)

	cases := []struct {
		name string
		want []mercureEvent
	}{
		{"exact", []mercureEvent{b1, own, end}},
		{"multi", []mercureEvent{a7, b2, b3, end}},
		{"template", []mercureEvent{b1, b2, tp, b3, own, end}},
		{"all", []mercureEvent{b1, a7, b2, rv, tp, b3, nat, own, end}},
	}
	for _, c := range cases {
		p.check(c.name, c.want)
	}
	if s := p.eval(`String(Object.values(streams).reduce((n, s) => n + s.errors, 0))`); s != "0" {
		t.Errorf("the EventSources saw %s errors; want 0: %s", s, p.state())
	}
}

// TestMercureBrowserPrivate: a private update reaches the EventSources
// whose token allows one of its topics, canonical or alternate, the
// token coming from the authorization query parameter or from the
// cookie, and never an anonymous EventSource; replays apply the same
// rule. The token follows Mercure's per-user pattern: the subscriber
// selects every book, its token allows its own user's topics, and the
// publisher adds the user's alternate topic to each book's update.
func TestMercureBrowserPrivate(t *testing.T) {
	ctx := browsertest.New(t, 90*time.Second)
	alice := &hub.Grant{Subject: "alice", Subscribe: mercureSels(t, user42)}
	publisher := &hub.Grant{Subject: "pub", Publish: mercureSels(t, "*")}
	th := newMercureSiteHub(t, &hub.Options{Mercure: hub.MercureOptions{
		SubscriberTokens: mapTokens{"alice-query": alice, "alice-cookie": alice},
		PublisherTokens:  mapTokens{"pub": publisher},
	}})
	p := openMercurePage(t, ctx, th.srv.URL)

	// Opened before the page has a cookie.
	p.open("anonymous", mercureQuery(books))
	p.open("query", mercureQuery(books)+"&authorization=alice-query")
	// The application's login sets the HttpOnly cookie on the hub's
	// origin; EventSource sends it there without being asked.
	p.eval(fmt.Sprintf(`fetch(%s).then(r => { window.login = r.status; }), ""`, jsString(mercureLoginPath+"?token=alice-cookie")))
	p.poll("the login answers", "window.login === 200")
	if s := p.eval(`document.cookie`); s != "" {
		t.Errorf("document.cookie = %q; want the HttpOnly cookie hidden", s)
	}
	p.open("cookie", mercureQuery(books))

	pub := func(form url.Values) mercureEvent {
		t.Helper()
		return publishMercure(t, th, bearer("pub"), form)
	}
	user := func(topic string) string { return "https://example.com/users/42/?topic=" + url.QueryEscape(topic) }
	s1 := pub(url.Values{"topic": {book1, user(book1)}, "data": {"secret 1"}, "private": {"on"}})
	// Private with no topic of user 42: for no one here.
	pub(url.Values{"topic": {book2}, "data": {"someone else's"}, "private": {"on"}})
	// Private by its presence, with an empty value.
	s2 := pub(url.Values{"topic": {book2, user(book2)}, "data": {"secret 2"}, "private": {""}})
	pb := pub(url.Values{"topic": {book1}, "data": {"public"}})

	p.check("query", []mercureEvent{s1, s2, pb})
	p.check("cookie", []mercureEvent{s1, s2, pb})
	p.check("anonymous", []mercureEvent{pb})
	// No reconnection: the anonymous EventSource's one request was made
	// before the cookie existed.
	if s := p.eval(`String(streams.anonymous.errors)`); s != "0" {
		t.Errorf("the anonymous EventSource saw %s errors; want 0, so that it never sent the cookie", s)
	}

	// Replays, with the cookie, then without it.
	p.eval("closeAll()")
	p.open("cookie replay", mercureQuery(books)+"&lastEventID=earliest")
	p.check("cookie replay", []mercureEvent{s1, s2, pb})
	p.eval(fmt.Sprintf(`fetch(%s).then(r => { window.logout = r.status; }), ""`, jsString(mercureLoginPath+"?token=")))
	p.poll("the logout answers", "window.logout === 200")
	p.open("anonymous replay", mercureQuery(books)+"&lastEventID=earliest")
	p.check("anonymous replay", []mercureEvent{pb})
}

// TestMercureBrowserReplay: an EventSource opened with a lastEventID in
// its URL, in either form of ID, dispatches exactly the later events it
// selects, then the live ones; without one, only the live ones.
func TestMercureBrowserReplay(t *testing.T) {
	ctx := browsertest.New(t, 90*time.Second)
	th := newMercureSiteHub(t, nil)
	p := openMercurePage(t, ctx, th.srv.URL)

	pub := func(data, topic, id string) mercureEvent {
		t.Helper()
		form := url.Values{"topic": {topic}, "data": {data}}
		if id != "" {
			form.Set("id", id)
		}
		return publishMercure(t, th, nil, form)
	}
	e1 := pub("e1", book1, "")
	pub("not a book", "https://example.com/authors/7", "")
	e2 := pub("e2", book2, "https://example.com/events/e2")
	pub("not one segment", "https://example.com/books/1/reviews", "")
	e3 := pub("e3", book1, "")

	p.open("after hub id", mercureQuery(books)+"&lastEventID="+url.QueryEscape(e1.ID))
	p.open("after own id", mercureQuery(books)+"&lastEventID="+url.QueryEscape(e2.ID))
	p.open("no cursor", mercureQuery(books))
	live := pub("live", book2, "")

	p.check("after hub id", []mercureEvent{e2, e3, live})
	p.check("after own id", []mercureEvent{e3, live})
	p.check("no cursor", []mercureEvent{live})
}

// TestMercureBrowserEarliest: lastEventID=earliest replays all the
// history the EventSource selects, then the live events.
func TestMercureBrowserEarliest(t *testing.T) {
	ctx := browsertest.New(t, 90*time.Second)
	th := newMercureSiteHub(t, nil)
	p := openMercurePage(t, ctx, th.srv.URL)

	pub := func(data string, topics ...string) mercureEvent {
		t.Helper()
		return publishMercure(t, th, nil, url.Values{"topic": topics, "data": {data}})
	}
	e1 := pub("e1", book1)
	x := pub("not a book", "https://example.com/authors/7")
	e2 := pub("e2", book2)
	e3 := pub("e3", book1)

	p.open("books", mercureQuery(books)+"&lastEventID=earliest")
	p.open("all", mercureQuery("*")+"&lastEventID=earliest")
	live := pub("live", book1)

	p.check("books", []mercureEvent{e1, e2, e3, live})
	p.check("all", []mercureEvent{e1, x, e2, e3, live})
}

// A mercureStreamRequest is a stream request a mercureFront forwarded
// to the hub: the Last-Event-ID header it sent, and the one the hub
// answered with.
type mercureStreamRequest struct {
	Sent, Answered string
}

// A mercureFront serves mercurePage and forwards everything else to a
// hub, as a proxy in front of it would. Cut, it breaks the streams under
// way and answers the EventSource's reconnections with an empty stream,
// so that they fail and are retried.
type mercureFront struct {
	srv *httptest.Server

	mu        sync.Mutex // guards the fields below
	cut       bool
	forwarded []mercureStreamRequest
	refused   []string // the Last-Event-ID of each stream request answered empty
}

// newMercureFront starts a mercureFront for th. It closes when the test
// ends, before the hub shuts down.
func newMercureFront(t *testing.T, th *testHub) *mercureFront {
	t.Helper()
	target, err := url.Parse(th.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	f := &mercureFront{}
	tr := &http.Transport{}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.Transport = tr
	proxy.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.Method == http.MethodGet && resp.Request.URL.Path == hub.MercurePath {
			f.mu.Lock()
			f.forwarded = append(f.forwarded, mercureStreamRequest{
				Sent:     resp.Request.Header.Get("Last-Event-ID"),
				Answered: resp.Header.Get("Last-Event-ID"),
			})
			f.mu.Unlock()
		}
		return nil
	}
	f.srv = httptest.NewServer(mercureSite(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == hub.MercurePath {
			f.mu.Lock()
			cut := f.cut
			if cut {
				f.refused = append(f.refused, r.Header.Get("Last-Event-ID"))
			}
			f.mu.Unlock()
			if cut {
				w.Header().Set("Content-Type", "text/event-stream")
				fmt.Fprint(w, "retry: 50\n\n")
				return
			}
		}
		proxy.ServeHTTP(w, r)
	})))
	t.Cleanup(func() {
		f.srv.CloseClientConnections()
		f.srv.Close()
		tr.CloseIdleConnections()
	})
	return f
}

// setCut cuts the front, breaking the streams under way, or lets the
// requests through again.
func (f *mercureFront) setCut(cut bool) {
	f.mu.Lock()
	f.cut = cut
	f.mu.Unlock()
	if cut {
		f.srv.CloseClientConnections()
	}
}

// TestMercureBrowserReconnect: an EventSource opened with a lastEventID
// in its URL loses its connection while events are published; its
// automatic reconnections send the Last-Event-ID header, which wins over
// the URL's stale lastEventID, and it dispatches every event it selects
// once, in order, none missing, none repeated.
func TestMercureBrowserReconnect(t *testing.T) {
	ctx := browsertest.New(t, 90*time.Second)
	th := newMercureSiteHub(t, &hub.Options{Retry: 100 * time.Millisecond})
	front := newMercureFront(t, th)
	p := openMercurePage(t, ctx, front.srv.URL)

	pub := func(data string, topics ...string) mercureEvent {
		t.Helper()
		return publishMercure(t, th, nil, url.Values{"topic": topics, "data": {data}})
	}
	const author7 = "https://example.com/authors/7"
	h1 := pub("h1", book1)
	pub("x1", author7)
	h2 := pub("h2", book2)
	p.open("books", mercureQuery(books)+"&lastEventID="+url.QueryEscape(h1.ID))
	l1 := pub("l1", book1)
	p.waitEvent("books", l1.ID)

	// Break the stream, and publish while the page cannot reconnect,
	// until it has tried at least once.
	front.setCut(true)
	p.poll("the stream breaks and a reconnection fails", "streams.books.errors >= 2")
	g1 := pub("g1", book1)
	pub("x2", author7)
	g2 := pub("g2", book2)
	pub("x3", "https://example.com/books/1/reviews")
	g3 := pub("g3", book1, author7)

	front.setCut(false)
	p.waitEvent("books", g3.ID)
	l2 := pub("l2", book2)
	p.check("books", []mercureEvent{h2, l1, g1, g2, g3, l2})

	front.mu.Lock()
	defer front.mu.Unlock()
	want := []mercureStreamRequest{
		{Sent: "", Answered: h1.ID},    // the URL's lastEventID
		{Sent: l1.ID, Answered: l1.ID}, // the header wins
	}
	if !slices.Equal(front.forwarded, want) {
		t.Errorf("stream requests forwarded (Last-Event-ID sent, answered): %+v; want %+v", front.forwarded, want)
	}
	if len(front.refused) == 0 {
		t.Errorf("no reconnection while cut; want at least one")
	}
	for i, id := range front.refused {
		if id != l1.ID {
			t.Errorf("reconnection %d while cut sent Last-Event-ID %q; want %q", i, id, l1.ID)
		}
	}
}
