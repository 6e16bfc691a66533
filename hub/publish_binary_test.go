package hub_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ssehub/ssehub/hub"
	"github.com/ssehub/ssehub/sse"
	"github.com/ssehub/ssehub/store/memstore"
)

const ctBinary = "application/octet-stream"

// binaryLimits take payloads of up to 1 MiB, random ones too, by every
// publish path: their encoded data is about 1.4 MiB, and so is a JSON
// body carrying it. These are what a daemon needs for the issue's round
// trip: --max-event-bytes 1572864 --max-body 2097152.
var binaryLimits = hub.Options{
	MaxBodyBytes: 2 << 20,
	Limits:       hub.Limits{MaxEventBytes: 3 << 19, MaxBinaryBytes: 1 << 20},
}

// randomBytes returns n bytes of a pseudo-random stream seeded with seed.
func randomBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	_, _ = r.Read(b) // ChaCha8.Read does not fail
	return b
}

// postTo sends a POST to path (with its query) and returns the status,
// the body and the answer's Content-Type.
func (th *testHub) postTo(t *testing.T, path, contentType string, header http.Header, body []byte) (int, string, string) {
	t.Helper()
	h := header.Clone()
	if h == nil {
		h = http.Header{}
	}
	h.Set("Content-Type", contentType)
	resp := th.send(t, http.MethodPost, path, h, string(body))
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b), resp.Header.Get("Content-Type")
}

// subscribeLarge is subscribe, with a decoder that holds events of up to
// 4 MiB, more than the 1 MiB an sse.Decoder holds by default.
func (th *testHub) subscribeLarge(t *testing.T, query string, header http.Header) *testSub {
	t.Helper()
	return th.subscribeMax(t, "/events?"+query, header, 4<<20)
}

// A binaryPublish publishes payload, of media type media ("" for none),
// as one event of id to topic bin, by one publish path.
type binaryPublish func(t *testing.T, th *testHub, id string, payload []byte, media string)

// binaryPaths are the ways to publish a binary event.
var binaryPaths = []struct {
	name    string
	publish binaryPublish
}{
	{"octet-stream", func(t *testing.T, th *testHub, id string, payload []byte, media string) {
		t.Helper()
		q := url.Values{"topic": {"bin"}, "id": {id}}
		if media != "" {
			q.Set("media", media)
		}
		status, body, _ := th.postTo(t, "/events?"+q.Encode(), ctBinary, nil, payload)
		if status != http.StatusOK || body != id+"\n" {
			t.Fatalf("POST %s = %d %.200s; want 200 %q", ctBinary, status, body, id)
		}
	}},
	{"json", func(t *testing.T, th *testHub, id string, payload []byte, media string) {
		t.Helper()
		ev := map[string]any{"topic": "bin", "id": id, "data_base64": base64.StdEncoding.EncodeToString(payload)}
		if media != "" {
			ev["media"] = media
		}
		b, _ := json.Marshal(ev)
		status, body, _ := th.postTo(t, "/events", ctJSON, nil, b)
		if status != http.StatusOK || body != id+"\n" {
			t.Fatalf("POST %s = %d %.200s; want 200 %q", ctJSON, status, body, id)
		}
	}},
	{"ndjson", func(t *testing.T, th *testHub, id string, payload []byte, media string) {
		t.Helper()
		// A text event first, then the binary one: a batch mixes them.
		ev := map[string]any{"topic": "bin", "id": id, "data_base64": base64.StdEncoding.EncodeToString(payload)}
		if media != "" {
			ev["media"] = media
		}
		b, _ := json.Marshal(ev)
		body := `{"topic":"bin","data":"text before ` + id + `"}` + "\n" + string(b) + "\n"
		status, got, _ := th.postTo(t, "/events", ctNDJSON, nil, []byte(body))
		if status != http.StatusOK || !strings.HasSuffix(got, "\n"+id+"\n") {
			t.Fatalf("POST %s = %d %.200s; want 200 and %q last", ctNDJSON, status, got, id)
		}
	}},
	{"Publish", func(t *testing.T, th *testHub, id string, payload []byte, media string) {
		t.Helper()
		if payload == nil {
			payload = []byte{} // nil would be a text event
		}
		got, err := th.h.Publish(context.Background(), hub.Event{Topics: []string{"bin"}, ID: id, Binary: payload, Media: media})
		if err != nil || len(got) != 1 || got[0] != id {
			t.Fatalf("Publish = %v, %v; want [%s]", got, err, id)
		}
	}},
	{"PublishMercure", func(t *testing.T, th *testHub, id string, payload []byte, media string) {
		t.Helper()
		got, err := th.h.PublishMercure(context.Background(), hub.Event{Topics: []string{"bin"}, ID: id, Binary: append([]byte{}, payload...), Media: media})
		if err != nil || len(got) != 1 || got[0] != id {
			t.Fatalf("PublishMercure = %v, %v; want [%s]", got, err, id)
		}
	}},
}

// TestPublishBinaryRoundTrip publishes binary payloads by every path, and
// checks that a subscriber's sse.Event.Bytes gives each back, byte for
// byte, with its media type, gzip-compressed on the wire when that is
// smaller (a compressible payload) and not otherwise (random bytes).
func TestPublishBinaryRoundTrip(t *testing.T) {
	opts := binaryLimits
	th := newTestHub(t, &opts, nil)
	sub := th.subscribeLarge(t, "topic=bin", nil)

	compressible := bytes.Repeat([]byte("ssehub binary events travel as base64 text; "), 20_000) // 900 KB
	payloads := []struct {
		name     string
		payload  []byte
		media    string
		encoding string
	}{
		{"empty", nil, "", sse.EncodingIdentity},
		{"1 byte", randomBytes(1, 1), "", sse.EncodingIdentity},
		{"2 bytes", randomBytes(2, 2), "", sse.EncodingIdentity},
		{"3 bytes", randomBytes(3, 3), "application/x-thing", sse.EncodingIdentity},
		{"1000 bytes", randomBytes(4, 1000), "", sse.EncodingIdentity},
		{"64 KiB", randomBytes(5, 64<<10), "image/png", sse.EncodingIdentity},
		{"1 MiB", randomBytes(6, 1<<20), "", sse.EncodingIdentity},
		{"compressible", compressible, "text/plain;charset=utf-8", sse.EncodingGzip},
	}
	for _, p := range binaryPaths {
		for _, pl := range payloads {
			t.Run(p.name+"/"+pl.name, func(t *testing.T) {
				id := strings.ReplaceAll(p.name+"-"+pl.name, " ", "-")
				p.publish(t, th, id, pl.payload, pl.media)
				evs := sub.waitID(t, id)
				ev := evs[len(evs)-1]
				if ev.Type != "" || !ev.IsBinary() {
					t.Fatalf("event %q: type %q, binary %v; want a message, binary", id, ev.Type, ev.IsBinary())
				}
				got, err := ev.Bytes()
				if err != nil {
					t.Fatalf("Bytes() error %v (data %.80q)", err, ev.Data)
				}
				if !bytes.Equal(got, pl.payload) {
					t.Fatalf("Bytes() = %d bytes; want the %d bytes published, identical", len(got), len(pl.payload))
				}
				h, _, err := sse.ParseBinaryHeader(ev.Data)
				wantMedia := pl.media
				if wantMedia == "" {
					wantMedia = sse.DefaultBinaryMediaType
				}
				if want := (sse.BinaryHeader{MediaType: wantMedia, Encoding: pl.encoding, Size: len(pl.payload)}); err != nil || h != want {
					t.Errorf("ParseBinaryHeader = %+v, %v; want %+v", h, err, want)
				}
			})
		}
	}
}

// TestPublishBinaryForms checks the details of each form: the fields of
// an octet-stream publish in its query string, the Accept JSON answer,
// unpadded base64, a null data beside data_base64, and JSON nulls.
func TestPublishBinaryForms(t *testing.T) {
	th := newTestHub(t, nil, nil)
	sub := th.subscribe(t, "topic=**", nil)

	status, body, ct := th.postTo(t, "/events?topic=a&topic=b&type=blob&id=q-1&retry=1500&media=image/gif",
		ctBinary, http.Header{"Accept": {"application/json"}}, []byte("GIF89a"))
	if status != http.StatusOK || ct != ctJSON || body != `{"ids":["q-1"]}`+"\n" {
		t.Errorf("octet-stream with Accept JSON = %d %s %q; want 200 %s {\"ids\":[\"q-1\"]}", status, ct, body, ctJSON)
	}
	ev := sub.waitID(t, "q-1")[0]
	data, _ := sse.BinaryData([]byte("GIF89a"), "image/gif")
	if want := (sse.Event{ID: "q-1", Type: "blob", Data: data, Retry: 1500 * time.Millisecond}); ev != want {
		t.Errorf("event = %+v; want %+v", ev, want)
	}

	tests := []struct {
		name, body string
		want       []byte
	}{
		{"padded", `{"topic":"t","id":"p","data_base64":"QQ=="}`, []byte("A")},
		{"unpadded", `{"topic":"t","id":"u","data_base64":"QQ"}`, []byte("A")},
		{"unpadded, whole groups", `{"topic":"t","id":"w","data_base64":"QUJD"}`, []byte("ABC")},
		{"line breaks", `{"topic":"t","id":"l","data_base64":"QUJD\nREVG\r\n"}`, []byte("ABCDEF")},
		{"null data beside", `{"topic":"t","id":"n","data":null,"data_base64":"","media":"image/png"}`, []byte{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body, _ := th.postTo(t, "/events", ctJSON, nil, []byte(tt.body))
			if status != http.StatusOK {
				t.Fatalf("POST %s = %d %s; want 200", tt.body, status, body)
			}
			evs := sub.waitID(t, strings.TrimSpace(body))
			got, err := evs[len(evs)-1].Bytes()
			if err != nil || !bytes.Equal(got, tt.want) {
				t.Errorf("Bytes() = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	// A null data_base64 or media is absent: a text event.
	status, body, _ = th.postTo(t, "/events", ctJSON, nil, []byte(`{"topic":"t","id":"txt","data":"hi","data_base64":null,"media":null}`))
	if status != http.StatusOK {
		t.Fatalf("text event with null data_base64 = %d %s; want 200", status, body)
	}
	if ev := sub.waitID(t, "txt"); ev[len(ev)-1].Data != "hi" {
		t.Errorf("data = %q; want hi", ev[len(ev)-1].Data)
	}
}

// TestPublishBinaryPrivate checks that a private binary event goes only
// to a subscriber whose grant allows its topic, as a text one does.
func TestPublishBinaryPrivate(t *testing.T) {
	th := securityHub(t, hub.Options{})
	publisher := bearer(hs256(t, grantClaims([]string{"**"}, nil)))
	reader := cookie(hs256(t, grantClaims(nil, []string{"secret/*"})))
	allowed := th.subscribe(t, "topic=secret/a", reader)
	anonymous := th.subscribe(t, "topic=secret/a", nil)

	payload := randomBytes(7, 300)
	status, body, _ := th.postTo(t, "/events?topic=secret/a&private=on&id=priv", ctBinary, publisher, payload)
	if status != http.StatusOK {
		t.Fatalf("private binary publish = %d %s; want 200", status, body)
	}
	status, body, _ = th.postTo(t, "/events?topic=secret/a&id=marker", ctBinary, publisher, []byte("public"))
	if status != http.StatusOK {
		t.Fatalf("public binary publish = %d %s; want 200", status, body)
	}
	evs := allowed.waitID(t, "marker")
	if got := ids(evs); len(got) != 2 || got[0] != "priv" {
		t.Fatalf("allowed subscriber got %v; want [priv marker]", got)
	}
	if got, err := evs[0].Bytes(); err != nil || !bytes.Equal(got, payload) {
		t.Errorf("private event Bytes() = %d bytes, %v; want the payload", len(got), err)
	}
	if got := ids(anonymous.waitID(t, "marker")); len(got) != 1 {
		t.Errorf("anonymous subscriber got %v; want [marker] only", got)
	}
}

// TestPublishBinaryRefused checks each refusal of a binary publish, and
// of text data that would pass for binary, on every path: nothing is
// appended, and the problem says why.
func TestPublishBinaryRefused(t *testing.T) {
	th := newTestHub(t, &hub.Options{Limits: hub.Limits{MaxBinaryBytes: 100, MaxEventBytes: 150}}, nil)
	b64 := func(p []byte) string { return base64.StdEncoding.EncodeToString(p) }
	reserved := sse.BinaryPrefix + "application/octet-stream identity 1\nQQ=="
	reservedJSON, _ := json.Marshal(reserved)
	tests := []struct {
		name, path, ct string
		body           []byte
		status         int
		detail         string
		line           int
	}{
		{"unknown parameter", "/events?topic=t&colour=red", ctBinary, nil, 400, `unknown query parameter "colour": a binary publish takes topic, type, id, retry, private and media`, 0},
		{"unknown parameters named", "/events?topic=t&a=1&data=x&a=2", ctBinary, nil, 400, `unknown query parameters "a", "data"`, 0},
		{"no topic", "/events?id=x", ctBinary, []byte("x"), 400, "topic is required", 0},
		{"bad query", "/events?topic=%zz", ctBinary, []byte("x"), 400, "query string cannot be parsed", 0},
		{"bad private", "/events?topic=t&private=maybe", ctBinary, []byte("x"), 400, `private is "maybe"`, 0},
		{"reserved type", "/events?topic=t&type=ssehub-gap", ctBinary, []byte("x"), 400, "reserved", 0},
		{"media twice", "/events?topic=t&media=image/png&media=image/gif", ctBinary, []byte("x"), 400, "media is given more than once", 0},
		{"bad media", "/events?topic=t&media=png", ctBinary, []byte("x"), 400, `media: media type "png"`, 0},
		{"media with a space", "/events?topic=t&media=text/plain%3B+charset=utf-8", ctBinary, []byte("x"), 400, "spaces or line breaks", 0},
		{"empty media", "/events?topic=t&media=", ctBinary, []byte("x"), 400, "media is empty", 0},
		{"media too long", "/events?topic=t&media=a/" + strings.Repeat("b", 300), ctBinary, []byte("x"), 400, "media is longer than 256 bytes", 0},
		{"too large decoded", "/events?topic=t", ctBinary, bytes.Repeat([]byte{0}, 101), 413, "the binary payload, 101 bytes, is larger than 100 bytes", 0},
		{"too large encoded", "/events?topic=t", ctBinary, randomBytes(8, 100), 413, "the binary payload, 100 bytes, is 188 bytes encoded (base64, after gzip when smaller), larger than the 150 bytes", 0},

		{"json bad base64", "/events", ctJSON, []byte(`{"topic":"t","data_base64":"QQ@="}`), 400, "data_base64 is not standard base64", 0},
		{"json url-safe base64", "/events", ctJSON, []byte(`{"topic":"t","data_base64":"_-8"}`), 400, "data_base64 is not standard base64", 0},
		{"json bad padding", "/events", ctJSON, []byte(`{"topic":"t","data_base64":"QQ="}`), 400, "data_base64 is not standard base64", 0},
		{"json base64 not a string", "/events", ctJSON, []byte(`{"topic":"t","data_base64":[65]}`), 400, "data_base64 must be a string", 0},
		{"json data and data_base64", "/events", ctJSON, []byte(`{"topic":"t","data":"x","data_base64":"QQ=="}`), 400, "data and data_base64 are both given", 0},
		{"json empty data and data_base64", "/events", ctJSON, []byte(`{"topic":"t","data_base64":"QQ==","data":""}`), 400, "data and data_base64 are both given", 0},
		{"json media alone", "/events", ctJSON, []byte(`{"topic":"t","data":"x","media":"image/png"}`), 400, "media is given without data_base64", 0},
		{"json bad media", "/events", ctJSON, []byte(`{"topic":"t","data_base64":"QQ==","media":"image"}`), 400, `media: media type "image"`, 0},
		{"json media number", "/events", ctJSON, []byte(`{"topic":"t","data_base64":"QQ==","media":5}`), 400, "media must be a string", 0},
		{"json too large decoded", "/events", ctJSON, []byte(`{"topic":"t","data_base64":"` + b64(make([]byte, 101)) + `"}`), 413, "is larger than 100 bytes", 0},
		{"json too large encoded", "/events", ctJSON, []byte(`{"topic":"t","data_base64":"` + b64(randomBytes(9, 100)) + `"}`), 413, "bytes encoded", 0},
		{"ndjson bad base64", "/events", ctNDJSON, []byte("{\"topic\":\"t\",\"data_base64\":\"QQ==\"}\n{\"topic\":\"t\",\"data_base64\":\"Q\"}\n"), 400, "line 2: data_base64 is not standard base64", 2},
		{"ndjson too large", "/events", ctNDJSON, []byte("{\"topic\":\"t\",\"data_base64\":\"" + b64(make([]byte, 101)) + "\"}\n"), 413, "line 1: the binary payload", 1},

		{"reserved prefix, form", "/events", ctForm, []byte(url.Values{"topic": {"t"}, "data": {reserved}}.Encode()), 400, `data may not begin with "ssehub-binary ": that prefix is reserved`, 0},
		{"reserved prefix, json", "/events", ctJSON, []byte(`{"topic":"t","data":` + string(reservedJSON) + `}`), 400, "prefix is reserved", 0},
		{"reserved prefix, ndjson", "/events", ctNDJSON, []byte(`{"topic":"t","data":"ok"}` + "\n" + `{"topic":"t","data":"ssehub-binary "}` + "\n"), 400, "line 2: data may not begin with", 2},
		{"reserved prefix, mercure", hub.MercurePath, ctForm, []byte(url.Values{"topic": {"urn:t"}, "data": {reserved}}.Encode()), 400, "prefix is reserved", 0},
		{"query on a form publish", "/events?topic=t", ctForm, []byte("topic=t"), 400, `unknown query parameter "topic": a publish takes its fields in the body`, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, before, _ := th.log.Bounds(context.Background())
			status, body, ct := th.postTo(t, tt.path, tt.ct, nil, tt.body)
			p := checkProblem(t, status, ct, body, tt.status, tt.detail)
			if got, _ := p["line"].(float64); int(got) != tt.line {
				t.Errorf("problem line = %v; want %d", p["line"], tt.line)
			}
			if _, after, _ := th.log.Bounds(context.Background()); after != before {
				t.Errorf("log grew from %d to %d records; want nothing appended", before, after)
			}
		})
	}
	// Text that only looks like the prefix is anyone's.
	for _, data := range []string{"ssehub-binary", "Ssehub-binary x", " ssehub-binary x", "text\nssehub-binary x"} {
		if status, body, _ := th.postTo(t, "/events", ctForm, nil, []byte(url.Values{"topic": {"t"}, "data": {data}}.Encode())); status != http.StatusOK {
			t.Errorf("data %q = %d %s; want 200", data, status, body)
		}
	}
	if got := th.metric(t, "ssehub_publishes_total", "outcome", "too_large"); got != 5 {
		t.Errorf("ssehub_publishes_total{outcome=too_large} = %v; want 5", got)
	}
}

// TestPublishBinaryGoRefused checks the refusals of Publish and
// PublishMercure: each wraps ErrInvalidEvent and says why.
func TestPublishBinaryGoRefused(t *testing.T) {
	th := newTestHub(t, &hub.Options{Limits: hub.Limits{MaxBinaryBytes: 100, MaxEventBytes: 150}}, nil)
	reserved := sse.BinaryPrefix + "application/octet-stream identity 0\n"
	tests := []struct {
		name    string
		mercure bool
		ev      hub.Event
		want    string
	}{
		{"reserved prefix", false, hub.Event{Topics: []string{"t"}, Data: reserved}, "prefix is reserved"},
		{"reserved prefix, mercure", true, hub.Event{Topics: []string{"urn:t"}, Data: reserved}, "prefix is reserved"},
		{"data and binary", false, hub.Event{Topics: []string{"t"}, Data: "x", Binary: []byte("x")}, "Data and Binary are both set"},
		{"media without binary", false, hub.Event{Topics: []string{"t"}, Data: "x", Media: "image/png"}, "Media is set without Binary"},
		{"bad media", false, hub.Event{Topics: []string{"t"}, Binary: []byte("x"), Media: "png"}, `media type "png"`},
		{"too large decoded", false, hub.Event{Topics: []string{"t"}, Binary: make([]byte, 101)}, "larger than 100 bytes"},
		{"too large encoded", true, hub.Event{Topics: []string{"urn:t"}, Binary: randomBytes(10, 100)}, "bytes encoded"},
		{"binary without topic", false, hub.Event{Binary: []byte("x")}, "topic is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			publish := th.h.Publish
			if tt.mercure {
				publish = th.h.PublishMercure
			}
			ids, err := publish(context.Background(), hub.Event{Topics: []string{"ok"}, Data: "fine"}, tt.ev)
			if !errors.Is(err, hub.ErrInvalidEvent) || !strings.Contains(err.Error(), "event 2: ") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Publish = %v, %v; want ErrInvalidEvent, event 2, %q", ids, err, tt.want)
			}
		})
	}
	if _, last, _ := th.log.Bounds(context.Background()); last != 0 {
		t.Errorf("log holds %d records; want none", last)
	}
}

// ExampleEvent_binary publishes a binary event with Hub.Publish. Its
// data, as stored and sent, is text: a first line that says what it is,
// then base64; a subscriber gets the bytes back with sse.Event.Bytes.
func ExampleEvent_binary() {
	log := memstore.New()
	defer log.Close()
	h := hub.New(log, nil)
	defer h.Close()
	ids, err := h.Publish(context.Background(), hub.Event{
		Topics: []string{"photos"},
		Binary: []byte("\x89PNG\r\n\x1a\n"),
		Media:  "image/png",
	})
	fmt.Println(ids, err)
	all, _ := hub.ParseSelector("**")
	_ = log.Read(context.Background(), 0, []hub.Selector{all}, func(rec *hub.Record) bool {
		fmt.Println(rec.Data)
		ev := sse.Event{Data: rec.Data}
		b, err := ev.Bytes()
		fmt.Printf("%q %v\n", b, err)
		return true
	})
	// Output:
	// [1] <nil>
	// ssehub-binary image/png identity 8
	// iVBORw0KGgo=
	// "\x89PNG\r\n\x1a\n" <nil>
}
