package jwtauth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ssehub/ssehub/hub"
)

// testKeys are generated once: RSA generation is slow under -race.
type testKeys struct {
	secret, otherSecret []byte
	rsa, otherRSA       *rsa.PrivateKey
	p256, p384, p521    *ecdsa.PrivateKey
	ed                  ed25519.PrivateKey
}

var keysOnce = sync.OnceValue(func() *testKeys {
	k := &testKeys{
		secret:      []byte("0123456789abcdef0123456789abcdef"),
		otherSecret: []byte("fedcba9876543210fedcba9876543210"),
	}
	var err error
	must := func() {
		if err != nil {
			panic(err)
		}
	}
	k.rsa, err = rsa.GenerateKey(rand.Reader, 2048)
	must()
	k.otherRSA, err = rsa.GenerateKey(rand.Reader, 2048)
	must()
	k.p256, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must()
	k.p384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	must()
	k.p521, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	must()
	_, k.ed, err = ed25519.GenerateKey(rand.Reader)
	must()
	return k
})

// pemPublic returns the PKIX PEM of pub.
func pemPublic(t testing.TB, pub crypto.PublicKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// sign signs claims with method and key, with the extra header fields
// given, bypassing Mint's checks.
func sign(t testing.TB, method jwt.SigningMethod, key any, c jwt.Claims, header map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, c)
	for k, v := range header {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign %s: %v", method.Alg(), err)
	}
	return s
}

// mint is Mint that fails the test on error.
func mint(t testing.TB, key any, c Claims) string {
	t.Helper()
	s, err := Mint(key, c)
	if err != nil {
		t.Fatalf("Mint: %v", err)
	}
	return s
}

// raw builds a token from JSON header and payload and a signature,
// unsigned: for tokens no library would sign.
func raw(header, payload string, sig []byte) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(header)) + "." + enc([]byte(payload)) + "." + enc(sig)
}

// tamper replaces the payload of token with the JSON payload, keeping its
// header and signature.
func tamper(t testing.TB, token, payload string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q has %d parts", token, len(parts))
	}
	parts[1] = base64.RawURLEncoding.EncodeToString([]byte(payload))
	return strings.Join(parts, ".")
}

// payload returns the decoded JSON payload of token.
func payload(t testing.TB, token string) map[string]any {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func newVerifier(t testing.TB, c Config) *Verifier {
	t.Helper()
	v, err := New(t.Context(), c)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return v
}

// grantString renders the parts of g a test compares.
func grantString(g *hub.Grant) string {
	var pub, sub []string
	for _, s := range g.Publish {
		pub = append(pub, s.String())
	}
	for _, s := range g.Subscribe {
		sub = append(sub, s.String())
	}
	return "sub=" + g.Subject + " publish=" + strings.Join(pub, ",") + " subscribe=" + strings.Join(sub, ",")
}

func TestVerify(t *testing.T) {
	k := keysOnce()
	now := time.Now()
	exp := now.Add(time.Hour)
	all := newVerifier(t, Config{
		Secret: k.secret,
		PublicKeys: [][]byte{
			pemPublic(t, &k.rsa.PublicKey),
			append(pemPublic(t, &k.p256.PublicKey), pemPublic(t, &k.p384.PublicKey)...), // two in one file
			pemPublic(t, &k.p521.PublicKey),
			pemPublic(t, k.ed.Public()),
		},
	})
	rsaPEM := pemPublic(t, &k.rsa.PublicKey)
	rsaOnly := newVerifier(t, Config{PublicKeys: [][]byte{rsaPEM}})
	withAud := newVerifier(t, Config{Secret: k.secret, Audience: "hub-a"})
	withIss := newVerifier(t, Config{Secret: k.secret, Issuer: "https://idp.example"})
	noLeeway := newVerifier(t, Config{Secret: k.secret, Leeway: -1})

	grants := Claims{Subject: "alice", Expires: exp, Publish: []string{"chat/**"}, Subscribe: []string{"user/42/*"}}
	const grantsWant = "sub=alice publish=chat/** subscribe=user/42/*"
	reg := func(mod func(*jwt.RegisteredClaims)) jwt.Claims {
		c := claims{
			RegisteredClaims: jwt.RegisteredClaims{Subject: "alice", ExpiresAt: jwt.NewNumericDate(exp), IssuedAt: jwt.NewNumericDate(now)},
			SSEHub:           &grantClaim{Publish: []string{"chat/**"}, Subscribe: []string{"user/42/*"}},
		}
		if mod != nil {
			mod(&c.RegisteredClaims)
		}
		return c
	}
	at := func(d time.Duration) *jwt.NumericDate { return jwt.NewNumericDate(now.Add(d)) }
	with := func(mod func(*Claims)) Claims {
		c := grants
		mod(&c)
		return c
	}
	validHS := mint(t, k.secret, grants)
	validRS := mint(t, k.rsa, grants)

	tests := []struct {
		name   string
		v      *Verifier
		token  string
		reason string // "" when the token is valid
	}{
		// Each key type, and each algorithm it is pinned to.
		{"HS256", all, validHS, ""},
		{"HS384", all, sign(t, jwt.SigningMethodHS384, k.secret, reg(nil), nil), ""},
		{"HS512", all, sign(t, jwt.SigningMethodHS512, k.secret, reg(nil), nil), ""},
		{"RS256", all, validRS, ""},
		{"RS512", all, sign(t, jwt.SigningMethodRS512, k.rsa, reg(nil), nil), ""},
		{"PS256", all, sign(t, jwt.SigningMethodPS256, k.rsa, reg(nil), nil), ""},
		{"ES256", all, mint(t, k.p256, grants), ""},
		{"ES384", all, mint(t, k.p384, grants), ""},
		{"ES512", all, mint(t, k.p521, grants), ""},
		{"EdDSA", all, mint(t, k.ed, grants), ""},
		{"kid ignored without JWKS", all, mint(t, k.ed, with(func(c *Claims) { c.KeyID = "whatever" })), ""},

		// Time.
		{"expired", all, mint(t, k.secret, with(func(c *Claims) { c.Expires = now.Add(-time.Hour) })), "expired"},
		{"expired beyond leeway", all, mint(t, k.secret, with(func(c *Claims) { c.Expires = now.Add(-40 * time.Second) })), "expired"},
		{"expired within leeway", all, mint(t, k.secret, with(func(c *Claims) { c.Expires = now.Add(-10 * time.Second) })), ""},
		{"expired, no leeway", noLeeway, mint(t, k.secret, with(func(c *Claims) { c.Expires = now.Add(-10 * time.Second) })), "expired"},
		{"nbf in the future", all, mint(t, k.secret, with(func(c *Claims) { c.NotBefore = now.Add(time.Hour) })), "not valid yet"},
		{"nbf within leeway", all, mint(t, k.secret, with(func(c *Claims) { c.NotBefore = now.Add(10 * time.Second) })), ""},
		{"nbf past", all, mint(t, k.secret, with(func(c *Claims) { c.NotBefore = now.Add(-time.Minute) })), ""},
		{"iat in the future", all, mint(t, k.secret, with(func(c *Claims) { c.IssuedAt = now.Add(time.Hour) })), "issued in the future"},
		{"iat within leeway", all, mint(t, k.secret, with(func(c *Claims) { c.IssuedAt = now.Add(10 * time.Second) })), ""},
		{"no exp", all, sign(t, jwt.SigningMethodHS256, k.secret, reg(func(c *jwt.RegisteredClaims) { c.ExpiresAt = nil }), nil), "no exp claim"},
		{"no iat", all, sign(t, jwt.SigningMethodHS256, k.secret, reg(func(c *jwt.RegisteredClaims) { c.IssuedAt = nil }), nil), ""},
		{"exp not a number", all, raw(`{"alg":"HS256"}`, `{"exp":"tomorrow"}`, nil), "malformed"},

		// Keys and algorithms.
		{"wrong secret", all, mint(t, k.otherSecret, grants), "bad signature"},
		{"wrong RSA key", all, mint(t, k.otherRSA, grants), "bad signature"},
		{"ES256 header, P-384 key's alg", all, sign(t, jwt.SigningMethodES256, k.p256, reg(nil), map[string]any{"alg": "ES384"}), "bad signature"},
		{"RS256 only key", rsaOnly, validRS, ""},
		{"alg none", all, raw(`{"alg":"none","typ":"JWT"}`, `{"sub":"alice","exp":`+jsonTime(exp)+`,"ssehub":{"publish":["**"]}}`, nil), "algorithm none not allowed"},
		{"alg none signed", all, sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, reg(nil), nil), "algorithm none not allowed"},
		{"alg None", all, raw(`{"alg":"None"}`, `{"exp":`+jsonTime(exp)+`}`, nil), "unsupported algorithm"},
		{"no alg", all, raw(`{"typ":"JWT"}`, `{"exp":`+jsonTime(exp)+`}`, nil), "unsupported algorithm"},
		{"HS256 with the RSA public key as secret", rsaOnly, sign(t, jwt.SigningMethodHS256, rsaPEM, reg(nil), nil), "no key for algorithm HS256"},
		{"HS256 with the RSA public key as secret, a secret configured", all, sign(t, jwt.SigningMethodHS256, rsaPEM, reg(nil), nil), "bad signature"},
		{"HS256 with the RSA public key DER as secret", all, sign(t, jwt.SigningMethodHS256, x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey), reg(nil), nil), "bad signature"},
		{"ES256 on an RSA-only verifier", rsaOnly, mint(t, k.p256, grants), "no key for algorithm ES256"},
		{"tampered HS256 payload", all, tamper(t, validHS, `{"sub":"alice","exp":`+jsonTime(exp)+`,"ssehub":{"publish":["**"]}}`), "bad signature"},
		{"tampered RS256 payload", all, tamper(t, validRS, `{"sub":"mallory","exp":`+jsonTime(exp)+`,"ssehub":{"publish":["chat/**"],"subscribe":["user/42/*"]}}`), "bad signature"},
		{"tampered exp", all, tamper(t, mint(t, k.secret, with(func(c *Claims) { c.Expires = now.Add(-time.Hour) })), `{"sub":"alice","exp":`+jsonTime(exp)+`}`), "bad signature"},
		{"signature stripped", all, strings.TrimRightFunc(validHS, func(r rune) bool { return r != '.' }), "bad signature"},
		{"kid not a string", all, sign(t, jwt.SigningMethodHS256, k.secret, reg(nil), map[string]any{"kid": 7}), "kid is not a string"},
		{"crit header", all, sign(t, jwt.SigningMethodHS256, k.secret, reg(nil), map[string]any{"crit": []string{"exp"}}), "unsupported crit header"},
		{"not a JWT", all, "not-a-jwt", "malformed"},
		{"empty", all, "", "malformed"},

		// Audience and issuer.
		{"right aud", withAud, mint(t, k.secret, with(func(c *Claims) { c.Audience = "hub-a" })), ""},
		{"right aud among several", withAud, sign(t, jwt.SigningMethodHS256, k.secret, reg(func(c *jwt.RegisteredClaims) { c.Audience = jwt.ClaimStrings{"x", "hub-a"} }), nil), ""},
		{"wrong aud", withAud, mint(t, k.secret, with(func(c *Claims) { c.Audience = "hub-b" })), "wrong audience"},
		{"no aud", withAud, mint(t, k.secret, grants), "no aud claim"},
		{"aud not checked unless configured", all, mint(t, k.secret, with(func(c *Claims) { c.Audience = "hub-b" })), ""},
		{"right iss", withIss, mint(t, k.secret, with(func(c *Claims) { c.Issuer = "https://idp.example" })), ""},
		{"wrong iss", withIss, mint(t, k.secret, with(func(c *Claims) { c.Issuer = "https://evil.example" })), "wrong issuer"},
		{"no iss", withIss, mint(t, k.secret, grants), "no iss claim"},

		// The ssehub claim.
		{"bad publish selector", all, sign(t, jwt.SigningMethodHS256, k.secret, claims{RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: at(time.Hour)}, SSEHub: &grantClaim{Publish: []string{"chat//x"}}}, nil), `bad publish selector "chat//x"`},
		{"bad subscribe selector", all, sign(t, jwt.SigningMethodHS256, k.secret, claims{RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: at(time.Hour)}, SSEHub: &grantClaim{Subscribe: []string{"**/x"}}}, nil), `bad subscribe selector "**/x"`},
		{"selector with a newline", all, sign(t, jwt.SigningMethodHS256, k.secret, claims{RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: at(time.Hour)}, SSEHub: &grantClaim{Subscribe: []string{"chat/\nevent: x"}}}, nil), `bad subscribe selector "chat/\nevent: x"`},
		{"publish not a list", all, sign(t, jwt.SigningMethodHS256, k.secret, jwt.MapClaims{"exp": exp.Unix(), "ssehub": map[string]any{"publish": "chat/**"}}, nil), "malformed"},
		{"no ssehub claim", all, mint(t, k.secret, Claims{Subject: "bob", Expires: exp}), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := tt.v.Verify(t.Context(), tt.token)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("Verify = %v; want a grant", err)
				}
				if g.Expires.IsZero() || g.Key == "" {
					t.Errorf("grant %+v; want Expires and Key set", g)
				}
				if strings.HasPrefix(tt.name, "no ssehub") {
					if got := grantString(g); got != "sub=bob publish= subscribe=" {
						t.Errorf("grant %q; want sub=bob and no selectors", got)
					}
				} else if got := grantString(g); got != grantsWant {
					t.Errorf("grant %q; want %q", got, grantsWant)
				}
				return
			}
			if err == nil {
				t.Fatalf("Verify = %+v; want an error with %q", g, tt.reason)
			}
			if !errors.Is(err, hub.ErrInvalidToken) || !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("Verify error %q; want it to wrap hub.ErrInvalidToken and say %q", err, tt.reason)
			}
			if strings.Contains(err.Error(), string(k.secret)) || strings.Contains(err.Error(), "BEGIN") {
				t.Errorf("Verify error %q shows key material", err)
			}
		})
	}
}

func jsonTime(t time.Time) string {
	b, _ := json.Marshal(t.Unix())
	return string(b)
}

func TestVerifyGrant(t *testing.T) {
	k := keysOnce()
	v := newVerifier(t, Config{Secret: k.secret})
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	withJTI := mint(t, k.secret, Claims{Subject: "s", ID: "token-7", Expires: exp, Publish: []string{"a", "b/*"}})
	g, err := v.Verify(t.Context(), withJTI)
	if err != nil {
		t.Fatal(err)
	}
	if g.Subject != "s" || g.Key != "token-7" || !g.Expires.Equal(exp) || len(g.Publish) != 2 || !g.Publish[1].Match("b/x") || len(g.Subscribe) != 0 {
		t.Errorf("grant %+v; want subject s, key token-7, expires %v, publish a and b/*", g, exp)
	}
	noJTI := mint(t, k.secret, Claims{Expires: exp})
	g1, err := v.Verify(t.Context(), noJTI)
	if err != nil {
		t.Fatal(err)
	}
	g2, _ := v.Verify(t.Context(), noJTI)
	other, _ := v.Verify(t.Context(), mint(t, k.secret, Claims{Expires: exp.Add(time.Second)}))
	if len(g1.Key) != 16 || g1.Key != g2.Key || g1.Key == other.Key || strings.Contains(noJTI, g1.Key) {
		t.Errorf("keys %q, %q, %q; want a 16-digit hex hash of the token, the same for the same token only", g1.Key, g2.Key, other.Key)
	}
}

func TestNewRefuses(t *testing.T) {
	k := keysOnce()
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	privDER, _ := x509.MarshalPKCS8PrivateKey(k.ed)
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}})
	tests := []struct {
		name string
		c    Config
		want string
	}{
		{"nothing", Config{}, "no key configured"},
		{"short secret", Config{Secret: []byte("s3cret")}, "at least 32"},
		{"empty secret", Config{Secret: []byte{}}, "at least 32"},
		{"not PEM", Config{PublicKeys: [][]byte{[]byte("hello")}}, "no PEM public key"},
		{"private key", Config{PublicKeys: [][]byte{pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER})}}, "found a private key (PRIVATE KEY): give its public key"},
		{"certificate", Config{PublicKeys: [][]byte{cert}}, "found CERTIFICATE, not PUBLIC KEY"},
		{"small RSA", Config{PublicKeys: [][]byte{pemPublic(t, &small.PublicKey)}}, "1024 bits"},
		{"P-224", Config{PublicKeys: [][]byte{pemPublic(t, &p224.PublicKey)}}, "curve P-224"},
		{"second file bad", Config{PublicKeys: [][]byte{pemPublic(t, k.ed.Public()), []byte("x")}}, "public key 2"},
		{"bad JWKS URL", Config{JWKSURL: "::"}, "JWKS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := New(t.Context(), tt.c)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New = %v, %v; want an error with %q", v, err, tt.want)
			}
		})
	}
}

func TestMintRefuses(t *testing.T) {
	k := keysOnce()
	exp := time.Now().Add(time.Hour)
	tests := []struct {
		name string
		key  any
		c    Claims
		want string
	}{
		{"no exp", k.secret, Claims{}, "no expiry"},
		{"short secret", []byte("short"), Claims{Expires: exp}, "at least 32"},
		{"public key", &k.rsa.PublicKey, Claims{Expires: exp}, "cannot sign with a *rsa.PublicKey"},
		{"string secret", string(k.secret), Claims{Expires: exp}, "cannot sign with a string"},
		{"bad publish", k.secret, Claims{Expires: exp, Publish: []string{"a/**/b"}}, "** must be the last"},
		{"bad subscribe", k.secret, Claims{Expires: exp, Subscribe: []string{""}}, "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Mint(tt.key, tt.c)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Mint = %q, %v; want an error with %q", s, err, tt.want)
			}
		})
	}
}

func TestMintClaims(t *testing.T) {
	k := keysOnce()
	now := time.Now().Truncate(time.Second)
	tok := mint(t, k.p384, Claims{
		Subject: "s", Audience: "a", Issuer: "i", ID: "j", KeyID: "k1",
		IssuedAt: now, NotBefore: now, Expires: now.Add(time.Minute),
		Publish: []string{"p/**"}, Subscribe: []string{"s/*"},
	})
	got, _ := json.Marshal(payload(t, tok))
	want := `{"aud":["a"],"exp":` + jsonTime(now.Add(time.Minute)) + `,"iat":` + jsonTime(now) + `,"iss":"i","jti":"j","nbf":` + jsonTime(now) +
		`,"ssehub":{"publish":["p/**"],"subscribe":["s/*"]},"sub":"s"}`
	if string(got) != want {
		t.Errorf("payload %s; want %s", got, want)
	}
	hdr, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
	if string(hdr) != `{"alg":"ES384","kid":"k1","typ":"JWT"}` {
		t.Errorf("header %s; want ES384 with kid k1", hdr)
	}
	// Without grants or iat: no ssehub claim, iat is now.
	p := payload(t, mint(t, k.secret, Claims{Expires: now.Add(time.Minute)}))
	if _, ok := p["ssehub"]; ok || p["iat"] == nil {
		t.Errorf("payload %v; want no ssehub claim, and iat", p)
	}
}

func TestParsePrivateKeyPEM(t *testing.T) {
	k := keysOnce()
	pkcs8 := func(key any) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	sec1, err := x509.MarshalECPrivateKey(k.p256)
	if err != nil {
		t.Fatal(err)
	}
	ecParams := pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{6, 8, 42, 134, 72, 206, 61, 3, 1, 7}})
	tests := []struct {
		name string
		pem  []byte
		want crypto.PublicKey // nil: an error is expected
	}{
		{"PKCS8 RSA", pkcs8(k.rsa), &k.rsa.PublicKey},
		{"PKCS8 ECDSA", pkcs8(k.p521), &k.p521.PublicKey},
		{"PKCS8 Ed25519", pkcs8(k.ed), k.ed.Public()},
		{"PKCS1 RSA", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k.rsa)}), &k.rsa.PublicKey},
		{"SEC1 after EC PARAMETERS", append(ecParams, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1})...), &k.p256.PublicKey},
		{"public key", pemPublic(t, k.ed.Public()), nil},
		{"encrypted", pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1}}), nil},
		{"legacy encrypted", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED"}, Bytes: []byte{1}}), nil},
		{"garbage in block", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2}}), nil},
		{"not PEM", []byte("hello"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, err := ParsePrivateKeyPEM(tt.pem)
			if tt.want == nil {
				if err == nil {
					t.Errorf("ParsePrivateKeyPEM = %T; want an error", key)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePrivateKeyPEM: %v", err)
			}
			pub := key.(crypto.Signer).Public()
			if !pub.(interface{ Equal(crypto.PublicKey) bool }).Equal(tt.want) {
				t.Errorf("ParsePrivateKeyPEM gave a key whose public key is not the one encoded")
			}
		})
	}
}
