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

	"github.com/ssehub/ssehub/hub"
	"github.com/ssehub/ssehub/hub/jwtauth"
)

// jwtFlags are the flags of "ssehub serve" that configure token
// verification. Any key flag given means the hub is not open.
type jwtFlags struct {
	secret     string
	secretFile string
	publicKeys []string // PEM files
	jwksURL    string
	audience   string
	issuer     string
	leeway     time.Duration

	cfg    *jwtauth.Config // what check read from the files, once
	cfgErr error
}

// register adds the flags to fs. --jwt-public-key is repeatable, and each
// value may list several files separated by commas, which is how its
// variable, SSEHUB_JWT_PUBLIC_KEY, names more than one.
func (f *jwtFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.secret, "jwt-secret", "", "verify HS256/384/512 tokens with this HMAC `secret` of at least 32 bytes (prefer --jwt-secret-file: a command line is visible to every user of the machine)")
	fs.StringVar(&f.secretFile, "jwt-secret-file", "", "read the HMAC secret from this `file` (one line; a trailing newline is ignored)")
	fs.Func("jwt-public-key", "verify tokens with the public key(s) in these PEM `files`, comma-separated (RSA, ECDSA or Ed25519; repeatable; the variable lists files the same way)", func(s string) error {
		for p := range strings.SplitSeq(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				f.publicKeys = append(f.publicKeys, p)
			}
		}
		return nil
	})
	fs.Func("jwks-url", "verify tokens with the keys of this JWKS `URL`, fetched at start and refreshed (https, or http on loopback)", func(s string) error {
		if err := checkJWKSURL(s); err != nil {
			return err
		}
		f.jwksURL = s
		return nil
	})
	fs.StringVar(&f.audience, "jwt-audience", "", "require this aud claim")
	fs.StringVar(&f.issuer, "jwt-issuer", "", "require this iss claim")
	fs.DurationVar(&f.leeway, "jwt-leeway", 30*time.Second, "clock skew allowed on exp, nbf and iat (0: none)")
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

// configured reports whether any key was given.
func (f *jwtFlags) configured() bool {
	return f.secret != "" || f.secretFile != "" || len(f.publicKeys) > 0 || f.jwksURL != ""
}

// verifier builds the token verifier the flags describe, or returns nil
// when no key is configured. With --jwks-url it fetches the key set before
// returning, and refreshes it until ctx is done or the returned function
// is called; that function is never nil.
func (f *jwtFlags) verifier(ctx context.Context, logger *slog.Logger) (hub.TokenVerifier, func(), error) {
	if !f.configured() {
		return nil, func() {}, nil
	}
	if err := f.check(); err != nil {
		return nil, func() {}, err
	}
	c := *f.cfg
	c.Logger = logger
	ctx, cancel := context.WithCancel(ctx)
	v, err := jwtauth.New(ctx, c)
	if err != nil {
		cancel()
		return nil, func() {}, err
	}
	if logger != nil {
		logger.Info("token verification on",
			"hmac", c.Secret != nil, "public_keys", len(f.publicKeys), "jwks_url", f.jwksURL,
			"audience", f.audience, "issuer", f.issuer, "leeway", max(f.leeway, 0))
	}
	return v, cancel, nil
}

// check reports what is wrong with the flags, reading the files they
// name, so that "ssehub serve" refuses them as it does other bad flags
// before it starts anything. It reads them once: verifier uses what it
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

// config returns the jwtauth.Config of the flags (without a Logger),
// reading the secret and key files.
func (f *jwtFlags) config() (jwtauth.Config, error) {
	c := jwtauth.Config{
		JWKSURL:  f.jwksURL,
		Audience: f.audience,
		Issuer:   f.issuer,
		Leeway:   f.leeway,
	}
	switch {
	case f.leeway < 0:
		return c, errors.New("--jwt-leeway must not be negative")
	case f.secret != "" && f.secretFile != "":
		return c, errors.New("give --jwt-secret or --jwt-secret-file, not both")
	case f.leeway == 0:
		c.Leeway = -1 // jwtauth reads zero as its default
	}
	if f.secret != "" {
		c.Secret = []byte(f.secret)
	}
	if f.secretFile != "" {
		b, err := readSecretFile(f.secretFile)
		if err != nil {
			return c, fmt.Errorf("--jwt-secret-file: %w", err)
		}
		c.Secret = b
	}
	if c.Secret != nil && len(c.Secret) < jwtauth.MinSecretLen {
		// Said here, so that the secret's length, never the secret, is shown.
		return c, fmt.Errorf("the JWT secret is %d bytes; use at least %d (openssl rand -hex 32)", len(c.Secret), jwtauth.MinSecretLen)
	}
	for _, name := range f.publicKeys {
		b, err := os.ReadFile(name)
		if err != nil {
			return c, fmt.Errorf("--jwt-public-key: %w", err)
		}
		// Checked one by one, so that an error names its file. Without a
		// JWKS URL, New starts nothing that the context would end.
		if _, err := jwtauth.New(context.Background(), jwtauth.Config{PublicKeys: [][]byte{b}}); err != nil {
			if inner := errors.Unwrap(err); inner != nil {
				err = inner
			}
			return c, fmt.Errorf("--jwt-public-key %s: %v", name, err)
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
