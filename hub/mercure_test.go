package hub_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ssehub/ssehub/hub"
	"github.com/ssehub/ssehub/sse"
)

// mapTokens is a TokenVerifier that knows its tokens by name: the
// Mercure endpoint's handling of tokens (sources, roles, grants) is
// tested here, the reading of JWTs in jwtauth.
type mapTokens map[string]*hub.Grant

func (m mapTokens) Verify(ctx context.Context, tok string) (*hub.Grant, error) {
	if g, ok := m[tok]; ok {
		return g, nil
	}
	return nil, fmt.Errorf("%w: unknown", hub.ErrInvalidToken)
}

// mercureSels parses Mercure selectors.
func mercureSels(t *testing.T, ss ...string) []hub.Selector {
	t.Helper()
	var sels []hub.Selector
	for _, s := range ss {
		sel, err := hub.ParseMercureSelector(s)
		if err != nil {
			t.Fatal(err)
		}
		sels = append(sels, sel)
	}
	return sels
}

// mercurePost publishes a Mercure form with the header and returns the
// status and body.
func (th *testHub) mercurePost(t *testing.T, form url.Values, header http.Header) (int, string) {
	t.Helper()
	resp, body := th.do(t, http.MethodPost, hub.MercurePath, formHeader(header), form.Encode())
	return resp.StatusCode, body
}

// mercurePublish publishes a Mercure form, which must succeed, and
// returns the ID.
func (th *testHub) mercurePublish(t *testing.T, form url.Values, header http.Header) string {
	t.Helper()
	status, body := th.mercurePost(t, form, header)
	if status != http.StatusOK {
		t.Fatalf("POST %s %v = %d %s; want 200", hub.MercurePath, form, status, body)
	}
	return body
}

// mercureQuery returns the query of a subscription to topics.
func mercureQuery(topics ...string) string {
	q := url.Values{"topic": topics}
	return hub.MercurePath + "?" + q.Encode()
}

// datas returns the data of the events that have some, in order.
func datas(evs []sse.Event) []string {
	var out []string
	for _, ev := range evs {
		if ev.Data != "" {
			out = append(out, ev.Data)
		}
	}
	return out
}

const (
	book1  = "https://example.com/books/1"
	book2  = "https://example.com/books/2"
	books  = "https://example.com/books/{id}"
	user42 = "https://example.com/users/42/{?topic}"
)

func TestMercurePublishSubscribe(t *testing.T) {
	th := newTestHub(t, nil, nil)
	exact := th.subscribeAt(t, mercureQuery(book1), nil)
	tmpl := th.subscribeAt(t, mercureQuery(books), nil)
	all := th.subscribeAt(t, mercureQuery("*"), nil)
	multi := th.subscribeAt(t, mercureQuery(book2, "https://example.com/authors/{id}"), nil)
	native := th.subscribe(t, "topic=**", nil)
	nativeChat := th.subscribe(t, "topic=chat/*", nil)

	id := th.mercurePublish(t, url.Values{"topic": {book1}, "data": {"b1"}}, nil)
	if !strings.HasPrefix(id, "urn:ssehub:") || strings.ContainsAny(id, "\r\n") {
		t.Fatalf("publish answered %q; want urn:ssehub:<pos> without a line end", id)
	}
	pos := strings.TrimPrefix(id, "urn:ssehub:")
	// Published on /events, to a native topic: Mercure's "*" sees it too.
	nid := th.publish(t, url.Values{"topic": {"chat/a"}, "data": {"c1"}})
	th.mercurePublish(t, url.Values{"topic": {book2}, "data": {"b2"}}, nil)

	cases := []struct {
		name string
		sub  *testSub
		want []string
	}{
		{"exact", exact, []string{"b1"}},
		{"template", tmpl, []string{"b1", "b2"}},
		{"*", all, []string{"b1", "c1", "b2"}},
		{"multi", multi, []string{"b2"}},
		{"native **", native, []string{"b1", "c1", "b2"}},
		{"native chat/*", nativeChat, []string{"c1"}},
	}
	last := "urn:ssehub:" + nid
	for _, c := range cases {
		// Each waits for the last event published, then checks all.
		evs := c.sub.waitUntil(t, "b2 or c1", func(got []sse.Event) int {
			for i, ev := range got {
				if ev.Data == c.want[len(c.want)-1] {
					return i + 1
				}
			}
			return -1
		})
		if got := strings.Join(datas(evs), ","); got != strings.Join(c.want, ",") {
			t.Errorf("%s: got %s; want %s", c.name, got, strings.Join(c.want, ","))
		}
		for _, ev := range evs {
			mercure := c.sub != native && c.sub != nativeChat
			if ev.Data == "c1" && mercure && ev.ID != last {
				t.Errorf("%s: the native event's id is %q on the Mercure endpoint; want %q", c.name, ev.ID, last)
			}
			if ev.Data == "b1" && !mercure && ev.ID != pos {
				t.Errorf("%s: the Mercure event's id is %q on /events; want %q", c.name, ev.ID, pos)
			}
			if ev.Data == "b1" && mercure && ev.ID != id {
				t.Errorf("%s: id %q; want %q", c.name, ev.ID, id)
			}
		}
	}
}

func TestMercureStreamHeaders(t *testing.T) {
	th := newTestHub(t, nil, nil)
	resp := th.get(t, mercureQuery(book1), nil)
	defer resp.Body.Close()
	for k, want := range map[string]string{
		"Content-Type":      "text/event-stream",
		"Cache-Control":     "private, no-cache, no-store, must-revalidate, max-age=0",
		"X-Accel-Buffering": "no",
		"Last-Event-ID":     "", // no cursor given
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s: %q; want %q", k, got, want)
		}
	}
}

func TestMercurePrivate(t *testing.T) {
	// The per-user pattern: the subscriber selects books, its token
	// allows its own user's topics, and the publisher adds an alternate
	// topic for the user.
	alice := &hub.Grant{Subject: "alice", Subscribe: mercureSels(t, user42)}
	nativeGrant := &hub.Grant{Subject: "n", Subscribe: []hub.Selector{mustNative(t, "**")}}
	pub := &hub.Grant{Subject: "pub", Publish: mercureSels(t, "*")}
	th := newTestHub(t, &hub.Options{
		Tokens: mapTokens{"native": nativeGrant},
		Mercure: hub.MercureOptions{
			SubscriberTokens: mapTokens{"alice": alice},
			PublisherTokens:  mapTokens{"pub": pub},
		},
	}, nil)
	anon := th.subscribeAt(t, mercureQuery(books), nil)
	al := th.subscribeAt(t, mercureQuery(books), bearer("alice"))
	// On /events, a private event goes to a grant that allows a topic the
	// subscription selects: the user topic, not the book's.
	nat := th.subscribe(t, "topic="+url.QueryEscape("**"), bearer("native"))

	alt := "https://example.com/users/42/?topic=" + url.QueryEscape(book1)
	// private by its presence, even empty.
	th.mercurePublish(t, url.Values{"topic": {book1, alt}, "data": {"secret"}, "private": {""}}, bearer("pub"))
	th.mercurePublish(t, url.Values{"topic": {book2}, "data": {"other"}, "private": {"off"}}, bearer("pub"))
	th.mercurePublish(t, url.Values{"topic": {book1}, "data": {"public"}}, bearer("pub"))

	if got := strings.Join(datas(al.waitUntil(t, "public", untilData("public"))), ","); got != "secret,public" {
		t.Errorf("alice got %s; want secret,public", got)
	}
	if got := strings.Join(datas(anon.waitUntil(t, "public", untilData("public"))), ","); got != "public" {
		t.Errorf("anonymous got %s; want public", got)
	}
	if got := strings.Join(datas(nat.waitUntil(t, "public", untilData("public"))), ","); got != "secret,other,public" {
		t.Errorf("native ** with a ** grant got %s; want secret,other,public", got)
	}

	// Replay applies the same rule.
	re := th.subscribeAt(t, mercureQuery(books)+"&lastEventID=earliest", bearer("alice"))
	if got := strings.Join(datas(re.waitUntil(t, "public", untilData("public"))), ","); got != "secret,public" {
		t.Errorf("alice's replay got %s; want secret,public", got)
	}
	reAnon := th.subscribeAt(t, mercureQuery(books)+"&lastEventID=earliest", nil)
	if got := strings.Join(datas(reAnon.waitUntil(t, "public", untilData("public"))), ","); got != "public" {
		t.Errorf("anonymous replay got %s; want public", got)
	}
}

// untilData returns a waitUntil cut at the first event with data d.
func untilData(d string) func([]sse.Event) int {
	return func(got []sse.Event) int {
		for i, ev := range got {
			if ev.Data == d {
				return i + 1
			}
		}
		return -1
	}
}

func mustNative(t *testing.T, s string) hub.Selector {
	t.Helper()
	sel, err := hub.ParseSelector(s)
	if err != nil {
		t.Fatal(err)
	}
	return sel
}

func TestMercureTokens(t *testing.T) {
	pub := &hub.Grant{Subject: "pub", Publish: mercureSels(t, "*")}
	sub := &hub.Grant{Subject: "sub", Subscribe: mercureSels(t, "*")}
	th := newTestHub(t, &hub.Options{
		Tokens: mapTokens{},
		Mercure: hub.MercureOptions{
			SubscriberTokens: mapTokens{"sub": sub},
			PublisherTokens:  mapTokens{"pub": pub},
			Cookie:           "myCookie",
		},
	}, nil)
	form := url.Values{"topic": {book1}, "data": {"x"}}
	cookieHd := func(tok string) http.Header { return http.Header{"Cookie": {"myCookie=" + tok}} }
	with := func(h http.Header, kv ...string) http.Header {
		h = h.Clone()
		if h == nil {
			h = http.Header{}
		}
		for i := 0; i < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	origin := th.srv.URL
	publishes := []struct {
		name   string
		query  string
		header http.Header
		want   int
	}{
		{"no token", "", nil, http.StatusUnauthorized},
		{"bearer", "", bearer("pub"), http.StatusOK},
		{"query", "?authorization=pub", nil, http.StatusOK},
		{"subscriber's token", "", bearer("sub"), http.StatusUnauthorized},
		{"bearer wins over query", "?authorization=pub", bearer("sub"), http.StatusUnauthorized},
		{"bearer wins over query, 2", "?authorization=sub", bearer("pub"), http.StatusOK},
		{"query wins over cookie", "?authorization=sub", with(cookieHd("pub"), "Origin", origin), http.StatusUnauthorized},
		{"cookie, own origin", "", with(cookieHd("pub"), "Origin", origin), http.StatusOK},
		{"cookie, own referer", "", with(cookieHd("pub"), "Referer", origin+"/page"), http.StatusOK},
		{"cookie, no origin", "", cookieHd("pub"), http.StatusUnauthorized},
		{"cookie, the default name", "", with(http.Header{"Cookie": {hub.DefaultMercureCookie + "=pub"}}, "Origin", origin), http.StatusUnauthorized},
		{"malformed header", "", http.Header{"Authorization": {"Basic x"}}, http.StatusUnauthorized},
		{"empty query", "?authorization=", nil, http.StatusUnauthorized},
	}
	for _, p := range publishes {
		resp, body := th.do(t, http.MethodPost, hub.MercurePath+p.query, formHeader(p.header), form.Encode())
		if resp.StatusCode != p.want {
			t.Errorf("publish, %s: %d %s; want %d", p.name, resp.StatusCode, body, p.want)
		}
		if resp.StatusCode != http.StatusOK && resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("publish, %s: Content-Type %q; want application/problem+json", p.name, resp.Header.Get("Content-Type"))
		}
	}
	// A cookie from a foreign origin is refused before tokens: CORS.
	resp, _ := th.do(t, http.MethodPost, hub.MercurePath, formHeader(with(cookieHd("pub"), "Origin", "https://evil.example")), form.Encode())
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("publish with a cookie from a foreign origin: %d; want 403", resp.StatusCode)
	}

	subscribes := []struct {
		name   string
		query  string
		header http.Header
		want   int
	}{
		{"anonymous", "", nil, http.StatusOK},
		{"bearer", "", bearer("sub"), http.StatusOK},
		{"query", "&authorization=sub", nil, http.StatusOK},
		{"cookie", "", cookieHd("sub"), http.StatusOK},
		{"invalid bearer", "", bearer("nope"), http.StatusUnauthorized},
		{"bearer wins", "&authorization=sub", bearer("nope"), http.StatusUnauthorized},
		{"query wins", "&authorization=nope", cookieHd("sub"), http.StatusUnauthorized},
		{"publisher's token", "", bearer("pub"), http.StatusUnauthorized},
	}
	for _, s := range subscribes {
		resp := th.get(t, mercureQuery(book1)+s.query, s.header)
		resp.Body.Close()
		if resp.StatusCode != s.want {
			t.Errorf("subscribe, %s: %d; want %d", s.name, resp.StatusCode, s.want)
		}
	}
}

func TestMercureOneKey(t *testing.T) {
	// One verifier for both roles, and a native one beside it: a Mercure
	// token is not read by /events, nor a native one by Mercure.
	both := mapTokens{"m": {Subject: "m", Publish: mercureSels(t, "*"), Subscribe: mercureSels(t, "*")}}
	th := newTestHub(t, &hub.Options{
		Tokens:  mapTokens{"n": {Subject: "n", Publish: []hub.Selector{mustNative(t, "**")}}},
		Mercure: hub.MercureOptions{PublisherTokens: both},
	}, nil)
	form := url.Values{"topic": {book1}, "data": {"x"}}
	if status, body := th.mercurePost(t, form, bearer("m")); status != http.StatusOK {
		t.Errorf("Mercure publish with the one key: %d %s; want 200", status, body)
	}
	if status, _ := th.mercurePost(t, form, bearer("n")); status != http.StatusUnauthorized {
		t.Errorf("Mercure publish with a native token: %d; want 401", status)
	}
	resp := th.get(t, mercureQuery(book1), bearer("m"))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("Mercure subscribe with the one key: %d; want 200", resp.StatusCode)
	}
	// Native tokens but no Mercure key: Mercure publishing is refused,
	// anonymous Mercure subscribers get public events.
	th2 := newTestHub(t, &hub.Options{Tokens: mapTokens{"n": {Subject: "n", Publish: []hub.Selector{mustNative(t, "**")}}}}, nil)
	if status, body := th2.mercurePost(t, form, bearer("n")); status != http.StatusUnauthorized || !strings.Contains(body, "no Mercure tokens") {
		t.Errorf("Mercure publish without a Mercure key: %d %s; want 401 saying so", status, body)
	}
	if status, _ := th2.mercurePost(t, form, nil); status != http.StatusUnauthorized {
		t.Errorf("anonymous Mercure publish on a hub with tokens: %d; want 401", status)
	}
	resp = th2.get(t, mercureQuery(book1), nil)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("anonymous Mercure subscribe: %d; want 200", resp.StatusCode)
	}
}

func TestMercurePublishScope(t *testing.T) {
	th := newTestHub(t, &hub.Options{Mercure: hub.MercureOptions{PublisherTokens: mapTokens{
		"books": {Subject: "b", Publish: mercureSels(t, books)},
	}}}, nil)
	if status, _ := th.mercurePost(t, url.Values{"topic": {book1}}, bearer("books")); status != http.StatusOK {
		t.Errorf("publish to a granted topic: %d; want 200", status)
	}
	// Every topic, alternates too, must be granted.
	if status, body := th.mercurePost(t, url.Values{"topic": {book1, "https://example.com/users/1"}}, bearer("books")); status != http.StatusForbidden {
		t.Errorf("publish with an alternate topic outside the grant: %d %s; want 403", status, body)
	}
}

func TestMercurePublishInput(t *testing.T) {
	th := newTestHub(t, nil, nil)
	cases := []struct {
		name string
		form url.Values
		want int
		says string
	}{
		{"no topic", url.Values{"data": {"x"}}, http.StatusBadRequest, "topic is required"},
		{"hub's own topic", url.Values{"topic": {"https://example.com/.well-known/mercure/subscriptions/x"}}, http.StatusForbidden, "the hub's own"},
		{"id with #", url.Values{"topic": {book1}, "id": {"#frag"}}, http.StatusBadRequest, "must not begin with #"},
		{"reserved id", url.Values{"topic": {book1}, "id": {"urn:ssehub:7"}}, http.StatusBadRequest, "reserved"},
		{"digit id", url.Values{"topic": {book1}, "id": {"7"}}, http.StatusBadRequest, "reserved"},
		{"retry not digits", url.Values{"topic": {book1}, "retry": {"1e3"}}, http.StatusBadRequest, "retry"},
		{"LF in type", url.Values{"topic": {book1}, "type": {"a\nb"}}, http.StatusBadRequest, "CR, LF or NUL"},
		{"CR in id", url.Values{"topic": {book1}, "id": {"a\rb"}}, http.StatusBadRequest, "CR, LF or NUL"},
		{"control in topic", url.Values{"topic": {"a\x01b"}}, http.StatusBadRequest, "control character"},
		{"unknown field", url.Values{"topic": {book1}, "privat": {"on"}}, http.StatusBadRequest, "unknown field"},
		{"two data", url.Values{"topic": {book1}, "data": {"a", "b"}}, http.StatusBadRequest, "more than once"},
		{"native-invalid topic is fine", url.Values{"topic": {"urn:isbn:0451450523"}}, http.StatusOK, ""},
	}
	for _, c := range cases {
		status, body := th.mercurePost(t, c.form, nil)
		if status != c.want || !strings.Contains(body, c.says) {
			t.Errorf("%s: %d %s; want %d saying %q", c.name, status, body, c.want, c.says)
		}
	}
	resp, body := th.do(t, http.MethodPost, hub.MercurePath, http.Header{"Content-Type": {"application/json"}}, `{"topic":"x"}`)
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("JSON publish: %d %s; want 415", resp.StatusCode, body)
	}
	resp, body = th.do(t, http.MethodGet, hub.MercurePath, nil, "")
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("subscribe without topic: %d %s; want 400", resp.StatusCode, body)
	}
	// What was refused reached no one: the history holds the one event
	// accepted.
	s := th.subscribeAt(t, mercureQuery("*")+"&lastEventID=earliest", nil)
	evs := s.wait(t, 1)
	if len(evs) != 1 || evs[0].Data != "" || evs[0].ID != "urn:ssehub:1" {
		t.Errorf("history: %+v; want the one event, urn:ssehub:1", evs)
	}
	// A publish's data with line ends is split into data lines, never
	// into fields.
	id := th.mercurePublish(t, url.Values{"topic": {book1}, "data": {"a\r\nid: x\rb\nc"}}, nil)
	got := s.waitID(t, id)
	if ev := got[len(got)-1]; ev.Data != "a\nid: x\nb\nc" {
		t.Errorf("data %q; want the lines joined by LF", ev.Data)
	}
}

func TestMercureCursor(t *testing.T) {
	th := newTestHub(t, nil, nil)
	var ids []string
	for _, d := range []string{"a", "b", "c"} {
		ids = append(ids, th.mercurePublish(t, url.Values{"topic": {book1}, "data": {d}}, nil))
	}
	pubID := th.mercurePublish(t, url.Values{"topic": {book1}, "data": {"d"}, "id": {"https://example.com/events/d"}}, nil)
	if pubID != "https://example.com/events/d" {
		t.Fatalf("publish with an id answered %q", pubID)
	}
	th.mercurePublish(t, url.Values{"topic": {book1}, "data": {"e"}}, nil)

	cases := []struct {
		name       string
		path       string
		header     http.Header
		wantHeader string
		want       string
	}{
		{"query, IRI form", mercureQuery(book1) + "&lastEventID=" + url.QueryEscape(ids[0]), nil, ids[0], "b,c,d,e"},
		{"query, digits", mercureQuery(book1) + "&lastEventID=1", nil, "1", "b,c,d,e"},
		{"header wins", mercureQuery(book1) + "&lastEventID=" + url.QueryEscape(ids[0]), http.Header{"Last-Event-ID": {ids[2]}}, ids[2], "d,e"},
		{"publisher's id", mercureQuery(book1) + "&lastEventID=" + url.QueryEscape(pubID), nil, pubID, "e"},
		{"earliest", mercureQuery(book1) + "&lastEventID=earliest", nil, "earliest", "a,b,c,d,e"},
		{"unknown", mercureQuery(book1) + "&lastEventID=nope", nil, "urn:ssehub:5", ""},
		{"native, IRI form", "/events?topic=**&lastEventID=" + url.QueryEscape(ids[1]), nil, "", "c,d,e"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := th.subscribeAt(t, c.path, c.header)
			if got := s.resp.Header.Get("Last-Event-ID"); got != c.wantHeader {
				t.Errorf("Last-Event-ID header %q; want %q", got, c.wantHeader)
			}
			if c.want == "" {
				return
			}
			if got := strings.Join(datas(s.waitUntil(t, "e", untilData("e"))), ","); got != c.want {
				t.Errorf("replayed %s; want %s", got, c.want)
			}
		})
	}
}

func TestMercureTokenExpiry(t *testing.T) {
	g := &hub.Grant{Subject: "s", Subscribe: mercureSels(t, "*"), Expires: time.Now().Add(500 * time.Millisecond)}
	th := newTestHub(t, &hub.Options{Mercure: hub.MercureOptions{SubscriberTokens: mapTokens{"s": g}}}, nil)
	s := th.subscribeAt(t, mercureQuery(book1), bearer("s"))
	if err := s.waitEnd(t); err != io.EOF {
		t.Errorf("stream ended with %v; want a clean end", err)
	}
	if time.Now().Before(g.Expires) {
		t.Errorf("stream ended before the token expired")
	}
	evs, _ := s.snapshot()
	if len(evs) == 0 || evs[len(evs)-1].Type != hub.AuthEventType {
		t.Errorf("events %+v; want the last to be %s", evs, hub.AuthEventType)
	}
}

func TestPublishAPI(t *testing.T) {
	th := newTestHub(t, &hub.Options{Tokens: mapTokens{}}, nil)
	sub := th.subscribe(t, "topic=chat/**", nil)
	msub := th.subscribeAt(t, mercureQuery("*"), nil)
	ctx := context.Background()

	ids, err := th.h.Publish(ctx, hub.Event{Topics: []string{"chat/a"}, Data: "one"}, hub.Event{Topics: []string{"chat/b"}, Data: "two", ID: "mine"})
	if err != nil || len(ids) != 2 || ids[1] != "mine" {
		t.Fatalf("Publish = %v, %v; want two ids, the second mine", ids, err)
	}
	if got := strings.Join(datas(sub.waitID(t, "mine")), ","); got != "one,two" {
		t.Errorf("subscriber got %s; want one,two", got)
	}
	if got := strings.Join(datas(msub.waitID(t, "mine")), ","); got != "one,two" {
		t.Errorf("Mercure subscriber got %s; want one,two", got)
	}

	grant := &hub.Grant{Subject: "g", Publish: []hub.Selector{mustNative(t, "chat/a")}}
	cases := []struct {
		name string
		ctx  context.Context
		ev   hub.Event
		want error
	}{
		{"no topic", ctx, hub.Event{Data: "x"}, hub.ErrInvalidEvent},
		{"bad topic", ctx, hub.Event{Topics: []string{"a//b"}}, hub.ErrInvalidEvent},
		{"LF in type", ctx, hub.Event{Topics: []string{"a"}, Type: "x\ny"}, hub.ErrInvalidEvent},
		{"reserved id", ctx, hub.Event{Topics: []string{"a"}, ID: "12"}, hub.ErrInvalidEvent},
		{"reserved IRI id", ctx, hub.Event{Topics: []string{"a"}, ID: "urn:ssehub:12"}, hub.ErrInvalidEvent},
		{"negative retry", ctx, hub.Event{Topics: []string{"a"}, Retry: -time.Second}, hub.ErrInvalidEvent},
		{"duplicate id", ctx, hub.Event{Topics: []string{"a"}, ID: "mine"}, hub.ErrDuplicateID},
		{"grant forbids", hub.WithGrant(ctx, grant), hub.Event{Topics: []string{"chat/b"}}, hub.ErrForbidden},
		{"grant allows", hub.WithGrant(ctx, grant), hub.Event{Topics: []string{"chat/a"}, Data: "three"}, nil},
	}
	for _, c := range cases {
		_, err := th.h.Publish(c.ctx, c.ev)
		if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
			t.Errorf("%s: Publish = %v; want %v", c.name, err, c.want)
		}
	}
	if got := strings.Join(datas(sub.waitUntil(t, "three", untilData("three"))), ","); got != "one,two,three" {
		t.Errorf("subscriber got %s; want one,two,three: nothing refused delivered", got)
	}
	if _, err := th.h.Publish(ctx); !errors.Is(err, hub.ErrInvalidEvent) {
		t.Errorf("Publish() = %v; want ErrInvalidEvent", err)
	}
}

func TestNativeRoleVerifiers(t *testing.T) {
	pub := &hub.Grant{Subject: "p", Publish: []hub.Selector{mustNative(t, "**")}}
	sub := &hub.Grant{Subject: "s", Publish: []hub.Selector{mustNative(t, "**")}, Subscribe: []hub.Selector{mustNative(t, "**")}}
	th := newTestHub(t, &hub.Options{
		PublisherTokens:  mapTokens{"p": pub},
		SubscriberTokens: mapTokens{"s": sub},
	}, nil)
	post := func(tok string) int {
		resp, _ := th.do(t, http.MethodPost, "/events", formHeader(bearer(tok)), "topic=a&data=x")
		return resp.StatusCode
	}
	if got := post("p"); got != http.StatusOK {
		t.Errorf("publish with the publisher's token: %d; want 200", got)
	}
	// The subscriber's token claims publish rights, but its key is not
	// the publishers'.
	if got := post("s"); got != http.StatusUnauthorized {
		t.Errorf("publish with the subscriber's token: %d; want 401", got)
	}
	for tok, want := range map[string]int{"s": http.StatusOK, "p": http.StatusUnauthorized} {
		resp := th.get(t, "/events?topic=a", bearer(tok))
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("subscribe with %q: %d; want %d", tok, resp.StatusCode, want)
		}
	}
	// Only a publisher verifier: subscribers' tokens are refused, and
	// anonymous subscribers served.
	th2 := newTestHub(t, &hub.Options{PublisherTokens: mapTokens{"p": pub}}, nil)
	if resp, body := th2.do(t, http.MethodGet, "/events?topic=a", bearer("p"), ""); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "no key") {
		t.Errorf("subscribe with a token on a hub without a subscriber key: %d %s; want 401 saying so", resp.StatusCode, body)
	}
	if resp, body := th2.do(t, http.MethodPost, "/events", formHeader(nil), "topic=a&data=x"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("anonymous publish: %d %s; want 401", resp.StatusCode, body)
	}
}

// TestMercureCORS: the hub's CORS allowlist applies to the Mercure
// endpoint as to /events.
func TestMercureCORS(t *testing.T) {
	const app = "https://app.example.com"
	th := newTestHub(t, &hub.Options{CORSOrigins: []string{app}}, nil)
	resp, _ := th.do(t, http.MethodOptions, hub.MercurePath, http.Header{
		"Origin":                         {app},
		"Access-Control-Request-Method":  {"POST"},
		"Access-Control-Request-Headers": {"authorization,content-type"},
	}, "")
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != app ||
		!strings.Contains(strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers")), "authorization") {
		t.Errorf("preflight from an allowed origin: %d %v", resp.StatusCode, resp.Header)
	}
	s := th.subscribeAt(t, mercureQuery(book1), http.Header{"Origin": {app}})
	if got := s.resp.Header.Get("Access-Control-Allow-Origin"); got != app || s.resp.Header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Errorf("stream from an allowed origin: Allow-Origin %q, Allow-Credentials %q", got, s.resp.Header.Get("Access-Control-Allow-Credentials"))
	}
	for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodOptions} {
		resp, _ := th.do(t, method, mercureQuery(book1), formHeader(http.Header{"Origin": {"https://evil.example"}, "Access-Control-Request-Method": {"GET"}}), "topic=x")
		if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("%s from another origin: %d, Allow-Origin %q; want 403 and none", method, resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
		}
	}
}

func TestPublishMercureAPI(t *testing.T) {
	th := newTestHub(t, nil, nil)
	s := th.subscribeAt(t, mercureQuery(books), nil)
	ctx := context.Background()
	ids, err := th.h.PublishMercure(ctx, hub.Event{Topics: []string{book1}, Data: "one"}, hub.Event{Topics: []string{book2}, ID: "https://example.com/e/2", Data: "two"})
	if err != nil || len(ids) != 2 || !strings.HasPrefix(ids[0], "urn:ssehub:") || ids[1] != "https://example.com/e/2" {
		t.Fatalf("PublishMercure = %v, %v; want an urn:ssehub: ID and the publisher's", ids, err)
	}
	evs := s.waitID(t, ids[1])
	if got := strings.Join(datas(evs), ","); got != "one,two" || evs[len(evs)-2].ID != ids[0] {
		t.Errorf("subscriber got %s (%+v); want one,two with the IDs answered", got, evs)
	}
	for _, c := range []struct {
		ev   hub.Event
		want error
	}{
		{hub.Event{Topics: []string{"/.well-known/mercure/subscriptions/x/y"}}, hub.ErrForbidden},
		{hub.Event{Topics: []string{book1}, ID: "#x"}, hub.ErrInvalidEvent},
		{hub.Event{Topics: []string{"a\x00b"}}, hub.ErrInvalidEvent},
	} {
		if _, err := th.h.PublishMercure(ctx, c.ev); !errors.Is(err, c.want) {
			t.Errorf("PublishMercure(%+v) = %v; want %v", c.ev, err, c.want)
		}
	}
	// The native Publish refuses an IRI topic.
	if _, err := th.h.Publish(ctx, hub.Event{Topics: []string{book1}}); !errors.Is(err, hub.ErrInvalidEvent) {
		t.Errorf("Publish(IRI topic) = %v; want ErrInvalidEvent", err)
	}
}
