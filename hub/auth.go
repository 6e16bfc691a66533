package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"time"
)

// ErrInvalidToken is wrapped by the errors a TokenVerifier returns for a
// token it refuses (bad signature, expired, not yet valid, malformed
// claims). The hub answers such a request with 401 and never says more
// than the error's text to the client.
var ErrInvalidToken = errors.New("hub: invalid token")

// A Grant is what a verified token allows its bearer.
type Grant struct {
	// Subject names the bearer, for logs and per-token limits; it may be
	// empty.
	Subject string

	// Publish selects the topics the bearer may publish to: every topic
	// of an event must match one of them.
	Publish []Selector

	// Subscribe selects the topics whose private events the bearer may
	// receive. Public events need no grant.
	Subscribe []Selector

	// Expires is when the grant ends; the zero time means never. A
	// subscriber's stream is ended when its grant expires.
	Expires time.Time

	// Key identifies the token for per-token limits (for example a hash
	// of it, or its jti claim). If empty, Subject is used.
	Key string

	// Payload is what the token says of its bearer for others to see
	// (Mercure's mercure.payload claim), as JSON; nil if nothing. The
	// Mercure endpoint puts it in the subscription updates of the bearer's
	// subscriptions.
	Payload json.RawMessage
}

// A TokenVerifier checks a bearer token and returns what it grants. The
// hub calls it for every request that carries a token, from many
// goroutines at once.
//
// Verify returns an error wrapping ErrInvalidToken when it refuses the
// token, and another error when it cannot decide (a key set that cannot
// be fetched), which the hub answers with 503.
type TokenVerifier interface {
	Verify(ctx context.Context, token string) (*Grant, error)
}

// Where a token may come from, in the order the hub looks.
const (
	// DefaultTokenCookie is the cookie a browser's EventSource carries its
	// token in (EventSource cannot set headers; withCredentials makes it
	// send cookies across origins).
	DefaultTokenCookie = "ssehub_token"

	// tokenQueryParam is the query parameter a token may be given in, when
	// Options.TokenQuery allows it.
	tokenQueryParam = "access_token"
)

// AuthEventType is the type of the event the hub sends a subscriber just
// before it ends the stream because the subscriber's token expired. Its
// data is {"reason":"expired"}. It has no id, so the client's
// Last-Event-ID stays that of the last event it received, and its
// reconnection, with fresh credentials, resumes from there.
const AuthEventType = "ssehub-auth"

// errExpired ends a subscription whose grant has expired, once the
// AuthEventType event is written.
var errExpired = errors.New("hub: token expired")

// authFrame is the AuthEventType event, shared by every subscriber whose
// grant expires. Its position is past every record's, so that no floor
// drops it.
var authFrame = newFrame(math.MaxUint64, []byte("event: "+AuthEventType+"\ndata: {\"reason\":\"expired\"}\n\n"), true)

// errNoToken is a request's missing token, where one is needed.
var errNoToken = errors.New("a token is required")

// token returns the bearer token r carries, or "" for none. A
// subscription may carry it in the token cookie, or in the access_token
// query parameter when that is allowed; a publish only in the
// Authorization header (see Options.Tokens).
func (h *Hub) token(r *http.Request, subscribe bool) (string, error) {
	if tok, ok, err := bearerToken(r); ok {
		return tok, err
	}
	if !subscribe {
		return "", nil
	}
	if c, err := r.Cookie(h.opts.TokenCookie); err == nil && c.Value != "" {
		return c.Value, nil
	}
	if h.opts.TokenQuery {
		return r.URL.Query().Get(tokenQueryParam), nil
	}
	return "", nil
}

// bearerToken returns the token of r's Authorization header, and
// whether it has one; a header that is not "Bearer <token>" is an error
// wrapping ErrInvalidToken.
func bearerToken(r *http.Request) (tok string, ok bool, err error) {
	v := r.Header.Get("Authorization")
	if v == "" {
		return "", false, nil
	}
	scheme, tok, found := strings.Cut(v, " ")
	tok = strings.TrimSpace(tok)
	if !found || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return "", true, fmt.Errorf("%w: the Authorization header must be \"Bearer <token>\"", ErrInvalidToken)
	}
	return tok, true, nil
}

// authenticate returns the grant of r's token, or nil for a request
// without one, or when the hub is open (no Options.Tokens). When r must
// not go on, it answers r (401, or 503 when the token cannot be checked
// now) and reports false.
func (h *Hub) authenticate(w http.ResponseWriter, r *http.Request, subscribe bool) (*Grant, bool) {
	v := h.opts.PublisherTokens
	if subscribe {
		v = h.opts.SubscriberTokens
	}
	if v == nil { // and so is the other: New sets both or neither
		return nil, true
	}
	tok, err := h.token(r, subscribe)
	g, ok := h.verify(w, r, v, tok, err, subscribe)
	if !ok {
		h.m.refused.WithLabelValues(refusedToken).Inc()
	}
	return g, ok
}

// verify does the work of authenticate, for either endpoint: it checks
// tok, the token r carries ("" for none), with v, unless err (why the
// token cannot be read) is not nil.
func (h *Hub) verify(w http.ResponseWriter, r *http.Request, v TokenVerifier, tok string, err error, subscribe bool) (*Grant, bool) {
	if err == nil && tok == "" {
		if subscribe && !h.opts.NoAnonymous {
			return nil, true
		}
		err = errNoToken
	}
	var g *Grant
	if err == nil {
		g, err = v.Verify(r.Context(), tok)
		switch {
		case err != nil:
		case g == nil:
			err = fmt.Errorf("%w: it grants nothing", ErrInvalidToken)
		case subscribe && !g.Expires.IsZero() && !g.Expires.After(time.Now()):
			// Within the verifier's leeway, but a stream would end at
			// once, and its client reconnect at once, again and again.
			err = fmt.Errorf("%w: it has expired", ErrInvalidToken)
		}
	}
	switch {
	case err == nil:
		return g, true
	case errors.Is(err, errNoToken):
		h.logRefused(r, http.StatusUnauthorized, errNoToken.Error(), nil)
		w.Header().Set("WWW-Authenticate", `Bearer realm="ssehub"`)
		writeProblem(w, http.StatusUnauthorized, errNoToken.Error(), nil)
	case errors.Is(err, ErrInvalidToken):
		h.logRefused(r, http.StatusUnauthorized, trimPrefix(err), nil)
		w.Header().Set("WWW-Authenticate", `Bearer realm="ssehub", error="invalid_token"`)
		writeProblem(w, http.StatusUnauthorized, trimPrefix(err), nil)
	default:
		h.logger.Warn("token cannot be verified", slog.String("remote", h.remote(r)), "err", err)
		w.Header().Set("Retry-After", "5")
		writeProblem(w, http.StatusServiceUnavailable, "the token cannot be verified now", nil)
	}
	return nil, false
}

// logRefused logs, at info level, that r was refused with status for
// reason, with the client's address and, when r carried a valid token,
// the subject of its grant: never the token, nor anything of it but
// what the grant says.
func (h *Hub) logRefused(r *http.Request, status int, reason string, grant *Grant) {
	if !h.logger.Enabled(r.Context(), slog.LevelInfo) {
		return
	}
	msg := "publish refused"
	if r.Method != http.MethodPost {
		msg = "subscription refused"
	}
	attrs := []slog.Attr{
		slog.String("remote", h.remote(r)),
		slog.Int("status", status),
		slog.String("reason", reason),
	}
	if grant != nil && grant.Subject != "" {
		attrs = append(attrs, slog.String("subject", grant.Subject))
	}
	h.logger.LogAttrs(r.Context(), slog.LevelInfo, msg, attrs...)
}

// expire ends the subscription of s, whose grant has expired, as
// subscriber.expire says.
func (h *Hub) expire(s *subscriber) {
	if s.expire() {
		h.m.expired.Inc()
		h.logger.Info("subscription ending: token expired", slog.String("remote", s.remote))
	}
}

// expire is called when the subscriber's grant expires: it queues the
// AuthEventType event, after which nothing more is queued, and the
// subscription ends once it has been written (see take and the shard).
// It reports false, doing nothing, if the subscription has ended.
func (s *subscriber) expire() bool {
	s.mu.Lock()
	if s.end != nil || s.expiring {
		s.mu.Unlock()
		return false
	}
	s.expiring = true
	s.q = append(s.q, authFrame)
	sched := s.owner == ownerShard && !s.scheduled
	s.scheduled = s.scheduled || sched
	s.mu.Unlock()
	if sched {
		s.sh.schedule(s)
	} else {
		s.wake()
	}
	return true
}
