package jwtauth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"

	"github.com/ssehub/ssehub/hub"
)

// ErrKeysUnavailable is wrapped by the error Verify returns when it cannot
// decide because it has no key to check the token with: its JWKS URL has
// not answered with any key yet. It is not the token's fault, so it does
// not wrap hub.ErrInvalidToken, and the hub answers 503.
var ErrKeysUnavailable = errors.New("jwtauth: signing keys unavailable")

// DefaultLeeway is the clock skew allowed on exp, nbf and iat when
// Config.Leeway is zero.
const DefaultLeeway = 30 * time.Second

// JWKS timing. A key set is fetched at New, then every jwksRefresh; a
// token whose kid is not in the set fetches it again at once, at most
// once per jwksUnknownKID, so that a rotated-in key is picked up without
// waiting while a flood of made-up kids costs one fetch a minute.
const (
	jwksRefresh    = time.Hour
	jwksUnknownKID = time.Minute
	jwksTimeout    = 10 * time.Second // bounds a fetch, and a wait for the limiter
)

// Config says which keys a Verifier trusts and what it requires of a
// token. At least one of Secret, PublicKeys and JWKSURL must be set; they
// may be combined. The zero value configures no key, which New refuses.
type Config struct {
	// Secret verifies HS256, HS384 and HS512 tokens. It must be at least
	// MinSecretLen bytes.
	Secret []byte

	// PublicKeys are the contents of PEM files, each holding one or more
	// "PUBLIC KEY" (PKIX) or "RSA PUBLIC KEY" blocks: RSA keys (at least
	// 2048 bits) verify RS256–RS512 and PS256–PS512, ECDSA keys the ES
	// algorithm of their curve (P-256, P-384, P-521), and Ed25519 keys
	// EdDSA. A PEM key has no key ID: it is tried for any token whose kid
	// names no key of JWKSURL.
	PublicKeys [][]byte

	// JWKSURL is the address of a JSON Web Key Set. It is fetched by New,
	// refetched every hour, and at once (at most once a minute) when a
	// token names a kid the set lacks. Only its asymmetric signature keys
	// are used; a key's own alg, use and key_ops are honoured. If the first
	// fetch fails, New still succeeds, and until a fetch brings keys Verify
	// answers a token that a key of the set could have signed (RS, PS, ES,
	// EdDSA) with ErrKeysUnavailable. A failed refetch keeps the keys.
	JWKSURL string

	// Audience, if set, must be one of the token's aud values.
	Audience string

	// Issuer, if set, must be the token's iss.
	Issuer string

	// Leeway is the clock skew allowed on exp, nbf and iat. If zero,
	// DefaultLeeway (30s) is used; if negative, none.
	Leeway time.Duration

	// Client fetches JWKSURL. If nil, http.DefaultClient is used.
	Client *http.Client

	// Logger receives failed JWKS fetches. If nil, nothing is logged.
	Logger *slog.Logger

	// Claim is the claim Verify reads grants from. The zero value is
	// ClaimSSEHub. Any other claim of the token is ignored.
	Claim Claim

	// AllowNoExp accepts a token without exp, whose grant never expires
	// (Grant.Expires is zero). By default such a token is refused, and
	// better so: a leaked token without exp grants its topics for as long
	// as its key is trusted. Mercure's static tokens often lack exp. An
	// exp that is present is checked all the same.
	AllowNoExp bool
}

// A Claim names the claim of a token that a Verifier reads grants from.
type Claim int

const (
	// ClaimSSEHub is the "ssehub" claim of the native endpoint:
	// {"publish": [SEL...], "subscribe": [SEL...]}, selectors of
	// hub.ParseSelector.
	ClaimSSEHub Claim = iota

	// ClaimMercure is Mercure's "mercure" claim: {"publish": [SEL...],
	// "subscribe": [SEL...], "payload": any}, selectors of
	// hub.ParseMercureSelector. It is also read under the key
	// "https://mercure.rocks/", which wins when both are present, as in
	// the released Mercure hub. The payload, any JSON value, is kept
	// verbatim in Grant.Payload.
	ClaimMercure
)

// String returns the claim's name in a token: "ssehub" or "mercure".
func (c Claim) String() string {
	switch c {
	case ClaimSSEHub:
		return "ssehub"
	case ClaimMercure:
		return "mercure"
	}
	return fmt.Sprintf("Claim(%d)", int(c))
}

// A Verifier checks tokens against the keys of a Config. It is safe for
// concurrent use. The zero value is not usable; call New, or WithClaim
// on another Verifier.
type Verifier struct {
	// Shared by the Verifiers of WithClaim, and never modified after New.
	static   []key              // from Secret and PublicKeys
	jwks     jwkset.Storage     // nil without JWKSURL
	opts     []jwt.ParserOption // every parser option but the exp rule
	audience string
	issuer   string

	// Each Verifier's own.
	claim      Claim
	allowNoExp bool
	parser     *jwt.Parser // opts, with exp required unless allowNoExp
}

var _ hub.TokenVerifier = (*Verifier)(nil)

// New returns a Verifier for c. With a JWKSURL it fetches the key set
// before returning, and refreshes it in a goroutine that runs until ctx is
// done; cancel ctx when the Verifier is no longer used.
func New(ctx context.Context, c Config) (*Verifier, error) {
	if c.Claim != ClaimSSEHub && c.Claim != ClaimMercure {
		return nil, fmt.Errorf("jwtauth: unknown %v", c.Claim)
	}
	v := &Verifier{audience: c.Audience, issuer: c.Issuer, claim: c.Claim, allowNoExp: c.AllowNoExp}
	var algs []string
	if c.Secret != nil {
		if len(c.Secret) < MinSecretLen {
			return nil, fmt.Errorf("jwtauth: HMAC secret of %d bytes: at least %d are needed", len(c.Secret), MinSecretLen)
		}
		v.static = append(v.static, key{pub: slices.Clone(c.Secret), algs: hmacAlgs})
		algs = append(algs, hmacAlgs...)
	}
	for i, p := range c.PublicKeys {
		keys, err := parsePublicKeysPEM(p)
		if err != nil {
			return nil, fmt.Errorf("jwtauth: public key %d: %w", i+1, err)
		}
		for _, k := range keys {
			v.static = append(v.static, k)
			algs = append(algs, k.algs...)
		}
	}
	if c.JWKSURL != "" {
		logger := c.Logger
		if logger == nil {
			logger = slog.New(slog.DiscardHandler)
		}
		kf, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{c.JWKSURL}, keyfunc.Override{
			Client:           c.Client,
			HTTPTimeout:      jwksTimeout,
			RateLimitWaitMax: jwksTimeout,
			RefreshInterval:  jwksRefresh,
			// Burst 1: the first unknown kid fetches at once.
			RefreshUnknownKID: rate.NewLimiter(rate.Every(jwksUnknownKID), 1),
			RefreshErrorHandlerFunc: func(u string) func(context.Context, error) {
				return func(ctx context.Context, err error) {
					logger.WarnContext(ctx, "jwtauth: JWKS fetch failed", "url", u, "err", err)
				}
			},
		})
		if err != nil {
			return nil, fmt.Errorf("jwtauth: JWKS %q: %w", c.JWKSURL, err)
		}
		v.jwks = kf.Storage()
		algs = append(algs, asymAlgs...)
	}
	if len(algs) == 0 {
		return nil, errors.New("jwtauth: no key configured (Secret, PublicKeys or JWKSURL)")
	}
	slices.Sort(algs)
	leeway := c.Leeway
	if leeway == 0 {
		leeway = DefaultLeeway
	}
	v.opts = []jwt.ParserOption{
		jwt.WithValidMethods(slices.Compact(algs)),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(max(leeway, 0)),
	}
	if c.Audience != "" {
		v.opts = append(v.opts, jwt.WithAudience(c.Audience))
	}
	if c.Issuer != "" {
		v.opts = append(v.opts, jwt.WithIssuer(c.Issuer))
	}
	v.parser = newParser(v.opts, v.allowNoExp)
	return v, nil
}

// newParser returns a parser with opts, which requires exp unless
// allowNoExp.
func newParser(opts []jwt.ParserOption, allowNoExp bool) *jwt.Parser {
	if !allowNoExp {
		opts = append(opts[:len(opts):len(opts)], jwt.WithExpirationRequired())
	}
	return jwt.NewParser(opts...)
}

// WithClaim returns a Verifier that reads grants from claim, and accepts
// tokens without exp if allowNoExp, but otherwise is v: it trusts the same
// keys, shares v's key set (one JWKS URL is fetched and refreshed once,
// until the context given to New is done), and requires the same
// audience, issuer and leeway. v is unchanged. It is cheap, so that one
// set of keys can serve two endpoints that read different claims. It
// panics on an unknown claim.
func (v *Verifier) WithClaim(claim Claim, allowNoExp bool) *Verifier {
	if claim != ClaimSSEHub && claim != ClaimMercure {
		panic("jwtauth: WithClaim: unknown " + claim.String())
	}
	w := *v
	w.claim, w.allowNoExp = claim, allowNoExp
	w.parser = newParser(v.opts, allowNoExp)
	return &w
}

// Verify checks token's signature and claims and returns what the claim
// of its Config grants (see Claim): Subject is its sub, Expires its exp
// (zero without one, if AllowNoExp), Key its jti or, without one, a hash
// of the token, and Payload, from the mercure claim only, its payload.
//
// A refused token gives an error wrapping hub.ErrInvalidToken whose text
// says why in a few words, never with key material, so that it can be
// shown to the client. An error that is not the token's fault (no key has
// been fetched yet, ctx is done) does not wrap hub.ErrInvalidToken.
func (v *Verifier) Verify(ctx context.Context, token string) (*hub.Grant, error) {
	var c grantClaims = &claims{}
	if v.claim == ClaimMercure {
		c = &mercureClaims{}
	}
	t, err := v.parser.ParseWithClaims(token, c, func(t *jwt.Token) (any, error) {
		return v.keyFor(ctx, t)
	})
	rc := c.registered()
	if err != nil {
		return nil, v.refusal(ctx, t, rc, err)
	}
	g := &hub.Grant{Subject: rc.Subject, Key: rc.ID}
	if rc.ExpiresAt != nil {
		g.Expires = rc.ExpiresAt.Time
	}
	if g.Key == "" {
		sum := sha256.Sum256([]byte(token))
		g.Key = hex.EncodeToString(sum[:8])
	}
	if err := c.grant(g); err != nil {
		return nil, err
	}
	return g, nil
}

// keyFor returns the key, or the set of keys, that may have signed t. A
// kid names a key of the JWKS; a token without one, or whose kid names
// none, is tried against every configured key pinned to its algorithm.
func (v *Verifier) keyFor(ctx context.Context, t *jwt.Token) (any, error) {
	if _, ok := t.Header["crit"]; ok {
		return nil, refusef("unsupported crit header")
	}
	alg := t.Method.Alg()
	rawKID, hasKID := t.Header["kid"]
	kid, ok := rawKID.(string)
	if hasKID && !ok {
		return nil, refusef("kid is not a string")
	}
	if hasKID && v.jwks != nil {
		// An unknown kid makes the storage refetch the set (rate-limited);
		// any error here means the key is not to be had.
		j, err := v.jwks.KeyRead(ctx, kid)
		if err == nil {
			return jwkKey(j, alg)
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("jwtauth: %w", context.Cause(ctx))
		}
	}
	var keys []jwt.VerificationKey
	for _, k := range v.static {
		if slices.Contains(k.algs, alg) {
			keys = append(keys, k.pub)
		}
	}
	jwksEmpty := false
	if v.jwks != nil && !hasKID {
		all, err := v.jwks.KeyReadAll(ctx)
		if err == nil && len(all) == 0 {
			// Nothing fetched yet: ask for the set again (an unknown kid
			// is what makes the storage refetch; it is rate-limited).
			_, _ = v.jwks.KeyRead(ctx, "")
			all, err = v.jwks.KeyReadAll(ctx)
		}
		if err != nil {
			return nil, fmt.Errorf("jwtauth: JWKS: %w", err)
		}
		jwksEmpty = len(all) == 0
		for _, j := range all {
			if pub, err := jwkKey(j, alg); err == nil {
				keys = append(keys, pub)
			}
		}
	} else if v.jwks != nil {
		all, err := v.jwks.KeyReadAll(ctx)
		jwksEmpty = err == nil && len(all) == 0
	}
	switch {
	case len(keys) > 0:
		return jwt.VerificationKeySet{Keys: keys}, nil
	case jwksEmpty && slices.Contains(asymAlgs, alg):
		// The set might have held the key: not the token's fault.
		return nil, ErrKeysUnavailable
	case hasKID && v.jwks != nil:
		return nil, refusef("unknown key id")
	}
	return nil, refusef("no key for algorithm %s", alg)
}

// refusal turns an error of the parser into what Verify returns.
func (v *Verifier) refusal(ctx context.Context, t *jwt.Token, c *jwt.RegisteredClaims, err error) error {
	var r refusal
	switch {
	case errors.As(err, &r):
		return r
	case errors.Is(err, ErrKeysUnavailable):
		return ErrKeysUnavailable
	case ctx.Err() != nil:
		return fmt.Errorf("jwtauth: %w", context.Cause(ctx))
	case errors.Is(err, jwt.ErrTokenMalformed):
		return refusef("malformed")
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return refusef("unsupported algorithm")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		if t != nil && t.Method != nil && !slices.Contains(allowAlgs, t.Method.Alg()) {
			return refusef("algorithm %s not allowed", t.Method.Alg())
		}
		if t != nil && t.Method != nil && !v.allows(t.Method.Alg()) {
			return refusef("no key for algorithm %s", t.Method.Alg())
		}
		return refusef("bad signature")
	case c.ExpiresAt == nil && !v.allowNoExp:
		return refusef("no exp claim")
	case errors.Is(err, jwt.ErrTokenExpired):
		return refusef("expired")
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return refusef("not valid yet")
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return refusef("issued in the future")
	case v.audience != "" && len(c.Audience) == 0:
		return refusef("no aud claim")
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return refusef("wrong audience")
	case v.issuer != "" && c.Issuer == "":
		return refusef("no iss claim")
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return refusef("wrong issuer")
	}
	return refusef("invalid claims")
}

// allows reports whether some configured key verifies alg.
func (v *Verifier) allows(alg string) bool {
	if v.jwks != nil && slices.Contains(asymAlgs, alg) {
		return true
	}
	for _, k := range v.static {
		if slices.Contains(k.algs, alg) {
			return true
		}
	}
	return false
}

// parseSelectors parses the selectors of the claim's field name with
// parse.
func parseSelectors(name string, ss []string, parse func(string) (hub.Selector, error)) ([]hub.Selector, error) {
	sels := make([]hub.Selector, 0, len(ss))
	for _, s := range ss {
		sel, err := parse(s)
		if err != nil {
			if len(s) > 64 {
				s = s[:64] + "..."
			}
			return nil, refusef("bad %s selector %q", name, s)
		}
		sels = append(sels, sel)
	}
	return sels, nil
}

// A refusal is why a token is refused, in words safe to show its bearer.
type refusal string

func refusef(format string, a ...any) refusal { return refusal(fmt.Sprintf(format, a...)) }

func (r refusal) Error() string { return hub.ErrInvalidToken.Error() + ": " + string(r) }
func (r refusal) Unwrap() error { return hub.ErrInvalidToken }

// grantClaims are the claims of a token as one Claim reads them: the
// registered claims, and the claim that grants topics, which is all that
// is decoded of it (another Claim's is ignored, even malformed).
type grantClaims interface {
	jwt.Claims
	registered() *jwt.RegisteredClaims
	grant(g *hub.Grant) error // sets what the claim grants in g
}

// claims are the claims of an ssehub token (ClaimSSEHub).
type claims struct {
	jwt.RegisteredClaims
	SSEHub *grantClaim `json:"ssehub,omitempty"`
}

// grantClaim is the "ssehub" claim.
type grantClaim struct {
	Publish   []string `json:"publish,omitempty"`
	Subscribe []string `json:"subscribe,omitempty"`
}

func (c *claims) registered() *jwt.RegisteredClaims { return &c.RegisteredClaims }

func (c *claims) grant(g *hub.Grant) error {
	if c.SSEHub == nil {
		return nil
	}
	var err error
	if g.Publish, err = parseSelectors("publish", c.SSEHub.Publish, hub.ParseSelector); err != nil {
		return err
	}
	g.Subscribe, err = parseSelectors("subscribe", c.SSEHub.Subscribe, hub.ParseSelector)
	return err
}

// mercureNamespace is the key under which the released Mercure hub also
// reads the mercure claim, and which wins there.
const mercureNamespace = "https://mercure.rocks/"

// mercureClaims are the claims of a Mercure token (ClaimMercure).
type mercureClaims struct {
	jwt.RegisteredClaims
	Mercure    *mercureClaim `json:"mercure,omitempty"`
	Namespaced *mercureClaim `json:"https://mercure.rocks/,omitempty"` // mercureNamespace
}

// mercureClaim is the "mercure" claim.
type mercureClaim struct {
	Publish   []string        `json:"publish,omitempty"`
	Subscribe []string        `json:"subscribe,omitempty"`
	Payload   json.RawMessage `json:"payload,omitempty"`
}

func (c *mercureClaims) registered() *jwt.RegisteredClaims { return &c.RegisteredClaims }

func (c *mercureClaims) grant(g *hub.Grant) error {
	m := c.Mercure
	if c.Namespaced != nil {
		m = c.Namespaced
	}
	if m == nil {
		return nil
	}
	var err error
	if g.Publish, err = parseSelectors("publish", m.Publish, hub.ParseMercureSelector); err != nil {
		return err
	}
	if g.Subscribe, err = parseSelectors("subscribe", m.Subscribe, hub.ParseMercureSelector); err != nil {
		return err
	}
	if len(m.Payload) > 0 && string(m.Payload) != "null" {
		g.Payload = m.Payload // decoding copied it out of the token
	}
	return nil
}
