package web_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/ssehub/ssehub/internal/web"
)

func get(t *testing.T, h http.Handler, method, path string, header http.Header) *http.Response {
	t.Helper()
	r := httptest.NewRequest(method, path, nil)
	for k, v := range header {
		r.Header[k] = v
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Result()
}

func body(t *testing.T, res *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return string(b)
}

func TestHandler(t *testing.T) {
	h := web.Handler()
	tests := []struct {
		method, path string
		status       int
		contentType  string
		bodyHas      string
	}{
		{"GET", "/", 200, "text/html; charset=utf-8", `<script src="console.js" defer></script>`},
		{"HEAD", "/", 200, "text/html; charset=utf-8", ""},
		{"GET", "/console.js", 200, "text/javascript; charset=utf-8", "new EventSource("},
		{"GET", "/console.css", 200, "text/css; charset=utf-8", "prefers-color-scheme: dark"},
		{"GET", "/favicon.svg", 200, "image/svg+xml", "<svg"},
		{"GET", "/index.html", 404, "application/problem+json", `"status":404`},
		{"GET", "/nope", 404, "application/problem+json", `"title":"Not Found"`},
		{"GET", "/console.js/", 404, "application/problem+json", ""},
		{"GET", "/static/console.js", 404, "application/problem+json", ""},
		{"GET", "/events", 404, "application/problem+json", ""},
		{"POST", "/", 405, "application/problem+json", `"status":405`},
		{"PUT", "/console.css", 405, "application/problem+json", `"title":"Method Not Allowed"`},
		{"DELETE", "/", 405, "application/problem+json", ""},
		{"OPTIONS", "/", 405, "application/problem+json", ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			res := get(t, h, tt.method, tt.path, nil)
			b := body(t, res)
			if res.StatusCode != tt.status {
				t.Errorf("status %d; want %d", res.StatusCode, tt.status)
			}
			if got := res.Header.Get("Content-Type"); got != tt.contentType {
				t.Errorf("Content-Type %q; want %q", got, tt.contentType)
			}
			if got := res.Header.Get("Cache-Control"); got != "no-cache" {
				t.Errorf("Cache-Control %q; want no-cache", got)
			}
			if got := res.Header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options %q; want nosniff", got)
			}
			if res.Header.Get("Content-Security-Policy") == "" {
				t.Error("no Content-Security-Policy")
			}
			if !strings.Contains(b, tt.bodyHas) {
				t.Errorf("body %.200q does not contain %q", b, tt.bodyHas)
			}
			if tt.method == "HEAD" && b != "" {
				t.Errorf("HEAD body %.100q; want none", b)
			}
			if tt.status == 405 {
				if got := res.Header.Get("Allow"); got != "GET, HEAD" {
					t.Errorf("Allow %q; want %q", got, "GET, HEAD")
				}
			}
			if tt.status >= 400 {
				var p struct {
					Type, Title, Detail string
					Status              int
				}
				if err := json.Unmarshal([]byte(b), &p); err != nil {
					t.Fatalf("problem body %q: %v", b, err)
				}
				if p.Status != tt.status || p.Title != http.StatusText(tt.status) || p.Type != "about:blank" || p.Detail == "" {
					t.Errorf("problem %+v; want status %d, title %q, type about:blank and a detail", p, tt.status, http.StatusText(tt.status))
				}
			}
		})
	}
}

func TestHandlerHeadMatchesGet(t *testing.T) {
	h := web.Handler()
	g := get(t, h, "GET", "/", nil)
	n := len(body(t, g))
	if got, want := g.Header.Get("Content-Length"), strconv.Itoa(n); got != want {
		t.Errorf("GET Content-Length %q; want %q", got, want)
	}
	hd := get(t, h, "HEAD", "/", nil)
	if got, want := hd.Header.Get("Content-Length"), strconv.Itoa(n); got != want {
		t.Errorf("HEAD Content-Length %q; want %q, as for GET", got, want)
	}
}

func TestHandlerRevalidates(t *testing.T) {
	h := web.Handler()
	for _, path := range []string{"/", "/console.js", "/console.css", "/favicon.svg"} {
		res := get(t, h, "GET", path, nil)
		etag := res.Header.Get("ETag")
		if etag == "" {
			t.Fatalf("GET %s: no ETag", path)
		}
		res = get(t, h, "GET", path, http.Header{"If-None-Match": {etag}})
		if res.StatusCode != http.StatusNotModified {
			t.Errorf("GET %s with If-None-Match %s: status %d; want 304", path, etag, res.StatusCode)
		}
		res = get(t, h, "GET", path, http.Header{"If-None-Match": {`"stale"`}})
		if res.StatusCode != http.StatusOK {
			t.Errorf("GET %s with a stale If-None-Match: status %d; want 200", path, res.StatusCode)
		}
	}
}

// TestContentSecurityPolicy checks that the policy forbids inline script and
// style, and anything from another origin.
func TestContentSecurityPolicy(t *testing.T) {
	res := get(t, web.Handler(), "GET", "/", nil)
	policy := map[string]string{}
	for d := range strings.SplitSeq(res.Header.Get("Content-Security-Policy"), ";") {
		name, value, _ := strings.Cut(strings.TrimSpace(d), " ")
		policy[name] = value
	}
	want := map[string]string{
		"default-src":     "'self'",
		"script-src":      "'self'",
		"style-src":       "'self'",
		"connect-src":     "'self'",
		"object-src":      "'none'",
		"base-uri":        "'none'",
		"frame-ancestors": "'none'",
	}
	for name, value := range want {
		if policy[name] != value {
			t.Errorf("Content-Security-Policy %s %q; want %q", name, policy[name], value)
		}
	}
	for name, value := range policy {
		if strings.Contains(value, "unsafe") || strings.Contains(value, "*") || strings.Contains(value, "http") {
			t.Errorf("Content-Security-Policy %s %q allows too much", name, value)
		}
	}
}

// TestPageHasNoInlineCode checks that the page keeps its code in files, as
// its Content-Security-Policy demands, and that every file it references is
// served, through a relative URL.
func TestPageHasNoInlineCode(t *testing.T) {
	h := web.Handler()
	page := body(t, get(t, h, "GET", "/", nil))
	for _, tag := range regexp.MustCompile(`<script[^>]*>\s*([^<]*)`).FindAllStringSubmatch(page, -1) {
		if !strings.Contains(tag[0], ` src="`) || tag[1] != "" {
			t.Errorf("the page has an inline script: %q", tag[0])
		}
	}
	for _, bad := range []*regexp.Regexp{
		regexp.MustCompile(`<style`),
		regexp.MustCompile(`\sstyle=`),
		regexp.MustCompile(`\son[a-z]+=`),
		regexp.MustCompile(`javascript:`),
	} {
		if m := bad.FindString(page); m != "" {
			t.Errorf("the page has inline code: %q", m)
		}
	}
	refs := regexp.MustCompile(`(?:src|href)="([^"]*)"`).FindAllStringSubmatch(page, -1)
	if len(refs) < 3 {
		t.Fatalf("the page references %d files; want the script, the style sheet and the icon", len(refs))
	}
	for _, m := range refs {
		ref := m[1]
		if strings.HasPrefix(ref, "/") || strings.Contains(ref, ":") {
			t.Errorf("the page references %q; want a relative URL, so it works behind any base path", ref)
			continue
		}
		if res := get(t, h, "GET", "/"+ref, nil); res.StatusCode != http.StatusOK {
			t.Errorf("the page references %q, which is %d", ref, res.StatusCode)
		}
	}
}

// TestScriptNeverParsesHTML is a tripwire: event data must reach the page
// as text only, so the script uses none of the DOM's HTML parsers.
func TestScriptNeverParsesHTML(t *testing.T) {
	js := body(t, get(t, web.Handler(), "GET", "/console.js", nil))
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "createContextualFragment", "DOMParser"} {
		if strings.Contains(js, bad) {
			t.Errorf("console.js uses %s; set textContent instead", bad)
		}
	}
	if !strings.Contains(js, `"events`) {
		t.Error(`console.js does not use the relative URL "events"`)
	}
}

func TestHandlerUnderPrefix(t *testing.T) {
	h := http.StripPrefix("/console", web.Handler())
	for path, want := range map[string]int{"/console/": 200, "/console/console.js": 200, "/console/x": 404} {
		if res := get(t, h, "GET", path, nil); res.StatusCode != want {
			t.Errorf("GET %s under StripPrefix: status %d; want %d", path, res.StatusCode, want)
		}
	}
}

// TestHandlerNotFound: the handler is the catch-all of the hub's mux, so
// its 404 names the path asked for and nothing else, not the console.
func TestHandlerNotFound(t *testing.T) {
	for _, path := range []string{"/api/events", "/events/x", "/v1/publish", "/index.html"} {
		b := body(t, get(t, web.Handler(), "GET", path, nil))
		var p struct{ Detail string }
		if err := json.Unmarshal([]byte(b), &p); err != nil {
			t.Fatalf("GET %s: problem body %q: %v", path, b, err)
		}
		if want := `nothing is served at ` + strconv.Quote(path); p.Detail != want {
			t.Errorf("GET %s: detail %q; want %q", path, p.Detail, want)
		}
	}
}

// TestNewHandlerNode checks that the page names the node that served it
// to its script, escaped for HTML, and names none by default.
func TestNewHandlerNode(t *testing.T) {
	tests := []struct {
		name string
		opts *web.Options
		want string
	}{
		{"nil options", nil, `<meta name="ssehub-node" content="">`},
		{"a node", &web.Options{Node: "a:8081"}, `<meta name="ssehub-node" content="a:8081">`},
		{"escaped", &web.Options{Node: `<b>"x"`}, `<meta name="ssehub-node" content="&lt;b&gt;&#34;x&#34;">`},
		{"with a cookie", &web.Options{Node: "n", TokenCookie: "tok"}, `<meta name="ssehub-node" content="n">`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page := body(t, get(t, web.NewHandler(tt.opts), "GET", "/", nil))
			if strings.Count(page, `name="ssehub-node"`) != 1 || !strings.Contains(page, tt.want) {
				t.Errorf("the page lacks %s, once", tt.want)
			}
			if tt.opts != nil && tt.opts.TokenCookie == "tok" && !strings.Contains(page, `<meta name="ssehub-token-cookie" content="tok">`) {
				t.Error("the page lost its token cookie's name")
			}
		})
	}
}

// TestNewHandlerTokenCookie checks that the page names the token cookie
// to its script: the default, or the one given, escaped for HTML.
func TestNewHandlerTokenCookie(t *testing.T) {
	tests := []struct {
		name string
		opts *web.Options
		want string
	}{
		{"nil options", nil, `<meta name="ssehub-token-cookie" content="ssehub_token">`},
		{"zero options", &web.Options{}, `<meta name="ssehub-token-cookie" content="ssehub_token">`},
		{"default", &web.Options{TokenCookie: web.DefaultTokenCookie}, `<meta name="ssehub-token-cookie" content="ssehub_token">`},
		{"other", &web.Options{TokenCookie: "tok"}, `<meta name="ssehub-token-cookie" content="tok">`},
		{"escaped", &web.Options{TokenCookie: `a&b'c`}, `<meta name="ssehub-token-cookie" content="a&amp;b&#39;c">`},
	}
	etags := map[string]string{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := get(t, web.NewHandler(tt.opts), "GET", "/", nil)
			page := body(t, res)
			if strings.Count(page, `name="ssehub-token-cookie"`) != 1 || !strings.Contains(page, tt.want) {
				t.Errorf("the page lacks %s, once", tt.want)
			}
			if got, want := res.Header.Get("Content-Length"), strconv.Itoa(len(page)); got != want {
				t.Errorf("Content-Length %s; want %s", got, want)
			}
			etag := res.Header.Get("ETag")
			if other, ok := etags[etag]; ok && other != tt.want {
				t.Errorf("ETag %s is also that of the page with %s; want one per page", etag, other)
			}
			etags[etag] = tt.want
		})
	}
}
