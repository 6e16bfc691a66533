package jwtauth

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/goleak"

	"github.com/ssehub/ssehub/hub"
)

// signJSON signs the JSON payload as it is, byte for byte, with HS256:
// for claims whose exact text a test looks at.
func signJSON(t testing.TB, secret []byte, payload string) string {
	t.Helper()
	enc := base64.RawURLEncoding.EncodeToString
	unsigned := enc([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc([]byte(payload))
	sig, err := jwt.SigningMethodHS256.Sign(unsigned, secret)
	if err != nil {
		t.Fatal(err)
	}
	return unsigned + "." + enc(sig)
}

// TestVerifyClaims reads tokens with each claim form through verifiers of
// each Claim, with and without AllowNoExp.
func TestVerifyClaims(t *testing.T) {
	k := keysOnce()
	now := time.Now()
	exp := `"exp":` + jsonTime(now.Add(time.Hour))
	native := newVerifier(t, Config{Secret: k.secret})
	nativeNoExp := newVerifier(t, Config{Secret: k.secret, AllowNoExp: true})
	mercure := newVerifier(t, Config{Secret: k.secret, Claim: ClaimMercure})
	mercureNoExp := newVerifier(t, Config{Secret: k.secret, Claim: ClaimMercure, AllowNoExp: true})
	derived := native.WithClaim(ClaimMercure, true) // the same as mercureNoExp
	back := derived.WithClaim(ClaimSSEHub, false)   // the same as native

	const books = `https://example.com/books/{id}`
	tests := []struct {
		name    string
		v       *Verifier
		payload string
		grant   string // grantString of the grant; "" when refused
		reason  string // when refused
		body    string // the grant's Payload
		noExp   bool   // the grant does not expire
	}{
		// The mercure claim and its forms.
		{"mercure claim", mercure, `{` + exp + `,"sub":"bob","mercure":{"publish":["` + books + `"],"subscribe":["*","/users/42/{?topic}"]}}`,
			"sub=bob publish=" + books + " subscribe=*,/users/42/{?topic}", "", "", false},
		{"namespaced claim", mercure, `{` + exp + `,"` + mercureNamespace + `":{"publish":["/a"]}}`, "sub= publish=/a subscribe=", "", "", false},
		{"namespaced claim wins", mercure, `{` + exp + `,"mercure":{"publish":["*"]},"` + mercureNamespace + `":{"subscribe":["/b"]}}`, "sub= publish= subscribe=/b", "", "", false},
		{"no claim", mercure, `{` + exp + `,"sub":"bob"}`, "sub=bob publish= subscribe=", "", "", false},
		{"empty claim", mercure, `{` + exp + `,"mercure":{}}`, "sub= publish= subscribe=", "", "", false},
		{"native syntax is exact in Mercure", mercure, `{` + exp + `,"mercure":{"publish":["chat/**"]}}`, "sub= publish=chat/** subscribe=", "", "", false},
		{"bad subscribe selector", mercure, `{` + exp + `,"mercure":{"subscribe":["/ok","/a\u0000b"]}}`, "", `bad subscribe selector "/a\x00b"`, "", false},
		{"bad publish selector: empty", mercure, `{` + exp + `,"mercure":{"publish":[""]}}`, "", `bad publish selector ""`, "", false},
		{"bad namespaced selector", mercure, `{` + exp + `,"` + mercureNamespace + `":{"publish":["a\nb"]}}`, "", `bad publish selector "a\nb"`, "", false},
		{"publish not a list", mercure, `{` + exp + `,"mercure":{"publish":"*"}}`, "", "malformed", "", false},
		{"claim not an object", mercure, `{` + exp + `,"mercure":["*"]}`, "", "malformed", "", false},

		// The payload is kept verbatim, whatever JSON it is.
		{"object payload", mercure, `{` + exp + `,"mercure":{"subscribe":["*"],"payload":{"user": "https://example.com/users/1",  "n":[1, 2.50, 1e3]}}}`,
			"sub= publish= subscribe=*", "", `{"user": "https://example.com/users/1",  "n":[1, 2.50, 1e3]}`, false},
		{"string payload", mercure, `{` + exp + `,"mercure":{"payload":"caf\u00e9"}}`, "sub= publish= subscribe=", "", `"caf\u00e9"`, false},
		{"number payload", mercure, `{` + exp + `,"mercure":{"payload":42}}`, "sub= publish= subscribe=", "", `42`, false},
		{"null payload", mercure, `{` + exp + `,"mercure":{"payload":null}}`, "sub= publish= subscribe=", "", "", false},
		{"namespaced payload", mercure, `{` + exp + `,"` + mercureNamespace + `":{"payload":{"a":[]}}}`, "sub= publish= subscribe=", "", `{"a":[]}`, false},

		// exp: required unless AllowNoExp, and checked when present.
		{"no exp", mercure, `{"mercure":{"publish":["*"]}}`, "", "no exp claim", "", false},
		{"no exp, allowed", mercureNoExp, `{"mercure":{"publish":["*"]}}`, "sub= publish=* subscribe=", "", "", true},
		{"no exp, allowed by WithClaim", derived, `{"mercure":{"publish":["*"]}}`, "sub= publish=* subscribe=", "", "", true},
		{"no exp, native", native, `{"ssehub":{"publish":["a"]}}`, "", "no exp claim", "", false},
		{"no exp, native after WithClaim", back, `{"ssehub":{"publish":["a"]}}`, "", "no exp claim", "", false},
		{"no exp, native allowed", nativeNoExp, `{"ssehub":{"publish":["a"]}}`, "sub= publish=a subscribe=", "", "", true},
		{"expired, no exp allowed", mercureNoExp, `{"exp":` + jsonTime(now.Add(-time.Hour)) + `,"mercure":{"publish":["*"]}}`, "", "expired", "", false},
		{"nbf in the future, no exp", mercureNoExp, `{"nbf":` + jsonTime(now.Add(time.Hour)) + `,"mercure":{"publish":["*"]}}`, "", "not valid yet", "", false},
		{"iat in the future, no exp", mercureNoExp, `{"iat":` + jsonTime(now.Add(time.Hour)) + `}`, "", "issued in the future", "", false},
		{"exp, no exp allowed", mercureNoExp, `{` + exp + `,"mercure":{"publish":["*"]}}`, "sub= publish=* subscribe=", "", "", false},

		// Each reader ignores the other's claim, even malformed.
		{"ssehub claim, mercure reader", mercure, `{` + exp + `,"ssehub":{"publish":["**"]}}`, "sub= publish= subscribe=", "", "", false},
		{"malformed ssehub claim, mercure reader", mercure, `{` + exp + `,"ssehub":{"publish":"**"}}`, "sub= publish= subscribe=", "", "", false},
		{"mercure claim, native reader", native, `{` + exp + `,"mercure":{"publish":["*"],"payload":1}}`, "sub= publish= subscribe=", "", "", false},
		{"malformed mercure claim, native reader", native, `{` + exp + `,"mercure":"all"}`, "sub= publish= subscribe=", "", "", false},
		{"both claims, mercure reader", mercure, `{` + exp + `,"ssehub":{"publish":["a/*"]},"mercure":{"publish":["/m"]}}`, "sub= publish=/m subscribe=", "", "", false},
		{"both claims, native reader", native, `{` + exp + `,"ssehub":{"publish":["a/*"]},"mercure":{"publish":["/m"]}}`, "sub= publish=a/* subscribe=", "", "", false},
		{"both claims, back to native", back, `{` + exp + `,"ssehub":{"publish":["a/*"]},"mercure":{"publish":["/m"]}}`, "sub= publish=a/* subscribe=", "", "", false},
		{"Mercure template in the ssehub claim", native, `{` + exp + `,"ssehub":{"publish":["` + books + `"]}}`, "", "bad publish selector", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := tt.v.Verify(t.Context(), signJSON(t, k.secret, tt.payload))
			if tt.grant == "" {
				if !errors.Is(err, hub.ErrInvalidToken) || !strings.Contains(err.Error(), tt.reason) {
					t.Errorf("Verify = %+v, %v; want an invalid token error with %q", g, err, tt.reason)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify = %v; want a grant", err)
			}
			if got := grantString(g); got != tt.grant {
				t.Errorf("grant %q; want %q", got, tt.grant)
			}
			if tt.body == "" && g.Payload != nil || string(g.Payload) != tt.body {
				t.Errorf("Payload %q (nil %v); want %q", g.Payload, g.Payload == nil, tt.body)
			}
			if g.Expires.IsZero() != tt.noExp {
				t.Errorf("Expires %v; want zero: %v", g.Expires, tt.noExp)
			}
			if g.Key == "" {
				t.Error("Key is empty; want a hash of the token")
			}
		})
	}
}

// TestVerifyMercureSelectors: the grants of the mercure claim match as
// Mercure's selectors do.
func TestVerifyMercureSelectors(t *testing.T) {
	k := keysOnce()
	v := newVerifier(t, Config{Secret: k.secret, Claim: ClaimMercure})
	g, err := v.Verify(t.Context(), mint(t, k.secret, Claims{Claim: ClaimMercure, Expires: time.Now().Add(time.Hour),
		Publish: []string{"https://example.com/books/{id}"}, Subscribe: []string{"*"}}))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		sels  []hub.Selector
		topic string
		want  bool
	}{
		{g.Publish, "https://example.com/books/1", true},
		{g.Publish, "https://example.com/books/1/reviews", false},
		{g.Publish, "https://example.com/books/{id}", true},
		{g.Subscribe, "anything at all", true},
	} {
		if got := hub.MatchAny(tt.sels, []string{tt.topic}); got != tt.want {
			t.Errorf("%v matches %q: %v; want %v", tt.sels, tt.topic, got, tt.want)
		}
	}
}

// TestWithClaimSharesKeys: a Verifier of WithClaim trusts the keys of the
// one it comes from, JWKS included, and the key set is fetched once.
func TestWithClaimSharesKeys(t *testing.T) {
	defer goleak.VerifyNone(t)
	k := keysOnce()
	srv := newJWKSServer(t)
	defer srv.Close()
	client := srv.Client()
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	srv.serve(t, jwk{k.ed.Public(), jwkset.JWKMetadataOptions{KID: "k1"}})

	v, err := New(ctx, Config{JWKSURL: srv.URL, Client: client, Secret: k.secret, Audience: "hub-a"})
	if err != nil {
		t.Fatal(err)
	}
	m := v.WithClaim(ClaimMercure, false)
	exp := time.Now().Add(time.Hour)
	mc := Claims{Claim: ClaimMercure, Expires: exp, Audience: "hub-a", Publish: []string{"*"}}
	withKID := mc
	withKID.KeyID = "k1"
	for name, tok := range map[string]string{
		"JWKS key":         mint(t, k.ed, withKID),
		"JWKS key, no kid": mint(t, k.ed, mc),
		"HMAC secret":      mint(t, k.secret, mc),
	} {
		if g, err := m.Verify(t.Context(), tok); err != nil || grantString(g) != "sub= publish=* subscribe=" {
			t.Errorf("%s: Verify = %v, %v; want publish=*", name, g, err)
		}
	}
	other := mc
	other.Audience = "hub-b"
	if _, err := m.Verify(t.Context(), mint(t, k.ed, other)); err == nil || !strings.Contains(err.Error(), "wrong audience") {
		t.Errorf("Verify(other audience) = %v; want wrong audience: WithClaim keeps the audience", err)
	}
	if _, err := m.Verify(t.Context(), mint(t, k.otherSecret, mc)); !errors.Is(err, hub.ErrInvalidToken) {
		t.Errorf("Verify(other secret) = %v; want an invalid token", err)
	}
	if got := srv.fetchCount(); got != 1 {
		t.Errorf("%d fetches of the key set; want 1, shared by both verifiers", got)
	}
	// The native verifier is unchanged: it still reads the ssehub claim.
	if g, err := v.Verify(t.Context(), mint(t, k.ed, mc)); err != nil || len(g.Publish) != 0 {
		t.Errorf("native Verify = %v, %v; want a grant without publish", g, err)
	}
}

func TestNewRefusesUnknownClaim(t *testing.T) {
	v, err := New(t.Context(), Config{Secret: keysOnce().secret, Claim: 7})
	if err == nil || !strings.Contains(err.Error(), "unknown Claim(7)") {
		t.Errorf("New = %v, %v; want an error naming Claim(7)", v, err)
	}
	defer func() {
		if recover() == nil {
			t.Error("WithClaim(7) did not panic")
		}
	}()
	newVerifier(t, Config{Secret: keysOnce().secret}).WithClaim(7, false)
}

func TestMintMercure(t *testing.T) {
	k := keysOnce()
	now := time.Now().Truncate(time.Second)
	tok := mint(t, k.secret, Claims{
		Claim: ClaimMercure, NoExp: true, IssuedAt: now, Subject: "s",
		Publish: []string{"*"}, Subscribe: []string{"/users/{id}"}, Payload: []byte(`{"a": 1}`),
	})
	got := payload(t, tok)
	want := map[string]any{"iat": float64(now.Unix()), "sub": "s",
		"mercure": map[string]any{"publish": []any{"*"}, "subscribe": []any{"/users/{id}"}, "payload": map[string]any{"a": float64(1)}}}
	if gotS, wantS := fmtJSON(t, got), fmtJSON(t, want); gotS != wantS {
		t.Errorf("payload %s; want %s (no exp)", gotS, wantS)
	}
	v := newVerifier(t, Config{Secret: k.secret, Claim: ClaimMercure, AllowNoExp: true})
	g, err := v.Verify(t.Context(), tok)
	if err != nil || string(g.Payload) != `{"a":1}` || !g.Expires.IsZero() {
		t.Errorf("Verify = %+v, %v; want the payload {\"a\":1} and no expiry", g, err)
	}
	// Only a payload: still a mercure claim.
	if p := payload(t, mint(t, k.secret, Claims{Claim: ClaimMercure, Expires: now.Add(time.Hour), Payload: []byte(`"x"`)})); p["mercure"] == nil || p["ssehub"] != nil {
		t.Errorf("payload %v; want a mercure claim and no ssehub claim", p)
	}

	fails := []struct {
		name string
		c    Claims
		want string
	}{
		{"NoExp and Expires", Claims{NoExp: true, Expires: now}, "one or the other"},
		{"payload in the ssehub claim", Claims{Expires: now, Payload: []byte(`1`)}, "mercure claim only"},
		{"payload not JSON", Claims{Claim: ClaimMercure, Expires: now, Payload: []byte(`{`)}, "not JSON"},
		{"bad Mercure selector", Claims{Claim: ClaimMercure, Expires: now, Subscribe: []string{"a\tb"}}, "control character"},
		{"Mercure selector in the ssehub claim", Claims{Expires: now, Publish: []string{"https://x/{id}"}}, "empty segment"},
		{"unknown claim", Claims{Claim: 3, Expires: now}, "unknown Claim(3)"},
	}
	for _, tt := range fails {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Mint(k.secret, tt.c)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Mint = %q, %v; want an error with %q", s, err, tt.want)
			}
		})
	}
}

func fmtJSON(t *testing.T, v any) string {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return b.String()
}
