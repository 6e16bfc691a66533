package daemon

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
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

	if err := proc.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	proc.Wait()
	state("CONNECTING")

	startProcess(t, bin, addr, dataDir)
	state("OPEN")
	publish("after the restart")
	seen("after the restart")
}
