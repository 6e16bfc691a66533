package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html"
	"maps"
	"net/http"
	"sync"
	"time"
)

//go:embed static
var static embed.FS

// csp is the Content-Security-Policy of every response: everything from the
// page's own origin, no inline script or style, no plugins, no framing;
// images from blob: URLs too, the page's own previews of binary events.
const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob:; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// files maps each URL path the handler serves to its embedded file and type.
var files = []struct{ path, name, contentType string }{
	{"/", "static/index.html", "text/html; charset=utf-8"},
	{"/console.css", "static/console.css", "text/css; charset=utf-8"},
	{"/console.js", "static/console.js", "text/javascript; charset=utf-8"},
	{"/binary.js", "static/binary.js", "text/javascript; charset=utf-8"},
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
		for _, meta := range []string{cookieMeta, nodeMeta} {
			if f.path == "/" && !bytes.Contains(body, []byte(meta)) {
				panic("web: " + f.name + " lacks " + meta)
			}
		}
		m[f.path] = newAsset(body, f.contentType)
	}
	return m
})

// newAsset returns the asset of body, with its ETag.
func newAsset(body []byte, contentType string) asset {
	sum := sha256.Sum256(body)
	return asset{body: body, contentType: contentType, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
}

// DefaultTokenCookie is the cookie the console puts a subscriber's token
// in when Options.TokenCookie is empty. It is the hub's default
// (hub.DefaultTokenCookie).
const DefaultTokenCookie = "ssehub_token"

// cookieMeta is the element of index.html that tells the script the name
// of the token cookie; NewHandler rewrites its content.
const cookieMeta = `<meta name="ssehub-token-cookie" content="` + DefaultTokenCookie + `">`

// nodeMeta is the element of index.html that tells the script the name
// of the node that served the page; NewHandler fills in its content.
const nodeMeta = `<meta name="ssehub-node" content="">`

// Options configure the console. The zero value is the default.
type Options struct {
	// TokenCookie is the name of the cookie in which the page sends a
	// subscriber's token with its EventSource, which cannot set headers:
	// the hub's Options.TokenCookie. If empty, DefaultTokenCookie is used.
	TokenCookie string

	// Node names the hub node that serves the page, shown in its header:
	// behind a load balancer, it tells which node a browser reached. If
	// empty, no node is shown.
	Node string
}

// Handler returns NewHandler(nil).
func Handler() http.Handler { return NewHandler(nil) }

// NewHandler returns an http.Handler that serves the console page at "/"
// and its assets (console.js, console.css, favicon.svg) next to it. It
// answers GET and HEAD with Cache-Control: no-cache and an ETag, so a
// browser revalidates and gets 304 Not Modified until the binary changes;
// another method is 405 and any other path a 404 that names the path,
// both as application/problem+json. Mounted at "/", it is the catch-all of
// its mux, so its 404 does not speak of the console. The handler is safe
// for concurrent use and holds no state; opts may be nil.
func NewHandler(opts *Options) http.Handler {
	var o Options
	if opts != nil {
		o = *opts
	}
	assets := loadAssets()
	if (o.TokenCookie == "" || o.TokenCookie == DefaultTokenCookie) && o.Node == "" {
		return handler{assets: assets}
	}
	m := maps.Clone(assets)
	page := m["/"]
	body := page.body
	if o.TokenCookie != "" {
		meta := `<meta name="ssehub-token-cookie" content="` + html.EscapeString(o.TokenCookie) + `">`
		body = bytes.Replace(body, []byte(cookieMeta), []byte(meta), 1)
	}
	if o.Node != "" {
		meta := `<meta name="ssehub-node" content="` + html.EscapeString(o.Node) + `">`
		body = bytes.Replace(body, []byte(nodeMeta), []byte(meta), 1)
	}
	m["/"] = newAsset(body, page.contentType)
	return handler{assets: m}
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
		problem(w, http.StatusNotFound, fmt.Sprintf("nothing is served at %q", r.URL.Path))
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
