package hub_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ssehub/ssehub/hub"
	"github.com/ssehub/ssehub/hub/jwtauth"
	"github.com/ssehub/ssehub/internal/browsertest"
)

// pageHTML is the page both origins serve: it opens an EventSource with
// credentials to the hub named in its query, and records what happens.
const pageHTML = `<!doctype html><meta charset="utf-8"><title>page</title><script>
window.got = []; window.errors = 0;
const hubURL = new URLSearchParams(location.search).get("hub");
window.es = new EventSource(hubURL + "/events?topic=secret/a", {withCredentials: true});
es.onmessage = e => got.push(e.data);
es.onerror = () => { errors++; };
</script>`

// TestBrowserCORSCookie serves a page on an allowed origin and one on a
// disallowed origin, on two loopback ports other than the hub's. Headless
// Chromium holds the hub's token cookie. The allowed page's EventSource
// (withCredentials) receives private events through the cookie; the
// other page's gets an error and nothing else.
func TestBrowserCORSCookie(t *testing.T) {
	ctx := browsertest.New(t, 90*time.Second)

	page := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, pageHTML)
	})
	allowed := httptest.NewServer(page)
	defer allowed.Close()
	other := httptest.NewServer(page)
	defer other.Close()

	vctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	v, err := jwtauth.New(vctx, jwtauth.Config{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	reader := hs256(t, grantClaims(nil, []string{"secret/*"}))
	opts := &hub.Options{Tokens: v, CORSOrigins: []string{allowed.URL}}
	th := startHubWith(t, opts, nil, true, func(h http.Handler) *httptest.Server {
		mux := http.NewServeMux()
		mux.Handle("/", h)
		mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) { // the app's login, in a real deployment
			http.SetCookie(w, &http.Cookie{Name: hub.DefaultTokenCookie, Value: reader, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
			fmt.Fprint(w, "logged in")
		})
		return httptest.NewServer(mux)
	})
	waitFor(t, waitTimeout, th.ready)
	srv := th.srv

	publisher := hs256(t, grantClaims([]string{"**"}, nil))
	publish := func(data string) {
		t.Helper()
		form := url.Values{"topic": {"secret/a"}, "data": {data}, "private": {"on"}}
		resp, body := th.do(t, http.MethodPost, "/events", formHeader(bearer(publisher)), form.Encode())
		if resp.StatusCode != 200 {
			t.Fatalf("publish = %d %s", resp.StatusCode, body)
		}
	}
	// evaluate runs expr in the page. Right after a navigation, Chromium
	// may not know the new page's context yet: that error is retried.
	evaluate := func(expr string) (string, error) {
		var err error
		for range 50 {
			var s string
			s, err = chromedp.Run(ctx, chromedp.Evaluate[string](expr))
			if err == nil || !strings.Contains(err.Error(), "Cannot find context") {
				return s, err
			}
			time.Sleep(20 * time.Millisecond)
		}
		return "", err
	}
	eval := func(expr string) string {
		t.Helper()
		s, err := evaluate(expr)
		if err != nil {
			t.Fatalf("evaluate %s: %v", expr, err)
		}
		return s
	}
	poll := func(what, expr string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			s, err := evaluate("String(!!(" + expr + "))")
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			if s == "true" {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not after 20s; page state %s", what,
					eval(`JSON.stringify({readyState: es.readyState, got: got, errors: errors})`))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	hubQuery := "/?hub=" + url.QueryEscape(srv.URL)

	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/login")); err != nil {
		t.Fatal(err)
	}

	// The allowed origin: the cookie rides along, private events arrive.
	if err := chromedp.Do(ctx, chromedp.Navigate(allowed.URL+hubQuery)); err != nil {
		t.Fatal(err)
	}
	poll("allowed page opens", "es.readyState === 1")
	publish("PRIVATE-1")
	poll("allowed page receives the private event", `got.includes("PRIVATE-1")`)
	if n := eval(`String(errors)`); n != "0" {
		t.Errorf("allowed page saw %s errors; want 0", n)
	}

	// The other origin: an error, the connection failed for good, and
	// nothing received, even as more private events are published.
	if err := chromedp.Do(ctx, chromedp.Navigate(other.URL+hubQuery)); err != nil {
		t.Fatal(err)
	}
	poll("other page fails", "errors > 0 && es.readyState === 2")
	publish("PRIVATE-2")
	time.Sleep(300 * time.Millisecond) // time for a leak to show
	if got := eval(`JSON.stringify(got)`); got != "[]" {
		t.Errorf("other page received %s; want nothing", got)
	}
	if n := th.metric(t, "ssehub_refused_total", "reason", "origin"); n < 1 {
		t.Errorf("ssehub_refused_total{reason=origin} = %v; want the other page's request counted", n)
	}
	if !strings.HasPrefix(other.URL, "http://127.0.0.1:") || other.URL == allowed.URL {
		t.Fatalf("origins %s and %s: want two loopback ports", allowed.URL, other.URL)
	}
}
