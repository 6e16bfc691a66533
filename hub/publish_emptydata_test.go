package hub_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ssehub/ssehub/sse"
)

// TestPublishEmptyData: an event with empty data, however it is
// published, is delivered with empty data, live and in a replay: its
// wire form has a data line, without which no EventSource dispatches it.
func TestPublishEmptyData(t *testing.T) {
	th := newTestHub(t, nil, nil)
	live := th.subscribe(t, "topic=t", nil)
	ways := []struct{ name, ct, body string }{
		{"form without data", ctForm, "topic=t"},
		{"form data=", ctForm, "topic=t&data="},
		{"form with an id", ctForm, "topic=t&data=&id=e-1"},
		{"form with retry", ctForm, "topic=t&retry=500"},
		{"form with a type", ctForm, "topic=t&type=x"},
		{"json without data", ctJSON, `{"topic":"t"}`},
		{"json data null", ctJSON, `{"topic":"t","data":null}`},
		{"json data empty", ctJSON, `{"topic":"t","data":""}`},
		{"ndjson", ctNDJSON, "{\"topic\":\"t\"}\n{\"topic\":\"t\",\"data\":null}\n{\"topic\":\"t\",\"data\":\"\"}\n"},
	}
	var want []sse.Event
	for _, w := range ways {
		status, body, _ := th.post(t, w.ct, w.body)
		if status != http.StatusOK {
			t.Fatalf("%s: POST = %d %s; want 200", w.name, status, body)
		}
		for id := range strings.FieldsSeq(body) {
			ev := sse.Event{ID: id}
			switch w.name {
			case "form with retry":
				ev.Retry = 500 * time.Millisecond
			case "form with a type":
				ev.Type = "x"
			}
			want = append(want, ev)
		}
	}
	marker := th.publish(t, url.Values{"topic": {"t"}, "data": {"marker"}})
	want = append(want, sse.Event{ID: marker, Data: "marker"})

	if got := live.waitID(t, marker); !slices.Equal(got, want) {
		t.Errorf("live events = %+v; want %+v", got, want)
	}
	replay := th.subscribe(t, "topic=t&lastEventID=0", nil)
	if got := replay.waitID(t, marker); !slices.Equal(got, want) {
		t.Errorf("replayed events = %+v; want %+v", got, want)
	}

	// The wire: one data line with nothing after its colon.
	rs := th.rawSubscribe(t, "topic=t&lastEventID=0", nil)
	rs.lines(t, 3) // opening
	lines := readEvent(t, rs.br)
	if want := []string{"id: 1", "data:"}; !slices.Equal(lines, want) {
		t.Errorf("replayed wire = %q; want %q", lines, want)
	}
}
