package hub_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ssehub/ssehub/hub"
	"github.com/ssehub/ssehub/internal/browsertest"
)

// emptyDataPage subscribes to topic e and records every event it
// receives, and whether its data is the empty string.
const emptyDataPage = `<!doctype html><meta charset="utf-8"><title>empty data</title><script>
window.got = []; window.errors = 0;
window.es = new EventSource("/events?topic=e");
const record = e => got.push({type: e.type, id: e.lastEventId, data: e.data, empty: e.data === ""});
es.onmessage = record;
es.addEventListener("named", record);
es.onerror = () => { errors++; };
</script>`

// A browserEvent is what emptyDataPage records of an event.
type browserEvent struct {
	Type  string `json:"type"`
	ID    string `json:"id"`
	Data  string `json:"data"`
	Empty bool   `json:"empty"`
}

// TestBrowserEmptyData: Chromium's EventSource fires the events
// published with empty data, however they are published, with e.data
// === "": live, and replayed when it reconnects with Last-Event-ID
// after its connection broke while more were published.
//
// The page comes from a front server on the same origin that forwards
// the event stream to the hub, as a proxy would. Cutting the front's
// connections breaks the stream; while the front is cut, it answers
// the EventSource's reconnections with an empty stream, so they fail
// and are retried, and the events published meanwhile can only reach
// the page in the replay that follows once the front lets it through.
func TestBrowserEmptyData(t *testing.T) {
	ctx := browsertest.New(t, 90*time.Second)
	th := newTestHub(t, &hub.Options{Retry: 100 * time.Millisecond}, nil)

	target, err := url.Parse(th.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	var (
		mu      sync.Mutex // guards cut and lastIDs
		cut     bool
		lastIDs []string // the Last-Event-ID of each stream request let through
	)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/events" {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprint(w, emptyDataPage)
			return
		}
		mu.Lock()
		c := cut
		if !c {
			lastIDs = append(lastIDs, r.Header.Get("Last-Event-ID"))
		}
		mu.Unlock()
		if c {
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, "retry: 50\n\n")
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	p := &browserPage{t: t, ctx: ctx, stateExpr: `JSON.stringify({readyState: es.readyState, errors: errors, got: got})`}
	t.Cleanup(func() {
		// The page's stream holds a connection open, which Close would
		// wait for: close the EventSource, so that it does not
		// reconnect, and then the connections.
		_, _ = p.evaluate("es.close()")
		front.CloseClientConnections()
		front.Close()
	})
	if err := chromedp.Do(ctx, chromedp.Navigate(front.URL+"/")); err != nil {
		t.Fatal(err)
	}
	p.poll("the page opens its stream", "es.readyState === 1")

	var want []browserEvent
	// publish publishes body, whose events have the types given, in
	// order, and adds them to want.
	publish := func(ct, body string, types ...string) {
		t.Helper()
		status, ids, _ := th.post(t, ct, body)
		if status != http.StatusOK {
			t.Fatalf("POST %s = %d %s; want 200", body, status, ids)
		}
		for i, id := range strings.Fields(ids) {
			want = append(want, browserEvent{Type: types[i], ID: id, Data: "", Empty: true})
		}
	}
	publishAll := func() {
		t.Helper()
		publish(ctForm, "topic=e", "message")
		publish(ctForm, "topic=e&data=", "message")
		publish(ctJSON, `{"topic":"e","data":null}`, "message")
		publish(ctJSON, `{"topic":"e"}`, "message")
		publish(ctNDJSON, "{\"topic\":\"e\",\"data\":\"\"}\n{\"topic\":\"e\",\"type\":\"named\"}\n", "message", "named")
	}

	// Live.
	publishAll()
	p.poll("the live events arrive", fmt.Sprintf("got.length >= %d", len(want)))
	p.checkEvents("live", want)
	liveLast := want[len(want)-1].ID

	// Break the stream; publish while the page cannot be connected.
	mu.Lock()
	cut = true
	mu.Unlock()
	front.CloseClientConnections()
	p.poll("the page sees its stream break", "errors >= 1")
	publishAll()

	// Let the reconnection through: the replay brings the rest.
	mu.Lock()
	cut = false
	mu.Unlock()
	p.poll("the replayed events arrive", fmt.Sprintf("got.length >= %d", len(want)))
	p.checkEvents("live, then replayed", want)
	mu.Lock()
	defer mu.Unlock()
	if len(lastIDs) < 2 || lastIDs[0] != "" || lastIDs[len(lastIDs)-1] != liveLast {
		t.Errorf("the stream requests let through had Last-Event-ID %q; want \"\", then %q", lastIDs, liveLast)
	}
}

// A browserPage evaluates expressions in the page of a chromedp context.
type browserPage struct {
	t   *testing.T
	ctx context.Context
	// stateExpr is a JavaScript expression whose value, a string, tells
	// what the page holds, for failure messages.
	stateExpr string
}

// evaluate returns the value of the JavaScript expression expr, a
// string. Right after a navigation, Chromium may not know the new
// page's context yet: that error is retried, for a while.
func (p *browserPage) evaluate(expr string) (string, error) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var err error
	for range 50 {
		var s string
		s, err = chromedp.Run(p.ctx, chromedp.Evaluate[string](expr))
		if err == nil || !strings.Contains(err.Error(), "Cannot find context") {
			return s, err
		}
		<-tick.C
	}
	return "", err
}

// state returns what the page holds: the value of its stateExpr.
func (p *browserPage) state() string {
	s, err := p.evaluate(p.stateExpr)
	if err != nil {
		return err.Error()
	}
	return s
}

// poll waits, for up to 20 seconds, until the expression cond is true.
func (p *browserPage) poll(what, cond string) {
	p.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		s, err := p.evaluate("String(!!(" + cond + "))")
		if err != nil {
			p.t.Fatalf("%s: %v", what, err)
		}
		if s == "true" {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: %s is not true after 20s; page state %s", what, cond, p.state())
		}
		<-tick.C
	}
}

// checkEvents checks that the page has received exactly want.
func (p *browserPage) checkEvents(what string, want []browserEvent) {
	p.t.Helper()
	s, err := p.evaluate(`JSON.stringify(got)`)
	if err != nil {
		p.t.Fatal(err)
	}
	var got []browserEvent
	if err := json.Unmarshal([]byte(s), &got); err != nil {
		p.t.Fatalf("page events %s: %v", s, err)
	}
	if !slices.Equal(got, want) {
		p.t.Errorf("%s: the page received %+v; want %+v", what, got, want)
	}
}
