package hub_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/ssehub/ssehub/hub"
	"github.com/ssehub/ssehub/sse"
)

// These tests hold the hub to one rule: what a publisher sends never
// changes meaning in silence. A name the hub does not know, a value it
// does not document, or a type that would pass for the hub's or the
// browser's own event is refused with 400, and nothing is appended;
// what it accepts reaches its subscribers.

// A refusal is a publish request the hub must refuse, and what the
// problem it answers must say.
type refusal struct {
	name, ct, body string
	detail         string // contained in the problem's detail
	line           int    // the problem's line member, for NDJSON
}

// checkRefused posts each refusal to th, and checks that it is answered
// 400 with a problem that says why, and that the Log is untouched.
func checkRefused(t *testing.T, th *testHub, tests []refusal) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkRefusal(t, th, tt.ct, tt.body, http.StatusBadRequest, tt.detail, tt.line)
		})
	}
}

// checkRefusal posts body, of Content-Type ct, to th, and checks that it
// is answered status with a problem whose detail contains detail and
// whose line member is line, and that the Log is untouched.
func checkRefusal(t *testing.T, th *testHub, ct, body string, status int, detail string, line int) {
	t.Helper()
	_, before, err := th.log.Bounds(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	gotStatus, gotBody, gotCT := th.post(t, ct, body)
	p := checkProblem(t, gotStatus, gotCT, gotBody, status, detail)
	if got, _ := p["line"].(float64); int(got) != line {
		t.Errorf("problem line = %v; want %d", p["line"], line)
	}
	if _, after, _ := th.log.Bounds(context.Background()); after != before {
		t.Errorf("log grew from %d to %d records; want nothing appended", before, after)
	}
}

// TestPublishUnknownFields: a field the hub does not know is refused on
// every content type, naming it, rather than ignored; a JSON name counts
// only as written (not in other letter case), and once.
func TestPublishUnknownFields(t *testing.T) {
	th := newTestHub(t, nil, nil)
	anon := th.subscribe(t, "topic=**", nil)
	checkRefused(t, th, []refusal{
		{"form typo", ctForm, "topic=t&data=x&privat=on", `unknown field "privat"`, 0},
		{"form typo first", ctForm, "privat=on&topic=t&data=x", `unknown field "privat"`, 0},
		{"form first unknown named", ctForm, "topic=t&b=1&a=2", `unknown field "b"`, 0},
		{"form escaped name", ctForm, "topic=t&pri%76ate=on&topics=u", `unknown field "topics"`, 0},
		{"form upper case", ctForm, "topic=t&Private=on", `unknown field "Private"`, 0},
		{"form empty name", ctForm, "topic=t&=x", `unknown field ""`, 0},
		{"form lists the fields", ctForm, "topic=t&x=1", "the fields are topic, data, type, id, retry and private", 0},
		{"json typo", ctJSON, `{"topic":"t","data":"x","privat":true}`, `unknown field "privat"`, 0},
		{"json upper case", ctJSON, `{"topic":"t","Private":true}`, `unknown field "Private"`, 0},
		{"json upper case topic", ctJSON, `{"Topic":"t"}`, `unknown field "Topic"`, 0},
		{"json escaped unknown", ctJSON, `{"topic":"t","\u0070rivat":true}`, `unknown field "privat"`, 0},
		{"json repeated", ctJSON, `{"topic":"t","private":true,"private":false}`, "private is given more than once", 0},
		{"json repeated escaped", ctJSON, `{"topic":"t","data":"a","d\u0061ta":"b"}`, "data is given more than once", 0},
		{"ndjson typo", ctNDJSON, "{\"topic\":\"t\"}\n{\"topic\":\"t\",\"privat\":true}\n{\"topic\":\"t\"}\n", `line 2: unknown field "privat"`, 2},
		{"ndjson upper case", ctNDJSON, "{\"topic\":\"t\",\"ID\":\"x\"}\n", `line 1: unknown field "ID"`, 1},
	})
	// Nor does the URL's query carry fields: they would be ignored.
	for _, q := range []string{"private=on", "privat=on", "x", "&&topic=u"} {
		t.Run("query "+q, func(t *testing.T) {
			resp, body := th.do(t, http.MethodPost, "/events?"+q, formHeader(nil), "topic=t&data=x")
			name, _, _ := strings.Cut(strings.TrimLeft(q, "&"), "=")
			checkProblem(t, resp.StatusCode, resp.Header.Get("Content-Type"), body, http.StatusBadRequest, `unknown query parameter "`+name+`"`)
		})
	}

	// The case: a subscriber to everything, anonymous, saw the
	// event published with privat=on. Now nothing was published.
	marker := th.publish(t, url.Values{"topic": {"t"}, "data": {"marker"}})
	if got := anon.waitID(t, marker); len(got) != 1 {
		t.Errorf("the anonymous subscriber received %v; want only the marker %s", ids(got), marker)
	}
}

// TestPublishPrivateValues: private takes only the documented values,
// and an empty one is an error, not "public".
func TestPublishPrivateValues(t *testing.T) {
	th := newTestHub(t, nil, nil)
	accepted := []struct {
		ct, body string
		private  bool
	}{
		{ctForm, "topic=t&private=on", true},
		{ctForm, "topic=t&private=true", true},
		{ctForm, "topic=t&private=1", true},
		{ctForm, "topic=t&private=ON", true},
		{ctForm, "topic=t&private=True", true},
		{ctForm, "topic=t&private=off", false},
		{ctForm, "topic=t&private=false", false},
		{ctForm, "topic=t&private=0", false},
		{ctForm, "topic=t&private=FALSE", false},
		{ctForm, "topic=t", false},
		{ctJSON, `{"topic":"t","private":true}`, true},
		{ctJSON, `{"topic":"t","private":false}`, false},
		{ctJSON, `{"topic":"t"}`, false},
	}
	for _, a := range accepted {
		t.Run(a.body, func(t *testing.T) {
			status, body, _ := th.post(t, a.ct, a.body)
			if status != http.StatusOK {
				t.Fatalf("POST %s = %d %s; want 200", a.body, status, body)
			}
			rec := lastRecord(t, th.log)
			if rec.ID != strings.TrimSpace(body) || rec.Private != a.private {
				t.Errorf("POST %s stored %q private=%v; want %q private=%v", a.body, rec.ID, rec.Private, strings.TrimSpace(body), a.private)
			}
		})
	}
	checkRefused(t, th, []refusal{
		{"form empty", ctForm, "topic=t&private=", "private is empty", 0},
		{"form no equals", ctForm, "topic=t&private", "private is empty", 0},
		{"form yes", ctForm, "topic=t&private=yes", `private is "yes"`, 0},
		{"form spaces", ctForm, "topic=t&private=+on", `private is " on"`, 0},
		{"form twice", ctForm, "topic=t&private=on&private=off", "private is given more than once", 0},
		{"json null", ctJSON, `{"topic":"t","private":null}`, "private must be true or false", 0},
		{"json string", ctJSON, `{"topic":"t","private":"true"}`, "private must be true or false", 0},
		{"json on", ctJSON, `{"topic":"t","private":"on"}`, "private must be true or false", 0},
		{"json number", ctJSON, `{"topic":"t","private":1}`, "private must be true or false", 0},
		{"ndjson empty string", ctNDJSON, "{\"topic\":\"t\"}\n{\"topic\":\"t\",\"private\":\"\"}\n", "line 2: private must be true or false", 2},
	})
}

// lastRecord returns the newest record of log.
func lastRecord(t *testing.T, log hub.Log) hub.Record {
	t.Helper()
	ctx := context.Background()
	_, last, err := log.Bounds(ctx)
	if err != nil || last == 0 {
		t.Fatalf("Bounds = %d, %v; want a record", last, err)
	}
	all, err := hub.ParseSelector("**")
	if err != nil {
		t.Fatal(err)
	}
	var rec hub.Record
	err = log.Read(ctx, last-1, []hub.Selector{all}, func(r *hub.Record) bool {
		rec = *r
		return false
	})
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// TestPublishReservedTypes: no publisher may send the browser's own open
// and error types, nor the hub's ssehub- types, in any letter case.
func TestPublishReservedTypes(t *testing.T) {
	th := newTestHub(t, nil, nil)
	var tests []refusal
	for _, typ := range []string{"open", "error", hub.GapEventType, hub.AuthEventType, "ssehub-", "ssehub-anything", "Open", "ERROR", "SSEHUB-gap", "Ssehub-Auth"} {
		tests = append(tests,
			refusal{"form " + typ, ctForm, "topic=t&data=x&type=" + typ, "type " + jsonString(typ) + " is reserved", 0},
			refusal{"json " + typ, ctJSON, `{"topic":"t","data":"x","type":` + jsonString(typ) + `}`, "is reserved", 0},
			refusal{"ndjson " + typ, ctNDJSON, "{\"topic\":\"t\"}\n{\"topic\":\"t\",\"type\":" + jsonString(typ) + "}\n", "line 2: type", 2},
		)
	}
	checkRefused(t, th, tests)

	// Names that only look like them are anyone's.
	sub := th.subscribe(t, "topic=t", nil)
	var want []sse.Event
	for _, typ := range []string{"message", "opened", "errors", "on-error", "ssehub", "ssehubgap", "my-ssehub-gap", "ssehub_gap"} {
		id := th.publish(t, url.Values{"topic": {"t"}, "type": {typ}, "data": {typ}})
		want = append(want, sse.Event{ID: id, Type: typ, Data: typ})
	}
	if got := sub.wait(t, len(want)); !slices.Equal(got, want) {
		t.Errorf("events = %+v; want %+v", got, want)
	}
}
