package daemon

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"go.uber.org/goleak"

	"github.com/ssehub/ssehub/hub"
	"github.com/ssehub/ssehub/hub/jwtauth"
)

const testSecret = "0123456789abcdef0123456789abcdef"

// A keyPair is a private key in a PEM file, as "ssehub token --key" takes
// it, and its public key in another, as "ssehub serve --jwt-public-key"
// does.
type keyPair struct {
	private, public string // file names
}

func writeKeyPair(t *testing.T, name string, priv crypto.Signer, privPEM *pem.Block) keyPair {
	t.Helper()
	dir := t.TempDir()
	pubDER, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	kp := keyPair{filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".pub.pem")}
	if err := os.WriteFile(kp.private, pem.EncodeToMemory(privPEM), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kp.public, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644); err != nil {
		t.Fatal(err)
	}
	return kp
}

func testKeyPairs(t *testing.T) map[string]keyPair {
	t.Helper()
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edDER, _ := x509.MarshalPKCS8PrivateKey(ed)
	ec, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, _ := x509.MarshalECPrivateKey(ec)
	rs, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]keyPair{
		"ed25519": writeKeyPair(t, "ed25519", ed, &pem.Block{Type: "PRIVATE KEY", Bytes: edDER}),
		"p384":    writeKeyPair(t, "p384", ec, &pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER}),
		"rsa":     writeKeyPair(t, "rsa", rs, &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rs)}),
	}
}

// mintCmd runs "ssehub token" with args and returns the token it printed.
func mintCmd(t *testing.T, args ...string) string {
	t.Helper()
	code, stdout, stderr := runMain(t, append([]string{"token"}, args...)...)
	if code != exitOK || stderr != "" || strings.Count(stdout, "\n") != 1 || !strings.HasSuffix(stdout, "\n") {
		t.Fatalf("ssehub token %q: status %d, stdout %q, stderr %q; want 0 and one line", args, code, stdout, stderr)
	}
	return strings.TrimSuffix(stdout, "\n")
}

func selectorStrings(sels []hub.Selector) string {
	var ss []string
	for _, s := range sels {
		ss = append(ss, s.String())
	}
	return strings.Join(ss, " ")
}

func TestToken(t *testing.T) {
	kp := testKeyPairs(t)
	readFile := func(name string) []byte {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name    string
		args    []string
		cfg     jwtauth.Config
		wantSub string
		pub     string // publish selectors, space-separated
		subs    string
		ttl     time.Duration
	}{
		{"secret", []string{"--secret", testSecret, "--publish", "chat/**", "--publish", "news/*", "--subscribe", "user/42/*", "--sub", "alice", "--ttl", "10m"},
			jwtauth.Config{Secret: []byte(testSecret)}, "alice", "chat/** news/*", "user/42/*", 10 * time.Minute},
		{"secret, aud and iss", []string{"--secret", testSecret, "--aud", "hub-a", "--iss", "dev", "--subscribe", "a"},
			jwtauth.Config{Secret: []byte(testSecret), Audience: "hub-a", Issuer: "dev"}, "", "", "a", time.Hour},
		{"ed25519 key", []string{"--key", kp["ed25519"].private, "--publish", "x/y", "--sub", "svc"},
			jwtauth.Config{PublicKeys: [][]byte{readFile(kp["ed25519"].public)}}, "svc", "x/y", "", time.Hour},
		{"P-384 key (SEC 1)", []string{"--key", kp["p384"].private, "--subscribe", "**", "--ttl", "90s"},
			jwtauth.Config{PublicKeys: [][]byte{readFile(kp["p384"].public)}}, "", "", "**", 90 * time.Second},
		{"RSA key (PKCS #1)", []string{"--key", kp["rsa"].private, "--publish", "a/*/c"},
			jwtauth.Config{PublicKeys: [][]byte{readFile(kp["rsa"].public)}}, "", "a/*/c", "", time.Hour},
		{"flags after nothing else", []string{"--publish=p", "--secret=" + testSecret},
			jwtauth.Config{Secret: []byte(testSecret)}, "", "p", "", time.Hour},
		{"secret file", []string{"--secret-file", secretFile(t, testSecret+"\r\n"), "--publish", "p"},
			jwtauth.Config{Secret: []byte(testSecret)}, "", "p", "", time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := time.Now().Truncate(time.Second)
			tok := mintCmd(t, tt.args...)
			v, err := jwtauth.New(t.Context(), tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			g, err := v.Verify(t.Context(), tok)
			if err != nil {
				t.Fatalf("Verify = %v; want a grant", err)
			}
			if g.Subject != tt.wantSub || selectorStrings(g.Publish) != tt.pub || selectorStrings(g.Subscribe) != tt.subs {
				t.Errorf("grant sub %q, publish %q, subscribe %q; want %q, %q, %q",
					g.Subject, selectorStrings(g.Publish), selectorStrings(g.Subscribe), tt.wantSub, tt.pub, tt.subs)
			}
			if lo, hi := before.Add(tt.ttl), time.Now().Add(tt.ttl); g.Expires.Before(lo) || g.Expires.After(hi) {
				t.Errorf("expires %v; want between %v and %v", g.Expires, lo, hi)
			}
		})
	}
	// A token for another key, audience or issuer is refused.
	tok := mintCmd(t, "--secret", testSecret, "--aud", "hub-b", "--iss", "dev", "--subscribe", "a")
	for _, c := range []jwtauth.Config{
		{Secret: []byte(strings.Repeat("x", 32))},
		{Secret: []byte(testSecret), Audience: "hub-a"},
		{Secret: []byte(testSecret), Issuer: "prod"},
		{PublicKeys: [][]byte{readFile(kp["rsa"].public)}},
	} {
		v, err := jwtauth.New(t.Context(), c)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Verify(t.Context(), tok); !errors.Is(err, hub.ErrInvalidToken) {
			t.Errorf("Verify with %+v = %v; want an invalid token", c, err)
		}
	}
}

func TestTokenFails(t *testing.T) {
	t.Setenv("SSEHUB_JWT_SECRET", "")
	t.Setenv("SSEHUB_JWT_SECRET_FILE", "")
	kp := testKeyPairs(t)
	short := secretFile(t, "s3cret\n")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no key", []string{"--publish", "a"}, "give --secret-file, --secret or --key (or set SSEHUB_JWT_SECRET_FILE)"},
		{"both keys", []string{"--secret", testSecret, "--key", kp["rsa"].private}, "give only one of --secret-file, --secret and --key"},
		{"secret and file", []string{"--secret", testSecret, "--secret-file", short}, "give only one of --secret-file, --secret and --key"},
		{"short secret", []string{"--secret", "s3cret"}, "the secret of --secret is 6 bytes; use at least 32"},
		{"short secret file", []string{"--secret-file", short}, "the secret in --secret-file " + short + " is 6 bytes; use at least 32"},
		{"no secret file", []string{"--secret-file", filepath.Join(t.TempDir(), "none")}, "--secret-file: open"},
		{"zero ttl", []string{"--secret", testSecret, "--ttl", "0"}, "--ttl must be positive"},
		{"negative ttl", []string{"--secret", testSecret, "--ttl", "-1h"}, "--ttl must be positive"},
		{"bad ttl", []string{"--secret", testSecret, "--ttl", "soon"}, `invalid value "soon" for flag -ttl`},
		{"bad publish selector", []string{"--secret", testSecret, "--publish", "chat//x"}, `--publish: hub: invalid topic selector "chat//x"`},
		{"bad subscribe selector", []string{"--secret", testSecret, "--subscribe", "a/**/b"}, "--subscribe: hub: invalid topic selector"},
		{"empty selector", []string{"--secret", testSecret, "--subscribe", ""}, "--subscribe: hub: invalid topic selector: empty"},
		{"no key file", []string{"--key", filepath.Join(t.TempDir(), "nope.pem")}, "--key: open"},
		{"public key file", []string{"--key", kp["rsa"].public}, "not a private key"},
		{"argument", []string{"--secret", testSecret, "extra"}, `unexpected argument "extra"`},
		{"unknown flag", []string{"--secret", testSecret, "--exp", "1h"}, "flag provided but not defined: -exp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkFails(t, append([]string{"token"}, tt.args...), exitUsage, tt.want)
		})
	}
}

// secretFile writes content to a new file and returns its name.
func secretFile(t *testing.T, content string) string {
	t.Helper()
	name := filepath.Join(t.TempDir(), "jwt-secret")
	if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return name
}

// TestTokenEnv: token reads the secret from serve's variables, so that
// one exported variable serves both and no secret is on a command line;
// what the command line gives wins.
func TestTokenEnv(t *testing.T) {
	kp := testKeyPairs(t)
	other := strings.Repeat("z", 32)
	verify := func(t *testing.T, tok string, c jwtauth.Config) {
		t.Helper()
		v, err := jwtauth.New(t.Context(), c)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Verify(t.Context(), tok); err != nil {
			t.Errorf("Verify = %v; want the token signed with the key given", err)
		}
	}
	tests := []struct {
		name       string
		secret     string // SSEHUB_JWT_SECRET
		secretFile string // SSEHUB_JWT_SECRET_FILE
		args       []string
		want       jwtauth.Config
	}{
		{"SSEHUB_JWT_SECRET_FILE", "", secretFile(t, testSecret+"\n"), nil, jwtauth.Config{Secret: []byte(testSecret)}},
		{"SSEHUB_JWT_SECRET", testSecret, "", nil, jwtauth.Config{Secret: []byte(testSecret)}},
		{"--secret-file wins", other, "", []string{"--secret-file", secretFile(t, testSecret)}, jwtauth.Config{Secret: []byte(testSecret)}},
		{"--key wins", "", secretFile(t, other), []string{"--key", kp["ed25519"].private}, jwtauth.Config{PublicKeys: [][]byte{mustRead(t, kp["ed25519"].public)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("SSEHUB_JWT_SECRET", tt.secret)
			t.Setenv("SSEHUB_JWT_SECRET_FILE", tt.secretFile)
			verify(t, mintCmd(t, append(tt.args, "--publish", "a")...), tt.want)
		})
	}
	t.Setenv("SSEHUB_JWT_SECRET", testSecret)
	t.Setenv("SSEHUB_JWT_SECRET_FILE", secretFile(t, testSecret))
	checkFails(t, []string{"token", "--publish", "a"}, exitUsage, "SSEHUB_JWT_SECRET and SSEHUB_JWT_SECRET_FILE are both set")
	t.Setenv("SSEHUB_JWT_SECRET_FILE", "")
	t.Setenv("SSEHUB_JWT_SECRET", "short")
	checkFails(t, []string{"token", "--publish", "a"}, exitUsage, "the secret of SSEHUB_JWT_SECRET is 5 bytes")
}

// TestTokenGrantsNothing: a token without --publish or --subscribe is
// minted, with a warning.
func TestTokenGrantsNothing(t *testing.T) {
	code, stdout, stderr := runMain(t, "token", "--secret", testSecret, "--sub", "alice")
	if code != exitOK || strings.Count(stdout, "\n") != 1 || !strings.Contains(stderr, "warning: the token grants no topic") || strings.Count(stderr, "\n") != 1 {
		t.Errorf("status %d, stdout %q, stderr %q; want 0, the token, and one warning line", code, stdout, stderr)
	}
}

func TestTokenHelp(t *testing.T) {
	code, stdout, _ := runMain(t, "token", "--help")
	if code != exitOK || !strings.Contains(stdout, "Examples:") || !strings.Contains(stdout, "ssehub token --secret-file") || !strings.Contains(stdout, "-subscribe selector") || !strings.Contains(stdout, "[$SSEHUB_JWT_SECRET_FILE]") {
		t.Errorf("token --help: status %d, stdout %q; want 0 and usage with examples and flags", code, stdout)
	}
	for _, want := range []string{"-mercure\n", "-payload JSON", "-no-exp\n", "--mercure-allow-no-exp", "never expires"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("token --help lacks %q:\n%s", want, stdout)
		}
	}
	if _, stdout, _ = runMain(t, "help"); !strings.Contains(stdout, "token") {
		t.Errorf("ssehub help does not list token:\n%s", stdout)
	}
}

// parseJWTFlags registers the jwt flags on a new flag set and parses args
// and then SSEHUB_* variables, as serve does.
func parseJWTFlags(t *testing.T, args ...string) (*jwtFlags, error) {
	t.Helper()
	var f jwtFlags
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f.register(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	return &f, applyEnv(fs)
}

func TestJWTFlags(t *testing.T) {
	kp := testKeyPairs(t)
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	if err := os.WriteFile(secretFile, []byte(testSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	withCRLF := filepath.Join(dir, "secret-crlf")
	if err := os.WriteFile(withCRLF, []byte(testSecret+"\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	shortFile := filepath.Join(dir, "short")
	if err := os.WriteFile(shortFile, []byte("tiny-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hsTok := mintCmd(t, "--secret", testSecret, "--publish", "a")
	edTok := mintCmd(t, "--key", kp["ed25519"].private, "--publish", "a")
	ecTok := mintCmd(t, "--key", kp["p384"].private, "--publish", "a")
	rsTok := mintCmd(t, "--key", kp["rsa"].private, "--publish", "a")
	audTok := mintCmd(t, "--secret", testSecret, "--aud", "hub-a", "--publish", "a")
	justExpired, err := jwtauth.Mint([]byte(testSecret), jwtauth.Claims{Expires: time.Now().Add(-10 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		valid []string // tokens it accepts
		bad   []string // tokens it refuses
	}{
		{"secret", []string{"--jwt-secret", testSecret}, nil, []string{hsTok}, []string{edTok}},
		{"secret file", []string{"--jwt-secret-file", secretFile}, nil, []string{hsTok}, []string{rsTok}},
		{"secret file, CRLF", []string{"--jwt-secret-file", withCRLF}, nil, []string{hsTok}, nil},
		{"secret in the environment", nil, map[string]string{"SSEHUB_JWT_SECRET": testSecret}, []string{hsTok}, nil},
		{"public keys, repeated", []string{"--jwt-public-key", kp["ed25519"].public, "--jwt-public-key", kp["p384"].public},
			nil, []string{edTok, ecTok}, []string{rsTok, hsTok}},
		{"public keys, comma-separated", []string{"--jwt-public-key", kp["ed25519"].public + ", " + kp["rsa"].public},
			nil, []string{edTok, rsTok}, []string{ecTok}},
		{"public keys in the environment", nil, map[string]string{"SSEHUB_JWT_PUBLIC_KEY": kp["p384"].public + "," + kp["rsa"].public},
			[]string{ecTok, rsTok}, []string{edTok}},
		{"flag wins over the environment", []string{"--jwt-public-key", kp["ed25519"].public}, map[string]string{"SSEHUB_JWT_PUBLIC_KEY": kp["rsa"].public},
			[]string{edTok}, []string{rsTok}},
		{"everything", []string{"--jwt-secret-file", secretFile, "--jwt-public-key", kp["rsa"].public}, map[string]string{"SSEHUB_JWT_PUBLIC_KEY": kp["p384"].public},
			[]string{hsTok, rsTok}, []string{ecTok, edTok}},
		{"audience", []string{"--jwt-secret", testSecret, "--jwt-audience", "hub-a"}, nil, []string{audTok}, []string{hsTok}},
		{"default leeway", []string{"--jwt-secret", testSecret}, nil, []string{justExpired}, nil},
		{"no leeway", []string{"--jwt-secret", testSecret, "--jwt-leeway", "0"}, nil, []string{hsTok}, []string{justExpired}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			f, err := parseJWTFlags(t, tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			if !f.configured() {
				t.Fatal("configured() = false; want true")
			}
			vs, release, err := f.verifiers(t.Context(), nil)
			if err != nil {
				t.Fatalf("verifiers: %v", err)
			}
			defer release()
			v := vs.publish
			for _, tok := range tt.valid {
				if _, err := v.Verify(t.Context(), tok); err != nil {
					t.Errorf("Verify = %v; want a grant", err)
				}
			}
			for _, tok := range tt.bad {
				if _, err := v.Verify(t.Context(), tok); !errors.Is(err, hub.ErrInvalidToken) {
					t.Errorf("Verify = %v; want an invalid token", err)
				}
			}
		})
	}

	t.Run("none", func(t *testing.T) {
		f, _ := parseJWTFlags(t, "--jwt-audience", "x")
		v, release, err := f.verifiers(t.Context(), nil)
		if f.configured() || v != (tokenVerifiers{}) || release == nil || err != nil {
			t.Errorf("configured() %v, verifiers %+v, %v; want false, no verifier and no error", f.configured(), v, err)
		}
		release()
	})

	fails := []struct {
		name string
		args []string
		want string
	}{
		{"both secrets", []string{"--jwt-secret", testSecret, "--jwt-secret-file", secretFile}, "not both"},
		{"short secret", []string{"--jwt-secret", "hunter2"}, "the JWT secret is 7 bytes; use at least 32"},
		{"short secret file", []string{"--jwt-secret-file", shortFile}, "the JWT secret is 11 bytes"},
		{"missing secret file", []string{"--jwt-secret-file", filepath.Join(dir, "nope")}, "--jwt-secret-file: open"},
		{"missing public key", []string{"--jwt-public-key", filepath.Join(dir, "nope.pem")}, "--jwt-public-key: open"},
		{"private key as public key", []string{"--jwt-public-key", kp["ed25519"].public + "," + kp["rsa"].private}, "--jwt-public-key " + kp["rsa"].private + ": found a private key (RSA PRIVATE KEY): give its public key"},
		{"not a key", []string{"--jwt-public-key", secretFile}, "--jwt-public-key " + secretFile + ": no PEM public key found"},
		{"negative leeway", []string{"--jwt-secret", testSecret, "--jwt-leeway", "-1s"}, "--jwt-leeway must not be negative"},
	}
	for _, tt := range fails {
		t.Run(tt.name, func(t *testing.T) {
			f, err := parseJWTFlags(t, tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			v, release, err := f.verifiers(t.Context(), nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) || release == nil {
				t.Errorf("verifiers = %+v, %v; want an error with %q", v, err, tt.want)
			}
			if err != nil && (strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "tiny-secret")) {
				t.Errorf("error %q shows the secret", err)
			}
			// serve refuses them like any bad flag, before it starts.
			checkFails(t, append([]string{"serve", "--store", "memory"}, tt.args...), exitUsage, tt.want)
		})
	}
}

func TestJWTFlagsURL(t *testing.T) {
	for _, tt := range []struct {
		url, want string // want "" when accepted
	}{
		{"https://idp.example.com/.well-known/jwks.json", ""},
		{"http://127.0.0.1:9/jwks", ""},
		{"http://localhost/jwks", ""},
		{"http://[::1]:8/jwks", ""},
		{"http://idp.example.com/jwks", "plain http is allowed only on loopback"},
		{"http://10.0.0.1/jwks", "plain http is allowed only on loopback"},
		{"ftp://idp.example.com/jwks", "want an https:// URL"},
		{"idp.example.com/jwks", "want an https:// URL"},
	} {
		_, err := parseJWTFlags(t, "--jwks-url", tt.url)
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("--jwks-url %s: %v; want %q", tt.url, err, tt.want)
		}
	}
	t.Setenv("SSEHUB_JWKS_URL", "http://idp.example.com/jwks")
	if _, err := parseJWTFlags(t); err == nil || !strings.Contains(err.Error(), "SSEHUB_JWKS_URL") {
		t.Errorf("SSEHUB_JWKS_URL with plain http: %v; want an error naming the variable", err)
	}
}

// TestJWTFlagsJWKS verifies a token minted with "ssehub token --key"
// against the key set that publishes its public key, on both endpoints,
// which share the key set (fetched once), and checks that the release
// function ends the refresh.
func TestJWTFlagsJWKS(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	kp := testKeyPairs(t)
	block, _ := pem.Decode(mustRead(t, kp["ed25519"].public))
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	j, err := jwkset.NewJWKFromKey(pub, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: "dev"}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{"keys": []any{j.Marshal()}})
	var fetches atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		w.Write(body)
	}))
	defer srv.Close()
	defer http.DefaultClient.CloseIdleConnections() // jwtauth fetches with it

	f, err := parseJWTFlags(t, "--jwks-url", srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	v, release, err := f.verifiers(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	g, err := v.publish.Verify(t.Context(), mintCmd(t, "--key", kp["ed25519"].private, "--subscribe", "user/1/*", "--sub", "u1"))
	if err != nil || g.Subject != "u1" || selectorStrings(g.Subscribe) != "user/1/*" {
		t.Errorf("Verify = %+v, %v; want u1's grant", g, err)
	}
	if _, err := v.publish.Verify(t.Context(), mintCmd(t, "--key", kp["rsa"].private, "--publish", "a")); !errors.Is(err, hub.ErrInvalidToken) {
		t.Errorf("Verify(other key) = %v; want an invalid token", err)
	}
	g, err = v.mercureSubscribe.Verify(t.Context(), mintCmd(t, "--key", kp["ed25519"].private, "--mercure", "--subscribe", "/users/{id}"))
	if err != nil || selectorStrings(g.Subscribe) != "/users/{id}" {
		t.Errorf("Mercure Verify = %+v, %v; want the grant of /users/{id}", g, err)
	}
	if n := fetches.Load(); n != 1 {
		t.Errorf("the key set was fetched %d times; want once, for both endpoints", n)
	}
}

func mustRead(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestTokenMercure: with --mercure, token grants in the mercure claim,
// with Mercure's selectors and a payload, and with --no-exp mints a token
// that only a verifier allowing it accepts, with a warning.
func TestTokenMercure(t *testing.T) {
	const conformanceKey = "!ChangeThisMercureHubJWTSecretKey!" // Mercure's conformance suite signs with it
	mercure := func(t *testing.T, secret string, allowNoExp bool) *jwtauth.Verifier {
		t.Helper()
		v, err := jwtauth.New(t.Context(), jwtauth.Config{Secret: []byte(secret), Claim: jwtauth.ClaimMercure, AllowNoExp: allowNoExp})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}

	tok := mintCmd(t, "--secret", testSecret, "--mercure", "--sub", "app", "--ttl", "10m",
		"--publish", "*", "--subscribe", "https://example.com/books/{id}", "--payload", `{"user": "https://example.com/users/42"}`)
	g, err := mercure(t, testSecret, false).Verify(t.Context(), tok)
	if err != nil {
		t.Fatalf("Verify = %v; want a grant", err)
	}
	if g.Subject != "app" || selectorStrings(g.Publish) != "*" || selectorStrings(g.Subscribe) != "https://example.com/books/{id}" ||
		string(g.Payload) != `{"user":"https://example.com/users/42"}` || time.Until(g.Expires) > 10*time.Minute {
		t.Errorf("grant %+v; want sub app, publish *, subscribe the template, the payload, 10 minutes", g)
	}
	if !g.Subscribe[0].Match("https://example.com/books/7") {
		t.Error("the template does not match https://example.com/books/7")
	}
	// The native endpoint reads no grant from it.
	native, err := jwtauth.New(t.Context(), jwtauth.Config{Secret: []byte(testSecret)})
	if err != nil {
		t.Fatal(err)
	}
	if g, err := native.Verify(t.Context(), tok); err != nil || len(g.Publish)+len(g.Subscribe) != 0 {
		t.Errorf("native Verify = %+v, %v; want a grant of nothing", g, err)
	}

	// The token of Mercure's conformance suite: HS256, publish *, no exp.
	code, stdout, stderr := runMain(t, "token", "--secret", conformanceKey, "--mercure", "--publish", "*", "--no-exp")
	if code != exitOK || strings.Count(stdout, "\n") != 1 || !strings.Contains(stderr, "warning: the token has no exp and never expires") || strings.Count(stderr, "\n") != 1 {
		t.Fatalf("token --no-exp: status %d, stdout %q, stderr %q; want 0, the token and one warning", code, stdout, stderr)
	}
	tok = strings.TrimSpace(stdout)
	if g, err := mercure(t, conformanceKey, true).Verify(t.Context(), tok); err != nil || !g.Expires.IsZero() || selectorStrings(g.Publish) != "*" {
		t.Errorf("Verify allowing no exp = %+v, %v; want publish * and no expiry", g, err)
	}
	if _, err := mercure(t, conformanceKey, false).Verify(t.Context(), tok); err == nil || !strings.Contains(err.Error(), "no exp claim") {
		t.Errorf("Verify = %v; want no exp claim", err)
	}

	code, _, stderr = runMain(t, "token", "--secret", testSecret, "--mercure", "--payload", "1")
	if code != exitOK || !strings.Contains(stderr, "warning: the token grants no topic (no --publish, no --subscribe): it can neither publish nor receive private updates") {
		t.Errorf("token --mercure without grants: status %d, stderr %q; want 0 and a warning", code, stderr)
	}

	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"no exp without --mercure", []string{"--no-exp", "--publish", "a"}, "--no-exp needs --mercure: /events refuses tokens without exp"},
		{"no exp with a ttl", []string{"--mercure", "--no-exp", "--ttl", "1h"}, "--no-exp and --ttl"},
		{"payload without --mercure", []string{"--payload", "{}"}, "--payload needs --mercure"},
		{"payload not JSON", []string{"--mercure", "--payload", "hello"}, "--payload is not JSON"},
		{"empty Mercure selector", []string{"--mercure", "--subscribe", ""}, "--subscribe: hub: invalid topic selector: empty"},
		{"Mercure selector with a control character", []string{"--mercure", "--publish", "a\tb"}, "--publish: hub: invalid topic selector"},
		{"Mercure template without --mercure", []string{"--publish", "https://example.com/books/{id}"}, "--publish: hub: invalid topic selector"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			checkFails(t, append([]string{"token", "--secret", testSecret}, tt.args...), exitUsage, tt.want)
		})
	}
}
