package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"
)

//go:embed static
var static embed.FS

// csp is the Content-Security-Policy of every response: everything from the
// page's own origin, no inline script or style, no plugins, no framing.
const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// files maps each URL path the handler serves to its embedded file and type.
var files = []struct{ path, name, contentType string }{
	{"/", "static/index.html", "text/html; charset=utf-8"},
	{"/console.css", "static/console.css", "text/css; charset=utf-8"},
	{"/console.js", "static/console.js", "text/javascript; charset=utf-8"},
	{"/favicon.svg", "static/favicon.svg", "image/svg+xml"},
}

// An asset is one embedded file, ready to serve.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

// loadAssets reads the embedded files once. A missing file is a build
// mistake, so it panics.
var loadAssets = sync.OnceValue(func() map[string]asset {
	m := make(map[string]asset, len(files))
	for _, f := range files {
		body, err := static.ReadFile(f.name)
		if err != nil {
			panic(fmt.Sprintf("web: embedded file %s: %v", f.name, err))
		}
		sum := sha256.Sum256(body)
		m[f.path] = asset{body: body, contentType: f.contentType, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
	}
	return m
})

// Handler returns an http.Handler that serves the console page at "/" and
// its assets (console.js, console.css, favicon.svg) next to it. It answers
// GET and HEAD with Cache-Control: no-cache and an ETag, so a browser
// revalidates and gets 304 Not Modified until the binary changes; another
// method is 405 and any other path 404, both as application/problem+json.
// The handler is safe for concurrent use and holds no state.
func Handler() http.Handler {
	return handler{assets: loadAssets()}
}

type handler struct {
	assets map[string]asset
}

func (h handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", csp)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	a, ok := h.assets[r.URL.Path]
	if !ok {
		problem(w, http.StatusNotFound, fmt.Sprintf("the console has no page at %q", r.URL.Path))
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hd.Set("Allow", "GET, HEAD")
		problem(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s is not allowed here; use GET", r.Method))
		return
	}
	hd.Set("Content-Type", a.contentType)
	hd.Set("Cache-Control", "no-cache")
	hd.Set("ETag", a.etag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}

// problem writes an RFC 9457 problem+json answer, as the hub's API does.
func problem(w http.ResponseWriter, status int, detail string) {
	body, _ := json.Marshal(struct {
		Type   string `json:"type"`
		Title  string `json:"title"`
		Status int    `json:"status"`
		Detail string `json:"detail"`
	}{"about:blank", http.StatusText(status), status, detail})
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}
