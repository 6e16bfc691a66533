package daemon

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/ssehub/ssehub/hub"
	"github.com/ssehub/ssehub/hub/jwtauth"
)

const tokenUsage = `Usage: ssehub token (--secret-file FILE | --key FILE) [flags]

Mints a signed token for development and tests and prints it. It grants the
topics of --publish and --subscribe, selectors as in subscriptions (* one
segment, a final ** one or more); with --mercure, it grants them in the
mercure claim, for the Mercure endpoint (/.well-known/mercure), with
Mercure's selectors (* every topic, a URI template, or an exact topic) and
the --payload given. A hub verifies it with the same secret
(serve --jwt-secret-file) or with the public key of the --key FILE (serve
--jwt-public-key). Production tokens come from your identity provider:
docs/TOKENS.md has the claim. A token that grants no topic only says who
its bearer is (which a hub with --no-anonymous asks of subscribers):
token warns about it.

Examples:
  ssehub token --secret-file jwt-secret --publish 'chat/**' --sub backend
  ssehub token --key ed25519.pem --subscribe 'user/42/*' --sub user-42 --ttl 15m
  curl -H "Authorization: Bearer $(ssehub token --secret-file jwt-secret --publish chat/general)" \
    -d topic=chat/general -d data=hello http://127.0.0.1:8080/events
  ssehub token --secret-file jwt-secret --mercure --subscribe 'https://example.com/books/{id}' \
    --payload '{"user":"https://example.com/users/42"}'

A Mercure token may lack exp (--no-exp), as the static tokens of Symfony
apps often do; serve accepts it only with --mercure-allow-no-exp. Such a
token never expires: whoever gets hold of it keeps its grants until the
key is changed.

The secret signs HS256 and must be at least 32 bytes (openssl rand -hex 32):
--secret-file reads it from a file (one line; a trailing newline is
ignored), as serve --jwt-secret-file does. Serve's variables
SSEHUB_JWT_SECRET_FILE and SSEHUB_JWT_SECRET give it too, so one exported
variable serves both commands; --secret S is there too, but a command line
is visible to every user of the machine. --key is a PEM private key (PKCS
#8, PKCS #1 or SEC 1): RSA signs RS256, ECDSA ES256/ES384/ES512 by its
curve, Ed25519 EdDSA. No other variable is read.

Flags:
`

func runToken(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	secret := fs.String("secret", "", "sign HS256 with this HMAC `secret` of at least 32 bytes (prefer --secret-file: a command line is visible to every user of the machine)")
	secretFile := fs.String("secret-file", "", "sign HS256 with the HMAC secret in this `file` (one line; a trailing newline is ignored)")
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
	mercure := fs.Bool("mercure", false, "grant in the mercure claim, for the Mercure endpoint: --publish and --subscribe take Mercure's selectors (* every topic, a URI template, an exact topic)")
	payload := fs.String("payload", "", "the mercure claim's payload, a `JSON` value that the Mercure endpoint shows in subscription updates (needs --mercure)")
	noExp := fs.Bool("no-exp", false, "mint a token without exp, which never expires (needs --mercure; serve accepts it only with --mercure-allow-no-exp)")
	withEnvHelp(fs)
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
	// What the command line gives wins over serve's variables.
	fromEnv := false
	if *secret == "" && *secretFile == "" && *keyFile == "" {
		if err := applyEnv(fs); err != nil {
			return fail("%v", err)
		}
		fromEnv = true
	}
	keys := 0
	for _, s := range []string{*secret, *secretFile, *keyFile} {
		if s != "" {
			keys++
		}
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	switch {
	case len(pos) > 0:
		return fail("unexpected argument %q (run 'ssehub token -h')", pos[0])
	case keys == 0:
		return fail("give --secret-file, --secret or --key (or set SSEHUB_JWT_SECRET_FILE)")
	case keys > 1 && fromEnv:
		return fail("SSEHUB_JWT_SECRET and SSEHUB_JWT_SECRET_FILE are both set: keep one")
	case keys > 1:
		return fail("give only one of --secret-file, --secret and --key")
	case *ttl <= 0:
		return fail("--ttl must be positive")
	case *noExp && !*mercure:
		return fail("--no-exp needs --mercure: /events refuses tokens without exp")
	case *noExp && given["ttl"]:
		return fail("--no-exp and --ttl: a token without exp has no lifetime; give one or the other")
	case *payload != "" && !*mercure:
		return fail("--payload needs --mercure: only the mercure claim has a payload")
	case *payload != "" && !json.Valid([]byte(*payload)):
		return fail("--payload is not JSON (a string is quoted: '\"text\"')")
	}
	parse, claim := hub.ParseSelector, jwtauth.ClaimSSEHub
	if *mercure {
		parse, claim = hub.ParseMercureSelector, jwtauth.ClaimMercure
	}
	for _, s := range publish {
		if _, err := parse(s); err != nil {
			return fail("--publish: %v", err)
		}
	}
	for _, s := range subscribe {
		if _, err := parse(s); err != nil {
			return fail("--subscribe: %v", err)
		}
	}
	var key any
	if *secret != "" || *secretFile != "" {
		secretFlag, fileFlag := "--secret", "--secret-file"
		if fromEnv {
			secretFlag, fileFlag = "SSEHUB_JWT_SECRET", "SSEHUB_JWT_SECRET_FILE"
		}
		b, what := []byte(*secret), "the secret of "+secretFlag
		if *secretFile != "" {
			var err error
			if b, err = readSecretFile(*secretFile); err != nil {
				return fail("%s: %v", fileFlag, err)
			}
			what = "the secret in " + fileFlag + " " + *secretFile
		}
		if len(b) < jwtauth.MinSecretLen {
			// Its length is shown, never the secret.
			return fail("%s is %d bytes; use at least %d (openssl rand -hex 32)", what, len(b), jwtauth.MinSecretLen)
		}
		key = b
	}
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
	c := jwtauth.Claims{
		Subject:   *sub,
		Audience:  *aud,
		Issuer:    *iss,
		IssuedAt:  now,
		Expires:   now.Add(*ttl),
		NoExp:     *noExp,
		Claim:     claim,
		Publish:   publish,
		Subscribe: subscribe,
	}
	if *noExp {
		c.Expires = time.Time{}
	}
	if *payload != "" {
		c.Payload = json.RawMessage(*payload)
	}
	tok, err := jwtauth.Mint(key, c)
	if err != nil {
		return fail("%v", err)
	}
	switch {
	case len(publish) == 0 && len(subscribe) == 0 && *mercure:
		fmt.Fprintln(stderr, "ssehub token: warning: the token grants no topic (no --publish, no --subscribe): it can neither publish nor receive private updates")
	case len(publish) == 0 && len(subscribe) == 0:
		fmt.Fprintln(stderr, "ssehub token: warning: the token grants no topic (no --publish, no --subscribe): it can neither publish nor receive private events, and only tells a hub with --no-anonymous who subscribes")
	}
	if *noExp {
		fmt.Fprintln(stderr, "ssehub token: warning: the token has no exp and never expires: whoever gets hold of it keeps its grants until the key is changed")
	}
	if _, err := fmt.Fprintln(stdout, tok); err != nil {
		fmt.Fprintf(stderr, "ssehub token: %v\n", err)
		return exitFail
	}
	return exitOK
}
