package hub_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestPublishReplyJSON: a publisher that prefers JSON, by its Accept
// header, gets the IDs as {"ids": [...]}; anyone else gets text/plain.
// Either way the answer varies on Accept.
func TestPublishReplyJSON(t *testing.T) {
	th := newTestHub(t, nil, nil)
	tests := []struct {
		accept []string // Accept fields; none if nil
		json   bool
	}{
		{nil, false},
		{[]string{""}, false},
		{[]string{"application/json"}, true},
		{[]string{"APPLICATION/JSON"}, true},
		{[]string{"application/json; charset=utf-8"}, true},
		{[]string{"application/*"}, true},
		{[]string{"*/*"}, false},
		{[]string{"text/plain"}, false},
		{[]string{"text/plain, application/json"}, false},                  // a tie: the default
		{[]string{"application/json, text/plain"}, false},                  // order does not count
		{[]string{"application/json;q=0.5, text/plain;q=0.4"}, true},       // q does
		{[]string{"text/*;q=0.9, application/json;q=0.8"}, false},          // text/* covers text/plain
		{[]string{"*/*;q=0.1, application/json"}, true},                    // */* gives text/plain 0.1
		{[]string{"text/plain;q=0, */*"}, true},                            // the most specific range counts
		{[]string{"application/json;q=0"}, false},                          // not acceptable
		{[]string{"application/json;q=0, */*"}, false},                     // not acceptable, whatever */* says
		{[]string{"application/json;q=2"}, false},                          // invalid q: ignored
		{[]string{"application/json;q=0.1234"}, false},                     // invalid q: ignored
		{[]string{"application/json;q=1.000, text/plain;q=0.999"}, true},   // three decimals
		{[]string{"text/plain;q=0.1", "application/json"}, true},           // several fields
		{[]string{"text/plain, application/problem+json"}, false},          // the console's
		{[]string{"application/problem+json"}, false},                      // not application/json
		{[]string{"application/x-ndjson, application/json;q=0.9"}, true},   // text/plain not acceptable
		{[]string{"image/png"}, false},                                     // neither: the default
		{[]string{"application/json;Q=0.5, text/plain;q=0.2"}, true},       // Q is q
		{[]string{" application/json ;q=0.5 , text/plain ; q=0.4 "}, true}, // spaces
	}
	for i, tt := range tests {
		t.Run(strings.Join(tt.accept, "|"), func(t *testing.T) {
			h := http.Header{"Content-Type": {ctNDJSON}}
			if tt.accept != nil {
				h["Accept"] = tt.accept
			}
			id := "x-" + strconv.Itoa(i)
			resp, body := th.do(t, http.MethodPost, "/events", h, "{\"topic\":\"t\"}\n{\"topic\":\"t\",\"id\":\""+id+"\"}\n")
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("POST = %d %s; want 200", resp.StatusCode, body)
			}
			if !slices.Contains(resp.Header.Values("Vary"), "Accept") {
				t.Errorf("Vary = %q; want Accept", resp.Header.Values("Vary"))
			}
			ct := resp.Header.Get("Content-Type")
			var got []string
			if tt.json {
				if ct != "application/json" {
					t.Fatalf("Content-Type = %q; want application/json (body %q)", ct, body)
				}
				var reply map[string][]string
				if err := json.Unmarshal([]byte(body), &reply); err != nil || len(reply) != 1 {
					t.Fatalf("body %q: want {\"ids\": [...]} (%v)", body, err)
				}
				got = reply["ids"]
			} else {
				if ct != "text/plain; charset=utf-8" {
					t.Fatalf("Content-Type = %q; want text/plain (body %q)", ct, body)
				}
				got = strings.Split(strings.TrimSuffix(body, "\n"), "\n")
			}
			_, last, _ := th.log.Bounds(context.Background())
			if want := []string{strconv.FormatUint(last-1, 10), id}; !slices.Equal(got, want) {
				t.Errorf("ids = %q; want %q", got, want)
			}
		})
	}

	// A refusal is a problem, whatever Accept says, and varies on it too.
	resp, body := th.do(t, http.MethodPost, "/events", http.Header{"Content-Type": {ctForm}, "Accept": {"application/json"}}, "data=x")
	checkProblem(t, resp.StatusCode, resp.Header.Get("Content-Type"), body, http.StatusBadRequest, "topic is required")
	if !slices.Contains(resp.Header.Values("Vary"), "Accept") {
		t.Errorf("refusal: Vary = %q; want Accept", resp.Header.Values("Vary"))
	}
}
