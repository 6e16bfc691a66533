package hub_test

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ssehub/ssehub/hub"
	"github.com/ssehub/ssehub/sse"
	"github.com/ssehub/ssehub/store/memstore"
)

const (
	ctForm   = "application/x-www-form-urlencoded"
	ctJSON   = "application/json"
	ctNDJSON = "application/x-ndjson"
)

// TestPublishFormats publishes in each format and checks the answer and
// the events a subscriber receives.
func TestPublishFormats(t *testing.T) {
	tests := []struct {
		name, ct, body string
		wantIDs        []string
		want           []sse.Event // as decoded; Retry only where set
	}{
		{
			name: "form", ct: ctForm, body: "topic=t&data=hello",
			wantIDs: []string{"1"},
			want:    []sse.Event{{ID: "1", Data: "hello"}},
		},
		{
			name: "form all fields", ct: ctForm + "; charset=utf-8",
			body:    "topic=t&topic=u&data=a%0D%0Ab&type=greeting&id=ev-1&retry=1500",
			wantIDs: []string{"ev-1"},
			want:    []sse.Event{{ID: "ev-1", Type: "greeting", Data: "a\nb", Retry: 1500 * time.Millisecond}},
		},
		{
			name: "json string topic", ct: ctJSON, body: `{"topic":"t","data":"hi"}`,
			wantIDs: []string{"1"},
			want:    []sse.Event{{ID: "1", Data: "hi"}},
		},
		{
			name: "json list topic", ct: ctJSON + "; charset=utf-8",
			body:    `{"topic":["t","u"],"data":"hi","type":"x","id":"j-1","retry":250,"private":false}`,
			wantIDs: []string{"j-1"},
			want:    []sse.Event{{ID: "j-1", Type: "x", Data: "hi", Retry: 250 * time.Millisecond}},
		},
		{
			name: "json object data", ct: ctJSON, body: "{\"topic\":\"t\",\"data\":{ \"a\" : [1, 2] }\n}",
			wantIDs: []string{"1"},
			want:    []sse.Event{{ID: "1", Data: `{"a":[1,2]}`}},
		},
		{
			name: "json nulls", ct: ctJSON, body: `{"topic":"t","data":"hi","type":null,"id":null,"retry":null}`,
			wantIDs: []string{"1"},
			want:    []sse.Event{{ID: "1", Data: "hi"}},
		},
		{
			name: "json number data", ct: ctJSON, body: `{"topic":"t","data":42}`,
			wantIDs: []string{"1"},
			want:    []sse.Event{{ID: "1", Data: "42"}},
		},
		{
			name: "ndjson", ct: ctNDJSON,
			body:    "{\"topic\":\"t\",\"data\":\"one\"}\n\n{\"topic\":[\"u\"],\"data\":\"two\",\"id\":\"n-2\"}\r\n{\"topic\":\"t\",\"data\":\"three\",\"type\":\"x\"}\n",
			wantIDs: []string{"1", "n-2", "3"},
			want:    []sse.Event{{ID: "1", Data: "one"}, {ID: "n-2", Data: "two"}, {ID: "3", Type: "x", Data: "three"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			th := newTestHub(t, nil, nil)
			sub := th.subscribe(t, "topic=t&topic=u", nil)
			status, body, ct := th.post(t, tt.ct, tt.body)
			if status != http.StatusOK || ct != "text/plain; charset=utf-8" {
				t.Fatalf("POST = %d %q %s; want 200 text/plain", status, ct, body)
			}
			if want := strings.Join(tt.wantIDs, "\n") + "\n"; body != want {
				t.Errorf("POST body = %q; want %q", body, want)
			}
			if got := sub.wait(t, len(tt.want)); !slices.Equal(got, tt.want) {
				t.Errorf("events = %+v; want %+v", got, tt.want)
			}
			if got := th.metric(t, "ssehub_events_appended_total"); got != float64(len(tt.want)) {
				t.Errorf("ssehub_events_appended_total = %v; want %d", got, len(tt.want))
			}
		})
	}
}

// TestPublishErrors checks every refusal of POST /events: its status, its
// problem+json body, and that nothing was appended.
func TestPublishErrors(t *testing.T) {
	th := newTestHub(t, &hub.Options{MaxBodyBytes: 1024}, nil)
	th.publish(t, url.Values{"topic": {"t"}, "id": {"taken"}})

	tests := []struct {
		name, ct, body string
		status         int
		detail         string
		line           int // for NDJSON
	}{
		{"no content type", "", "topic=t", 415, "Content-Type must be", 0},
		{"text/plain", "text/plain", "topic=t", 415, "Content-Type must be", 0},
		{"multipart", "multipart/form-data; boundary=x", "--x--", 415, "Content-Type must be", 0},
		{"too large", ctForm, "topic=t&data=" + strings.Repeat("x", 1100), 413, "exceeds 1024 bytes", 0},
		{"bad form", ctForm, "topic=%zz", 400, "cannot be parsed", 0},

		{"no topic", ctForm, "data=x", 400, "topic is required", 0},
		{"empty topic", ctForm, "topic=&data=x", 400, "empty", 0},
		{"wildcard topic", ctForm, "topic=a/*", 400, "no wildcards", 0},
		{"topic CR", ctForm, "topic=a%0Db", 400, "control character", 0},
		{"topic LF", ctForm, "topic=a%0Ab", 400, "control character", 0},
		{"topic NUL", ctForm, "topic=a%00b", 400, "control character", 0},
		{"topic bad UTF-8", ctForm, "topic=a%FF", 400, "UTF-8", 0},
		{"too many topics", ctForm, "topic=" + strings.Repeat("t&topic=", 64) + "t", 400, "at most 64 topics", 0},
		{"id CR", ctForm, "topic=t&id=a%0Db", 400, "id contains CR, LF or NUL", 0},
		{"id LF", ctForm, "topic=t&id=a%0Aevent:+x", 400, "id contains CR, LF or NUL", 0},
		{"id NUL", ctForm, "topic=t&id=a%00", 400, "id contains CR, LF or NUL", 0},
		{"id digits", ctForm, "topic=t&id=123", 400, "reserved", 0},
		{"id too long", ctForm, "topic=t&id=" + strings.Repeat("i", 257), 400, "longer than 256", 0},
		{"type CR", ctForm, "topic=t&type=a%0Db", 400, "type contains CR, LF or NUL", 0},
		{"type LF", ctForm, "topic=t&type=a%0Adata:+x", 400, "type contains CR, LF or NUL", 0},
		{"type NUL", ctForm, "topic=t&type=%00", 400, "type contains CR, LF or NUL", 0},
		{"data bad UTF-8", ctForm, "topic=t&data=%C3", 400, "UTF-8", 0},
		{"retry negative", ctForm, "topic=t&retry=-1", 400, "retry must be", 0},
		{"retry fraction", ctForm, "topic=t&retry=1.5", 400, "retry must be", 0},
		{"retry huge", ctForm, "topic=t&retry=86400001", 400, "retry must be", 0},
		{"private", ctForm, "topic=t&private=maybe", 400, `private is "maybe": give on, true or 1`, 0},
		{"data twice", ctForm, "topic=t&data=a&data=b", 400, "data is given more than once", 0},
		{"duplicate id", ctForm, "topic=t&id=taken", 409, `event id "taken" is already in the log`, 0},

		{"json syntax", ctJSON, `{"topic":`, 400, "invalid JSON", 0},
		{"json unknown field", ctJSON, `{"topic":"t","topics":["u"]}`, 400, `unknown field "topics"`, 0},
		{"json not object", ctJSON, `["t"]`, 400, "must be a JSON object", 0},
		{"json two values", ctJSON, `{"topic":"t"} {"topic":"t"}`, 400, "more than one value", 0},
		{"json topic number", ctJSON, `{"topic":1}`, 400, "topic must be a string or a list of strings", 0},
		{"json no topic", ctJSON, `{"data":"x"}`, 400, "topic is required", 0},
		{"json empty topic list", ctJSON, `{"topic":[]}`, 400, "topic is required", 0},
		{"json retry string", ctJSON, `{"topic":"t","retry":"5"}`, 400, "retry must be", 0},
		{"json retry negative", ctJSON, `{"topic":"t","retry":-5}`, 400, "retry must be", 0},
		{"json id LF", ctJSON, `{"topic":"t","id":"a\nb"}`, 400, "id contains CR, LF or NUL", 0},
		{"json id NUL", ctJSON, `{"topic":"t","id":"a\u0000"}`, 400, "id contains CR, LF or NUL", 0},
		{"json type CR", ctJSON, `{"topic":"t","type":"a\rb"}`, 400, "type contains CR, LF or NUL", 0},
		{"json topic LF", ctJSON, `{"topic":"a\nb"}`, 400, "control character", 0},
		{"json id digits", ctJSON, `{"topic":"t","id":"7"}`, 400, "reserved", 0},
		{"json duplicate id", ctJSON, `{"topic":"t","id":"taken"}`, 409, "already in the log", 0},
		{"json type number", ctJSON, `{"topic":"t","type":5}`, 400, "type must be a string", 0},
		{"json id boolean", ctJSON, `{"topic":"t","id":true}`, 400, "id must be a string", 0},
		{"json retry fraction", ctJSON, `{"topic":"t","retry":1.5}`, 400, "retry must be", 0},
		{"json trailing comma", ctJSON, `{"topic":"t",}`, 400, "invalid JSON", 0},
		{"json null", ctJSON, `null`, 400, "must be a JSON object", 0},
		{"json string", ctJSON, `"t"`, 400, "must be a JSON object", 0},
		{"json empty", ctJSON, ``, 400, "invalid JSON", 0},
		{"json bad UTF-8", ctJSON, "{\"topic\":\"t\",\"data\":\"a\xffb\"}", 400, "not valid UTF-8", 0},
		{"json bad UTF-8 in a name", ctJSON, "{\"topic\":\"t\",\"\xff\":1}", 400, "not valid UTF-8", 0},

		{"ndjson bad line", ctNDJSON, "{\"topic\":\"t\"}\n{\"topic\":\"a/*\"}\n{\"topic\":\"t\"}\n", 400, "line 2: ", 2},
		{"ndjson bad json", ctNDJSON, "{\"topic\":\"t\"}\n\n{\"topic\":\n", 400, "line 3: invalid JSON", 3},
		{"ndjson empty", ctNDJSON, "\n\n", 400, "no event", 0},
		{"ndjson bad UTF-8", ctNDJSON, "{\"topic\":\"t\"}\n{\"topic\":\"t\",\"data\":\"\xff\"}\n", 400, "line 2: the JSON is not valid UTF-8", 2},
		{"ndjson repeated id", ctNDJSON, "{\"topic\":\"t\",\"id\":\"r\"}\n{\"topic\":\"t\",\"id\":\"r\"}\n", 409, `"r" appears twice`, 0},
		{"ndjson taken id", ctNDJSON, "{\"topic\":\"t\"}\n{\"topic\":\"t\",\"id\":\"taken\"}\n", 409, "already in the log", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkRefusal(t, th, tt.ct, tt.body, tt.status, tt.detail, tt.line)
		})
	}
	if got := th.metric(t, "ssehub_publishes_total", "outcome", "invalid"); got < 30 {
		t.Errorf("ssehub_publishes_total{outcome=invalid} = %v; want every 400 counted", got)
	}
	if got := th.metric(t, "ssehub_publishes_total", "outcome", "duplicate"); got != 4 {
		t.Errorf("ssehub_publishes_total{outcome=duplicate} = %v; want 4", got)
	}
}

// TestPublishStoreFailure checks that a failing Append is answered 503.
func TestPublishStoreFailure(t *testing.T) {
	log := &failLog{Store: memstore.New()}
	t.Cleanup(func() { log.Close() })
	th := newTestHub(t, nil, log)
	log.setFail(true)
	status, body, ct := th.post(t, ctForm, "topic=t&data=x")
	checkProblem(t, status, ct, body, http.StatusServiceUnavailable, "log is unavailable")
	if got := th.metric(t, "ssehub_publishes_total", "outcome", "unavailable"); got != 1 {
		t.Errorf("ssehub_publishes_total{outcome=unavailable} = %v; want 1", got)
	}
	log.setFail(false)
	if id := th.publish(t, url.Values{"topic": {"t"}}); id != "1" {
		t.Errorf("after recovery, id = %q; want 1", id)
	}
}

// TestInjection checks that line breaks in data cannot inject fields or
// events: they arrive as data lines of the one event, and the wire shows
// nothing but data lines between its id and its blank line.
func TestInjection(t *testing.T) {
	payloads := []string{
		"a\nevent: evil\nid: 666\n\ndata: injected",
		"a\rid: 666\r\rdata: x",
		"a\r\nretry: 1\r\n\r\n: comment",
		"\n\nleading",
		"trailing\n",
		"nul\x00inside",
		"  spaces kept",
	}
	th := newTestHub(t, nil, nil)
	sub := th.subscribe(t, "topic=t", nil)
	var want []sse.Event
	for _, p := range payloads {
		for _, ct := range []string{ctForm, ctJSON} {
			body := url.Values{"topic": {"t"}, "data": {p}}.Encode()
			if ct == ctJSON {
				body = `{"topic":"t","data":` + jsonString(p) + `}`
			}
			status, id, _ := th.post(t, ct, body)
			if status != http.StatusOK {
				t.Fatalf("publish %q = %d %s", p, status, id)
			}
			norm := strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(p)
			want = append(want, sse.Event{ID: strings.TrimSpace(id), Data: norm})
		}
	}
	if got := sub.wait(t, len(want)); !slices.Equal(got, want) {
		t.Errorf("events = %q; want %q", got, want)
	}

	// The wire, replayed from the start.
	rs := th.rawSubscribe(t, "topic=t&lastEventID=0", nil)
	rs.lines(t, 3) // opening
	for i := range want {
		lines := readEvent(t, rs.br)
		if lines[0] != "id: "+want[i].ID {
			t.Fatalf("event %d starts with %q; want its id", i, lines[0])
		}
		for _, l := range lines[1:] {
			if l != "data:" && !strings.HasPrefix(l, "data: ") {
				t.Errorf("event %d (%q) has line %q; want only data lines", i, want[i].Data, l)
			}
		}
	}
}

// readEvent reads the lines of one event, up to its blank line.
func readEvent(t *testing.T, br *bufio.Reader) []string {
	t.Helper()
	var lines []string
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("after %q: %v", lines, err)
		}
		if l == "\n" {
			return lines
		}
		lines = append(lines, strings.TrimSuffix(l, "\n"))
	}
}

// jsonString quotes s as a JSON string.
func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
