package jwtauth

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/goleak"

	"github.com/ssehub/ssehub/hub"
)

// A jwksServer serves a key set that a test can replace, and counts the
// fetches.
type jwksServer struct {
	*httptest.Server
	mu      sync.Mutex // guards body and fetches
	body    []byte
	fetches int
}

func newJWKSServer(t *testing.T) *jwksServer {
	t.Helper()
	s := &jwksServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		body := s.body
		s.fetches++
		s.mu.Unlock()
		if body == nil {
			http.Error(w, "not yet", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}))
	return s
}

// serve makes the server answer with a set of keys, each a JWK built from
// a public key with the given metadata, or raw JSON.
func (s *jwksServer) serve(t *testing.T, keys ...any) {
	t.Helper()
	var raws []json.RawMessage
	for _, k := range keys {
		switch k := k.(type) {
		case string:
			raws = append(raws, json.RawMessage(k))
		case jwk:
			j, err := jwkset.NewJWKFromKey(k.pub, jwkset.JWKOptions{Metadata: k.meta})
			if err != nil {
				t.Fatal(err)
			}
			b, err := json.Marshal(j.Marshal())
			if err != nil {
				t.Fatal(err)
			}
			raws = append(raws, b)
		}
	}
	b, err := json.Marshal(map[string]any{"keys": raws})
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.body = b
	s.mu.Unlock()
}

func (s *jwksServer) fetchCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fetches
}

type jwk struct {
	pub  any
	meta jwkset.JWKMetadataOptions
}

func TestJWKS(t *testing.T) {
	defer goleak.VerifyNone(t)
	k := keysOnce()
	srv := newJWKSServer(t)
	defer srv.Close()
	client := srv.Client()
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel() // ends the refresh goroutine, before goleak looks

	oct := `{"kty":"oct","kid":"sym","k":"` + base64.RawURLEncoding.EncodeToString(k.secret) + `"}`
	srv.serve(t,
		jwk{&k.rsa.PublicKey, jwkset.JWKMetadataOptions{KID: "k1", ALG: jwkset.AlgRS256, USE: jwkset.UseSig}},
		jwk{&k.p256.PublicKey, jwkset.JWKMetadataOptions{KID: "enc", USE: jwkset.UseEnc}},
		oct)
	v, err := New(ctx, Config{JWKSURL: srv.URL, Client: client})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	exp := time.Now().Add(time.Hour)
	grants := Claims{Subject: "alice", Expires: exp, Subscribe: []string{"user/alice/*"}}
	withKID := func(kid string) Claims { c := grants; c.KeyID = kid; return c }
	rsaPEM := pemPublic(t, &k.rsa.PublicKey)
	reg := jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(exp)}
	check := func(t *testing.T, tokens []struct{ name, token, reason string }) {
		t.Helper()
		for _, tt := range tokens {
			g, err := v.Verify(t.Context(), tt.token)
			switch {
			case tt.reason == "" && err != nil:
				t.Errorf("%s: Verify = %v; want a grant", tt.name, err)
			case tt.reason == "" && grantString(g) != "sub=alice publish= subscribe=user/alice/*":
				t.Errorf("%s: grant %s; want alice's", tt.name, grantString(g))
			case tt.reason != "" && (!errors.Is(err, hub.ErrInvalidToken) || !strings.Contains(err.Error(), tt.reason)):
				t.Errorf("%s: Verify = %v, %v; want an invalid token error with %q", tt.name, g, err, tt.reason)
			}
		}
	}

	t.Run("first set", func(t *testing.T) {
		check(t, []struct{ name, token, reason string }{
			{"kid k1", mint(t, k.rsa, withKID("k1")), ""},
			{"no kid", mint(t, k.rsa, grants), ""},
			{"kid k1, PS256 against the JWK's alg RS256", sign(t, jwt.SigningMethodPS256, k.rsa, reg, map[string]any{"kid": "k1"}), "algorithm PS256 not allowed"},
			{"kid k1, wrong key", mint(t, k.otherRSA, withKID("k1")), "bad signature"},
			{"kid k1, HS256 with the RSA public key as secret", sign(t, jwt.SigningMethodHS256, rsaPEM, reg, map[string]any{"kid": "k1"}), "no key for algorithm HS256"},
			{"oct key of the set", sign(t, jwt.SigningMethodHS256, k.secret, reg, map[string]any{"kid": "sym"}), "no key for algorithm HS256"},
			{"key for encryption", mint(t, k.p256, withKID("enc")), "not for signatures"},
			{"key for encryption, no kid", mint(t, k.p256, grants), "no key for algorithm ES256"},
			{"alg none", raw(`{"alg":"none","kid":"k1"}`, `{"exp":`+jsonTime(exp)+`}`, nil), "algorithm none not allowed"},
		})
	})

	t.Run("rotation", func(t *testing.T) {
		before := srv.fetchCount()
		srv.serve(t, jwk{k.ed.Public(), jwkset.JWKMetadataOptions{KID: "k2"}})
		// A token with the new kid makes the verifier fetch the set again.
		check(t, []struct{ name, token, reason string }{
			{"kid k2", mint(t, k.ed, withKID("k2")), ""},
			{"no kid, new key", mint(t, k.ed, grants), ""},
			{"kid k1, rotated out", mint(t, k.rsa, withKID("k1")), "unknown key id"},
			{"no kid, rotated out", mint(t, k.rsa, grants), "no key for algorithm RS256"},
		})
		if got := srv.fetchCount(); got != before+1 {
			t.Errorf("%d fetches for the rotation; want 1", got-before)
		}
		// Unknown kids do not fetch again at once: at most once a minute.
		before = srv.fetchCount()
		check(t, []struct{ name, token, reason string }{
			{"kid k3", mint(t, k.ed, withKID("k3")), "unknown key id"},
			{"kid k4", mint(t, k.ed, withKID("k4")), "unknown key id"},
		})
		if got := srv.fetchCount(); got != before {
			t.Errorf("%d fetches for made-up kids right after a fetch; want 0", got-before)
		}
	})

	t.Run("server gone, cached keys", func(t *testing.T) {
		srv.mu.Lock()
		srv.body = nil
		srv.mu.Unlock()
		check(t, []struct{ name, token, reason string }{
			{"kid k2", mint(t, k.ed, withKID("k2")), ""},
		})
	})
}

func TestJWKSUnavailable(t *testing.T) {
	defer goleak.VerifyNone(t)
	k := keysOnce()
	srv := newJWKSServer(t) // answers 503: no keys yet
	defer srv.Close()
	client := srv.Client()
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()

	var logs bytes.Buffer
	v, err := New(ctx, Config{JWKSURL: srv.URL, Client: client, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatalf("New = %v; want a verifier that waits for its keys", err)
	}
	if !strings.Contains(logs.String(), "JWKS fetch failed") {
		t.Errorf("log %q; want the failed fetch", logs.String())
	}
	exp := time.Now().Add(time.Hour)
	for _, tok := range []string{
		mint(t, k.rsa, Claims{Expires: exp, KeyID: "k1"}),
		mint(t, k.rsa, Claims{Expires: exp}),
	} {
		g, err := v.Verify(t.Context(), tok)
		if !errors.Is(err, ErrKeysUnavailable) || errors.Is(err, hub.ErrInvalidToken) {
			t.Errorf("Verify = %v, %v; want ErrKeysUnavailable, not an invalid token", g, err)
		}
	}
	// A token that is bad whatever the keys is still refused as such.
	if _, err := v.Verify(t.Context(), "garbage"); !errors.Is(err, hub.ErrInvalidToken) {
		t.Errorf("Verify(garbage) = %v; want an invalid token", err)
	}

	// Static keys keep working while the set is unavailable.
	both, err := New(ctx, Config{JWKSURL: srv.URL, Client: client, Secret: k.secret})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := both.Verify(t.Context(), mint(t, k.secret, Claims{Expires: exp})); err != nil {
		t.Errorf("Verify(HS256) = %v; want a grant from the secret", err)
	}
	if _, err := both.Verify(t.Context(), mint(t, k.rsa, Claims{Expires: exp})); !errors.Is(err, ErrKeysUnavailable) || errors.Is(err, hub.ErrInvalidToken) {
		t.Errorf("Verify(RS256) = %v; want ErrKeysUnavailable: the set might hold its key", err)
	}
	if _, err := both.Verify(t.Context(), mint(t, k.otherSecret, Claims{Expires: exp})); !errors.Is(err, hub.ErrInvalidToken) {
		t.Errorf("Verify(HS256, other secret) = %v; want an invalid token", err)
	}
}

func TestJWKSClosedServer(t *testing.T) {
	defer goleak.VerifyNone(t)
	srv := newJWKSServer(t)
	srv.Close() // nothing listens there any more
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	v, err := New(ctx, Config{JWKSURL: srv.URL, Client: srv.Client()})
	if err != nil {
		t.Fatalf("New = %v; want a verifier that waits for its keys", err)
	}
	_, err = v.Verify(t.Context(), mint(t, keysOnce().ed, Claims{Expires: time.Now().Add(time.Hour), KeyID: "k"}))
	if !errors.Is(err, ErrKeysUnavailable) || errors.Is(err, hub.ErrInvalidToken) {
		t.Errorf("Verify = %v; want ErrKeysUnavailable, not an invalid token", err)
	}
}
