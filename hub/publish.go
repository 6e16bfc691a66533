package hub

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ssehub/ssehub/sse"
)

// Content types a publish request may have.
const (
	ctForm   = "application/x-www-form-urlencoded"
	ctJSON   = "application/json"
	ctNDJSON = "application/x-ndjson"
	ctBinary = "application/octet-stream"
)

// An inputError is a publish request's bad input, answered with 400.
type inputError struct {
	line     int // 1-based line of an NDJSON body; 0 otherwise
	msg      string
	tooLarge bool // answered with 413, not 400
}

func (e *inputError) Error() string {
	if e.line > 0 {
		return fmt.Sprintf("line %d: %s", e.line, e.msg)
	}
	return e.msg
}

func badInput(format string, args ...any) *inputError {
	return &inputError{msg: fmt.Sprintf(format, args...)}
}

// servePublish serves POST /events: it parses and checks the events,
// appends them to the Log as one batch and, once that has returned,
// answers 200 with their IDs, each on a line of its own.
func (h *Hub) servePublish(w http.ResponseWriter, r *http.Request) {
	// The answer's form depends on Accept, whatever the outcome.
	w.Header().Add("Vary", "Accept")
	grant, ok := h.authenticate(w, r, false)
	if !ok {
		h.m.publishes.WithLabelValues(outcomeDenied).Inc()
		return
	}
	var parse func(*limits, []byte) ([]Record, error)
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch mt {
	case ctForm:
		parse = parseForm
	case ctJSON:
		parse = parseJSON
	case ctNDJSON:
		parse = parseNDJSON
	case ctBinary:
		query := r.URL.RawQuery
		parse = func(l *limits, body []byte) ([]Record, error) { return parseBinary(l, query, body) }
	default:
		h.publishFailed(w, outcomeUnsupported, http.StatusUnsupportedMediaType,
			"Content-Type must be "+ctForm+", "+ctJSON+", "+ctNDJSON+" or "+ctBinary, nil)
		return
	}

	if name, ok := queryParam(r.URL.RawQuery); ok && mt != ctBinary {
		// A field given in the URL would be ignored: private=on there
		// would leave the event public.
		h.publishFailed(w, outcomeInvalid, http.StatusBadRequest,
			fmt.Sprintf("unknown query parameter %.64q: a publish takes its fields in the body", name), nil)
		return
	}

	body, ok := h.readBody(w, r)
	if !ok {
		return
	}
	recs, err := parse(&h.lim, body)
	if err != nil {
		p := new(problem)
		status := http.StatusBadRequest
		outcome := outcomeInvalid
		if ie, ok := errors.AsType[*inputError](err); ok {
			p.Line = ie.line
			if ie.tooLarge {
				status, outcome = http.StatusRequestEntityTooLarge, outcomeTooLarge
			}
		}
		h.publishFailed(w, outcome, status, err.Error(), p)
		return
	}
	if err := h.publish(r.Context(), grant, recs); err != nil {
		h.publishRefused(w, r, grant, err)
		return
	}
	h.logPublished(r, recs)

	var out []byte
	hd := w.Header()
	if prefersJSON(r.Header.Values("Accept")) {
		ids := make([]string, len(recs))
		for i := range recs {
			ids[i] = recs[i].ID
		}
		out, _ = json.Marshal(publishReply{IDs: ids}) // strings only: cannot fail
		out = append(out, '\n')
		hd.Set("Content-Type", ctJSON)
	} else {
		out = make([]byte, 0, 24*len(recs))
		for i := range recs {
			out = append(out, recs[i].ID...)
			out = append(out, '\n')
		}
		hd.Set("Content-Type", "text/plain; charset=utf-8")
	}
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Cache-Control", "no-store")
	hd.Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
}

// A publishReply is the JSON answer to a publish: the IDs of its events,
// in order.
type publishReply struct {
	IDs []string `json:"ids"`
}

// maxLoggedIDs is the most IDs the line logged for a publish lists; a
// larger batch is logged with its first and last.
const maxLoggedIDs = 8

// logPublished logs, at debug level, that recs were published by the
// client of r.
func (h *Hub) logPublished(r *http.Request, recs []Record) {
	if !h.logger.Enabled(r.Context(), slog.LevelDebug) {
		return
	}
	topics := make(map[string]struct{}, len(recs[0].Topics))
	for i := range recs {
		for _, t := range recs[i].Topics {
			topics[t] = struct{}{}
		}
	}
	attrs := []slog.Attr{
		slog.Int("events", len(recs)),
		slog.Int("topics", len(topics)),
		slog.String("topic", recs[0].Topics[0]),
	}
	if len(recs) <= maxLoggedIDs {
		ids := make([]string, len(recs))
		for i := range recs {
			ids[i] = recs[i].ID
		}
		attrs = append(attrs, slog.Any("ids", ids))
	} else {
		attrs = append(attrs, slog.String("first_id", recs[0].ID), slog.String("last_id", recs[len(recs)-1].ID))
	}
	attrs = append(attrs, slog.String("remote", h.remote(r)))
	h.logger.LogAttrs(r.Context(), slog.LevelDebug, "published", attrs...)
}

// prefersJSON reports whether the Accept header fields accept prefer
// application/json to text/plain, the default answer to a publish: it
// does when application/json gets a higher quality value than
// text/plain. Each gets the q of the most specific media range that
// matches it (type/subtype, then type/*, then */*), 0 if none does, as
// RFC 9110 section 12.5.1 says; parameters other than q are ignored,
// and so is an element with an invalid q. A tie, no Accept, or an
// Accept that allows neither gives text/plain.
func prefersJSON(accept []string) bool {
	if len(accept) == 0 {
		return false
	}
	var text, js acceptMatch
	for _, field := range accept {
		for elem := range strings.SplitSeq(field, ",") {
			mr, params, _ := strings.Cut(elem, ";")
			mr = strings.ToLower(strings.TrimSpace(mr))
			typ, sub, ok := strings.Cut(mr, "/")
			if !ok {
				continue
			}
			q, ok := qValue(params)
			if !ok {
				continue
			}
			text.offer(typ, sub, "text", "plain", q)
			js.offer(typ, sub, "application", "json", q)
		}
	}
	return js.q > text.q
}

// An acceptMatch is the most specific media range of an Accept header
// seen so far that matches a media type, and its quality value.
type acceptMatch struct {
	specificity int // 0 none, 1 */*, 2 type/*, 3 type/subtype
	q           float64
}

// offer takes the media range typ/sub, with quality q, into account for
// the media type wantType/wantSub.
func (m *acceptMatch) offer(typ, sub, wantType, wantSub string, q float64) {
	spec := 0
	switch {
	case typ == wantType && sub == wantSub:
		spec = 3
	case typ == wantType && sub == "*":
		spec = 2
	case typ == "*" && sub == "*":
		spec = 1
	}
	if spec > m.specificity {
		m.specificity, m.q = spec, q
	}
}

// qValue returns the q parameter of an Accept element's parameters
// (what follows its media range), 1 when there is none, and false when
// it is not a number from 0 to 1 with at most three decimals.
func qValue(params string) (float64, bool) {
	for p := range strings.SplitSeq(params, ";") {
		name, v, _ := strings.Cut(p, "=")
		if !strings.EqualFold(strings.TrimSpace(name), "q") {
			continue
		}
		v = strings.TrimSpace(v)
		whole, frac, _ := strings.Cut(v, ".")
		if (whole != "0" && whole != "1") || len(frac) > 3 || (frac != "" && !allDigits(frac)) {
			return 0, false
		}
		q, err := strconv.ParseFloat(v, 64)
		if err != nil || q > 1 {
			return 0, false
		}
		return q, true
	}
	return 1, true
}

// readBody reads r's body, at most MaxBodyBytes of it within the body
// timeout. If it cannot, it answers r and reports false.
func (h *Hub) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if d := h.lim.bodyTimeout; d > 0 {
		rc := http.NewResponseController(w)
		if rc.SetReadDeadline(time.Now().Add(d)) == nil {
			defer rc.SetReadDeadline(time.Time{})
		}
	}
	var body bytes.Buffer
	if n := r.ContentLength; n > 0 && n <= h.opts.MaxBodyBytes {
		body.Grow(int(n) + 1)
	}
	_, err := body.ReadFrom(http.MaxBytesReader(w, r.Body, h.opts.MaxBodyBytes))
	if err == nil {
		return body.Bytes(), true
	}
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		h.publishFailed(w, outcomeTooLarge, http.StatusRequestEntityTooLarge,
			fmt.Sprintf("the body exceeds %d bytes", h.opts.MaxBodyBytes), nil)
		return nil, false
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		w.Header().Set("Connection", "close")
		h.publishFailed(w, outcomeTimeout, http.StatusRequestTimeout,
			fmt.Sprintf("the body did not arrive within %v", h.lim.bodyTimeout), nil)
		return nil, false
	}
	h.publishFailed(w, outcomeInvalid, http.StatusBadRequest, "cannot read the body", nil)
	return nil, false
}

// publish is what every publish comes to, from either endpoint or from
// Publish: it checks that grant, when not nil, allows publishing recs
// (each topic of each record must match one of its publish selectors,
// and the token's rate must allow this many events), that no two records
// share an ID, and appends recs to the Log as one batch, bounded by
// Options.StoreTimeout. recs have passed limits.check. On success, each
// record holds its ID; otherwise the error is a *publishError.
func (h *Hub) publish(ctx context.Context, grant *Grant, recs []Record) error {
	if grant != nil {
		if err := h.authorize(grant, recs); err != nil {
			return err
		}
	}
	if id, ok := repeatedID(recs); ok {
		return &publishError{kind: ErrDuplicateID, status: http.StatusConflict, outcome: outcomeDuplicate,
			detail: fmt.Sprintf("event id %q appears twice in the batch", id)}
	}
	t0 := time.Now()
	actx, cancel := context.WithTimeout(ctx, h.opts.StoreTimeout)
	err := h.log.Append(actx, recs)
	cancel()
	h.m.observeStore(opAppend, t0, err)
	switch {
	case errors.Is(err, ErrDuplicateID):
		detail := "an event id of the batch is already in the log"
		if len(recs) == 1 {
			detail = fmt.Sprintf("event id %q is already in the log", recs[0].ID)
		}
		return &publishError{kind: ErrDuplicateID, status: http.StatusConflict, outcome: outcomeDuplicate, detail: detail}
	case err != nil:
		// The batch may or may not have been appended (a backend that
		// timed out may have stored it): the publisher retries, and an
		// event ID of its own tells it which (409 on the retry).
		h.logger.Warn("publish failed: append", "events", len(recs), "err", err)
		return &publishError{kind: ErrUnavailable, cause: err, status: http.StatusServiceUnavailable, outcome: outcomeUnavailable,
			detail: "the log is unavailable; retry later", retryAfter: h.retryAfter()}
	}
	h.m.appended.Add(float64(len(recs)))
	h.m.publishes.WithLabelValues(outcomeOK).Inc()
	return nil
}

// authorize reports whether grant allows publishing recs: each topic of
// each record must match one of its publish selectors (403 otherwise),
// and the token's rate must allow this many events (429 otherwise, or
// 413 for a batch larger than it may ever publish at once).
func (h *Hub) authorize(grant *Grant, recs []Record) error {
	for i := range recs {
		for _, t := range recs[i].Topics {
			if !MatchAny(grant.Publish, []string{t}) {
				return &publishError{kind: ErrForbidden, status: http.StatusForbidden, outcome: outcomeDenied,
					detail: fmt.Sprintf("the token may not publish to topic %q", t)}
			}
		}
	}
	key := grant.Key
	if key == "" {
		key = grant.Subject
	}
	wait, ok := h.limiters.reserve(key, len(recs), time.Now())
	switch {
	case !ok:
		return &publishError{kind: ErrRateLimited, status: http.StatusRequestEntityTooLarge, outcome: outcomeTooLarge,
			detail: fmt.Sprintf("a batch may hold at most %d events for one token", h.limiters.burst)}
	case wait > 0:
		return &publishError{kind: ErrRateLimited, status: http.StatusTooManyRequests, outcome: outcomeLimited,
			detail:     fmt.Sprintf("the token may publish %g events a second", float64(h.limiters.rate)),
			retryAfter: strconv.Itoa(int(math.Ceil(wait.Seconds())))}
	}
	return nil
}

// publishRefused answers a publish request that publish refused with
// err, a *publishError, and counts and logs it.
func (h *Hub) publishRefused(w http.ResponseWriter, r *http.Request, grant *Grant, err error) {
	pe, ok := errors.AsType[*publishError](err)
	if !ok { // cannot happen: publish returns only those
		pe = &publishError{status: http.StatusInternalServerError, outcome: outcomeUnavailable, detail: "cannot publish"}
	}
	switch pe.status {
	case http.StatusForbidden:
		w.Header().Set("WWW-Authenticate", `Bearer realm="ssehub", error="insufficient_scope"`)
		h.logRefused(r, pe.status, pe.detail, grant)
	case http.StatusTooManyRequests:
		h.logRefused(r, pe.status, pe.detail, grant)
	}
	if pe.retryAfter != "" {
		w.Header().Set("Retry-After", pe.retryAfter)
	}
	h.publishFailed(w, pe.outcome, pe.status, pe.detail, &problem{Line: pe.line})
}

// Errors of Publish, each wrapped by the *publishError it returns; the
// HTTP endpoints answer them with the status in parentheses. A duplicate
// event ID is ErrDuplicateID (409).
var (
	// ErrInvalidEvent: an event is not one that can be published (400,
	// or 413 when it is too large).
	ErrInvalidEvent = errors.New("hub: invalid event")
	// ErrForbidden: the grant does not allow a topic of the events (403).
	ErrForbidden = errors.New("hub: not allowed")
	// ErrRateLimited: the grant's publish rate does not allow this many
	// events now (429), or ever at once (413).
	ErrRateLimited = errors.New("hub: publish rate exceeded")
	// ErrUnavailable: the Log failed or timed out (503); the events may
	// or may not have been appended.
	ErrUnavailable = errors.New("hub: log unavailable")
)

// A publishError is why a publish was refused, with the answer the HTTP
// endpoints give it.
type publishError struct {
	kind       error // ErrInvalidEvent, ErrForbidden, ErrRateLimited, ErrUnavailable or ErrDuplicateID
	cause      error // what failed, for ErrUnavailable; nil otherwise
	status     int
	outcome    string // for ssehub_publish_requests_total
	detail     string // safe to show the publisher
	retryAfter string // the Retry-After header, if any
	line       int    // the 1-based line of an NDJSON body at fault; 0 otherwise
}

func (e *publishError) Error() string { return "hub: " + e.detail }

func (e *publishError) Unwrap() []error {
	if e.cause != nil {
		return []error{e.kind, e.cause}
	}
	return []error{e.kind}
}

// retryAfter is the Retry-After value of a 503 or 429 answer that has no
// better one: the reconnection delay sent to subscribers, at least a
// second.
func (h *Hub) retryAfter() string {
	return strconv.Itoa(max(1, int(h.opts.Retry/time.Second)))
}

// publishFailed counts a refused publish request and answers it.
func (h *Hub) publishFailed(w http.ResponseWriter, outcome string, status int, detail string, p *problem) {
	h.m.publishes.WithLabelValues(outcome).Inc()
	writeProblem(w, status, detail, p)
}

// repeatedID returns an ID given to two events of recs.
func repeatedID(recs []Record) (string, bool) {
	if len(recs) < 2 {
		return "", false
	}
	seen := make(map[string]bool, len(recs))
	for i := range recs {
		id := recs[i].ID
		if id == "" {
			continue
		}
		if seen[id] {
			return id, true
		}
		seen[id] = true
	}
	return "", false
}

// formFields are the names of a form-encoded publish body's fields.
var formFields = []string{"topic", "data", "type", "id", "retry", "private"}

// parseForm parses a form-encoded publish body: topic (one or more),
// data, type, id, retry (milliseconds) and private (see parsePrivate).
// Any other field is refused, so that a misspelt one (privat=on) is not
// ignored, leaving the event to mean something else.
func parseForm(l *limits, body []byte) ([]Record, error) {
	vals, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, badInput("the form cannot be parsed")
	}
	if names := unknownFormFields(string(body), formFields); len(names) > 0 {
		return nil, unknownField(names[0], formFields)
	}
	rec, err := formRecord(vals)
	if err != nil {
		return nil, err
	}
	if err := l.check(nativeDialect, &rec, false); err != nil {
		return nil, err
	}
	return []Record{rec}, nil
}

// formRecord returns the record of a form's fields, or of a binary
// publish's query parameters: topic (one or more), data, type, id, retry
// (milliseconds) and private (see parsePrivate), the others ignored.
func formRecord(vals url.Values) (Record, error) {
	rec := Record{Topics: vals["topic"]}
	var err error
	for _, f := range []struct {
		name string
		dst  *string
	}{{"data", &rec.Data}, {"type", &rec.Type}, {"id", &rec.ID}} {
		if *f.dst, err = single(vals, f.name); err != nil {
			return Record{}, err
		}
	}
	retry, err := single(vals, "retry")
	if err != nil {
		return Record{}, err
	}
	if retry != "" {
		ms, err := strconv.ParseUint(retry, 10, 64)
		if err != nil || !allDigits(retry) || ms > maxRetryMS {
			return Record{}, retryError()
		}
		rec.Retry = time.Duration(ms) * time.Millisecond
	}
	private, err := single(vals, "private")
	if err != nil {
		return Record{}, err
	}
	if vals.Has("private") {
		if rec.Private, err = parsePrivate(private); err != nil {
			return Record{}, err
		}
	}
	return rec, nil
}

// binaryParams are the names of a binary publish's query parameters.
var binaryParams = []string{"topic", "type", "id", "retry", "private", "media"}

// parseBinary parses a binary publish: an application/octet-stream
// body, the payload, with the event's other fields in the query string
// rawQuery, as a form's (see parseForm), and the payload's media type in
// media (sse.DefaultBinaryMediaType when absent). Unknown parameters are
// refused, data among them, and named.
func parseBinary(l *limits, rawQuery string, body []byte) ([]Record, error) {
	vals, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, badInput("the query string cannot be parsed")
	}
	if names := unknownFormFields(rawQuery, binaryParams); len(names) > 0 {
		quoted := make([]string, len(names))
		for i, n := range names {
			quoted[i] = fmt.Sprintf("%.64q", n)
		}
		s := ""
		if len(names) > 1 {
			s = "s"
		}
		return nil, badInput("unknown query parameter%s %s: a binary publish takes %s and %s in the query string, and the payload as the body",
			s, strings.Join(quoted, ", "), strings.Join(binaryParams[:len(binaryParams)-1], ", "), binaryParams[len(binaryParams)-1])
	}
	rec, err := formRecord(vals)
	if err != nil {
		return nil, err
	}
	media, err := single(vals, "media")
	if err != nil {
		return nil, err
	}
	if vals.Has("media") && media == "" {
		return nil, badInput("media is empty: give the payload's media type, or no media parameter for %s", sse.DefaultBinaryMediaType)
	}
	if err := l.setBinary(&rec, body, media); err != nil {
		return nil, err
	}
	if err := l.check(nativeDialect, &rec, true); err != nil {
		return nil, err
	}
	return []Record{rec}, nil
}

// setBinary makes rec a binary event carrying payload, of media type
// media (sse.DefaultBinaryMediaType if empty): it sets rec.Data to
// sse.BinaryData's, after checking the payload's size against
// maxBinaryBytes and before checking the data's against maxEventBytes.
func (l *limits) setBinary(rec *Record, payload []byte, media string) error {
	if len(payload) > l.maxBinaryBytes {
		return &inputError{tooLarge: true,
			msg: fmt.Sprintf("the binary payload, %d bytes, is larger than %d bytes", len(payload), l.maxBinaryBytes)}
	}
	if len(media) > maxFieldLen {
		return badInput("media is longer than %d bytes", maxFieldLen)
	}
	data, err := sse.BinaryData(payload, media)
	if err != nil {
		return badInput("media: %s", strings.TrimPrefix(err.Error(), "sse: "))
	}
	if len(data) > l.maxEventBytes {
		return &inputError{tooLarge: true,
			msg: fmt.Sprintf("the binary payload, %d bytes, is %d bytes encoded (base64, after gzip when smaller), larger than the %d bytes event data may be",
				len(payload), len(data), l.maxEventBytes)}
	}
	rec.Data = data
	return nil
}

// decodeBase64 decodes s, standard base64 (RFC 4648 section 4), padded
// or not: when s holds a "=", its padding must be right. Line breaks
// are ignored.
func decodeBase64(s string) ([]byte, error) {
	enc := base64.StdEncoding
	if !strings.Contains(s, "=") {
		enc = base64.RawStdEncoding
	}
	return enc.DecodeString(s)
}

// unknownFormFields returns the names of the fields of a form-encoded
// body (or a query string), one that url.ParseQuery accepts, that are
// not among known, each once, in order.
func unknownFormFields(body string, known []string) []string {
	var names []string
	for part := range strings.SplitSeq(body, "&") {
		if part == "" {
			continue
		}
		name, _, _ := strings.Cut(part, "=")
		if name, err := url.QueryUnescape(name); err == nil && !slices.Contains(known, name) && !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	return names
}

// queryParam returns the name of the first parameter of a URL's query,
// if it has one.
func queryParam(rawQuery string) (string, bool) {
	for part := range strings.SplitSeq(rawQuery, "&") {
		if part == "" {
			continue
		}
		name, _, _ := strings.Cut(part, "=")
		if n, err := url.QueryUnescape(name); err == nil {
			name = n
		}
		return name, true
	}
	return "", false
}

// unknownField is the error for a field name that is not one of known.
func unknownField(name string, known []string) error {
	return badInput("unknown field %.64q: the fields are %s and %s",
		name, strings.Join(known[:len(known)-1], ", "), known[len(known)-1])
}

// parsePrivate parses the value of a form's private field: on, true or
// 1 make the event private, off, false or 0 public, in any letter case.
// Anything else, the empty value too, is refused.
func parsePrivate(v string) (bool, error) {
	for _, on := range []string{"on", "true", "1"} {
		if strings.EqualFold(v, on) {
			return true, nil
		}
	}
	for _, off := range []string{"off", "false", "0"} {
		if strings.EqualFold(v, off) {
			return false, nil
		}
	}
	if v == "" {
		return false, badInput("private is empty: give on, true or 1 for a private event, off, false or 0 (or no private field) for a public one")
	}
	return false, badInput("private is %.32q: give on, true or 1 for a private event, off, false or 0 (or no private field) for a public one", v)
}

// single returns the one value of the form field name, or "" when it is
// absent, and an error when it is given more than once.
func single(vals url.Values, name string) (string, error) {
	switch v := vals[name]; len(v) {
	case 0:
		return "", nil
	case 1:
		return v[0], nil
	}
	return "", badInput("%s is given more than once", name)
}

func retryError() error {
	return badInput("retry must be a whole number of milliseconds from 0 to %d", maxRetryMS)
}

// jsonFields are the names of a JSON publish event's members.
var jsonFields = [...]string{"topic", "data", "type", "id", "retry", "private", "data_base64", "media"}

// A topicList is a JSON string or list of strings.
type topicList []string

func (t *topicList) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*t = topicList{s}
		return nil
	}
	var l []string
	if err := json.Unmarshal(b, &l); err != nil {
		return errors.New("topic must be a string or a list of strings")
	}
	*t = l
	return nil
}

// parseJSON parses a JSON publish body: one object.
func parseJSON(l *limits, body []byte) ([]Record, error) {
	rec, err := l.decodeEvent(body)
	if err != nil {
		return nil, err
	}
	return []Record{rec}, nil
}

// parseNDJSON parses an NDJSON publish body: one object a line. Blank
// lines are skipped. An error names the first bad line.
func parseNDJSON(l *limits, body []byte) ([]Record, error) {
	var recs []Record
	n := 0
	for len(body) > 0 {
		n++
		var line []byte
		line, body, _ = bytes.Cut(body, []byte{'\n'})
		if line = bytes.TrimSpace(line); len(line) == 0 {
			continue
		}
		rec, err := l.decodeEvent(line)
		if err != nil {
			ie, ok := errors.AsType[*inputError](err)
			if !ok {
				ie = &inputError{msg: err.Error()}
			}
			ie.line = n
			return nil, ie
		}
		recs = append(recs, rec)
	}
	if len(recs) == 0 {
		return nil, badInput("the body holds no event")
	}
	return recs, nil
}

// decodeEvent decodes and checks one JSON event object. It is stricter
// than encoding/json, so that no member is ever ignored or read as
// another: the names are those of jsonFields, exactly as written (an
// unknown name, or one in other letter case, is refused, not ignored);
// a name may appear once; the body must be valid UTF-8 (not patched
// with U+FFFD); private is true or false. A null data, type, id, retry,
// data_base64 or media is the same as leaving the member out.
// data_base64 makes the event a binary one (see parseBase64Members).
func (l *limits) decodeEvent(b []byte) (Record, error) {
	if !utf8.Valid(b) {
		return Record{}, badInput("the JSON is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	tok, err := dec.Token()
	if err != nil {
		return Record{}, jsonError(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return Record{}, badInput("the event must be a JSON object")
	}
	var (
		rec       Record
		seen      [len(jsonFields)]bool // by index in jsonFields
		v         json.RawMessage       // each member's value in turn
		b64, mtyp *string               // data_base64 and media; nil when absent or null
		data      bool                  // a data member, not null, is given
	)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return Record{}, jsonError(err)
		}
		name, _ := tok.(string) // an object's member name: always a string
		i := slices.Index(jsonFields[:], name)
		if i < 0 {
			return Record{}, unknownField(name, jsonFields[:])
		}
		if seen[i] {
			return Record{}, badInput("%s is given more than once", name)
		}
		seen[i] = true
		if err := dec.Decode(&v); err != nil {
			return Record{}, jsonError(err)
		}
		switch name {
		case "data":
			data = string(v) != "null"
		case "data_base64", "media":
			if string(v) == "null" {
				continue
			}
			var s string
			if v[0] != '"' || json.Unmarshal(v, &s) != nil {
				return Record{}, badInput("%s must be a string", name)
			}
			if name == "media" {
				mtyp = &s
			} else {
				b64 = &s
			}
			continue
		}
		if err := setMember(&rec, name, v); err != nil {
			return Record{}, err
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return Record{}, jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Record{}, badInput("invalid JSON: more than one value")
	}
	if err := l.parseBase64Members(&rec, data, b64, mtyp); err != nil {
		return Record{}, err
	}
	if err := l.check(nativeDialect, &rec, b64 != nil); err != nil {
		return Record{}, err
	}
	return rec, nil
}

// parseBase64Members makes rec a binary event when a JSON event has a
// data_base64 member, b64 (nil when absent or null): its payload is
// b64 decoded (see decodeBase64), of media type mtyp when not nil.
// data_base64 and a data member (data, not null) are refused together,
// and so is media without data_base64.
func (l *limits) parseBase64Members(rec *Record, data bool, b64, mtyp *string) error {
	switch {
	case b64 == nil && mtyp != nil:
		return badInput("media is given without data_base64: it is the media type of a binary payload")
	case b64 == nil:
		return nil
	case data:
		return badInput("data and data_base64 are both given: an event carries text (data) or bytes (data_base64), not both")
	case mtyp != nil && *mtyp == "":
		return badInput("media is empty: give the payload's media type, or no media member for %s", sse.DefaultBinaryMediaType)
	}
	payload, err := decodeBase64(*b64)
	if err != nil {
		return badInput("data_base64 is not standard base64 (A-Z, a-z, 0-9, + and /, padded with = or not): %s", strings.TrimPrefix(err.Error(), "illegal base64 data "))
	}
	media := ""
	if mtyp != nil {
		media = *mtyp
	}
	return l.setBinary(rec, payload, media)
}

// setMember sets the field of rec that the JSON member name stands for
// to the member's value v.
func setMember(rec *Record, name string, v json.RawMessage) error {
	null := string(v) == "null"
	switch name {
	case "topic":
		var t topicList
		if err := t.UnmarshalJSON(v); err != nil {
			return badInput("%s", err)
		}
		rec.Topics = t
	case "data":
		switch {
		case null:
		case v[0] == '"':
			if err := json.Unmarshal(v, &rec.Data); err != nil {
				return jsonError(err)
			}
		default: // any other JSON value: its compact text
			var c bytes.Buffer
			if err := json.Compact(&c, v); err != nil {
				return jsonError(err)
			}
			rec.Data = c.String()
		}
	case "type", "id":
		dst := &rec.Type
		if name == "id" {
			dst = &rec.ID
		}
		if null {
			return nil
		}
		if v[0] != '"' || json.Unmarshal(v, dst) != nil {
			return badInput("%s must be a string", name)
		}
	case "retry":
		var ms int64
		if null {
			return nil
		}
		if json.Unmarshal(v, &ms) != nil || ms < 0 || ms > maxRetryMS {
			return retryError()
		}
		rec.Retry = time.Duration(ms) * time.Millisecond
	case "private":
		switch string(v) {
		case "true":
			rec.Private = true
		case "false":
		default:
			return badInput("private must be true or false")
		}
	}
	return nil
}

// jsonError describes a JSON decoding error without Go type names.
func jsonError(err error) error {
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		return badInput("invalid JSON at byte %d", se.Offset)
	}
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		if te.Field == "" {
			return badInput("the event must be a JSON object")
		}
		return badInput("%s: wrong type (%s)", te.Field, te.Value)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return badInput("invalid JSON: unexpected end")
	}
	return badInput("invalid JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
}

// check checks a record to be published on an endpoint of dialect d,
// and drops repeated topics. It refuses what could break a stream or a
// client's Last-Event-ID: CR, LF or NUL in the ID or type, invalid
// UTF-8, and an ID of digits only or beginning with "urn:ssehub:", the
// forms of the IDs the Log assigns. binary says that rec.Data is the
// hub's own, from setBinary; otherwise data beginning with
// sse.BinaryPrefix is refused, so that no text event passes for a
// binary one.
func (l *limits) check(d *dialect, rec *Record, binary bool) error {
	switch {
	case len(rec.Topics) == 0:
		return badInput("topic is required")
	case len(rec.Topics) > l.maxTopics:
		return badInput("at most %d topics are allowed", l.maxTopics)
	case len(rec.Data) > l.maxEventBytes:
		return &inputError{msg: fmt.Sprintf("data is larger than %d bytes", l.maxEventBytes), tooLarge: true}
	}
	topics := rec.Topics[:0:0]
next:
	for _, t := range rec.Topics {
		if len(t) > l.maxSelectorBytes {
			return badInput("topic %.32q... is longer than %d bytes", t, l.maxSelectorBytes)
		}
		if !utf8.ValidString(t) {
			return badInput("topic %q is not valid UTF-8", t)
		}
		if err := d.validTopic(t); err != nil {
			return badInput("%s", trimPrefix(err))
		}
		for _, u := range topics {
			if u == t {
				continue next
			}
		}
		topics = append(topics, t)
	}
	rec.Topics = topics
	if err := checkField("id", rec.ID); err != nil {
		return err
	}
	if ReservedID(rec.ID) || strings.HasPrefix(rec.ID, positionIRI) {
		return badInput("id %q: ids made only of digits, or beginning with %s, are reserved for the ids the hub assigns", rec.ID, positionIRI)
	}
	if err := checkField("type", rec.Type); err != nil {
		return err
	}
	if reservedType(rec.Type) {
		return badInput("type %q is reserved: open and error are the EventSource's own events, and the types beginning with %s the hub's", rec.Type, reservedTypePrefix)
	}
	if !utf8.ValidString(rec.Data) {
		return badInput("data is not valid UTF-8")
	}
	if !binary && strings.HasPrefix(rec.Data, sse.BinaryPrefix) {
		return badInput("data may not begin with %q: that prefix is reserved, it marks binary events, which the hub builds from a binary publish (application/octet-stream, data_base64)", sse.BinaryPrefix)
	}
	return nil
}

// reservedTypePrefix begins the types of the hub's own events
// (GapEventType, AuthEventType), which no publisher may send.
const reservedTypePrefix = "ssehub-"

// reservedType reports whether a publisher may not give an event type
// t: open and error, which a browser cannot tell from its EventSource's
// own open and error events, and the types beginning with ssehub-, which
// would fake the hub's own. The comparison ignores letter case: a type
// that differs from them only in case does not fire their listeners,
// but a reader (a person, or code that folds case) would take it for
// them, and no publisher needs such a type.
func reservedType(t string) bool {
	return strings.EqualFold(t, "open") || strings.EqualFold(t, "error") ||
		len(t) >= len(reservedTypePrefix) && strings.EqualFold(t[:len(reservedTypePrefix)], reservedTypePrefix)
}

// checkField checks an event's ID or type.
func checkField(name, v string) error {
	switch {
	case strings.ContainsAny(v, "\r\n\x00"):
		return badInput("%s contains CR, LF or NUL", name)
	case len(v) > maxFieldLen:
		return badInput("%s is longer than %d bytes", name, maxFieldLen)
	case !utf8.ValidString(v):
		return badInput("%s is not valid UTF-8", name)
	}
	return nil
}

// trimPrefix returns err's text without the package prefix.
func trimPrefix(err error) string {
	return strings.TrimPrefix(err.Error(), "hub: ")
}
