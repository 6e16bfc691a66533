package daemon

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/ssehub/ssehub/hub/jwtauth"
)

// jwtFlags are the flags of "ssehub serve" that configure token
// verification. Any key flag given means the hub is not open. The zero
// value has no key; register names the roles of the sets.
//
// Keys come in sets. The shared set (--jwt-secret, --jwt-secret-file,
// --jwt-public-key, --jwks-url) verifies the tokens of publishers and
// subscribers alike. A role's own set (--jwt-publisher-secret-file,
// --jwt-publisher-public-key, --jwks-publisher-url, and the same for
// subscribers) replaces the whole shared set for that role: with keys
// apart, a token signed with a subscriber's key can never publish. Both
// endpoints apply the split: /events reads the ssehub claim, the Mercure
// endpoint the mercure claim, with the same keys.
type jwtFlags struct {
	secret string // --jwt-secret, of the shared set

	shared, publisher, subscriber keySet

	audience string
	issuer   string
	leeway   time.Duration

	mercureAllowNoExp bool // the Mercure verifiers accept tokens without exp

	cfg    *roleConfigs // what check read from the files, once
	cfgErr error
}

// A keySet is the flags of one set of keys: the shared one, or a role's
// own. A role has no --jwt-ROLE-secret: a secret on a command line is
// visible to every user of the machine.
type keySet struct {
	role       string // "" for the shared set, "publisher" or "subscriber"
	secretFile string
	publicKeys []string // PEM files
	jwksURL    string
}

// given reports whether a key of the set was given, --jwt-secret aside.
func (k *keySet) given() bool {
	return k.secretFile != "" || len(k.publicKeys) > 0 || k.jwksURL != ""
}

// flagNames returns the names of the set's secret file, public key and
// JWKS flags.
func (k *keySet) flagNames() (secretFile, publicKey, jwksURL string) {
	if k.role == "" {
		return "jwt-secret-file", "jwt-public-key", "jwks-url"
	}
	return "jwt-" + k.role + "-secret-file", "jwt-" + k.role + "-public-key", "jwks-" + k.role + "-url"
}

// register adds the flags to fs. --jwt-public-key and the roles' are
// repeatable, and each value may list several files separated by commas,
// which is how their variables (SSEHUB_JWT_PUBLIC_KEY) name more than one.
func (f *jwtFlags) register(fs *flag.FlagSet) {
	f.publisher.role, f.subscriber.role = "publisher", "subscriber"
	fs.StringVar(&f.secret, "jwt-secret", "", "verify HS256/384/512 tokens with this HMAC `secret` of at least 32 bytes (prefer --jwt-secret-file: a command line is visible to every user of the machine)")
	fs.StringVar(&f.shared.secretFile, "jwt-secret-file", "", "read the HMAC secret from this `file` (one line; a trailing newline is ignored)")
	fs.Func("jwt-public-key", "verify tokens with the public key(s) in these PEM `files`, comma-separated (RSA, ECDSA or Ed25519; repeatable; the variable lists files the same way)", addFiles(&f.shared.publicKeys))
	fs.Func("jwks-url", "verify tokens with the keys of this JWKS `URL`, fetched at start and refreshed (https, or http on loopback)", setJWKSURL(&f.shared.jwksURL))
	for _, k := range []*keySet{&f.publisher, &f.subscriber} {
		sf, pk, ju := k.flagNames()
		who, instead := k.role+"s'", " rather than with the shared keys, which then serve "+otherRole(k.role)+"s only"
		fs.StringVar(&k.secretFile, sf, "", "verify "+who+" tokens with the HMAC secret in this `file`"+instead)
		fs.Func(pk, "verify "+who+" tokens with the public key(s) in these PEM `files` (comma-separated; repeatable)"+instead, addFiles(&k.publicKeys))
		fs.Func(ju, "verify "+who+" tokens with the keys of this JWKS `URL`"+instead, setJWKSURL(&k.jwksURL))
	}
	fs.StringVar(&f.audience, "jwt-audience", "", "require this aud claim")
	fs.StringVar(&f.issuer, "jwt-issuer", "", "require this iss claim")
	fs.DurationVar(&f.leeway, "jwt-leeway", 30*time.Second, "clock skew allowed on exp, nbf and iat (0: none)")
	fs.BoolVar(&f.mercureAllowNoExp, "mercure-allow-no-exp", false, "accept tokens without exp on the Mercure endpoint (static Symfony tokens lack it; /events still refuses them). The risk: such a token never expires, so a leaked one grants its topics until its key is changed (needs a key)")
}

// otherRole returns the role that is not role.
func otherRole(role string) string {
	if role == "publisher" {
		return "subscriber"
	}
	return "publisher"
}

// addFiles returns a flag function that adds the comma-separated file
// names of its value to *list.
func addFiles(list *[]string) func(string) error {
	return func(s string) error {
		for p := range strings.SplitSeq(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				*list = append(*list, p)
			}
		}
		return nil
	}
}

// setJWKSURL returns a flag function that checks a key set URL and sets
// *u to it.
func setJWKSURL(u *string) func(string) error {
	return func(s string) error {
		if err := checkJWKSURL(s); err != nil {
			return err
		}
		*u = s
		return nil
	}
}

// checkJWKSURL refuses a key set URL that an attacker on the path could
// answer: the keys it serves decide who may publish.
func checkJWKSURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	switch {
	case u.Scheme == "https" && u.Host != "":
		return nil
	case u.Scheme == "http" && u.Host != "":
		host := u.Hostname()
		if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
			return nil
		}
		return errors.New("plain http is allowed only on loopback: whoever can answer it chooses the keys")
	}
	return errors.New("want an https:// URL")
}

// configured reports whether any key was given, shared or a role's.
func (f *jwtFlags) configured() bool {
	return f.sharedGiven() || f.publisher.given() || f.subscriber.given()
}

// sharedGiven reports whether a key of the shared set was given.
func (f *jwtFlags) sharedGiven() bool {
	return f.secret != "" || f.shared.given()
}

// roleConfigs are the jwtauth.Configs of the flags (without a Logger),
// one per role.
type roleConfigs struct {
	publisher, subscriber jwtauth.Config
	shared                bool // both roles have the shared keys: one Verifier serves both
}

// tokenVerifiers are the verifiers the flags describe: all nil when no
// key is configured. publish and subscribe read the ssehub claim, for
// /events; mercurePublish and mercureSubscribe read the mercure claim,
// for the Mercure endpoint, with the same keys and key sets (a JWKS URL
// is fetched once for both), and accept tokens without exp with
// --mercure-allow-no-exp.
type tokenVerifiers struct {
	publish, subscribe               *jwtauth.Verifier
	mercurePublish, mercureSubscribe *jwtauth.Verifier
}

// on reports whether tokens are verified.
func (v *tokenVerifiers) on() bool { return v.publish != nil }

// split reports whether the roles have keys apart.
func (v *tokenVerifiers) split() bool { return v.publish != v.subscribe }

// verifiers builds the token verifiers the flags describe, or none when
// no key is configured. With a JWKS URL it fetches the key set before
// returning, and refreshes it until ctx is done or the returned function
// is called; that function is never nil.
func (f *jwtFlags) verifiers(ctx context.Context, logger *slog.Logger) (tokenVerifiers, func(), error) {
	var v tokenVerifiers
	if !f.configured() {
		return v, func() {}, nil
	}
	if err := f.check(); err != nil {
		return v, func() {}, err
	}
	ctx, cancel := context.WithCancel(ctx)
	newVerifier := func(c jwtauth.Config) (*jwtauth.Verifier, error) {
		c.Logger = logger
		return jwtauth.New(ctx, c)
	}
	var err error
	if v.publish, err = newVerifier(f.cfg.publisher); err != nil {
		cancel()
		return tokenVerifiers{}, func() {}, err
	}
	v.subscribe = v.publish
	if !f.cfg.shared {
		if v.subscribe, err = newVerifier(f.cfg.subscriber); err != nil {
			cancel()
			return tokenVerifiers{}, func() {}, err
		}
	}
	v.mercurePublish = v.publish.WithClaim(jwtauth.ClaimMercure, f.mercureAllowNoExp)
	v.mercureSubscribe = v.mercurePublish
	if v.split() {
		v.mercureSubscribe = v.subscribe.WithClaim(jwtauth.ClaimMercure, f.mercureAllowNoExp)
	}
	if logger != nil {
		describe := func(roles string, c jwtauth.Config) {
			logger.Info("token verification on", "roles", roles,
				"hmac", c.Secret != nil, "public_keys", len(c.PublicKeys), "jwks_url", c.JWKSURL,
				"audience", f.audience, "issuer", f.issuer, "leeway", max(f.leeway, 0))
		}
		if v.split() {
			describe("publishers", f.cfg.publisher)
			describe("subscribers", f.cfg.subscriber)
		} else {
			describe("publishers,subscribers", f.cfg.publisher)
		}
		if f.mercureAllowNoExp {
			logger.Warn("--mercure-allow-no-exp: the Mercure endpoint accepts tokens without exp, which never expire: a leaked one grants its topics until its key is changed")
		}
	}
	return v, cancel, nil
}

// check reports what is wrong with the flags, reading the files they
// name, so that "ssehub serve" refuses them as it does other bad flags
// before it starts anything. It reads them once: verifiers uses what it
// read.
func (f *jwtFlags) check() error {
	if !f.configured() || f.cfg != nil || f.cfgErr != nil {
		return f.cfgErr
	}
	c, err := f.config()
	if err != nil {
		f.cfgErr = err
		return err
	}
	f.cfg = &c
	return nil
}

// config returns the jwtauth.Configs of the flags (without a Logger),
// reading the secret and key files.
func (f *jwtFlags) config() (roleConfigs, error) {
	var rc roleConfigs
	base := jwtauth.Config{Audience: f.audience, Issuer: f.issuer, Leeway: f.leeway}
	switch {
	case f.leeway < 0:
		return rc, errors.New("--jwt-leeway must not be negative")
	case f.secret != "" && f.shared.secretFile != "":
		return rc, errors.New("give --jwt-secret or --jwt-secret-file, not both")
	case f.leeway == 0:
		base.Leeway = -1 // jwtauth reads zero as its default
	}
	hasPub, hasSub := f.publisher.given(), f.subscriber.given()
	switch {
	case f.sharedGiven() && hasPub && hasSub:
		return rc, fmt.Errorf("the shared keys (%s) would serve no one: publishers and subscribers have keys of their own; drop the shared keys, or one role's", sharedKeyFlags)
	case !f.sharedGiven() && hasPub != hasSub:
		// The other role would have no key at all: its tokens could not
		// be checked, and the Mercure endpoint would check them with the
		// first role's keys.
		given, other := f.publisher, f.subscriber
		if hasSub {
			given, other = other, given
		}
		sf, pk, ju := other.flagNames()
		return rc, fmt.Errorf("%ss have keys of their own but %ss have none: give %ss theirs (--%s, --%s or --%s) or shared keys (%s)",
			given.role, other.role, other.role, sf, pk, ju, sharedKeyFlags)
	}
	var err error
	if f.sharedGiven() {
		if rc.publisher, err = f.shared.config(base, f.secret); err != nil {
			return rc, err
		}
		rc.subscriber = rc.publisher
	}
	if hasPub {
		if rc.publisher, err = f.publisher.config(base, ""); err != nil {
			return rc, err
		}
	}
	if hasSub {
		if rc.subscriber, err = f.subscriber.config(base, ""); err != nil {
			return rc, err
		}
	}
	rc.shared = !hasPub && !hasSub
	return rc, nil
}

// config returns base with the keys of k and secret (--jwt-secret), read
// from their files.
func (k *keySet) config(base jwtauth.Config, secret string) (jwtauth.Config, error) {
	c := base
	c.JWKSURL = k.jwksURL
	sf, pk, _ := k.flagNames()
	if secret != "" {
		c.Secret = []byte(secret)
	}
	if k.secretFile != "" {
		b, err := readSecretFile(k.secretFile)
		if err != nil {
			return c, fmt.Errorf("--%s: %w", sf, err)
		}
		c.Secret = b
	}
	if c.Secret != nil && len(c.Secret) < jwtauth.MinSecretLen {
		// Said here, so that the secret's length, never the secret, is shown.
		what := "the JWT secret"
		if k.role != "" {
			what = "the " + k.role + "s' JWT secret (--" + sf + ")"
		}
		return c, fmt.Errorf("%s is %d bytes; use at least %d (openssl rand -hex 32)", what, len(c.Secret), jwtauth.MinSecretLen)
	}
	for _, name := range k.publicKeys {
		b, err := os.ReadFile(name)
		if err != nil {
			return c, fmt.Errorf("--%s: %w", pk, err)
		}
		// Checked one by one, so that an error names its file. Without a
		// JWKS URL, New starts nothing that the context would end.
		if _, err := jwtauth.New(context.Background(), jwtauth.Config{PublicKeys: [][]byte{b}}); err != nil {
			if inner := errors.Unwrap(err); inner != nil {
				err = inner
			}
			return c, fmt.Errorf("--%s %s: %v", pk, name, err)
		}
		c.PublicKeys = append(c.PublicKeys, b)
	}
	return c, nil
}

// readSecretFile reads an HMAC secret from a file of one line: a trailing
// newline (LF or CRLF) is not part of it. serve --jwt-secret-file and
// token --secret-file read the same files.
func readSecretFile(name string) ([]byte, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	return []byte(strings.TrimRight(string(b), "\r\n")), nil
}
