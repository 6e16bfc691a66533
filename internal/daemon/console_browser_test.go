package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/ssehub/ssehub/hub/jwtauth"
	"github.com/ssehub/ssehub/internal/browsertest"
)

// TestConsoleSurvivesHubRestart opens the console page of a real ssehub
// process in Chromium, subscribes, sees a published event, then kills the
// process: the badge shows CONNECTING; a new process on the same address
// and data directory brings it back to OPEN, and events flow again.
func TestConsoleSurvivesHubRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test: skipped in -short mode")
	}
	ctx := browsertest.New(t, 2*time.Minute)
	bin := buildSSEHub(t)
	addr := freeAddr(t)
	dataDir := t.TempDir()
	proc := startProcess(t, bin, addr, dataDir)
	base := "http://" + addr

	state := func(want string) {
		t.Helper()
		expr := fmt.Sprintf(`document.querySelector('[data-testid="state"]').textContent === %q`, want)
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
			got, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('[data-testid="state"]').textContent`))
			t.Fatalf("waiting for the badge to show %s: %v (it shows %q)", want, err, got)
		}
	}
	seen := func(data string) {
		t.Helper()
		expr := fmt.Sprintf(`Array.from(document.querySelectorAll('[data-testid="event-data"]')).some(e => e.textContent === %q)`, data)
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
			t.Fatalf("waiting for %q in the page's log: %v", data, err)
		}
	}
	publish := func(data string) {
		t.Helper()
		resp, err := http.PostForm(base+"/events", url.Values{"topic": {"demo"}, "data": {data}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("publish: status %d", resp.StatusCode)
		}
	}

	topic, _ := json.Marshal("demo")
	if err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/"),
		chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(e => { e.value = %s; e.dispatchEvent(new Event("input", {bubbles: true})) })(document.querySelector('[data-testid="topics"]'))`, topic)),
		chromedp.Click(`[data-testid="connect"]`),
	); err != nil {
		t.Fatalf("open the console and connect: %v", err)
	}
	state("OPEN")
	publish("before the crash")
	seen("before the crash")
	// The header names the node (by default its host name and port) and
	// shows the hub's readiness.
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(addr)
	shows(ctx, t, "node-name", net.JoinHostPort(host, port))
	shows(ctx, t, "hub-ready", "HUB READY")

	if err := proc.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	proc.Wait()
	state("CONNECTING")
	shows(ctx, t, "hub-ready", "HUB NOT READY") // checked every 5 s

	startProcess(t, bin, addr, dataDir)
	state("OPEN")
	publish("after the restart")
	seen("after the restart")
}

// TestConsolePrivateEvents opens the console of a hub with a key in
// Chromium: a private event reaches the page only while the subscriber
// token field holds a token whose grant covers the event's topic, and
// public events reach it in any case. The hub has its own --token-cookie,
// which the page must use. No token appears in the hub's logs, even at
// debug level.
func TestConsolePrivateEvents(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test: skipped in -short mode")
	}
	ctx := browsertest.New(t, 2*time.Minute)
	c := testServeConfig(t, "127.0.0.1:0")
	c.store = "memory"
	c.jwt.secret = testSecret
	c.tokenCookie = "console_token"
	var logs syncBuffer
	base, stop := startServeLogging(t, c, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))

	mint := func(claims jwtauth.Claims) string {
		t.Helper()
		claims.Expires = time.Now().Add(time.Hour)
		tok, err := jwtauth.Mint([]byte(testSecret), claims)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	publisher := mint(jwtauth.Claims{Subject: "publisher", Publish: []string{"vault/**"}})
	allowed := mint(jwtauth.Claims{Subject: "allowed", Subscribe: []string{"vault/**"}})
	other := mint(jwtauth.Claims{Subject: "other", Subscribe: []string{"elsewhere/**"}})

	publish := func(data string, private bool) {
		t.Helper()
		form := url.Values{"topic": {"vault/a"}, "data": {data}}
		if private {
			form.Set("private", "on")
		}
		req, _ := http.NewRequest("POST", base+"/events", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", "Bearer "+publisher)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("publish %q: status %d", data, resp.StatusCode)
		}
	}
	shownJS := func(data string) string {
		return fmt.Sprintf(`Array.from(document.querySelectorAll('[data-testid="event-data"]')).some(e => e.textContent === %q)`, data)
	}
	setValue := func(id, value string) chromedp.Action[chromedp.Void] {
		return chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(e => { e.value = %q; e.dispatchEvent(new Event("input", {bubbles: true})) })(document.querySelector('[data-testid=%q]'))`, value, id))
	}

	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/")); err != nil {
		t.Fatalf("open the console: %v", err)
	}
	for _, tt := range []struct {
		name, token string
		want        bool // the private event is shown
	}{
		{"no token", "", false},
		{"a token for other topics", other, false},
		{"a token that allows it", allowed, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := chromedp.Do(ctx,
				setValue("topics", "vault/*"),
				setValue("subscribe-token", tt.token),
				chromedp.Click(`[data-testid="connect"]`),
			); err != nil {
				t.Fatalf("connect: %v", err)
			}
			if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelector('[data-testid="state"]').textContent === "OPEN"`,
				chromedp.WithPollingTimeout(20*time.Second))); err != nil {
				t.Fatalf("waiting for the badge to show OPEN: %v", err)
			}
			private, public := "private, "+tt.name, "public, "+tt.name
			publish(private, true)
			publish(public, false)
			// The events reach a subscriber in order: once the public
			// one is shown, the private one would have been.
			if _, err := chromedp.Run(ctx, chromedp.Poll[bool](shownJS(public), chromedp.WithPollingTimeout(20*time.Second))); err != nil {
				t.Fatalf("waiting for the public event: %v", err)
			}
			got, err := chromedp.Run(ctx, chromedp.Evaluate[bool](shownJS(private)))
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("the private event is shown: %v; want %v", got, tt.want)
			}
		})
	}

	if err := stop(); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if !strings.Contains(out, "subscribed") {
		t.Fatalf("the hub logged no subscription at debug level:\n%s", out)
	}
	for name, tok := range map[string]string{"publisher": publisher, "allowed": allowed, "other": other} {
		sig := tok[strings.LastIndexByte(tok, '.')+1:]
		if strings.Contains(out, sig) {
			t.Errorf("the hub's logs hold the %s token", name)
		}
	}
}

// shows waits until the element with data-testid id shows text.
func shows(ctx context.Context, t *testing.T, id, text string) {
	t.Helper()
	get := fmt.Sprintf(`document.querySelector('[data-testid=%q]').textContent`, id)
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](get+fmt.Sprintf(` === %q`, text), chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		got, _ := chromedp.Run(ctx, chromedp.Evaluate[string](get))
		t.Fatalf("waiting for %s to show %q: %v (it shows %q)", id, text, err, got)
	}
}
