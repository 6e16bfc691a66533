package web_test

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/png"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/ssehub/ssehub/internal/browsertest"
	"github.com/ssehub/ssehub/sse"
)

// testPNG returns a w×h PNG image of a gradient.
func testPNG(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.NRGBA{uint8(x * 255 / max(w-1, 1)), uint8(y * 255 / max(h-1, 1)), 128, 255})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// binaryData returns sse.BinaryData(payload, media).
func binaryData(t *testing.T, payload []byte, media string) string {
	t.Helper()
	d, err := sse.BinaryData(payload, media)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestConsoleBinary: the console shows a binary event's media type and
// size, never its base64; an image gets a preview from a Blob URL, which
// Clear revokes; an event that cannot be decoded says so.
func TestConsoleBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test: skipped in -short mode")
	}
	ctx := browsertest.New(t, 2*time.Minute)
	hub := newFakeHub()
	srv := startServer(t, "127.0.0.1:0", hub.handler())
	t.Cleanup(srv.stop)
	do(t, ctx, "open the console and connect",
		chromedp.EmulateViewport(1280, 900),
		chromedp.Navigate(srv.URL+"/"),
		chromedp.SendKeys(byTestID("topics"), "cams/**"),
		chromedp.Click(byTestID("connect")))
	waitJS(t, ctx, "the badge shows OPEN", stateIsJS("OPEN"))

	pic := testPNG(t, 40, 30)
	zip := bytes.Repeat([]byte("PK\x03\x04 not really a zip "), 200)
	pngID := publish(t, srv.URL, url.Values{"topic": {"cams/door"}, "data": {binaryData(t, pic, "image/png")}})
	zipID := publish(t, srv.URL, url.Values{"topic": {"cams/door"}, "data": {binaryData(t, zip, "application/zip")}})
	badID := publish(t, srv.URL, url.Values{"topic": {"cams/door"}, "data": {"ssehub-binary image/png gzip 5\n!!!!"}})
	textID := publish(t, srv.URL, url.Values{"topic": {"cams/door"}, "data": {"plain text"}})

	waitJS(t, ctx, "the text event is in the log", hasRowJS("event", "message", textID, "plain text"))
	row := func(id string) string {
		return `Array.from(document.querySelectorAll('[data-testid="event-row"]')).find(r => r.querySelector('[data-testid="event-id"]').textContent === ` + js(id) + `)`
	}
	summary := func(id string) string {
		return row(id) + `.querySelector('[data-testid="event-binary"]').textContent`
	}
	waitJS(t, ctx, "the PNG's preview has loaded", row(pngID)+`.querySelector('[data-testid="event-preview"]')?.complete && `+
		row(pngID)+`.querySelector('[data-testid="event-preview"]').naturalWidth === 40`)
	waitJS(t, ctx, "the zip is decoded", row(zipID)+`.dataset.binary === "decoded"`)
	waitJS(t, ctx, "the malformed event is reported", row(badID)+`.dataset.binary === "malformed"`)

	for _, tt := range []struct{ id, want string }{
		{pngID, "image/png · " + fmtThousands(len(pic)) + " bytes"},
		{zipID, "application/zip · " + fmtThousands(len(zip)) + " bytes"},
		{badID, "image/png · 5 bytes · not decoded: "}, // then the browser's words
	} {
		if got := eval[string](t, ctx, summary(tt.id)); got != tt.want && (tt.id != badID || !strings.HasPrefix(got, tt.want)) {
			t.Errorf("event %s shows %q; want %q", tt.id, got, tt.want)
		}
		if got := eval[string](t, ctx, row(tt.id)+`.dataset.kind`); got != "binary" {
			t.Errorf("event %s has kind %q; want binary", tt.id, got)
		}
	}
	if n := eval[int](t, ctx, `document.querySelectorAll('[data-testid="event-preview"]').length`); n != 1 {
		t.Errorf("%d previews; want 1, the PNG's", n)
	}
	if got := eval[string](t, ctx, `document.querySelector('[data-testid="log"]').textContent`); strings.Contains(got, sse.BinaryPrefix) {
		t.Errorf("the log shows the wire form of a binary event: %.200q", got)
	}
	// The Blob URL loads as an image until Clear revokes it. (The page's
	// connect-src does not take blob: URLs, so an <img> is the probe.)
	src := eval[string](t, ctx, row(pngID)+`.querySelector('[data-testid="event-preview"]').src`)
	probe := `new Promise(r => { const i = new Image(); i.onload = () => r(i.naturalWidth + "x" + i.naturalHeight); i.onerror = () => r("revoked"); i.src = ` + js(src) + ` })`
	if got := evalAwait[string](t, ctx, probe); got != "40x30" {
		t.Errorf("the preview's Blob URL loads as %q; want 40x30", got)
	}
	do(t, ctx, "clear the log", chromedp.Click(byTestID("clear-log")))
	if got := evalAwait[string](t, ctx, probe); got != "revoked" {
		t.Errorf("after Clear, the preview's Blob URL loads as %q; want it revoked", got)
	}
}

// evalAwait is eval of an expression whose value is a promise: its result.
func evalAwait[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

func itoa(n int) string { return strconv.Itoa(n) }

// fmtThousands writes n as toLocaleString("en") does: 12,345.
func fmtThousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
