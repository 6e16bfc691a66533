package hub_test

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ssehub/ssehub/hub"
)

// TestOpening checks the first bytes of a stream: the opening comment and
// retry field, flushed before any event exists, then, for a first
// connection, an id-only event with the Log's newest position.
func TestOpening(t *testing.T) {
	tests := []struct {
		name  string
		retry time.Duration
		want  []string
	}{
		{"default", 0, []string{": open", "retry: 2000", "", "id: 3", ""}},
		{"set", 1500 * time.Millisecond, []string{": open", "retry: 1500", "", "id: 3", ""}},
		{"none", -1, []string{": open", "id: 3", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			th := newTestHub(t, &hub.Options{Retry: tt.retry, Heartbeat: -1}, nil)
			appendN(t, th.log, "t", 3)
			rs := th.rawSubscribe(t, "topic=t", nil)
			if got := rs.lines(t, len(tt.want)); !slices.Equal(got, tt.want) {
				t.Errorf("first lines = %q; want %q", got, tt.want)
			}
			for _, h := range []struct{ name, want string }{
				{"Content-Type", "text/event-stream"},
				{"Cache-Control", "no-cache"},
			} {
				if got := rs.resp.Header.Get(h.name); got != h.want {
					t.Errorf("%s = %q; want %q", h.name, got, h.want)
				}
			}
			// The first event follows.
			th.publish(t, url.Values{"topic": {"t"}, "data": {"hi"}})
			if got, want := rs.lines(t, 3), []string{"id: 4", "data: hi", ""}; !slices.Equal(got, want) {
				t.Errorf("event lines = %q; want %q", got, want)
			}
		})
	}
}

// TestSelectors checks which events reach subscriptions with exact,
// "*" and "**" selectors, and that an event reaches a subscriber once
// however many of its topics and selectors match.
func TestSelectors(t *testing.T) {
	th := newTestHub(t, nil, nil)
	tests := []struct {
		sels []string
		want []string // IDs
	}{
		{[]string{"chat"}, []string{"1"}},
		{[]string{"chat/a"}, []string{"2", "6"}},
		{[]string{"chat/*"}, []string{"2", "3", "6"}},
		{[]string{"chat/**"}, []string{"2", "3", "4", "6"}},
		{[]string{"*/b"}, []string{"3", "6"}},
		{[]string{"**"}, []string{"1", "2", "3", "4", "5", "6"}},
		{[]string{"chat", "chat/a"}, []string{"1", "2", "6"}},
		{[]string{"chat/a", "chat/*", "chat/b"}, []string{"2", "3", "6"}},
		{[]string{"chat/a", "chat/a"}, []string{"2", "6"}},
		{[]string{"nothing"}, nil},
	}
	subs := make([]*testSub, len(tests))
	for i, tt := range tests {
		q := url.Values{"topic": append(tt.sels, "end")}
		subs[i] = th.subscribe(t, q.Encode(), nil)
	}
	for _, topics := range [][]string{
		{"chat"}, {"chat/a"}, {"chat/b"}, {"chat/a/b"}, {"other"}, {"chat/a", "chat/b", "chat/a"},
	} {
		th.publish(t, url.Values{"topic": topics, "data": {strings.Join(topics, ",")}})
	}
	end := th.publish(t, url.Values{"topic": {"end"}, "data": {"end"}})
	for i, tt := range tests {
		got := ids(subs[i].waitID(t, end))
		if want := append(tt.want, end); !slices.Equal(got, want) {
			t.Errorf("selectors %q got events %q; want %q", tt.sels, got, want)
		}
	}
}

// TestSubscribeErrors checks the refusals of GET /events.
func TestSubscribeErrors(t *testing.T) {
	th := newTestHub(t, nil, nil)
	many := url.Values{}
	for i := range 65 {
		many.Add("topic", fmt.Sprint("t", i))
	}
	tests := []struct {
		name, query, want string
	}{
		{"no topic", "", "topic parameter is required"},
		{"empty", "topic=", "empty"},
		{"empty segment", "topic=a//b", "empty segment"},
		{"inner **", "topic=a/**/b", "last segment"},
		{"partial *", "topic=a/b*", "whole segment"},
		{"control", "topic=a%0Ab", "control character"},
		{"one bad of two", "topic=a&topic=b/**/c", "last segment"},
		{"too many", many.Encode(), "at most 64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := th.get(t, "/events?"+tt.query, nil)
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			checkProblem(t, resp.StatusCode, resp.Header.Get("Content-Type"), string(b), http.StatusBadRequest, tt.want)
		})
	}
}

// TestHeartbeat checks that an idle stream gets comment heartbeats.
func TestHeartbeat(t *testing.T) {
	th := newTestHub(t, &hub.Options{Heartbeat: 10 * time.Millisecond}, nil)
	rs := th.rawSubscribe(t, "topic=t", nil)
	for pings := 0; pings < 2; {
		if rs.lines(t, 1)[0] == ": ping" {
			pings++
		}
	}
}

// TestPrivate checks that private events are stored and acknowledged but
// reach no subscriber, live or replayed, while there is no authorisation.
func TestPrivate(t *testing.T) {
	th := newTestHub(t, nil, nil)
	live := th.subscribe(t, "topic=t", nil)
	th.publish(t, url.Values{"topic": {"t"}, "data": {"public 1"}})
	for _, p := range []struct{ ct, body string }{
		{"application/x-www-form-urlencoded", "topic=t&data=secret&private=on"},
		{"application/json", `{"topic":"t","data":"secret","private":true}`},
	} {
		if status, body, _ := th.post(t, p.ct, p.body); status != http.StatusOK {
			t.Fatalf("publish private = %d %s; want 200", status, body)
		}
	}
	last := th.publish(t, url.Values{"topic": {"t"}, "data": {"public 2"}})
	if last != "4" {
		t.Fatalf("last id = %q; want 4: the private events take positions 2 and 3", last)
	}
	for name, s := range map[string]*testSub{
		"live":   live,
		"replay": th.subscribe(t, "topic=t&lastEventID=0", nil),
	} {
		got := s.waitID(t, last)
		if want := []string{"1", "4"}; !slices.Equal(ids(got), want) {
			t.Errorf("%s subscriber got %q; want %q", name, ids(got), want)
		}
		for _, ev := range got {
			if strings.Contains(ev.Data, "secret") {
				t.Errorf("%s subscriber got private event %+v", name, ev)
			}
		}
	}
}
