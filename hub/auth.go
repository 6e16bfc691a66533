package hub

import (
	"context"
	"errors"
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
