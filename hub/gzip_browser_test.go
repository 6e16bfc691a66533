package hub_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/security"
	"github.com/chromedp/chromedp"

	"github.com/ssehub/ssehub/hub"
	"github.com/ssehub/ssehub/internal/browsertest"
)

// gzipPage subscribes to topic g, resuming after position 0 on its first
// connection, and records each event with when it arrived.
const gzipPage = `<!doctype html><meta charset="utf-8"><title>gzip</title><script>
window.got = []; window.errors = 0; window.opens = 0;
window.es = new EventSource("/events?topic=g&lastEventID=0");
es.onmessage = e => got.push({id: e.lastEventId, data: e.data, at: performance.now()});
es.onopen = () => { opens++; };
es.onerror = () => { errors++; };
</script>`

// TestBrowserGzip: Chromium's EventSource receives a compressed stream
// event by event, over HTTP/1.1 (a connection the hub takes over) and
// over HTTP/2 (an ssehttp stream). Its first connections replay what
// the Log holds, three events at a time (Limits.MaxReplay): each ends
// when the hub closes the stream, with no gzip trailer, and the
// EventSource reconnects with Last-Event-ID and gets the next three.
// Then each live event is received before the next is published: none
// waits in a compressor's buffer. The hub counts each stream it
// compressed; the server checks each stream request's Accept-Encoding
// and protocol.
func TestBrowserGzip(t *testing.T) {
	for _, tc := range []struct {
		name      string
		newServer func(http.Handler) *httptest.Server
		major     int
	}{
		{"HTTP/1.1", httptest.NewServer, 1},
		{"HTTP/2", tlsServer(true), 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := browsertest.New(t, 90*time.Second)
			var (
				mu   sync.Mutex // guards reqs
				reqs []string   // each stream request: protocol, Accept-Encoding and Last-Event-ID
			)
			opts := &hub.Options{Gzip: true, Retry: 100 * time.Millisecond, Limits: hub.Limits{MaxReplay: 3}}
			th := startHubWith(t, opts, nil, true, func(h http.Handler) *httptest.Server {
				return tc.newServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.URL.Path != "/events" {
						w.Header().Set("Content-Type", "text/html; charset=utf-8")
						fmt.Fprint(w, gzipPage)
						return
					}
					if r.Method == http.MethodGet {
						mu.Lock()
						reqs = append(reqs, fmt.Sprintf("HTTP/%d %q %q", r.ProtoMajor, r.Header.Get("Accept-Encoding"), r.Header.Get("Last-Event-ID")))
						mu.Unlock()
					}
					h.ServeHTTP(w, r)
				}))
			})
			waitFor(t, waitTimeout, th.ready)
			appendN(t, th.log, "g", 7) // positions 1 to 7, data d0 to d6

			p := &browserPage{t: t, ctx: ctx, stateExpr: `JSON.stringify({readyState: es.readyState, opens: opens, errors: errors, got: got.map(e => e.id + "=" + e.data)})`}
			t.Cleanup(func() { _, _ = p.evaluate("es.close()") })
			ignoreCerts := func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
				_, err := cdp.Call(ctx, tg, security.SetIgnoreCertificateErrors, security.SetIgnoreCertificateErrorsParams{Ignore: true})
				return chromedp.Void{}, err // the test server's certificate
			}
			if err := chromedp.Do(ctx, ignoreCerts, chromedp.Navigate(th.srv.URL+"/")); err != nil {
				t.Fatal(err)
			}

			// The replay, in three streams that the hub ends.
			p.poll("the replay arrives", "got.length >= 7 && es.readyState === 1")
			if got, _ := p.evaluate(`got.map(e => e.id + "=" + e.data).join(" ")`); got != "1=d0 2=d1 3=d2 4=d3 5=d4 6=d5 7=d6" {
				t.Fatalf("replayed events = %s; want 1=d0 ... 7=d6, in order, once each", got)
			}
			if got, _ := p.evaluate(`String(errors >= 2 && opens >= 3)`); got != "true" {
				t.Errorf("page state %s; want at least 3 opens and 2 errors (the ends of the replay's streams)", p.state())
			}

			// Live events, one at a time.
			for i := range 5 {
				start := time.Now()
				id := th.publish(t, url.Values{"topic": {"g"}, "data": {fmt.Sprint("live ", i)}})
				p.poll("live event "+id+" arrives", fmt.Sprintf("got.length >= %d && got[got.length-1].id === %q", 8+i, id))
				t.Logf("live event %s: seen by the page %v after its publish began", id, time.Since(start).Round(time.Millisecond))
			}

			mu.Lock()
			defer mu.Unlock()
			want := []string{`""`, `"3"`, `"6"`} // the first request resumes through its query
			if len(reqs) < len(want) {
				t.Fatalf("stream requests %q; want at least %d", reqs, len(want))
			}
			for i, r := range reqs {
				if !strings.HasPrefix(r, fmt.Sprintf("HTTP/%d ", tc.major)) || !strings.Contains(r, "gzip") {
					t.Errorf("stream request %d: %s; want HTTP/%d, accepting gzip", i, r, tc.major)
				}
				if i < len(want) && !strings.HasSuffix(r, " "+want[i]) {
					t.Errorf("stream request %d: %s; want Last-Event-ID %s", i, r, want[i])
				}
			}
			if got := th.metric(t, "ssehub_gzip_streams_total"); got != float64(len(reqs)) {
				t.Errorf("ssehub_gzip_streams_total = %v; want %d, one for each stream request", got, len(reqs))
			}
		})
	}
}
