package hub_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ssehub/ssehub/hub"
	"github.com/ssehub/ssehub/hub/jwtauth"
	"github.com/ssehub/ssehub/sse"
)

// The security suite: each case sends real requests to a hub that
// verifies real JWTs, checks the status, and, where a stream is
// involved, reads the stream to prove that nothing leaked.

var secret = []byte("a-test-secret-of-at-least-32-bytes!!")

// keys holds the RSA key pair the suite signs RS256 tokens with.
type keys struct {
	priv   *rsa.PrivateKey
	pubPEM []byte
}

var (
	rsaOnce sync.Once
	rsaKeys keys
)

func testKeys(t *testing.T) keys {
	t.Helper()
	rsaOnce.Do(func() {
		priv, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		der, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
		if err != nil {
			panic(err)
		}
		rsaKeys = keys{priv: priv, pubPEM: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})}
	})
	return rsaKeys
}

// grantClaims returns the claims of a token valid for a minute that
// grants publish and subscribe.
func grantClaims(publish, subscribe []string) jwt.MapClaims {
	g := map[string]any{}
	if publish != nil {
		g["publish"] = publish
	}
	if subscribe != nil {
		g["subscribe"] = subscribe
	}
	now := time.Now()
	return jwt.MapClaims{
		"sub":    "tester",
		"iat":    now.Unix(),
		"exp":    now.Add(time.Minute).Unix(),
		"ssehub": g,
	}
}

// sign signs claims with method and key.
func sign(t *testing.T, m jwt.SigningMethod, key any, c jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, c).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// hs256 returns an HS256 token signed with the suite's secret.
func hs256(t *testing.T, c jwt.MapClaims) string { return sign(t, jwt.SigningMethodHS256, secret, c) }

// securityHub starts a hub whose verifier trusts the suite's secret and
// RSA public key, with opts on top.
func securityHub(t *testing.T, opts hub.Options) *testHub {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	v, err := jwtauth.New(ctx, jwtauth.Config{Secret: secret, PublicKeys: [][]byte{testKeys(t).pubPEM}})
	if err != nil {
		t.Fatal(err)
	}
	opts.Tokens = v
	return newTestHub(t, &opts, nil)
}

// do sends a request to the hub and returns the response, with its body
// read, unless it is a stream, and closed.
func (th *testHub) do(t *testing.T, method, path string, header http.Header, body string) (*http.Response, string) {
	t.Helper()
	resp := th.send(t, method, path, header, body)
	defer resp.Body.Close()
	if resp.Header.Get("Content-Type") == "text/event-stream" {
		return resp, ""
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func bearer(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }
func cookie(tok string) http.Header {
	return http.Header{"Cookie": {hub.DefaultTokenCookie + "=" + tok}}
}

// formHeader returns h with a form Content-Type.
func formHeader(h http.Header) http.Header {
	h = h.Clone()
	if h == nil {
		h = http.Header{}
	}
	h.Set("Content-Type", "application/x-www-form-urlencoded")
	return h
}

// tamper returns tok with its payload replaced by claims, keeping the
// header and signature.
func tamper(t *testing.T, tok string, c jwt.MapClaims) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	parts[1] = base64.RawURLEncoding.EncodeToString(b)
	return strings.Join(parts, ".")
}

func TestSecurityTokens(t *testing.T) {
	th := securityHub(t, hub.Options{})
	watch := th.subscribe(t, "topic=**", nil) // sees whatever gets published
	k := testKeys(t)
	all := grantClaims([]string{"**"}, []string{"**"})
	valid := hs256(t, all)
	expired := grantClaims([]string{"**"}, []string{"**"})
	expired["exp"] = time.Now().Add(-time.Hour).Unix()
	expired["iat"] = time.Now().Add(-2 * time.Hour).Unix()
	early := grantClaims([]string{"**"}, []string{"**"})
	early["nbf"] = time.Now().Add(time.Hour).Unix()
	noExp := grantClaims([]string{"**"}, []string{"**"})
	delete(noExp, "exp")
	narrow := grantClaims([]string{"chat/a"}, []string{"chat/a"})

	tokens := []struct {
		name string
		tok  string
		want int // for publish; a subscription gets 200 when this is 200, else 401
	}{
		{"valid HS256", valid, 200},
		{"valid RS256", sign(t, jwt.SigningMethodRS256, k.priv, all), 200},
		{"expired", hs256(t, expired), 401},
		{"not yet valid", hs256(t, early), 401},
		{"no exp", hs256(t, noExp), 401},
		{"wrong key", sign(t, jwt.SigningMethodHS256, []byte("another-secret-of-at-least-32-bytes!"), all), 401},
		{"alg none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, all), 401},
		{"HS256 signed with the RSA public key", sign(t, jwt.SigningMethodHS256, k.pubPEM, all), 401},
		{"tampered payload", tamper(t, hs256(t, narrow), all), 401},
		{"garbage", "not.a.token", 401},
	}
	for _, tc := range tokens {
		t.Run(tc.name, func(t *testing.T) {
			form := url.Values{"topic": {"chat/a"}, "data": {"token " + tc.name}}
			resp, body := th.do(t, http.MethodPost, "/events", formHeader(bearer(tc.tok)), form.Encode())
			if resp.StatusCode != tc.want {
				t.Errorf("publish = %d %s; want %d", resp.StatusCode, body, tc.want)
			}
			if tc.want == 401 && !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
				t.Errorf("publish WWW-Authenticate = %q; want Bearer with invalid_token", resp.Header.Get("WWW-Authenticate"))
			}
			for _, h := range []http.Header{bearer(tc.tok), cookie(tc.tok)} {
				resp, body := th.do(t, http.MethodGet, "/events?topic=chat/a", h, "")
				want := http.StatusOK
				if tc.want != 200 {
					want = http.StatusUnauthorized
				}
				if resp.StatusCode != want {
					t.Errorf("subscribe with %v = %d %s; want %d", h, resp.StatusCode, body, want)
				}
				if want != 200 && resp.Header.Get("Content-Type") != "application/problem+json" {
					t.Errorf("refused subscribe Content-Type = %q; want a problem", resp.Header.Get("Content-Type"))
				}
			}
		})
	}

	t.Run("publish without a token", func(t *testing.T) {
		resp, body := th.do(t, http.MethodPost, "/events", formHeader(nil), "topic=chat/a&data=x")
		if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("publish = %d %s (WWW-Authenticate %q); want 401 with a challenge", resp.StatusCode, body, resp.Header.Get("WWW-Authenticate"))
		}
	})
	t.Run("publish with the token in a cookie", func(t *testing.T) {
		// A cookie rides along on any request a page makes: a publish
		// must carry its token in the header.
		resp, body := th.do(t, http.MethodPost, "/events", formHeader(cookie(valid)), "topic=chat/a&data=x")
		if resp.StatusCode != 401 {
			t.Errorf("publish = %d %s; want 401", resp.StatusCode, body)
		}
	})
	t.Run("not a bearer token", func(t *testing.T) {
		h := formHeader(http.Header{"Authorization": {"Basic dXNlcjpwYXNz"}})
		resp, body := th.do(t, http.MethodPost, "/events", h, "topic=chat/a&data=x")
		if resp.StatusCode != 401 {
			t.Errorf("publish = %d %s; want 401", resp.StatusCode, body)
		}
	})
	// Only the valid tokens published anything.
	resp, body := th.do(t, http.MethodPost, "/events", formHeader(bearer(valid)), "topic=end&data=marker")
	if resp.StatusCode != 200 {
		t.Fatalf("marker = %d %s", resp.StatusCode, body)
	}
	var got []string
	for _, ev := range watch.waitID(t, strings.TrimSpace(body)) {
		got = append(got, ev.Data)
	}
	if want := []string{"token valid HS256", "token valid RS256", "marker"}; !slices.Equal(got, want) {
		t.Errorf("published %q; want only %q", got, want)
	}
	if n := th.metric(t, "ssehub_refused_total", "reason", "token"); n < 20 {
		t.Errorf("ssehub_refused_total{reason=token} = %v; want at least 20", n)
	}
}

// TestSecurityPrivate proves that private events reach only the
// subscribers whose grant allows one of their topics, live and in
// replay: every other stream receives a later public marker, and never
// the private event before it.
func TestSecurityPrivate(t *testing.T) {
	th := securityHub(t, hub.Options{})
	publisher := hs256(t, grantClaims([]string{"**"}, nil))
	reader := hs256(t, grantClaims(nil, []string{"secret/*"}))
	other := hs256(t, grantClaims(nil, []string{"other/*"}))

	publish := func(topic, data string, private bool) string {
		t.Helper()
		form := url.Values{"topic": {topic}, "data": {data}}
		if private {
			form.Set("private", "on")
		}
		resp, body := th.do(t, http.MethodPost, "/events", formHeader(bearer(publisher)), form.Encode())
		if resp.StatusCode != 200 {
			t.Fatalf("publish = %d %s", resp.StatusCode, body)
		}
		return strings.TrimSpace(body)
	}

	subs := []struct {
		name  string
		query string
		h     http.Header
		gets  bool // receives the private event
	}{
		{"anonymous", "topic=secret/a", nil, false},
		{"anonymous with a pattern", "topic=**", nil, false},
		{"publish token", "topic=secret/a", cookie(publisher), false},
		{"token for other topics, too broad a selector", "topic=**", cookie(other), false},
		{"token for the topic", "topic=secret/a", cookie(reader), true},
		{"token for the topic, header", "topic=secret/*", bearer(reader), true},
	}
	streams := make([]*testSub, len(subs))
	for i, s := range subs {
		// Registered once it answers 200: no event published from now
		// on can miss it.
		streams[i] = th.subscribe(t, s.query, s.h)
	}
	private := publish("secret/a", "PRIVATE-live", true)
	marker := publish("secret/a", "public-live", false)

	check := func(name string, evs []sse.Event, gets bool, privateID string) {
		t.Helper()
		seen := false
		for _, ev := range evs {
			if strings.Contains(ev.Data, "PRIVATE") {
				seen = true
				if ev.ID != privateID {
					t.Errorf("%s: private event with id %q; want %q", name, ev.ID, privateID)
				}
			}
		}
		if seen != gets {
			t.Errorf("%s: received the private event = %v; want %v (events %v)", name, seen, gets, ids(evs))
		}
	}
	for i, s := range subs {
		check(s.name+" (live)", streams[i].waitID(t, marker), s.gets, private)
	}

	// Replay from the start of the Log: the same rule.
	for _, s := range subs {
		r := th.subscribe(t, s.query+"&lastEventID=0", s.h)
		check(s.name+" (replay)", r.waitID(t, marker), s.gets, private)
	}

	t.Run("private event with one allowed topic of two", func(t *testing.T) {
		// The reader may read secret/*, not open/*: subscribed to open/b
		// only, it does not get a private event of secret/x and open/b.
		r := th.subscribe(t, "topic=open/b", cookie(reader))
		form := url.Values{"topic": {"secret/x", "open/b"}, "data": {"PRIVATE-two"}, "private": {"on"}}
		resp, body := th.do(t, http.MethodPost, "/events", formHeader(bearer(publisher)), form.Encode())
		if resp.StatusCode != 200 {
			t.Fatalf("publish = %d %s", resp.StatusCode, body)
		}
		m := publish("open/b", "public-two", false)
		check("subscribed to open/b", r.waitID(t, m), false, "")
	})
}

func TestSecurityPublishScope(t *testing.T) {
	th := securityHub(t, hub.Options{})
	chat := hs256(t, grantClaims([]string{"chat/*"}, nil))
	subOnly := hs256(t, grantClaims(nil, []string{"**"}))
	watch := th.subscribe(t, "topic=**", nil)

	cases := []struct {
		name  string
		tok   string
		form  url.Values
		want  int
		about string
	}{
		{"subscribe token used to publish", subOnly, url.Values{"topic": {"chat/a"}}, 403, `topic "chat/a"`},
		{"deeper than the selector", chat, url.Values{"topic": {"chat/a/b"}}, 403, `topic "chat/a/b"`},
		{"the parent of the selector", chat, url.Values{"topic": {"chat"}}, 403, `topic "chat"`},
		{"one topic of two not covered", chat, url.Values{"topic": {"chat/a", "admin/x"}}, 403, `topic "admin/x"`},
		{"covered", chat, url.Values{"topic": {"chat/a", "chat/b"}}, 200, ""},
	}
	var okID string
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.form.Set("data", "scope-"+tc.name)
			resp, body := th.do(t, http.MethodPost, "/events", formHeader(bearer(tc.tok)), tc.form.Encode())
			if tc.want != 200 {
				checkProblem(t, resp.StatusCode, resp.Header.Get("Content-Type"), body, tc.want, tc.about)
				return
			}
			if resp.StatusCode != 200 {
				t.Fatalf("publish = %d %s; want 200", resp.StatusCode, body)
			}
			okID = strings.TrimSpace(body)
		})
	}
	// Only the covered event was appended: a subscriber to everything
	// sees it and nothing of the refused ones.
	evs := watch.waitID(t, okID)
	for _, ev := range evs {
		if strings.HasPrefix(ev.Data, "scope-") && ev.Data != "scope-covered" {
			t.Errorf("a refused event was delivered: %+v", ev)
		}
	}
}

func TestSecurityCORS(t *testing.T) {
	const allowed = "http://allowed.test:8000"
	th := securityHub(t, hub.Options{CORSOrigins: []string{allowed}})
	tok := hs256(t, grantClaims([]string{"**"}, []string{"**"}))

	t.Run("allowed origin", func(t *testing.T) {
		resp, _ := th.do(t, http.MethodGet, "/events?topic=a", http.Header{"Origin": {allowed}}, "")
		if resp.StatusCode != 200 {
			t.Fatalf("status = %d; want 200", resp.StatusCode)
		}
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != allowed {
			t.Errorf("Access-Control-Allow-Origin = %q; want %q", got, allowed)
		}
		if got := resp.Header.Get("Access-Control-Allow-Credentials"); got != "true" {
			t.Errorf("Access-Control-Allow-Credentials = %q; want true", got)
		}
		if !strings.Contains(strings.Join(resp.Header.Values("Vary"), ","), "Origin") {
			t.Errorf("Vary = %q; want Origin", resp.Header.Values("Vary"))
		}
	})
	t.Run("allowed preflight", func(t *testing.T) {
		h := http.Header{
			"Origin":                         {allowed},
			"Access-Control-Request-Method":  {"POST"},
			"Access-Control-Request-Headers": {"authorization, content-type"},
		}
		resp, _ := th.do(t, http.MethodOptions, "/events", h, "")
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("status = %d; want 204", resp.StatusCode)
		}
		for k, want := range map[string]string{
			"Access-Control-Allow-Origin":      allowed,
			"Access-Control-Allow-Credentials": "true",
			"Access-Control-Max-Age":           "600",
		} {
			if got := resp.Header.Get(k); got != want {
				t.Errorf("%s = %q; want %q", k, got, want)
			}
		}
		methods := resp.Header.Get("Access-Control-Allow-Methods")
		headers := strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers"))
		if !strings.Contains(methods, "POST") || !strings.Contains(headers, "authorization") || !strings.Contains(headers, "content-type") {
			t.Errorf("allows methods %q, headers %q; want POST, Authorization and Content-Type", methods, headers)
		}
	})
	for _, tc := range []struct {
		name   string
		method string
		h      http.Header
		body   string
	}{
		{"disallowed origin subscribing with a cookie", http.MethodGet, cookie(tok), ""},
		{"disallowed origin publishing", http.MethodPost, formHeader(bearer(tok)), "topic=a&data=evil"},
		{"disallowed preflight", http.MethodOptions, http.Header{"Access-Control-Request-Method": {"POST"}}, ""},
		{"null origin", http.MethodGet, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.h.Clone()
			if h == nil {
				h = http.Header{}
			}
			origin := "http://evil.test"
			if tc.name == "null origin" {
				origin = "null"
			}
			h.Set("Origin", origin)
			resp, body := th.do(t, tc.method, "/events?topic=a", h, tc.body)
			checkProblem(t, resp.StatusCode, resp.Header.Get("Content-Type"), body, 403, "is not allowed")
			for k := range resp.Header {
				if strings.HasPrefix(k, "Access-Control-") {
					t.Errorf("refused response has %s: %q", k, resp.Header.Get(k))
				}
			}
		})
	}
	t.Run("nothing from the disallowed origin was published", func(t *testing.T) {
		r := th.subscribe(t, "topic=a&lastEventID=0", nil)
		resp, body := th.do(t, http.MethodPost, "/events", formHeader(bearer(tok)), "topic=a&data=marker")
		if resp.StatusCode != 200 {
			t.Fatalf("publish = %d %s", resp.StatusCode, body)
		}
		for _, ev := range r.waitID(t, strings.TrimSpace(body)) {
			if ev.Data == "evil" {
				t.Errorf("the disallowed origin's event was appended: %+v", ev)
			}
		}
	})
	t.Run("same origin", func(t *testing.T) {
		resp, body := th.do(t, http.MethodPost, "/events", formHeader(http.Header{"Origin": {th.srv.URL}, "Authorization": {"Bearer " + tok}}), "topic=a&data=x")
		if resp.StatusCode != 200 {
			t.Errorf("same-origin publish = %d %s; want 200", resp.StatusCode, body)
		}
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
			t.Errorf("same-origin Access-Control-Allow-Origin = %q; want none", got)
		}
	})
}

func TestSecurityLimits(t *testing.T) {
	th := securityHub(t, hub.Options{
		MaxBodyBytes: 4096,
		Limits: hub.Limits{
			MaxTopics:           3,
			MaxSelectors:        3,
			MaxSelectorBytes:    32,
			MaxEventBytes:       1000,
			MaxStreamsPerClient: 3,
		},
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
	})
	tok := hs256(t, grantClaims([]string{"**"}, []string{"**"}))
	pub := formHeader(bearer(tok))
	long := strings.Repeat("x", 33)
	watch := th.subscribe(t, "topic=**", http.Header{"X-Forwarded-For": {"198.51.100.1"}}) // not counted with the test's own address

	for _, tc := range []struct {
		name   string
		method string
		path   string
		body   string
		want   int
		about  string
	}{
		{"oversized body", http.MethodPost, "/events", "topic=a&data=" + strings.Repeat("x", 5000), 413, "exceeds 4096 bytes"},
		{"oversized event", http.MethodPost, "/events", "topic=a&data=" + strings.Repeat("x", 1001), 413, "larger than 1000 bytes"},
		{"too many topics", http.MethodPost, "/events", "topic=a&topic=b&topic=c&topic=d&data=x", 400, "at most 3 topics"},
		{"topic too long", http.MethodPost, "/events", "topic=" + long + "&data=x", 400, "longer than 32 bytes"},
		{"too many selectors", http.MethodGet, "/events?topic=a&topic=b&topic=c&topic=d", "", 400, "at most 3 topic"},
		{"selector too long", http.MethodGet, "/events?topic=" + long, "", 400, "longer than 32 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := th.do(t, tc.method, tc.path, pub, tc.body)
			checkProblem(t, resp.StatusCode, resp.Header.Get("Content-Type"), body, tc.want, tc.about)
		})
	}
	// None of the refused events was published.
	resp, body := th.do(t, http.MethodPost, "/events", pub, "topic=end&data=marker")
	if resp.StatusCode != 200 {
		t.Fatalf("marker = %d %s", resp.StatusCode, body)
	}
	if evs := watch.waitID(t, strings.TrimSpace(body)); len(evs) != 1 {
		t.Errorf("events before the marker: %+v; want none", evs[:len(evs)-1])
	}

	t.Run("too many streams from one address", func(t *testing.T) {
		var open []*testSub
		for range 3 {
			open = append(open, th.subscribe(t, "topic=a", nil))
		}
		resp, body := th.do(t, http.MethodGet, "/events?topic=a", nil, "")
		checkProblem(t, resp.StatusCode, resp.Header.Get("Content-Type"), body, 429, "client address")
		if resp.Header.Get("Retry-After") == "" {
			t.Error("429 without Retry-After")
		}
		// Another client behind the trusted proxy has its own count.
		xff := http.Header{"X-Forwarded-For": {"203.0.113.7"}}
		th.subscribe(t, "topic=a", xff)
		// A client cannot spoof its way past the limit by naming a
		// trusted address: the rightmost untrusted one counts.
		spoof := http.Header{"X-Forwarded-For": {"203.0.113.9, 127.0.0.5"}}
		for range 2 {
			th.subscribe(t, "topic=a", spoof)
		}
		th.subscribe(t, "topic=a", http.Header{"X-Forwarded-For": {"203.0.113.9"}})
		resp, body = th.do(t, http.MethodGet, "/events?topic=a", spoof, "")
		checkProblem(t, resp.StatusCode, resp.Header.Get("Content-Type"), body, 429, "client address")

		// When a stream ends, its slot is free again.
		open[0].resp.Body.Close()
		waitFor(t, waitTimeout, func() bool {
			resp, _ := th.do(t, http.MethodGet, "/events?topic=a", nil, "")
			return resp.StatusCode == 200
		})
		if n := th.metric(t, "ssehub_refused_total", "reason", "per_client"); n < 2 {
			t.Errorf("ssehub_refused_total{reason=per_client} = %v; want at least 2", n)
		}
	})
}

func TestSecurityPublishRate(t *testing.T) {
	th := securityHub(t, hub.Options{Limits: hub.Limits{PublishRate: 0.01, PublishBurst: 2}})
	tok := hs256(t, grantClaims([]string{"**"}, nil))
	h := formHeader(bearer(tok))
	for i := range 2 {
		if resp, body := th.do(t, http.MethodPost, "/events", h, "topic=a&data=x"); resp.StatusCode != 200 {
			t.Fatalf("publish %d = %d %s; want 200", i, resp.StatusCode, body)
		}
	}
	resp, body := th.do(t, http.MethodPost, "/events", h, "topic=a&data=x")
	checkProblem(t, resp.StatusCode, resp.Header.Get("Content-Type"), body, 429, "events a second")
	if ra := resp.Header.Get("Retry-After"); ra == "" || ra == "0" {
		t.Errorf("Retry-After = %q; want the seconds until the token may publish", ra)
	}
	// Another token has its own budget.
	other := hs256(t, jwt.MapClaims{"sub": "other", "jti": "other-1", "exp": time.Now().Add(time.Minute).Unix(), "ssehub": map[string]any{"publish": []string{"**"}}})
	if resp, body := th.do(t, http.MethodPost, "/events", formHeader(bearer(other)), "topic=a&data=x"); resp.StatusCode != 200 {
		t.Errorf("other token = %d %s; want 200", resp.StatusCode, body)
	}
	// A batch larger than the burst can never pass.
	nd := formHeader(bearer(other))
	nd.Set("Content-Type", "application/x-ndjson")
	resp, body = th.do(t, http.MethodPost, "/events", nd, `{"topic":"a"}`+"\n"+`{"topic":"a"}`+"\n"+`{"topic":"a"}`+"\n")
	checkProblem(t, resp.StatusCode, resp.Header.Get("Content-Type"), body, 413, "at most 2 events")
}

// TestSecurityInjection sends a line break through every field a
// request can carry, and checks that the stream shows it as data or
// refuses it, and never as a field of its own.
func TestSecurityInjection(t *testing.T) {
	th := securityHub(t, hub.Options{})
	tok := hs256(t, grantClaims([]string{"**"}, []string{"**"}))
	pub := formHeader(bearer(tok))
	raw := th.rawSubscribe(t, "topic=a", nil)
	raw.lines(t, 5) // retry, comment, id event (id line, blank line)... see below

	for _, tc := range []struct {
		name string
		form url.Values
	}{
		{"id with LF", url.Values{"id": {"x\nevent: evil"}}},
		{"id with CR", url.Values{"id": {"x\revent: evil"}}},
		{"id with NUL", url.Values{"id": {"x\x00y"}}},
		{"type with LF", url.Values{"type": {"x\ndata: evil"}}},
		{"type with CR", url.Values{"type": {"x\rdata: evil"}}},
		{"topic with LF", url.Values{"topic": {"a\nevent: evil"}}},
		{"topic with NUL", url.Values{"topic": {"a\x00"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !tc.form.Has("topic") {
				tc.form.Set("topic", "a")
			}
			tc.form.Set("data", "x")
			resp, body := th.do(t, http.MethodPost, "/events", pub, tc.form.Encode())
			checkProblem(t, resp.StatusCode, resp.Header.Get("Content-Type"), body, 400, "")
		})
	}
	for _, tc := range []struct{ name, path string }{
		{"subscription topic with LF", "/events?topic=a%0Aevent:%20evil"},
		{"subscription topic with CR", "/events?topic=a%0D"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := th.do(t, http.MethodGet, tc.path, nil, "")
			checkProblem(t, resp.StatusCode, resp.Header.Get("Content-Type"), body, 400, "")
		})
	}

	// Data may hold line breaks: each becomes a data line of its own,
	// and the client reassembles the data with LF.
	evil := "one\n\nevent: evil\rid: 666\r\nretry: 1\n: comment\ndata: two"
	form := url.Values{"topic": {"a"}, "data": {evil}}
	resp, body := th.do(t, http.MethodPost, "/events", pub, form.Encode())
	if resp.StatusCode != 200 {
		t.Fatalf("publish = %d %s", resp.StatusCode, body)
	}
	id := strings.TrimSpace(body)

	// The raw stream: every line of the event is an id, or a data line.
	var lines []string
	for {
		l := raw.lines(t, 1)[0]
		lines = append(lines, l)
		if l == "" && len(lines) > 1 {
			break
		}
	}
	for _, l := range lines {
		if l != "" && !strings.HasPrefix(l, "data:") && l != "id: "+id {
			t.Errorf("line %q in the stream; want only data lines and the id (lines %q)", l, lines)
		}
	}
	// Decoded, it is one event with the data normalised to LF.
	dec := sse.NewDecoder(strings.NewReader(strings.Join(lines, "\n") + "\n"))
	var ev sse.Event
	if err := dec.Decode(&ev); err != nil {
		t.Fatal(err)
	}
	want := strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(evil)
	if ev.Data != want || ev.Type != "" || ev.ID != id || ev.Retry != 0 {
		t.Errorf("decoded %+v; want one message with id %q and data %q", ev, id, want)
	}

	t.Run("Last-Event-ID with a line break", func(t *testing.T) {
		// The query parameter is the way a line break can reach the hub
		// as a Last-Event-ID: it comes back only inside JSON.
		r := th.rawSubscribe(t, "topic=a&lastEventID="+url.QueryEscape("x\nevent: evil"), nil)
		got := strings.Join(r.lines(t, 6), "\n")
		if strings.Contains(got, "\nevent: evil") {
			t.Errorf("the Last-Event-ID broke into the stream:\n%s", got)
		}
		if !strings.Contains(got, "event: "+hub.GapEventType) || !strings.Contains(got, `\nevent: evil`) {
			t.Errorf("want a gap event that quotes the id inside JSON; got\n%s", got)
		}
	})
}

// TestTokenExpiryEndsStream subscribes with a token that expires in two
// seconds, over HTTP/1.1 (a taken-over connection) and HTTP/2 (an
// ssehttp stream): the stream ends at expiry, after an ssehub-auth event.
func TestTokenExpiryEndsStream(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		name := "HTTP/1.1"
		if h2 {
			name = "HTTP/2"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var th *testHub
			if h2 {
				th = securityHubH2(t)
			} else {
				th = securityHub(t, hub.Options{})
			}
			c := grantClaims(nil, []string{"**"})
			exp := time.Now().Add(2 * time.Second).Truncate(time.Second).Add(time.Second)
			c["exp"] = exp.Unix()
			s := th.subscribe(t, "topic=a", cookie(hs256(t, c)))
			if proto := s.resp.Proto; (proto == "HTTP/2.0") != h2 {
				t.Fatalf("stream over %s; want %s", proto, name)
			}
			s.waitEnd(t)
			ended := time.Now()
			evs, err := s.snapshot()
			if len(evs) != 1 || evs[0].Type != hub.AuthEventType {
				t.Fatalf("events %+v (end %v); want one, %s", evs, err, hub.AuthEventType)
			}
			// The opening set the last event ID to the Log's newest
			// position, 0; the auth event keeps it.
			if ev := evs[0]; ev.Data != `{"reason":"expired"}` || ev.ID != "0" {
				t.Errorf("auth event %+v; want data {\"reason\":\"expired\"} and the last event id kept (\"0\")", ev)
			}
			if d := ended.Sub(exp); d < -50*time.Millisecond || d > 2*time.Second {
				t.Errorf("stream ended %v after the token's exp; want at exp", d)
			}
			if n := th.metric(t, "ssehub_token_expiries_total"); n != 1 {
				t.Errorf("ssehub_token_expiries_total = %v; want 1", n)
			}
		})
	}
}

// securityHubH2 is securityHub served over TLS with HTTP/2.
func securityHubH2(t *testing.T) *testHub {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	v, err := jwtauth.New(ctx, jwtauth.Config{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	th := startHubWith(t, &hub.Options{Tokens: v}, nil, true, tlsServer(true))
	waitFor(t, waitTimeout, th.ready)
	return th
}

// TestTokenQueryParameter: with TokenQuery, a subscriber may give its
// token as access_token, and the hub's logs never show it.
func TestTokenQueryParameter(t *testing.T) {
	var logs bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	tok := hs256(t, grantClaims([]string{"**"}, []string{"**"}))

	off := securityHub(t, hub.Options{Logger: logger})
	resp, _ := off.do(t, http.MethodGet, "/events?topic=a&access_token="+tok, http.Header{"Origin": {"http://evil.test"}}, "")
	if resp.StatusCode != 403 {
		t.Fatalf("status = %d; want 403", resp.StatusCode)
	}

	on := securityHub(t, hub.Options{Logger: logger, TokenQuery: true, NoAnonymous: true})
	if resp, _ := on.do(t, http.MethodGet, "/events?topic=a", nil, ""); resp.StatusCode != 401 {
		t.Errorf("anonymous with NoAnonymous = %d; want 401", resp.StatusCode)
	}
	on.subscribe(t, "topic=a&access_token="+tok, nil)
	if resp, _ := on.do(t, http.MethodGet, "/events?topic=a&access_token=bad"+tok, nil, ""); resp.StatusCode != 401 {
		t.Errorf("a bad query token = %d; want 401", resp.StatusCode)
	}
	// Without TokenQuery the parameter is not a token.
	if resp, _ := off.do(t, http.MethodGet, "/events?topic=a&access_token=bad", nil, ""); resp.StatusCode != 200 {
		t.Errorf("access_token without TokenQuery = %d; want 200 (anonymous)", resp.StatusCode)
	}
	mu.Lock()
	defer mu.Unlock()
	if logs.Len() == 0 {
		t.Fatal("no logs captured: the check below would prove nothing")
	}
	if strings.Contains(logs.String(), tok[len(tok)-20:]) {
		t.Errorf("the token appears in the hub's logs:\n%s", logs.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestSecuritySlowBody: a publisher that sends its body too slowly is
// answered 408 once the body timeout passes, and holds nothing after.
func TestSecuritySlowBody(t *testing.T) {
	th := securityHub(t, hub.Options{Limits: hub.Limits{BodyTimeout: 300 * time.Millisecond}})
	tok := hs256(t, grantClaims([]string{"**"}, nil))
	conn, err := net.Dial("tcp", th.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	fmt.Fprintf(conn, "POST /events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ntopic=a&da", tok)
	_ = conn.SetReadDeadline(time.Now().Add(waitTimeout))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	took := time.Since(start)
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Errorf("status = %d; want 408", resp.StatusCode)
	}
	if took < 250*time.Millisecond || took > 5*time.Second {
		t.Errorf("answered after %v; want about the 300ms body timeout", took)
	}
	if n := th.metric(t, "ssehub_publishes_total", "outcome", "timeout"); n != 1 {
		t.Errorf("ssehub_publishes_total{outcome=timeout} = %v; want 1", n)
	}
}

// TestSecurityMaxStreams: the hub's own stream limit answers 429 with
// Retry-After, whoever asks, and frees a slot when a stream ends.
func TestSecurityMaxStreams(t *testing.T) {
	th := securityHub(t, hub.Options{Limits: hub.Limits{MaxStreams: 2}, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	first := th.subscribe(t, "topic=a", http.Header{"X-Forwarded-For": {"203.0.113.1"}})
	th.subscribe(t, "topic=a", http.Header{"X-Forwarded-For": {"203.0.113.2"}})
	resp, body := th.do(t, http.MethodGet, "/events?topic=a", http.Header{"X-Forwarded-For": {"203.0.113.3"}}, "")
	checkProblem(t, resp.StatusCode, resp.Header.Get("Content-Type"), body, 429, "as many event streams as it may")
	if resp.Header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	if n := th.metric(t, "ssehub_refused_total", "reason", "streams"); n != 1 {
		t.Errorf("ssehub_refused_total{reason=streams} = %v; want 1", n)
	}
	first.resp.Body.Close()
	waitFor(t, waitTimeout, func() bool {
		resp, _ := th.do(t, http.MethodGet, "/events?topic=a", nil, "")
		return resp.StatusCode == 200
	})
}
