package daemon

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/ssehub/ssehub/hub"
	"github.com/ssehub/ssehub/hub/jwtauth"
)

const tokenUsage = `Usage: ssehub token (--secret S | --key FILE) [flags]

Mints a signed token for development and tests and prints it. It grants the
topics of --publish and --subscribe, selectors as in subscriptions (* one
segment, a final ** one or more). A hub verifies it with the same secret
(--jwt-secret) or with the public key of FILE (--jwt-public-key). Production
tokens come from your identity provider: docs/TOKENS.md has the claim.

Examples:
  ssehub token --secret "$SECRET" --publish 'chat/**' --sub backend
  ssehub token --key ed25519.pem --subscribe 'user/42/*' --sub user-42 --ttl 15m
  curl -H "Authorization: Bearer $(ssehub token --secret "$SECRET" --publish chat/general)" \
    -d topic=chat/general -d data=hello http://127.0.0.1:8080/events

--secret signs HS256 and must be at least 32 bytes (openssl rand -hex 32).
--key is a PEM private key (PKCS #8, PKCS #1 or SEC 1): RSA signs RS256,
ECDSA ES256/ES384/ES512 by its curve, Ed25519 EdDSA. This command reads no
SSEHUB_* variables.

Flags:
`

func runToken(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	secret := fs.String("secret", "", "sign HS256 with this HMAC `secret` (at least 32 bytes)")
	keyFile := fs.String("key", "", "sign with the PEM private key in this `file` (RSA, ECDSA or Ed25519)")
	var publish, subscribe []string
	fs.Func("publish", "grant publishing to topics this `selector` matches (repeatable)", func(s string) error {
		publish = append(publish, s)
		return nil
	})
	fs.Func("subscribe", "grant the private events of topics this `selector` matches (repeatable)", func(s string) error {
		subscribe = append(subscribe, s)
		return nil
	})
	ttl := fs.Duration("ttl", time.Hour, "the token expires after this long")
	sub := fs.String("sub", "", "the sub claim: who the bearer is")
	aud := fs.String("aud", "", "the aud claim: the hub it is for (see serve --jwt-audience)")
	iss := fs.String("iss", "", "the iss claim: who issued it (see serve --jwt-issuer)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), tokenUsage)
		fs.PrintDefaults()
	}
	pos, code, ok := parseFlags(fs, args, stdout, stderr)
	if !ok {
		return code
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "ssehub token: "+format+"\n", a...)
		return exitUsage
	}
	switch {
	case len(pos) > 0:
		return fail("unexpected argument %q (run 'ssehub token -h')", pos[0])
	case (*secret == "") == (*keyFile == ""):
		return fail("give exactly one of --secret and --key")
	case *secret != "" && len(*secret) < jwtauth.MinSecretLen:
		return fail("--secret is %d bytes; use at least %d (openssl rand -hex 32)", len(*secret), jwtauth.MinSecretLen)
	case *ttl <= 0:
		return fail("--ttl must be positive")
	}
	for _, s := range publish {
		if _, err := hub.ParseSelector(s); err != nil {
			return fail("--publish: %v", err)
		}
	}
	for _, s := range subscribe {
		if _, err := hub.ParseSelector(s); err != nil {
			return fail("--subscribe: %v", err)
		}
	}
	var key any = []byte(*secret)
	if *keyFile != "" {
		pem, err := os.ReadFile(*keyFile)
		if err != nil {
			return fail("--key: %v", err)
		}
		if key, err = jwtauth.ParsePrivateKeyPEM(pem); err != nil {
			return fail("--key %s: %v", *keyFile, err)
		}
	}
	now := time.Now()
	tok, err := jwtauth.Mint(key, jwtauth.Claims{
		Subject:   *sub,
		Audience:  *aud,
		Issuer:    *iss,
		IssuedAt:  now,
		Expires:   now.Add(*ttl),
		Publish:   publish,
		Subscribe: subscribe,
	})
	if err != nil {
		return fail("%v", err)
	}
	if _, err := fmt.Fprintln(stdout, tok); err != nil {
		fmt.Fprintf(stderr, "ssehub token: %v\n", err)
		return exitFail
	}
	return exitOK
}
