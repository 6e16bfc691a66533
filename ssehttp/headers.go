package ssehttp

import (
	"net/http"
	"strings"
)

// LastEventID returns the ID of the last event the client received, which
// it sends when reconnecting: the Last-Event-ID header, or, when that is
// absent or empty, the lastEventID query parameter, for clients that cannot
// set headers. It returns "" when neither is present.
//
// The value comes from the client unchecked: it may be any string,
// including one no server ever sent.
func LastEventID(r *http.Request) string {
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		return id
	}
	if r.URL == nil || r.URL.RawQuery == "" {
		return ""
	}
	return r.URL.Query().Get("lastEventID")
}

// streamHeaders are the response headers setHeaders may change, so that
// NewStream can put them back when it fails before anything is sent.
var streamHeaders = [...]string{
	"Content-Type", "Cache-Control", "X-Accel-Buffering", "Connection",
	"Content-Encoding", "Content-Length", "Vary",
}

// setHeaders sets the event stream's response headers in h and reports
// whether the body is to be gzip-compressed.
func setHeaders(h http.Header, r *http.Request, wantGzip bool) (compress bool) {
	h.Set("Content-Type", "text/event-stream")
	h.Del("Content-Length")
	if h.Get("Cache-Control") == "" {
		h.Set("Cache-Control", "no-cache")
	}
	if h.Get("X-Accel-Buffering") == "" {
		h.Set("X-Accel-Buffering", "no")
	}
	if r.ProtoMajor == 1 && h.Get("Connection") == "" {
		h.Set("Connection", "keep-alive")
	}
	if !wantGzip {
		return false
	}
	if !hasToken(h.Values("Vary"), "Accept-Encoding") && !hasToken(h.Values("Vary"), "*") {
		h.Add("Vary", "Accept-Encoding")
	}
	if h.Get("Content-Encoding") != "" || !acceptsGzip(r.Header.Values("Accept-Encoding")) {
		return false
	}
	h.Set("Content-Encoding", "gzip")
	return true
}

// hasToken reports whether the comma-separated field values hold token,
// compared without regard to case.
func hasToken(values []string, token string) bool {
	for _, v := range values {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// acceptsGzip reports whether Accept-Encoding field values allow a gzip
// response (RFC 9110, section 12.5.3): the most favourable entry for gzip
// (or its alias x-gzip) has a non-zero qvalue, or, with no such entry, a "*"
// entry does. A malformed qvalue counts as zero, since an uncompressed
// response is always acceptable.
func acceptsGzip(values []string) bool {
	gzipQ, anyQ := -1, -1 // in thousandths; -1 when not listed
	for _, v := range values {
		for entry := range strings.SplitSeq(v, ",") {
			coding, params, _ := strings.Cut(entry, ";")
			coding = strings.TrimSpace(coding)
			switch {
			case strings.EqualFold(coding, "gzip"), strings.EqualFold(coding, "x-gzip"):
				gzipQ = max(gzipQ, qvalue(params))
			case coding == "*":
				anyQ = max(anyQ, qvalue(params))
			}
		}
	}
	if gzipQ >= 0 {
		return gzipQ > 0
	}
	return anyQ > 0
}

// qvalue returns the weight in the parameters of one Accept-Encoding
// entry, in thousandths: 1000 without a q parameter, 0 for a malformed one.
func qvalue(params string) int {
	for p := range strings.SplitSeq(params, ";") {
		name, value, _ := strings.Cut(p, "=")
		if strings.EqualFold(strings.TrimSpace(name), "q") {
			return parseQ(strings.TrimSpace(value))
		}
	}
	return 1000
}

// parseQ parses a qvalue: "0" or "1", optionally followed by a point and up
// to three digits, at most 1. It returns thousandths, or 0 when s is not a
// qvalue.
func parseQ(s string) int {
	if s == "" || s[0] != '0' && s[0] != '1' {
		return 0
	}
	q := int(s[0]-'0') * 1000
	rest := s[1:]
	if rest == "" {
		return q
	}
	if rest[0] != '.' || len(rest) > 4 {
		return 0
	}
	scale := 100
	for _, c := range []byte(rest[1:]) {
		if c < '0' || c > '9' {
			return 0
		}
		q += int(c-'0') * scale
		scale /= 10
	}
	if q > 1000 {
		return 0
	}
	return q
}
