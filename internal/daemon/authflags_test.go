package daemon

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ssehub/ssehub/eventsource"
	"github.com/ssehub/ssehub/hub"
	"github.com/ssehub/ssehub/hub/jwtauth"
)

// Secrets of the tests of keys per role: the shared one is testSecret.
var (
	publisherSecret  = strings.Repeat("p", 32)
	subscriberSecret = strings.Repeat("s", 32)
)

// roleTokens mints, with each key, a token of each claim that grants
// publishing and subscribing to everything.
type roleTokens struct {
	native, mercure string
}

func mintRoleTokens(t *testing.T, keys map[string]any) map[string]roleTokens {
	t.Helper()
	tokens := map[string]roleTokens{}
	for name, key := range keys {
		exp := time.Now().Add(time.Hour)
		native, err := jwtauth.Mint(key, jwtauth.Claims{Subject: name, Expires: exp, Publish: []string{"**"}, Subscribe: []string{"**"}})
		if err != nil {
			t.Fatal(err)
		}
		mercure, err := jwtauth.Mint(key, jwtauth.Claims{Subject: name, Expires: exp, Claim: jwtauth.ClaimMercure,
			Publish: []string{"*"}, Subscribe: []string{"*"}, Payload: []byte(`{"who":"` + name + `"}`)})
		if err != nil {
			t.Fatal(err)
		}
		tokens[name] = roleTokens{native, mercure}
	}
	return tokens
}

// TestJWTFlagsRoles: each role's verifiers, on each endpoint, trust the
// keys of that role only, and a role's own keys replace the shared ones.
func TestJWTFlagsRoles(t *testing.T) {
	kp := testKeyPairs(t)
	edKey, err := jwtauth.ParsePrivateKeyPEM(mustRead(t, kp["ed25519"].private))
	if err != nil {
		t.Fatal(err)
	}
	shared, pubFile, subFile := secretFile(t, testSecret), secretFile(t, publisherSecret+"\n"), secretFile(t, subscriberSecret)
	tokens := mintRoleTokens(t, map[string]any{
		"shared": []byte(testSecret), "publisher": []byte(publisherSecret), "subscriber": []byte(subscriberSecret), "ed25519": edKey,
	})
	tests := []struct {
		name                    string
		args                    []string
		env                     map[string]string
		publishers, subscribers []string // the keys each role trusts
	}{
		{"shared", []string{"--jwt-secret-file", shared}, nil, []string{"shared"}, []string{"shared"}},
		{"apart", []string{"--jwt-publisher-secret-file", pubFile, "--jwt-subscriber-secret-file", subFile}, nil,
			[]string{"publisher"}, []string{"subscriber"}},
		{"apart, from the environment", nil, map[string]string{"SSEHUB_JWT_PUBLISHER_SECRET_FILE": pubFile, "SSEHUB_JWT_SUBSCRIBER_SECRET_FILE": subFile},
			[]string{"publisher"}, []string{"subscriber"}},
		{"subscribers apart", []string{"--jwt-secret-file", shared, "--jwt-subscriber-secret-file", subFile}, nil,
			[]string{"shared"}, []string{"subscriber"}},
		{"publishers' public key", []string{"--jwt-secret", testSecret}, map[string]string{"SSEHUB_JWT_PUBLISHER_PUBLIC_KEY": kp["ed25519"].public},
			[]string{"ed25519"}, []string{"shared"}},
		{"subscribers' public key and secret, which replace the shared key and public key",
			[]string{"--jwt-secret-file", shared, "--jwt-public-key", kp["ed25519"].public, "--jwt-subscriber-public-key", kp["ed25519"].public, "--jwt-subscriber-secret-file", subFile}, nil,
			[]string{"shared", "ed25519"}, []string{"ed25519", "subscriber"}},
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
			v, release, err := f.verifiers(t.Context(), nil)
			if err != nil {
				t.Fatalf("verifiers: %v", err)
			}
			defer release()
			if wantSplit := !slices.Equal(tt.publishers, tt.subscribers); v.split() != wantSplit {
				t.Errorf("split() = %v; want %v", v.split(), wantSplit)
			}
			for key, tok := range tokens {
				for _, c := range []struct {
					what  string
					v     hub.TokenVerifier
					ctx   context.Context
					token string
					want  bool
				}{
					{"publishers' ssehub verifier", v.publish, t.Context(), tok.native, slices.Contains(tt.publishers, key)},
					{"subscribers' ssehub verifier", v.subscribe, t.Context(), tok.native, slices.Contains(tt.subscribers, key)},
					{"publishers' mercure verifier", v.mercurePublish, t.Context(), tok.mercure, slices.Contains(tt.publishers, key)},
					{"subscribers' mercure verifier", v.mercureSubscribe, t.Context(), tok.mercure, slices.Contains(tt.subscribers, key)},
				} {
					g, err := c.v.Verify(c.ctx, c.token)
					switch {
					case c.want && err != nil:
						t.Errorf("%s: Verify(token of the %s key) = %v; want a grant", c.what, key, err)
					case c.want && (len(g.Publish) != 1 || len(g.Subscribe) != 1):
						t.Errorf("%s: Verify(token of the %s key) = %+v; want its grants", c.what, key, g)
					case !c.want && !errors.Is(err, hub.ErrInvalidToken):
						t.Errorf("%s: Verify(token of the %s key) = %+v, %v; want an invalid token", c.what, key, g, err)
					}
				}
				// Each endpoint ignores the other's claim.
				if g, err := v.mercurePublish.Verify(t.Context(), tok.native); err == nil && len(g.Publish)+len(g.Subscribe) != 0 {
					t.Errorf("Mercure grant %+v of an ssehub token; want none", g)
				}
				if g, err := v.publish.Verify(t.Context(), tok.mercure); err == nil && (len(g.Publish)+len(g.Subscribe) != 0 || g.Payload != nil) {
					t.Errorf("ssehub grant %+v of a Mercure token; want none", g)
				}
			}
		})
	}
}

// TestJWTFlagsMercureNoExp: --mercure-allow-no-exp makes the Mercure
// verifiers of both roles accept tokens without exp, and /events still
// refuses them.
func TestJWTFlagsMercureNoExp(t *testing.T) {
	pubFile, subFile := secretFile(t, publisherSecret), secretFile(t, subscriberSecret)
	noExp := func(secret string, claim jwtauth.Claim) string {
		tok, err := jwtauth.Mint([]byte(secret), jwtauth.Claims{NoExp: true, Claim: claim, Publish: []string{"*"}, Subscribe: []string{"*"}})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	for _, allow := range []bool{false, true} {
		args := []string{"--jwt-publisher-secret-file", pubFile, "--jwt-subscriber-secret-file", subFile}
		if allow {
			args = append(args, "--mercure-allow-no-exp")
		}
		f, err := parseJWTFlags(t, args...)
		if err != nil {
			t.Fatal(err)
		}
		v, release, err := f.verifiers(t.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer release()
		for _, c := range []struct {
			what  string
			v     hub.TokenVerifier
			token string
			want  bool
		}{
			{"Mercure publisher", v.mercurePublish, noExp(publisherSecret, jwtauth.ClaimMercure), allow},
			{"Mercure subscriber", v.mercureSubscribe, noExp(subscriberSecret, jwtauth.ClaimMercure), allow},
			{"Mercure publisher, subscriber's key", v.mercurePublish, noExp(subscriberSecret, jwtauth.ClaimMercure), false},
			{"/events publisher", v.publish, noExp(publisherSecret, jwtauth.ClaimSSEHub), false},
			{"/events subscriber", v.subscribe, noExp(subscriberSecret, jwtauth.ClaimSSEHub), false},
		} {
			g, err := c.v.Verify(t.Context(), c.token)
			switch {
			case c.want && (err != nil || !g.Expires.IsZero()):
				t.Errorf("--mercure-allow-no-exp %v: %s: Verify = %+v, %v; want a grant that never expires", allow, c.what, g, err)
			case !c.want && !errors.Is(err, hub.ErrInvalidToken):
				t.Errorf("--mercure-allow-no-exp %v: %s: Verify = %+v, %v; want an invalid token", allow, c.what, g, err)
			}
		}
	}
}

// TestServeTokenOptions: the verifiers of serve's flags reach the
// hub.Options as serve builds them: the Mercure endpoint's per role.
func TestServeTokenOptions(t *testing.T) {
	c, code, ok := parseServe([]string{"--store", "memory",
		"--jwt-publisher-secret-file", secretFile(t, publisherSecret), "--jwt-subscriber-secret-file", secretFile(t, subscriberSecret),
		"--mercure-allow-no-exp", "--mercure-cookie", "mc"}, io.Discard, io.Discard)
	if !ok {
		t.Fatalf("parseServe failed with status %d", code)
	}
	v, release, err := c.jwt.verifiers(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	o := hubOptions(c, v, nil, nil)
	if o.PublisherTokens == nil || o.SubscriberTokens == nil || o.Mercure.PublisherTokens == nil || o.Mercure.SubscriberTokens == nil || o.Mercure.Cookie != "mc" {
		t.Fatalf("Options %+v; want Tokens, the Mercure verifiers of both roles and the cookie mc", o)
	}
	tokens := mintRoleTokens(t, map[string]any{"publisher": []byte(publisherSecret), "subscriber": []byte(subscriberSecret)})
	if g, err := o.Mercure.PublisherTokens.Verify(t.Context(), tokens["publisher"].mercure); err != nil || selectorStrings(g.Publish) != "*" || string(g.Payload) != `{"who":"publisher"}` {
		t.Errorf("Mercure publisher verifier: %+v, %v; want publish * and the payload", g, err)
	}
	if _, err := o.Mercure.PublisherTokens.Verify(t.Context(), tokens["subscriber"].mercure); !errors.Is(err, hub.ErrInvalidToken) {
		t.Errorf("Mercure publisher verifier, subscriber's token: %v; want an invalid token", err)
	}
	if g, err := o.Mercure.SubscriberTokens.Verify(t.Context(), tokens["subscriber"].mercure); err != nil || selectorStrings(g.Subscribe) != "*" {
		t.Errorf("Mercure subscriber verifier: %+v, %v; want subscribe *", g, err)
	}
	if _, err := o.Mercure.SubscriberTokens.Verify(t.Context(), tokens["publisher"].mercure); !errors.Is(err, hub.ErrInvalidToken) {
		t.Errorf("Mercure subscriber verifier, publisher's token: %v; want an invalid token", err)
	}

	// No key: no verifier anywhere, not even a nil *jwtauth.Verifier.
	c, _, _ = parseServe([]string{"--store", "memory"}, io.Discard, io.Discard)
	v, release, err = c.jwt.verifiers(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	o = hubOptions(c, v, nil, nil)
	if o.PublisherTokens != nil || o.SubscriberTokens != nil || o.Mercure.PublisherTokens != nil || o.Mercure.SubscriberTokens != nil {
		t.Errorf("open hub: Options %+v; want no verifier", o)
	}
}

// TestServeRoleKeys runs a hub whose publishers and subscribers have keys
// apart: on /events, a token signed with the subscriber key cannot
// publish, nor one signed with the publisher key subscribe, and each
// works in its own role, private events included. The Mercure endpoint
// is mounted.
func TestServeRoleKeys(t *testing.T) {
	var errOut strings.Builder
	c, code, ok := parseServe([]string{"--store", "memory", "--addr", "127.0.0.1:0", "--retry", "50ms",
		"--jwt-publisher-secret-file", secretFile(t, publisherSecret), "--jwt-subscriber-secret-file", secretFile(t, subscriberSecret)}, io.Discard, &errOut)
	if !ok {
		t.Fatalf("parseServe: status %d, %s", code, errOut.String())
	}
	base, _ := startServe(t, c)
	tokens := mintRoleTokens(t, map[string]any{"publisher": []byte(publisherSecret), "subscriber": []byte(subscriberSecret)})
	pubTok, subTok := tokens["publisher"].native, tokens["subscriber"].native

	checkFails(t, []string{"publish", "--url", base, "--topic", "chat/a", "--data", "x", "--token", subTok}, exitFail, "401")
	publish := func(data string, private bool) string {
		t.Helper()
		args := []string{"publish", "--url", base, "--topic", "chat/a", "--data", data, "--token", pubTok}
		if private {
			args = append(args, "--private")
		}
		code, stdout, stderr := runMain(t, args...)
		if code != exitOK {
			t.Fatalf("publish with the publisher's token: status %d, stderr %q; want 0", code, stderr)
		}
		return strings.TrimSpace(stdout)
	}
	first := publish("public", false)
	publish("private", true)

	subscribe := func(tok string) *http.Response {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/events?topic=chat/a", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := subscribe(pubTok); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("subscribing with the publisher's token: status %d; want 401", resp.StatusCode)
	}

	// The subscriber's token receives the private event, replayed.
	es, err := eventsource.New(base+"/events?topic=chat/a", &eventsource.Options{
		LastEventID: first, Header: http.Header{"Authorization": {"Bearer " + subTok}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var got string
	for ev := range es.Events(ctx) {
		if ev.IsMessage() {
			got = ev.Data
			break
		}
	}
	if got != "private" {
		t.Errorf("the subscriber's stream after %s gave %q; want the private event", first, got)
	}

	resp, err := http.Get(base + hub.MercurePath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		t.Errorf("GET %s: 404; want the Mercure endpoint mounted", hub.MercurePath)
	}
}
