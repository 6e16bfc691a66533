package daemon

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/ssehub/ssehub/internal/browsertest"
)

// browserCases are hand-written streams, each served once as chunks (a
// chunk boundary is a separate flush, so buffer edges are exercised) and
// then answered with 204 on reconnection, so both clients end CLOSED. Each
// starts with a short retry so the reconnection is quick. types are the
// named event types the page listens for, as a page must.
var browserCases = []struct {
	name   string
	chunks []string
	types  []string
}{
	{"basic", []string{"retry: 20\n\ndata: hello\n\nid: 1\ndata: a\ndata: b\n\n"}, nil},
	{"named", []string{"retry: 20\n\nevent: greet\ndata: hi\n\nevent: other\ndata: x\nid: 7\n\ndata: after\n\n"}, []string{"greet", "other"}},
	{"line endings", []string{"retry: 20\r\n\r\ndata: crlf\r\ndata: two\r", "\n\r\ndata: cr\r\rdata: lf\n\ndata: mixed\r\n\n"}, nil},
	{"bom", []string{"\ufeffretry: 20\n\ndata: bom\n\n\ufeffdata: second bom is a field name\n\ndata: end\n\n"}, nil},
	{"ids", []string{"retry: 20\n\nid: a\ndata: 1\n\ndata: 2\n\nid\ndata: 3\n\nid: x\x00y\ndata: 4\n\nid: only\n\n"}, nil},
	{"fields", []string{"retry: 20\n\ndata\n\ndata:  two spaces\n\n: comment\nfoo: bar\nData: no\ndata:x\n\ndata: \ndata:\n\n"}, nil},
	{"unterminated", []string{"retry: 20\n\nid: 5\ndata: ok\n\nid: 9\ndata: lost"}, nil},
	{"utf8", []string{"retry: 20\n\ndata: caf\xc3\xa9 \xe2\x82 \xff \xf0\x9f\x98", "\x80 end\n\nevent: t\xc3\n\ndata: z\n\n"}, nil},
	{"retry invalid", []string{"retry: 20\n\nretry: 5x\nretry: -1\nretry\ndata: a\n\n"}, nil},
	{"types", []string{"retry: 20\n\nevent: \ndata: empty type\n\nevent\ndata: no colon\n\nevent: error\ndata: named error\n\nevent: open\ndata: named open\n\nevent: message\ndata: explicit\n\n"}, nil},
	{"type without data", []string{"retry: 20\n\nevent: greet\n\nevent: greet\nid: 3\n\ndata: plain\n\n"}, []string{"greet"}},
	{"split everywhere", []string{"retry: 2", "0\n\nda", "ta", ":", " one\n", "\n", "event: gr", "eet\nid", ": 4\ndata: t", "wo\r", "\n\r", "\n"}, []string{"greet"}},
	{"nul in data", []string{"retry: 20\n\ndata: a\x00b\n\n"}, nil},
}

// browserPage listens to every event the case can fire and records them as
// the same JSON objects that "ssehub listen --json" prints.
const browserPage = `<!doctype html><meta charset="utf-8"><title>listen</title>
<script>
window.log = []; window.done = false;
const es = new EventSource(%s);
const record = (e) => {
  if (e instanceof MessageEvent) {
    log.push({type: e.type, data: e.data, lastEventId: e.lastEventId});
  } else if (e.type === "open") {
    log.push({type: "open"});
  } else {
    log.push({type: "error", readyState: es.readyState});
    if (es.readyState === EventSource.CLOSED) window.done = true;
  }
};
for (const type of new Set(["open", "error", "message"].concat(%s))) es.addEventListener(type, record);
</script>`

// TestListenMatchesChromium serves the same bytes to Chromium's EventSource
// and to "ssehub listen --json", and checks that both observe the same
// events, in order, and resume with the same Last-Event-ID.
func TestListenMatchesChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test: skipped in -short mode")
	}
	ctx := browsertest.New(t, 2*time.Minute)

	var mu sync.Mutex                // guards requests and lastIDs
	requests := map[string]int{}     // by stream path and client
	lastIDs := map[string][]string{} // Last-Event-ID of each reconnection
	mux := http.NewServeMux()
	mux.HandleFunc("GET /page/{case}", func(w http.ResponseWriter, r *http.Request) {
		c := browserCases[caseIndex(r.PathValue("case"))]
		url, _ := json.Marshal("/stream/" + r.PathValue("case") + "?client=browser")
		types, _ := json.Marshal(append([]string{}, c.types...))
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, browserPage, url, types)
	})
	mux.HandleFunc("GET /stream/{case}", func(w http.ResponseWriter, r *http.Request) {
		key := r.PathValue("case") + "/" + r.URL.Query().Get("client")
		mu.Lock()
		n := requests[key]
		requests[key]++
		if n > 0 {
			lastIDs[key] = append(lastIDs[key], r.Header.Get("Last-Event-ID"))
		}
		mu.Unlock()
		if n > 0 {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		stream(browserCases[caseIndex(r.PathValue("case"))].chunks...)(w, r)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	for i, c := range browserCases {
		t.Run(c.name, func(t *testing.T) {
			path := fmt.Sprint(i)
			if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/page/"+path)); err != nil {
				t.Fatalf("navigate: %v", err)
			}
			if _, err := chromedp.Run(ctx, chromedp.Poll[bool]("window.done")); err != nil {
				t.Fatalf("waiting for the page's EventSource to close: %v", err)
			}
			browserJSON, err := chromedp.Run(ctx, chromedp.Evaluate[string]("JSON.stringify(window.log)"))
			if err != nil {
				t.Fatalf("read the page's log: %v", err)
			}
			var browser []map[string]any
			if err := json.Unmarshal([]byte(browserJSON), &browser); err != nil {
				t.Fatalf("page log %q: %v", browserJSON, err)
			}

			code, stdout, stderr := runMain(t, "listen", "--json", srv.URL+"/stream/"+path+"?client=cli")
			if code != exitFail {
				t.Errorf("listen exit status %d (stderr %q); want %d after the 204", code, stderr, exitFail)
			}
			var cli []map[string]any
			for _, line := range strings.Split(strings.TrimRight(stdout, "\n"), "\n") {
				var v map[string]any
				if err := json.Unmarshal([]byte(line), &v); err != nil {
					t.Fatalf("listen printed %q, not JSON: %v", line, err)
				}
				cli = append(cli, v)
			}
			if !reflect.DeepEqual(cli, browser) {
				t.Errorf("stream %q:\nssehub listen --json: %s\nChromium EventSource: %s", strings.Join(c.chunks, ""), stdout, browserJSON)
			}
			mu.Lock()
			b, l := lastIDs[path+"/browser"], lastIDs[path+"/cli"]
			mu.Unlock()
			if !reflect.DeepEqual(l, b) {
				t.Errorf("Last-Event-ID on reconnection: listen sent %q; Chromium sent %q", l, b)
			}
		})
	}
}

func caseIndex(s string) int {
	var i int
	if _, err := fmt.Sscan(s, &i); err != nil || i < 0 || i >= len(browserCases) {
		return 0
	}
	return i
}
