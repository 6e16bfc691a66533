package hub_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ssehub/ssehub/hub"
	"github.com/ssehub/ssehub/sse"
	"github.com/ssehub/ssehub/store/memstore"
)

// subsTemplate selects every subscription update.
const subsTemplate = "/.well-known/mercure/subscriptions{/topic}{/subscriber}"

// A subsDoc is a Subscription of the API.
type subsDoc struct {
	Context     string          `json:"@context"`
	ID          string          `json:"id"`
	Type        string          `json:"type"`
	Topic       string          `json:"topic"`
	Subscriber  string          `json:"subscriber"`
	Active      bool            `json:"active"`
	Payload     json.RawMessage `json:"payload"`
	LastEventID string          `json:"lastEventID"`
}

// A subsCollection is the API's collection answer.
type subsCollection struct {
	Context       string    `json:"@context"`
	ID            string    `json:"id"`
	Type          string    `json:"type"`
	LastEventID   string    `json:"lastEventID"`
	Subscriptions []subsDoc `json:"subscriptions"`
}

// fastHeartbeat is the tests' MercureOptions.NodeHeartbeat: a silent
// node is dead after 150ms.
const fastHeartbeat = 50 * time.Millisecond

// subsGet GETs the subscriptions API at path and decodes a 200 answer
// into v; it returns the response.
func (th *testHub) subsGet(t *testing.T, path string, header http.Header, v any) *http.Response {
	t.Helper()
	resp, body := th.do(t, http.MethodGet, path, header, "")
	if resp.StatusCode == http.StatusOK {
		if ct := resp.Header.Get("Content-Type"); ct != "application/ld+json" {
			t.Errorf("GET %s: Content-Type %q; want application/ld+json", path, ct)
		}
		if err := json.Unmarshal([]byte(body), v); err != nil {
			t.Fatalf("GET %s: %v in %s", path, err, body)
		}
	}
	return resp
}

// waitSubs waits until the collection of th lists want subscriptions,
// and returns it.
func (th *testHub) waitSubs(t *testing.T, header http.Header, want int) subsCollection {
	t.Helper()
	var c subsCollection
	waitFor(t, waitTimeout, func() bool {
		c = subsCollection{}
		resp := th.subsGet(t, "/.well-known/mercure/subscriptions", header, &c)
		return resp.StatusCode == http.StatusOK && len(c.Subscriptions) == want
	})
	return c
}

func TestMercureSubscriptions(t *testing.T) {
	th := newTestHub(t, &hub.Options{Mercure: hub.MercureOptions{
		Subscriptions:    true,
		NodeHeartbeat:    fastHeartbeat,
		SubscriberTokens: mapTokens{"admin": {Subject: "admin", Subscribe: mercureSels(t, subsTemplate)}},
	}}, nil)
	admin := bearer("admin")
	// The subscriber of the updates, which are private, has a
	// subscription of its own.
	updates := th.subscribeAt(t, mercureQuery(subsTemplate), admin)
	th.waitSubs(t, admin, 1)

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, th.srv.URL+mercureQuery(book1, books), nil)
	resp, err := th.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()

	c := th.waitSubs(t, admin, 3)
	c.Subscriptions = slices.DeleteFunc(c.Subscriptions, func(d subsDoc) bool { return d.Topic == subsTemplate })
	if c.Type != "Subscriptions" || c.ID != "/.well-known/mercure/subscriptions" || c.Context != "https://mercure.rocks/" || !strings.HasPrefix(c.LastEventID, "urn:ssehub:") {
		t.Errorf("collection: %+v", c)
	}
	topics := []string{c.Subscriptions[0].Topic, c.Subscriptions[1].Topic}
	slices.Sort(topics)
	if !slices.Equal(topics, []string{book1, books}) {
		t.Errorf("topics %v; want %v", topics, []string{book1, books})
	}
	d := c.Subscriptions[0]
	if d.Subscriber != c.Subscriptions[1].Subscriber || !strings.HasPrefix(d.Subscriber, "urn:uuid:") || !d.Active || d.Type != "Subscription" {
		t.Errorf("subscription %+v", d)
	}
	wantID := "/.well-known/mercure/subscriptions/" + url.QueryEscape(d.Topic) + "/" + url.QueryEscape(d.Subscriber)
	if d.ID != wantID {
		t.Errorf("id %q; want %q", d.ID, wantID)
	}

	// By topic, and one.
	var byTopic subsCollection
	th.subsGet(t, "/.well-known/mercure/subscriptions/"+url.QueryEscape(book1), admin, &byTopic)
	if len(byTopic.Subscriptions) != 1 || byTopic.Subscriptions[0].Topic != book1 {
		t.Errorf("by topic: %+v", byTopic)
	}
	var one subsDoc
	th.subsGet(t, d.ID, admin, &one)
	if one.ID != d.ID || one.LastEventID == "" || one.Context != "https://mercure.rocks/" {
		t.Errorf("one: %+v", one)
	}
	if r, _ := th.do(t, http.MethodGet, "/.well-known/mercure/subscriptions/"+url.QueryEscape(book1)+"/nope", admin, ""); r.StatusCode != http.StatusNotFound {
		t.Errorf("unknown subscriber: %d; want 404", r.StatusCode)
	}
	// ETag.
	r1, _ := th.do(t, http.MethodGet, "/.well-known/mercure/subscriptions", admin, "")
	r2, _ := th.do(t, http.MethodGet, "/.well-known/mercure/subscriptions", http.Header{"If-None-Match": {r1.Header.Get("Etag")}, "Authorization": admin["Authorization"]}, "")
	if r1.Header.Get("Etag") == "" || r2.StatusCode != http.StatusNotModified {
		t.Errorf("ETag %q, then If-None-Match: %d; want 304", r1.Header.Get("Etag"), r2.StatusCode)
	}

	cancel()
	th.waitSubs(t, admin, 1)

	// The updates: a start and an end for each topic, as JSON-LD, after
	// the start of the updates' own subscription.
	evs := updates.waitUntil(t, "5 updates", func(got []sse.Event) int {
		n := 0
		for i, ev := range got {
			if ev.Data != "" {
				if n++; n == 5 {
					return i + 1
				}
			}
		}
		return -1
	})
	var active, inactive []string
	for _, ev := range evs {
		if ev.Data == "" {
			continue
		}
		var u subsDoc
		if err := json.Unmarshal([]byte(ev.Data), &u); err != nil {
			t.Fatalf("update %q: %v", ev.Data, err)
		}
		if u.Topic == subsTemplate {
			continue
		}
		if u.Context != "https://mercure.rocks/" || u.Type != "Subscription" || u.Subscriber != d.Subscriber {
			t.Errorf("update %+v", u)
		}
		if u.Active {
			active = append(active, u.Topic)
		} else {
			inactive = append(inactive, u.Topic)
		}
	}
	slices.Sort(active)
	slices.Sort(inactive)
	if !slices.Equal(active, []string{book1, books}) || !slices.Equal(inactive, []string{book1, books}) {
		t.Errorf("updates: active %v, inactive %v; want both topics in each", active, inactive)
	}
}

func TestMercureSubscriptionsAuth(t *testing.T) {
	payload := json.RawMessage(`{"user":"alice"}`)
	th := newTestHub(t, &hub.Options{Mercure: hub.MercureOptions{
		Subscriptions: true,
		NodeHeartbeat: fastHeartbeat,
		SubscriberTokens: mapTokens{
			"admin": {Subject: "admin", Subscribe: mercureSels(t, subsTemplate)},
			"alice": {Subject: "alice", Subscribe: mercureSels(t, books), Payload: payload},
			"book1": {Subject: "b", Subscribe: mercureSels(t, "/.well-known/mercure/subscriptions/"+url.QueryEscape(book1)+"{/subscriber}")},
		},
	}}, nil)
	// A private update: anonymous subscribers of "*" do not see them.
	anon := th.subscribeAt(t, mercureQuery("*"), nil)
	th.subscribeAt(t, mercureQuery(book1), bearer("alice"))
	th.subscribeAt(t, mercureQuery(book2), nil)
	c := th.waitSubs(t, bearer("admin"), 3)
	for _, d := range c.Subscriptions {
		if d.Topic == book1 && string(d.Payload) != string(payload) {
			t.Errorf("payload %s; want %s", d.Payload, payload)
		}
	}
	for _, tc := range []struct {
		name   string
		path   string
		header http.Header
		want   int
	}{
		{"no token", "/.well-known/mercure/subscriptions", nil, http.StatusUnauthorized},
		{"a token that does not match", "/.well-known/mercure/subscriptions", bearer("alice"), http.StatusForbidden},
		{"invalid token", "/.well-known/mercure/subscriptions", bearer("nope"), http.StatusUnauthorized},
		{"one topic's token, its topic", "/.well-known/mercure/subscriptions/" + url.QueryEscape(book1), bearer("book1"), http.StatusOK},
		{"one topic's token, the collection", "/.well-known/mercure/subscriptions", bearer("book1"), http.StatusForbidden},
		{"POST", "/.well-known/mercure/subscriptions", bearer("admin"), http.StatusMethodNotAllowed},
	} {
		method := http.MethodGet
		if tc.name == "POST" {
			method = http.MethodPost
		}
		resp, body := th.do(t, method, tc.path, tc.header, "")
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %d %s; want %d", tc.name, resp.StatusCode, body, tc.want)
		}
	}
	ids, err := th.h.Publish(context.Background(), hub.Event{Topics: []string{"x"}, Data: "public"})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range anon.waitID(t, "urn:ssehub:"+ids[0]) {
		if strings.Contains(ev.Data, "Subscription") {
			t.Errorf("an anonymous subscriber received a subscription update: %s", ev.Data)
		}
	}
}

// TestMercureSubscriptionsCluster runs three hubs over one Log: each
// answers with the subscriptions of all; a hub that starts late learns
// those that began before it; one that stops says so at once; one that
// goes silent is forgotten within the dead time, and the end of each of
// its subscriptions is published once.
func TestMercureSubscriptionsCluster(t *testing.T) {
	ms := memstore.New()
	t.Cleanup(func() { ms.Close() })
	silent := &failLog{Store: ms}
	opts := func() *hub.Options {
		return &hub.Options{Mercure: hub.MercureOptions{Subscriptions: true, NodeHeartbeat: fastHeartbeat}}
	}
	a := newTestHub(t, opts(), silent)
	b := newTestHub(t, opts(), ms)

	a.subscribeAt(t, mercureQuery(book1), nil)
	a.subscribeAt(t, mercureQuery(books), nil)
	b.subscribeAt(t, mercureQuery(book2), nil)
	a.waitSubs(t, nil, 3)
	b.waitSubs(t, nil, 3)

	// A late node learns them all from the others' snapshots.
	c := newTestHub(t, opts(), ms)
	c.waitSubs(t, nil, 3)

	// A stops appending (partitioned from the Log's writes): the others
	// forget its two subscriptions within the dead time.
	t0 := time.Now()
	silent.setFail(true)
	b.waitSubs(t, nil, 1)
	c.waitSubs(t, nil, 1)
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("a silent node's subscriptions took %v to go; want about 150ms", d)
	}
	// The end of each was published once, though two nodes noticed.
	// Wait until both have gone through their sweeps: a node appends a
	// heartbeat, then sweeps, on each tick; two heartbeats of each after
	// now come after the sweep that forgot A.
	_, p0, _ := ms.Bounds(context.Background())
	waitFor(t, waitTimeout, func() bool {
		beats := map[string]int{}
		_ = ms.Read(context.Background(), p0, mercureSels(t, "/.well-known/mercure/nodes/{node}"), func(rec *hub.Record) bool {
			if rec.Type == "ssehub-node" {
				beats[rec.Topics[0]]++
			}
			return true
		})
		n := 0
		for _, b := range beats {
			if b >= 2 {
				n++
			}
		}
		return n >= 2
	})
	ends := map[string]int{}
	err := ms.Read(context.Background(), 0, mercureSels(t, subsTemplate), func(rec *hub.Record) bool {
		var d subsDoc
		if json.Unmarshal([]byte(rec.Data), &d) == nil && !d.Active {
			ends[d.ID]++
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(ends) != 2 {
		t.Errorf("end updates for %d subscriptions; want 2", len(ends))
	}
	for id, n := range ends {
		if n != 1 {
			t.Errorf("%s ended %d times; want once", id, n)
		}
	}
	// A node that stops cleanly says so: its subscription goes at once,
	// well within the dead time.
	sctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := b.h.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	c.waitSubs(t, nil, 0)
}
