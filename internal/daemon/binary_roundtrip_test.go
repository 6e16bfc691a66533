package daemon

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/ssehub/ssehub/eventsource"
	"github.com/ssehub/ssehub/internal/browsertest"
	"github.com/ssehub/ssehub/sse"
)

// A roundTripPayload is one file published by the round-trip test.
type roundTripPayload struct {
	name  string // the file's, whose extension gives the media type
	media string // what the subscribers must see
	bytes []byte
	id    string // the hub's, once published
}

// roundTripPayloads returns random bytes of 0, 1, 1000, 100 KiB and 1 MiB,
// a compressible payload (sent gzip-compressed) and a real PNG.
func roundTripPayloads(t *testing.T) []*roundTripPayload {
	t.Helper()
	rng := rand.New(rand.NewPCG(12, 6))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	var text bytes.Buffer
	for i := range 20000 {
		fmt.Fprintf(&text, `{"seq":%d,"symbol":"ACME","usd":%d.%02d}`+"\n", i, 40+rng.IntN(5), rng.IntN(100))
	}
	img := image.NewNRGBA(image.Rect(0, 0, 64, 48))
	for y := range 48 {
		for x := range 64 {
			img.Set(x, y, color.NRGBA{uint8(x * 4), uint8(y * 5), uint8(rng.IntN(256)), 255})
		}
	}
	var pic bytes.Buffer
	if err := png.Encode(&pic, img); err != nil {
		t.Fatal(err)
	}
	return []*roundTripPayload{
		{name: "empty", media: sse.DefaultBinaryMediaType, bytes: []byte{}},
		{name: "one", media: sse.DefaultBinaryMediaType, bytes: random(1)},
		{name: "small.bin", media: sse.DefaultBinaryMediaType, bytes: random(1000)},
		{name: "medium.bin", media: sse.DefaultBinaryMediaType, bytes: random(100 << 10)},
		{name: "large.bin", media: sse.DefaultBinaryMediaType, bytes: random(1 << 20)},
		{name: "quotes.json", media: "application/json", bytes: text.Bytes()},
		{name: "picture.png", media: "image/png", bytes: pic.Bytes()},
	}
}

// TestBinaryRoundTrip publishes files with "ssehub publish --file" to a
// real hub, through its application/octet-stream path, and receives them
// byte for byte through the Go client, "ssehub listen --out", and
// Chromium running docs/BINARY.md's snippet (binary.js, which the
// console serves).
func TestBinaryRoundTrip(t *testing.T) {
	c := testServeConfig(t, "127.0.0.1:0")
	c.store = "memory"
	c.maxBody = 4 << 20
	c.limits.MaxEventBytes = 2 << 20 // 1 MiB of random bytes is 1.4 MB of base64
	c.limits.MaxBinaryBytes = 2 << 20
	base, _ := startServe(t, c)

	code, stdout, stderr := runMain(t, "publish", "--url", base, "--topic", "rt/files", "--data", "before the files")
	if code != exitOK {
		t.Fatalf("publish: status %d, stderr %q", code, stderr)
	}
	startID := strings.TrimSpace(stdout)
	payloads := roundTripPayloads(t)
	dir := t.TempDir()
	for _, p := range payloads {
		path := filepath.Join(dir, p.name)
		if err := os.WriteFile(path, p.bytes, 0o600); err != nil {
			t.Fatal(err)
		}
		code, stdout, stderr := runMain(t, "publish", "--url", base, "--topic", "rt/files", "--file", path)
		if code != exitOK {
			t.Fatalf("publish --file %s: status %d, stderr %q", p.name, code, stderr)
		}
		p.id = strings.TrimSpace(stdout)
	}
	stream := base + "/events?topic=rt/**&lastEventID=" + startID

	t.Run("go client", func(t *testing.T) {
		es, err := eventsource.New(stream, &eventsource.Options{MaxEventSize: 4 << 20})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		got := map[string]eventsource.Event{}
		for ev := range es.Events(ctx) {
			if ev.IsMessage() {
				got[ev.LastEventID] = ev
				if len(got) == len(payloads) {
					break
				}
			}
		}
		for _, p := range payloads {
			ev, ok := got[p.id]
			if !ok {
				t.Errorf("%s (ID %s): not received (stream error %v)", p.name, p.id, es.Err())
				continue
			}
			h, _, err := sse.ParseBinaryHeader(ev.Data)
			if err != nil || h.MediaType != p.media {
				t.Errorf("%s: header %+v, %v; want media type %s", p.name, h, err, p.media)
			}
			b, err := ev.Bytes()
			if err != nil || !bytes.Equal(b, p.bytes) {
				t.Errorf("%s: Bytes() = %d bytes, %v; want the %d bytes published", p.name, len(b), err, len(p.bytes))
			}
			t.Logf("%-12s %8d bytes  %-24s %-8s %8d bytes of data", p.name, len(p.bytes), h.MediaType, h.Encoding, len(ev.Data))
		}
	})

	t.Run("listen --out", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "out")
		code, stdout, stderr := runMain(t, "listen", "--json", "--out", out, "--max-events", fmt.Sprint(len(payloads)), stream)
		if code != exitOK {
			t.Fatalf("listen: status %d, stderr %q", code, stderr)
		}
		lines := map[string]map[string]any{}
		for line := range strings.Lines(stdout) {
			var v map[string]any
			if err := json.Unmarshal([]byte(line), &v); err != nil {
				t.Fatalf("line %q: %v", line, err)
			}
			if id, ok := v["lastEventId"].(string); ok {
				lines[id] = v
			}
		}
		for _, p := range payloads {
			got, err := os.ReadFile(filepath.Join(out, idFileName(p.id)))
			if err != nil || !bytes.Equal(got, p.bytes) {
				t.Errorf("%s: the file holds %d bytes, %v; want the %d bytes published", p.name, len(got), err, len(p.bytes))
			}
			v := lines[p.id]
			if v["binary"] != true || v["media"] != p.media || v["size"] != float64(len(p.bytes)) || v["data"] != nil {
				t.Errorf("%s: --json line %v; want binary, media %s, size %d and no data", p.name, v, p.media, len(p.bytes))
			}
		}
	})

	t.Run("chromium", func(t *testing.T) {
		if testing.Short() {
			t.Skip("browser test: skipped in -short mode")
		}
		ctx := browsertest.New(t, 2*time.Minute)
		// The console page loads binary.js, the snippet; this page's own
		// code only subscribes and hashes.
		script := fmt.Sprintf(`new Promise((resolve, reject) => {
			const got = {};
			const es = new EventSource(%q);
			es.onmessage = async (e) => {
				try {
					const { type, bytes } = await ssehubBinary(e.data);
					const sum = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
					got[e.lastEventId] = type + " " + bytes.length + " " + Array.from(sum, (b) => b.toString(16).padStart(2, "0")).join("");
					if (Object.keys(got).length === %d) { es.close(); resolve(JSON.stringify(got)); }
				} catch (err) { es.close(); reject(err); }
			};
			es.onerror = () => { if (es.readyState === EventSource.CLOSED) reject(new Error("stream failed")); };
		})`, "events?topic=rt/**&lastEventID="+startID, len(payloads))
		if err := chromedp.Do(ctx, chromedp.Navigate(base+"/")); err != nil {
			t.Fatalf("open the console page: %v", err)
		}
		res, err := chromedp.Run(ctx, chromedp.Evaluate[string](script, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("run the snippet: %v", err)
		}
		var got map[string]string
		if err := json.Unmarshal([]byte(res), &got); err != nil {
			t.Fatal(err)
		}
		for _, p := range payloads {
			sum := sha256.Sum256(p.bytes)
			if want := fmt.Sprintf("%s %d %s", p.media, len(p.bytes), hex.EncodeToString(sum[:])); got[p.id] != want {
				t.Errorf("%s: the page decoded %q; want %q", p.name, got[p.id], want)
			}
		}
	})

	t.Run("over the limit", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "big.bin")
		if err := os.WriteFile(path, make([]byte, 2<<20+1), 0o600); err != nil {
			t.Fatal(err)
		}
		checkFails(t, []string{"publish", "--url", base, "--topic", "rt/files", "--file", path}, exitFail, "413")
	})
}
