package hub

import (
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// What a preflight may ask for.
const (
	corsMethods = "GET, POST"
	// corsHeaders are the request headers a page may send: a token, a
	// JSON or NDJSON body, and the headers an EventSource polyfill sets.
	corsHeaders = "Authorization, Content-Type, Last-Event-ID, Cache-Control"
)

// A corsPolicy says which origins' pages may use the hub.
type corsPolicy struct {
	origins map[string]bool // lower-case serialized origins
	maxAge  string          // Access-Control-Max-Age, in seconds
}

// newCORSPolicy returns the policy allowing origins. It panics on "*":
// the hub answers with credentials, which must never go to any origin.
func newCORSPolicy(origins []string, maxAge time.Duration) corsPolicy {
	p := corsPolicy{origins: make(map[string]bool, len(origins)), maxAge: strconv.Itoa(int(maxAge / time.Second))}
	for _, o := range origins {
		if o == "*" {
			panic("hub: \"*\" in Options.CORSOrigins: list the allowed origins")
		}
		p.origins[strings.ToLower(strings.TrimSuffix(o, "/"))] = true
	}
	return p
}

// checkOrigin applies the CORS policy to r. A request from an allowed
// origin gets the CORS headers, and a preflight from one is answered
// here. A request from any other origin that is not the hub's own is
// refused with 403, whatever it asks: a page elsewhere may neither read
// a stream, nor publish or subscribe with its visitor's cookie. A
// request without Origin (not from a browser's cross-origin fetch)
// passes. checkOrigin reports whether r is still to be served.
func (h *Hub) checkOrigin(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	p := &h.cors
	if !p.origins[strings.ToLower(origin)] {
		if sameOrigin(origin, r) {
			return true
		}
		h.m.refused.WithLabelValues(refusedOrigin).Inc()
		h.logger.Info("request refused", slog.String("remote", h.remote(r)), slog.Int("status", http.StatusForbidden),
			slog.String("reason", "origin not allowed"), slog.String("origin", origin))
		writeProblem(w, http.StatusForbidden, "origin "+strconv.Quote(origin)+" is not allowed", nil)
		return false
	}
	hd := w.Header()
	hd.Add("Vary", "Origin")
	hd.Set("Access-Control-Allow-Origin", origin)
	hd.Set("Access-Control-Allow-Credentials", "true")
	if r.Method != http.MethodOptions || r.Header.Get("Access-Control-Request-Method") == "" {
		return true
	}
	// A preflight.
	hd.Add("Vary", "Access-Control-Request-Method")
	hd.Add("Vary", "Access-Control-Request-Headers")
	m := r.Header.Get("Access-Control-Request-Method")
	if m != http.MethodGet && m != http.MethodPost {
		hd.Del("Access-Control-Allow-Origin")
		hd.Del("Access-Control-Allow-Credentials")
		writeProblem(w, http.StatusForbidden, "method "+strconv.Quote(m)+" is not allowed", nil)
		return false
	}
	hd.Set("Access-Control-Allow-Methods", corsMethods)
	hd.Set("Access-Control-Allow-Headers", corsHeaders)
	hd.Set("Access-Control-Max-Age", p.maxAge)
	w.WriteHeader(http.StatusNoContent)
	return false
}

// sameOrigin reports whether origin is the hub's own, as r reached it:
// its host (and port) is r's Host. The scheme is not compared, since a
// proxy may have ended TLS before the hub.
func sameOrigin(origin string, r *http.Request) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || r.Host == "" {
		return false
	}
	return strings.EqualFold(u.Host, r.Host)
}
