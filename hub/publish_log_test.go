package hub_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
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
)

// A logBuffer collects a Hub's logs, every level, as JSON lines.
type logBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

// logger returns a logger that writes to l.
func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(lockedWriter{&l.mu, &l.b}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// String returns everything logged so far.
func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// find returns the records logged so far whose message is msg.
func (l *logBuffer) find(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.Lines(l.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

// logged returns the n-th record with message msg, failing the test if
// there is none, or more than n. The hub logs a request before it
// answers it, so the record is there once the answer has arrived.
func (l *logBuffer) logged(t *testing.T, msg string, n int) map[string]any {
	t.Helper()
	recs := l.find(t, msg)
	if len(recs) != n {
		t.Fatalf("%d records %q; want %d. The logs:\n%s", len(recs), msg, n, l.String())
	}
	return recs[n-1]
}

// TestPublishLogged: each publish is logged at debug level, with the
// number of events and topics, a topic, the IDs and the client's
// address, and never the data.
func TestPublishLogged(t *testing.T) {
	var logs logBuffer
	th := newTestHub(t, &hub.Options{
		Logger:         logs.logger(),
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
	}, nil)

	th.publish(t, url.Values{"topic": {"news/a"}, "data": {"SECRET-DATA"}, "id": {"first"}})
	rec := logs.logged(t, "published", 1)
	if rec["level"] != "DEBUG" || rec["events"] != 1.0 || rec["topics"] != 1.0 || rec["topic"] != "news/a" ||
		!slices.Equal(anyStrings(rec["ids"]), []string{"first"}) || !strings.HasPrefix(rec["remote"].(string), "127.0.0.1:") {
		t.Errorf("logged %v; want DEBUG, events 1, topics 1, topic news/a, ids [first], remote 127.0.0.1:…", rec)
	}

	var batch strings.Builder
	for i := range 10 {
		topic := []string{"a", "b"}[i%2]
		batch.WriteString(`{"topic":["` + topic + `","a"],"data":"SECRET-DATA"}` + "\n")
	}
	resp, body := th.do(t, http.MethodPost, "/events", http.Header{"Content-Type": {ctNDJSON}, "X-Forwarded-For": {"203.0.113.9"}}, batch.String())
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST = %d %s; want 200", resp.StatusCode, body)
	}
	rec = logs.logged(t, "published", 2)
	if rec["level"] != "DEBUG" || rec["events"] != 10.0 || rec["topics"] != 2.0 || rec["topic"] != "a" ||
		rec["first_id"] != "2" || rec["last_id"] != "11" || !strings.HasPrefix(rec["remote"].(string), "203.0.113.9 via 127.0.0.1:") {
		t.Errorf("logged %v; want DEBUG, events 10, topics 2, topic a, first_id 2, last_id 11, remote 203.0.113.9 via …", rec)
	}
	if strings.Contains(logs.String(), "SECRET-DATA") {
		t.Errorf("event data in the logs:\n%s", logs.String())
	}
}

// anyStrings returns the strings of a JSON list.
func anyStrings(v any) []string {
	l, _ := v.([]any)
	out := make([]string, len(l))
	for i, s := range l {
		out[i], _ = s.(string)
	}
	return out
}

// TestRefusalsLogged: every 401, 403 and 429 is logged at info level,
// with its reason and the client's address, and no token, nor any part
// of one, ever appears in the logs, whatever level they are kept at.
func TestRefusalsLogged(t *testing.T) {
	var logs logBuffer
	th := securityHub(t, hub.Options{
		Logger: logs.logger(),
		Limits: hub.Limits{PublishRate: 0.001, PublishBurst: 1, MaxStreamsPerClient: 1},
	})
	all := grantClaims([]string{"**"}, []string{"**"})
	chat := hs256(t, grantClaims([]string{"chat/*"}, nil))
	rated := hs256(t, all)
	expired := grantClaims([]string{"**"}, []string{"**"})
	expired["exp"] = time.Now().Add(-time.Hour).Unix()
	expired["iat"] = time.Now().Add(-2 * time.Hour).Unix()
	wrongKey := sign(t, jwt.SigningMethodHS256, []byte("another-secret-of-at-least-32-bytes!"), all)
	tokens := []string{chat, rated, hs256(t, expired), wrongKey, tamper(t, chat, all), "garbage-token-value"}

	tests := []struct {
		name         string
		method, path string
		header       http.Header
		status       int
		msg, reason  string
		subject      string
	}{
		{"publish, no token", "POST", "/events", formHeader(nil), 401, "publish refused", "a token is required", ""},
		{"publish, not bearer", "POST", "/events", formHeader(http.Header{"Authorization": {"Basic " + tokens[5]}}), 401, "publish refused", "must be \"Bearer <token>\"", ""},
		{"publish, expired", "POST", "/events", formHeader(bearer(tokens[2])), 401, "publish refused", "expired", ""},
		{"publish, wrong key", "POST", "/events", formHeader(bearer(wrongKey)), 401, "publish refused", "signature", ""},
		{"publish, tampered", "POST", "/events", formHeader(bearer(tokens[4])), 401, "publish refused", "signature", ""},
		{"publish, garbage", "POST", "/events", formHeader(bearer(tokens[5])), 401, "publish refused", "invalid token", ""},
		{"subscribe, bad cookie", "GET", "/events?topic=a", cookie(tokens[4]), 401, "subscription refused", "signature", ""},
		{"subscribe, bad header", "GET", "/events?topic=a", bearer(tokens[2]), 401, "subscription refused", "expired", ""},
		{"publish, out of scope", "POST", "/events", formHeader(bearer(chat)), 403, "publish refused", `may not publish to topic "news"`, "tester"},
		{"publish, first", "POST", "/events", formHeader(bearer(rated)), 200, "", "", ""},
		{"publish, too fast", "POST", "/events", formHeader(bearer(rated)), 429, "publish refused", "events a second", "tester"},
		{"subscribe, first", "GET", "/events?topic=a", bearer(rated), 200, "", "", ""},
		{"subscribe, too many", "GET", "/events?topic=a", bearer(rated), 429, "subscription refused", "as many event streams", "tester"},
		{"origin not allowed", "GET", "/events?topic=a", http.Header{"Origin": {"https://elsewhere.example"}}, 403, "request refused", "origin not allowed", ""},
	}
	seen := map[string]int{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.status == 200 && tt.method == "GET" {
				th.subscribe(t, "topic=a", tt.header) // held to the end of the test
				return
			}
			resp, body := th.do(t, tt.method, tt.path, tt.header, "topic=news&data=x")
			if resp.StatusCode != tt.status {
				t.Fatalf("%s = %d %s; want %d", tt.method, resp.StatusCode, body, tt.status)
			}
			if tt.status == 200 {
				return
			}
			seen[tt.msg]++
			rec := logs.logged(t, tt.msg, seen[tt.msg])
			reason, _ := rec["reason"].(string)
			remote, _ := rec["remote"].(string)
			if rec["level"] != "INFO" || !strings.Contains(reason, tt.reason) || !strings.HasPrefix(remote, "127.0.0.1:") {
				t.Errorf("logged %v; want INFO, a reason with %q, remote 127.0.0.1:…", rec, tt.reason)
			}
			if rec["status"] != float64(tt.status) {
				t.Errorf("logged status %v; want %d", rec["status"], tt.status)
			}
			if sub, _ := rec["subject"].(string); sub != tt.subject {
				t.Errorf("logged subject %q; want %q", sub, tt.subject)
			}
		})
	}
	out := logs.String()
	for _, tok := range tokens {
		for _, part := range append(strings.Split(tok, "."), tok) {
			if len(part) >= 8 && strings.Contains(out, part) {
				t.Errorf("a token, or part of one (%q), appears in the hub's logs:\n%s", part, out)
			}
		}
	}
}
