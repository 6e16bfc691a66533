package logtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ssehub/ssehub/hub"
	"github.com/ssehub/ssehub/sse"
)

// Sizes of the resumption stress test.
const (
	resumeTries   = 100 // per subscriber plan
	resumeEvents  = 40  // events each resumption reads before it closes
	resumeBehind  = 8   // a resumption starts up to this many positions behind the newest
	resumeWaitFor = 10 * time.Second
)

// resumePlans are the subscriptions that resume: exact, pattern, and
// several selectors whose topics are on the same events.
var resumePlans = []string{
	"topic=s/a",
	"topic=s/b/*",
	"topic=s/c&topic=s/b/**",
}

// resumeTopics are the topic sets the publishers publish to, in turn.
var resumeTopics = [][]string{
	{"s/a"}, {"s/b/1"}, {"s/a", "s/c"}, {"s/b/2"}, {"s/c"}, {"s/b/1", "s/a"}, {"s/d"},
}

// testHubResume runs a Hub over the Log and checks its first promise
// under load, from outside: a subscriber that reconnects with a
// Last-Event-ID gets every later matching event, none missing and none
// twice. Publishers post single events and NDJSON batches over HTTP
// without pause, while each plan resumes again and again, a few events
// behind the newest acknowledged ID, over HTTP/1.1 (a connection the Hub
// takes over) and HTTP/2 in turn, reads resumeEvents events and closes.
// Each resumption's events are then compared with what the publishers
// were acknowledged: this is where the replay meets live delivery, and
// where a Log whose Bounds, Read and Tail disagree loses an event.
func (s suite) testHubResume(t *testing.T) {
	l := s.fresh(t)
	h := hub.New(l, &hub.Options{Heartbeat: -1, Limits: hub.Limits{MaxStreamsPerClient: -1}})
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- h.Run(ctx) }()
	h1 := httptest.NewServer(h)
	h2 := httptest.NewUnstartedServer(h)
	h2.EnableHTTP2 = true
	h2.StartTLS()
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), timeout)
		defer scancel()
		if err := h.Shutdown(sctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		cancel()
		if err := <-runErr; err != nil {
			t.Errorf("Run: %v", err)
		}
		h1.Close()
		h2.Close()
	})
	servers := []*httptest.Server{h1, h2}
	// Until Run tails the Log, a stream opens and ends at once (its
	// client retries later): the resumptions would end with no event.
	waitUntil(t, func() bool {
		resp, err := h1.Client().Get(h1.URL + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	var acks acked
	stop := make(chan struct{})
	var pubs sync.WaitGroup
	for p := range 3 {
		pubs.Go(func() { publishUntil(t, h1, p, stop, &acks) })
	}
	// Resumptions need something to resume from.
	waitUntil(t, func() bool { return acks.newest() > 2*resumeBehind })

	type try struct {
		server string
		cursor uint64
		ids    []string
		err    error
	}
	results := make([][]try, len(resumePlans))
	var subs sync.WaitGroup
	for i, plan := range resumePlans {
		subs.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			for n := range resumeTries {
				srv := servers[n%len(servers)]
				cursor := acks.newest() - uint64(rng.IntN(resumeBehind+1))
				ids, err := resume(srv, plan, cursor)
				results[i] = append(results[i], try{server: srv.URL, cursor: cursor, ids: ids, err: err})
				if err != nil {
					return
				}
			}
		})
	}
	subs.Wait()
	close(stop)
	pubs.Wait()
	if t.Failed() {
		return
	}

	all := acks.all()
	failed := 0
	for i, plan := range resumePlans {
		q, err := url.ParseQuery(plan)
		if err != nil {
			t.Fatal(err)
		}
		sel := Selectors(t, q["topic"]...)
		for n, tr := range results[i] {
			what := fmt.Sprintf("subscriber %q, resumption %d of %d (%s, Last-Event-ID %d)", plan, n+1, resumeTries, tr.server, tr.cursor)
			if tr.err != nil {
				t.Errorf("%s: %v after %d events", what, tr.err, len(tr.ids))
				failed++
				continue
			}
			last, _ := strconv.ParseUint(tr.ids[len(tr.ids)-1], 10, 64)
			var want []string
			for p := tr.cursor + 1; p <= last && p <= uint64(len(all)); p++ {
				if hub.MatchAny(sel, all[p-1]) {
					want = append(want, strconv.FormatUint(p, 10))
				}
			}
			if d := firstDifference(tr.ids, want); d != "" {
				failed++
				if failed <= 5 {
					t.Errorf("%s: %s", what, d)
				}
			}
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d resumptions were not exact", failed, resumeTries*len(resumePlans))
	}
}

// acked holds the topics of every event a publisher was acknowledged,
// by position. It is safe for concurrent use.
type acked struct {
	mu     sync.Mutex // guards topics and max
	topics map[uint64][]string
	max    uint64
}

func (a *acked) add(pos uint64, topics []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.topics == nil {
		a.topics = make(map[uint64][]string)
	}
	a.topics[pos] = topics
	a.max = max(a.max, pos)
}

// newest returns the newest acknowledged position.
func (a *acked) newest() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.max
}

// all returns the topics of positions 1 to the newest, which must all be
// acknowledged: the publishers have stopped.
func (a *acked) all() [][]string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([][]string, a.max)
	for p := range out {
		out[p] = a.topics[uint64(p+1)]
	}
	return out
}

// publishUntil publishes to srv until stop is closed: publisher 0 single
// form-encoded events, the others NDJSON batches of 1 to 5 events, on the
// resumeTopics in turn. It records every acknowledged position in acks.
func publishUntil(t *testing.T, srv *httptest.Server, p int, stop <-chan struct{}, acks *acked) {
	client := srv.Client()
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		var (
			batch [][]string
			req   *http.Request
			err   error
		)
		if p == 0 {
			topics := resumeTopics[i%len(resumeTopics)]
			batch = [][]string{topics}
			form := url.Values{"topic": topics, "data": {fmt.Sprint("p0 #", i)}}
			req, err = http.NewRequest(http.MethodPost, srv.URL+"/events", strings.NewReader(form.Encode()))
			if err == nil {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
		} else {
			var body strings.Builder
			for j := range 1 + (i+p)%5 {
				topics := resumeTopics[(i+j+p)%len(resumeTopics)]
				batch = append(batch, topics)
				fmt.Fprintf(&body, `{"topic":["%s"],"data":"p%d #%d.%d"}`+"\n", strings.Join(topics, `","`), p, i, j)
			}
			req, err = http.NewRequest(http.MethodPost, srv.URL+"/events", strings.NewReader(body.String()))
			if err == nil {
				req.Header.Set("Content-Type", "application/x-ndjson")
			}
		}
		if err != nil {
			t.Errorf("publisher %d: %v", p, err)
			return
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Errorf("publisher %d: %v", p, err)
			return
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Errorf("publisher %d: status %d %q, %v", p, resp.StatusCode, body, err)
			return
		}
		ids := strings.Fields(string(body))
		if len(ids) != len(batch) {
			t.Errorf("publisher %d: %d ids for %d events: %q", p, len(ids), len(batch), body)
			return
		}
		for j, id := range ids {
			pos, err := strconv.ParseUint(id, 10, 64)
			if err != nil {
				t.Errorf("publisher %d: id %q is not a position", p, id)
				return
			}
			acks.add(pos, batch[j])
		}
	}
}

// resume subscribes to srv with query, resuming after cursor, and returns
// the IDs of the first resumeEvents events it receives. Any event other
// than a message with an ID (a gap, say) is an error.
func resume(srv *httptest.Server, query string, cursor uint64) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), resumeWaitFor)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/events?"+query, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Last-Event-ID", strconv.FormatUint(cursor, 10))
	resp, err := srv.Client().Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	dec := sse.NewDecoder(resp.Body)
	var ids []string
	for len(ids) < resumeEvents {
		var ev sse.Event
		if err := dec.Decode(&ev); err != nil {
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				err = fmt.Errorf("no event for %v", resumeWaitFor)
			}
			return ids, fmt.Errorf("stream: %w", err)
		}
		if ev.Type != "" || ev.ID == "" {
			return ids, fmt.Errorf("unexpected event: type %q, id %q, data %.80q", ev.Type, ev.ID, ev.Data)
		}
		ids = append(ids, ev.ID)
	}
	return ids, nil
}

// firstDifference describes the first place where got differs from want,
// two lists of IDs or positions, or returns "" when they are equal: the
// first one missing, repeated or out of place, never the whole lists.
func firstDifference[T comparable](got, want []T) string {
	for i := range min(len(got), len(want)) {
		if got[i] == want[i] {
			continue
		}
		switch {
		case slices.Contains(got[:i], got[i]):
			return fmt.Sprintf("event %d is %v again, where %v was due", i+1, got[i], want[i])
		case !slices.Contains(got, want[i]):
			return fmt.Sprintf("event %v is missing: event %d is %v", want[i], i+1, got[i])
		case !slices.Contains(want, got[i]):
			return fmt.Sprintf("event %d is %v, which does not match, where %v was due", i+1, got[i], want[i])
		default:
			return fmt.Sprintf("event %d is %v, out of order, where %v was due", i+1, got[i], want[i])
		}
	}
	switch {
	case len(got) > len(want):
		return fmt.Sprintf("event %d is %v, past the last one due", len(want)+1, got[len(want)])
	case len(got) < len(want):
		return fmt.Sprintf("event %v is missing at the end", want[len(got)])
	}
	return ""
}

// waitUntil polls cond until it holds, failing the test after timeout.
func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %v", timeout)
		}
		time.Sleep(time.Millisecond)
	}
}
