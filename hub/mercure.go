package hub

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ssehub/ssehub/ssehttp"
)

// MercurePath is where ServeHTTP serves the Mercure endpoint, the path
// draft-dunglas-mercure-07 fixes for a hub.
const MercurePath = "/.well-known/mercure"

// mercureCacheControl is the Cache-Control of a Mercure event stream,
// as the Mercure hub sends it.
const mercureCacheControl = "private, no-cache, no-store, must-revalidate, max-age=0"

// mercureTokenQuery is the query parameter a Mercure token may be in.
const mercureTokenQuery = "authorization"

// MercureHandler returns the handler of the Mercure endpoint, which
// ServeHTTP serves at MercurePath: GET subscribes and POST publishes, as
// draft-dunglas-mercure-07 says, on the same Log, fan-out and history as
// the native endpoint. It routes on the method alone, so it may be
// mounted anywhere, but Mercure clients look for it at MercurePath.
//
// # Differences from the native endpoint
//
//   - Topics are opaque strings (IRIs as a rule): any valid UTF-8
//     without control characters. Selectors are Mercure's: "*", the
//     topic itself, or an RFC 6570 URI template (see Selector).
//   - Tokens are read from the Authorization header, else the
//     "authorization" query parameter, else the cookie
//     MercureOptions.Cookie; the first source present is the only one
//     read. A cookie is accepted for publishing only from a page of the
//     hub's own origin. Their grants come from the mercure claim, checked
//     by MercureOptions' verifiers.
//   - A private event goes to a subscriber whose grant matches any topic
//     of the event, canonical or alternate, whichever topic its
//     subscription matched.
//   - The IDs the hub assigns are shown as IRIs: "urn:ssehub:42" is
//     position 42. Both forms resume a subscription on both endpoints.
//   - A subscription given a cursor (the Last-Event-ID header, which
//     wins, or the lastEventID query parameter; "earliest" asks for all
//     the history held) is answered with a Last-Event-ID header: the ID
//     of the position its replay starts after, which is the one asked
//     for when the hub holds it.
//   - A publish is a form (topic, repeatable, the first canonical; data;
//     private, which makes the event private by its presence, whatever
//     its value; id; type; retry) and is answered with the event's ID as
//     text/plain, without a line end.
func (h *Hub) MercureHandler() http.Handler { return http.HandlerFunc(h.serveMercure) }

func (h *Hub) serveMercure(w http.ResponseWriter, r *http.Request) {
	h.serveEndpoint(w, r, h.serveMercureSubscribe, h.serveMercurePublish)
}

// mercureToken returns the token r carries for the Mercure endpoint,
// from the first of its sources that is present, and whether it came
// from the cookie.
func (h *Hub) mercureToken(r *http.Request) (tok string, cookie bool, err error) {
	if tok, ok, err := bearerToken(r); ok {
		return tok, false, err
	}
	if q := r.URL.Query(); q.Has(mercureTokenQuery) {
		if tok := q.Get(mercureTokenQuery); tok != "" {
			return tok, false, nil
		}
		return "", false, fmt.Errorf("%w: the %s query parameter is empty", ErrInvalidToken, mercureTokenQuery)
	}
	if c, err := r.Cookie(h.opts.Mercure.Cookie); err == nil && c.Value != "" {
		return c.Value, true, nil
	}
	return "", false, nil
}

// errNoMercureKey refuses a Mercure token when the hub checks tokens but
// has no verifier for Mercure's.
var errNoMercureKey = fmt.Errorf("%w: this hub takes no Mercure tokens (no key is configured for them)", ErrInvalidToken)

// What a request to the Mercure endpoint does, which decides the
// verifier of its token and whether it needs one.
type mercureRole int

const (
	mercureSubscriber mercureRole = iota // may be anonymous
	mercurePublisher                     // needs a token, not from a cookie of another origin
	mercureReader                        // the subscriptions API: needs a subscriber's token
)

// mercureAuthenticate returns the grant of the token r carries on the
// Mercure endpoint in role, or nil for none when that is allowed: for a
// subscriber when anonymous subscribers are, and for anyone when the hub
// is open (no verifier at all). When r must not go on, it answers r and
// reports false.
func (h *Hub) mercureAuthenticate(w http.ResponseWriter, r *http.Request, role mercureRole) (*Grant, bool) {
	v := h.opts.Mercure.SubscriberTokens
	if role == mercurePublisher {
		v = h.opts.Mercure.PublisherTokens
	}
	if v == nil && h.opts.PublisherTokens == nil { // the hub is open
		return nil, true
	}
	tok, cookie, err := h.mercureToken(r)
	switch {
	case err != nil:
	case tok == "" && role == mercureReader:
		h.m.refused.WithLabelValues(refusedToken).Inc()
		w.Header().Set("WWW-Authenticate", `Bearer realm="ssehub"`)
		writeProblem(w, http.StatusUnauthorized, "the subscriptions API needs a token", nil)
		return nil, false
	case cookie && role == mercurePublisher && !sameOriginRequest(r):
		// A cookie rides along on any request a page makes: a publish
		// must come from the hub's own pages to use one.
		err = fmt.Errorf("%w: a token in a cookie is accepted for publishing only from the hub's own origin; send it in the Authorization header", ErrInvalidToken)
	case tok != "" && v == nil:
		err = errNoMercureKey
	}
	if v == nil {
		v = refuseAll{errNoMercureKey}
	}
	g, ok := h.verify(w, r, v, tok, err, role != mercurePublisher)
	if !ok {
		h.m.refused.WithLabelValues(refusedToken).Inc()
	}
	return g, ok
}

// refuseAll is the TokenVerifier of a role no key is configured for:
// it refuses every token.
type refuseAll struct{ err error }

func (v refuseAll) Verify(ctx context.Context, token string) (*Grant, error) { return nil, v.err }

// sameOriginRequest reports whether r comes from a page of the hub's own
// origin, by its Origin header or, without one, its Referer.
func sameOriginRequest(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		u, err := url.Parse(r.Header.Get("Referer"))
		if err != nil || u.Host == "" {
			return false
		}
		origin = u.Scheme + "://" + u.Host
	}
	return sameOrigin(origin, r)
}

// serveMercureSubscribe serves GET /.well-known/mercure.
func (h *Hub) serveMercureSubscribe(w http.ResponseWriter, r *http.Request) {
	grant, ok := h.mercureAuthenticate(w, r, mercureSubscriber)
	if !ok {
		return
	}
	sels, err := h.lim.parseSelectors(mercureDialect, r.URL.Query()["topic"])
	if err != nil {
		writeProblem(w, http.StatusBadRequest, err.Error(), nil)
		return
	}
	s := newSubscriber(mercureDialect, sels, h.opts.QueueSize)
	s.grant = grant
	if h.active != nil {
		s.subscriberID = newSubscriberID()
	}
	hd := w.Header()
	hd.Set("Cache-Control", mercureCacheControl)
	hd.Set("X-Accel-Buffering", "no")
	h.subscribe(w, r, s, ssehttp.LastEventID(r))
}

// mercureFields are the fields of a Mercure publish form.
var mercureFields = []string{"topic", "data", "private", "id", "type", "retry"}

// serveMercurePublish serves POST /.well-known/mercure.
func (h *Hub) serveMercurePublish(w http.ResponseWriter, r *http.Request) {
	grant, ok := h.mercureAuthenticate(w, r, mercurePublisher)
	if !ok {
		h.m.publishes.WithLabelValues(outcomeDenied).Inc()
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != ctForm {
		h.publishFailed(w, outcomeUnsupported, http.StatusUnsupportedMediaType, "Content-Type must be "+ctForm, nil)
		return
	}
	body, ok := h.readBody(w, r)
	if !ok {
		return
	}
	rec, status, err := h.parseMercureForm(body)
	if err != nil {
		outcome := outcomeInvalid
		switch status {
		case http.StatusRequestEntityTooLarge:
			outcome = outcomeTooLarge
		case http.StatusForbidden:
			outcome = outcomeDenied
		}
		h.publishFailed(w, outcome, status, err.Error(), nil)
		return
	}
	recs := []Record{rec}
	if err := h.publish(r.Context(), grant, recs); err != nil {
		h.publishRefused(w, r, grant, err)
		return
	}
	h.logPublished(r, recs)
	out := mercureDialect.showID(recs[0].ID)
	hd := w.Header()
	hd.Set("Content-Type", "text/plain; charset=utf-8")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Cache-Control", "no-store")
	hd.Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(out))
}

// checkMercure checks what the Mercure endpoint asks of a record beyond
// limits.check: no topic inside /.well-known/mercure, whose updates are
// the hub's own (403), and no ID beginning with "#" (400).
func checkMercure(rec *Record) *publishError {
	for _, t := range rec.Topics {
		if strings.Contains(t, MercurePath) {
			return &publishError{kind: ErrForbidden, status: http.StatusForbidden, outcome: outcomeDenied,
				detail: fmt.Sprintf("topic %.64q: topics inside %s are the hub's own", t, MercurePath)}
		}
	}
	if strings.HasPrefix(rec.ID, "#") {
		return &publishError{kind: ErrInvalidEvent, status: http.StatusBadRequest, outcome: outcomeInvalid,
			detail: fmt.Sprintf("id %.64q: an id must not begin with #", rec.ID)}
	}
	return nil
}

// parseMercureForm parses and checks a Mercure publish form. On error,
// it returns the status to answer with.
func (h *Hub) parseMercureForm(body []byte) (Record, int, error) {
	vals, err := url.ParseQuery(string(body))
	if err != nil {
		return Record{}, http.StatusBadRequest, errors.New("the form cannot be parsed")
	}
	for name := range vals {
		if !slices.Contains(mercureFields, name) {
			return Record{}, http.StatusBadRequest, fmt.Errorf("unknown field %.64q: the fields are %s", name, strings.Join(mercureFields, ", "))
		}
	}
	rec := Record{Topics: vals["topic"], Private: vals.Has("private")}
	for _, f := range []struct {
		name string
		dst  *string
	}{{"data", &rec.Data}, {"type", &rec.Type}, {"id", &rec.ID}} {
		if *f.dst, err = single(vals, f.name); err != nil {
			return Record{}, http.StatusBadRequest, err
		}
	}
	if err := checkMercure(&rec); err != nil {
		return Record{}, err.status, errors.New(err.detail)
	}
	retry, err := single(vals, "retry")
	if err != nil {
		return Record{}, http.StatusBadRequest, err
	}
	if retry != "" {
		ms, err := strconv.ParseUint(retry, 10, 64)
		if err != nil || !allDigits(retry) || ms > maxRetryMS {
			return Record{}, http.StatusBadRequest, retryError()
		}
		rec.Retry = time.Duration(ms) * time.Millisecond
	}
	if err := h.lim.check(mercureDialect, &rec, false); err != nil {
		if ie, ok := errors.AsType[*inputError](err); ok && ie.tooLarge {
			return Record{}, http.StatusRequestEntityTooLarge, err
		}
		return Record{}, http.StatusBadRequest, err
	}
	return rec, 0, nil
}
