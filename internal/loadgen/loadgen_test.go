package loadgen

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ssehub/ssehub/hub"
	"github.com/ssehub/ssehub/store/memstore"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// ioModels are the I/O models available here.
func ioModels() []string {
	if epollAvailable {
		return []string{IOEpoll, IOGoroutine}
	}
	return []string{IOGoroutine}
}

// startHub runs a hub over a memstore behind an httptest server and
// returns its events URL. Cleanup stops it.
func startHub(t *testing.T) string {
	t.Helper()
	log := memstore.New()
	t.Cleanup(func() { log.Close() })
	return startHubOn(t, log, nil)
}

// startHubOn runs a hub over log, one node of a cluster when several
// share it, and returns its events URL. Each request goes through wrap,
// if not nil, before the hub. Cleanup stops it.
func startHubOn(t *testing.T, log hub.Log, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	return startHubWith(t, log, &hub.Options{Retry: 20 * time.Millisecond}, wrap)
}

// startHubWith is startHubOn with the hub's options.
func startHubWith(t *testing.T, log hub.Log, opts *hub.Options, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	h := hub.New(log, opts)
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- h.Run(ctx) }()
	var handler http.Handler = h
	if wrap != nil {
		handler = wrap(h)
	}
	srv := httptest.NewServer(handler)
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		h.Shutdown(sctx)
		srv.Close()
		cancel()
		if err := <-runErr; err != nil {
			t.Errorf("hub Run: %v", err)
		}
	})
	waitFor(t, 10*time.Second, func() bool {
		resp, err := http.Get(srv.URL + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return srv.URL + "/events"
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %v", timeout)
		}
		<-tick.C
	}
}

// TestRunAgainstHub is a small lossless run against the real hub.
func TestRunAgainstHub(t *testing.T) {
	url := startHub(t)
	type ioCase struct {
		name  string
		model string
		poll  time.Duration
	}
	var cases []ioCase
	for _, model := range ioModels() {
		cases = append(cases, ioCase{model, model, 0})
	}
	if epollAvailable {
		cases = append(cases, ioCase{"epoll-polling", IOEpoll, 2 * time.Millisecond})
	}
	for _, tc := range cases {
		model := tc.model
		t.Run(tc.name, func(t *testing.T) {
			const subs, rate = 20, 50
			var progress []Progress
			rep, err := Run(context.Background(), &Options{
				URL: url, Topic: "bench/" + tc.name, Subscribers: subs, Rate: rate,
				Duration: time.Second, IO: model, Workers: 2, PollEvery: tc.poll,
				Progress: func(p Progress) { progress = append(progress, p) }, ProgressEvery: 200 * time.Millisecond,
			})
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if rep.Connected != subs || rep.ConnectFailed != 0 || rep.ConnectTime.Count != subs {
				t.Errorf("connected %d, failed %d, connect times %d; want %d, 0, %d", rep.Connected, rep.ConnectFailed, rep.ConnectTime.Count, subs, subs)
			}
			if rep.Publish.Events != rate || rep.Publish.Failed != 0 || rep.Publish.Behind || rep.Publish.Requests == 0 {
				t.Errorf("publish = %+v; want %d events, none failed, not behind", rep.Publish, rate)
			}
			if want := uint64(subs) * rep.Publish.Events; rep.Delivered != want || rep.Expected != want {
				t.Errorf("delivered %d, expected %d; want %d", rep.Delivered, rep.Expected, want)
			}
			if rep.Lost != (Tally{}) || rep.Undelivered != (Tally{}) || rep.Duplicated != (Tally{}) || rep.Foreign != 0 || rep.Disconnects != 0 {
				t.Errorf("lost %+v, undelivered %+v, duplicated %+v, foreign %d, disconnects %d; want none",
					rep.Lost, rep.Undelivered, rep.Duplicated, rep.Foreign, rep.Disconnects)
			}
			l := rep.Latency
			if l.Count != rep.Delivered || l.Max <= 0 || l.P50 > l.P99 || l.P99 > l.Max || l.P99 > 1000 {
				t.Errorf("latency = %+v; want %d values, 0 < p50 <= p99 <= max, p99 under 1s", l, rep.Delivered)
			}
			if rep.PerSecond <= 0 || rep.SteadyTo <= rep.SteadyFrom || rep.Interrupted {
				t.Errorf("per second %v over %v–%vs, interrupted %v; want a positive rate, not interrupted", rep.PerSecond, rep.SteadyFrom, rep.SteadyTo, rep.Interrupted)
			}
			if rep.Tool.IO != model || rep.Tool.MaxRSSKiB <= 0 && epollAvailable || rep.Tool.PollEvery != ms(tc.poll) {
				t.Errorf("tool = %+v; want I/O %s, an RSS, polling every %v", rep.Tool, model, tc.poll)
			}
			if want := model == IOEpoll && arrivalTimesAvailable(t); rep.Tool.ArrivalTimes != want ||
				want && (rep.Tool.ReadDelay.Count == 0 || rep.Tool.ReadDelay.Max > 1000) {
				t.Errorf("arrival times %v, read delay %+v; want arrival times %v", rep.Tool.ArrivalTimes, rep.Tool.ReadDelay, want)
			}
			phases := map[string]bool{}
			for _, p := range progress {
				phases[p.Phase] = true
			}
			if !phases["connecting"] || !phases["publishing"] {
				t.Errorf("progress phases %v; want connecting and publishing", phases)
			}
		})
	}
}

// A fakeHub is a minimal hub whose fan-out misbehaves on purpose: it
// drops every event whose sequence number ends in 3 and sends those
// ending in 5 twice.
type fakeHub struct {
	mu   sync.Mutex // guards subs and nextID
	subs map[chan string]bool
	id   int
}

func (f *fakeHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		ch := make(chan string, 1024)
		f.mu.Lock()
		f.subs[ch] = true
		f.mu.Unlock()
		defer func() {
			f.mu.Lock()
			delete(f.subs, ch)
			f.mu.Unlock()
		}()
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		fmt.Fprint(w, ": open\n\n")
		rc.Flush()
		for {
			select {
			case <-r.Context().Done():
				return
			case s := <-ch:
				fmt.Fprint(w, s)
				rc.Flush()
			}
		}
	case http.MethodPost:
		sc := bufio.NewScanner(r.Body)
		sc.Buffer(nil, 1<<20)
		var ids, out strings.Builder
		for sc.Scan() {
			// {"topic":"…","data":"{\"t\":…,\"seq\":N,…}"}
			line := sc.Text()
			i := strings.Index(line, `"data":"`)
			data := strings.ReplaceAll(strings.TrimSuffix(line[i+len(`"data":"`):], `"}`), `\"`, `"`)
			_, seq, ok := parsePayload([]byte(data))
			if !ok {
				http.Error(w, "bad payload", http.StatusBadRequest)
				return
			}
			f.mu.Lock()
			f.id++
			fmt.Fprintf(&ids, "%d\n", f.id)
			f.mu.Unlock()
			ev := fmt.Sprintf("id: %d\ndata: %s\n\n", seq, data)
			switch seq % 10 {
			case 3:
			case 5:
				out.WriteString(ev + ev)
			default:
				out.WriteString(ev)
			}
		}
		f.mu.Lock()
		for ch := range f.subs {
			ch <- out.String()
		}
		f.mu.Unlock()
		fmt.Fprint(w, ids.String())
	}
}

// TestRunSeveralNodes spreads the subscribers over three hub nodes that
// share one Log, and publishes to the first or to each in turn.
func TestRunSeveralNodes(t *testing.T) {
	log := memstore.New()
	t.Cleanup(func() { log.Close() })
	var mu sync.Mutex
	subs := map[int]int{} // subscription requests by node
	pubs := map[int]int{} // publish requests by node
	var urls []string
	for i := range 3 {
		urls = append(urls, startHubOn(t, log, func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				if r.Method == http.MethodPost {
					pubs[i]++
				} else {
					subs[i]++
				}
				mu.Unlock()
				h.ServeHTTP(w, r)
			})
		}))
	}
	for _, roundRobin := range []bool{false, true} {
		t.Run(fmt.Sprintf("round-robin=%v", roundRobin), func(t *testing.T) {
			mu.Lock()
			clear(subs)
			clear(pubs)
			mu.Unlock()
			const nsubs, rate = 9, 30
			rep, err := Run(context.Background(), &Options{
				URL: urls[0], URLs: urls[1:], PublishRoundRobin: roundRobin,
				Topic: fmt.Sprintf("bench/nodes-%v", roundRobin), Subscribers: nsubs, Rate: rate,
				Duration: time.Second, Workers: 2,
			})
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if rep.Connected != nsubs || rep.Publish.Events != rate || rep.Publish.Failed != 0 {
				t.Errorf("connected %d, published %d, failed %d; want %d, %d, 0", rep.Connected, rep.Publish.Events, rep.Publish.Failed, nsubs, rate)
			}
			if want := uint64(nsubs) * rep.Publish.Events; rep.Delivered != want || rep.Lost != (Tally{}) || rep.Duplicated != (Tally{}) {
				t.Errorf("delivered %d, lost %+v, duplicated %+v; want %d, none, none", rep.Delivered, rep.Lost, rep.Duplicated, want)
			}
			if !reflect.DeepEqual(rep.URLs, urls[1:]) || rep.PublishRoundRobin != roundRobin {
				t.Errorf("report URLs %v, round-robin %v; want %v, %v", rep.URLs, rep.PublishRoundRobin, urls[1:], roundRobin)
			}
			mu.Lock()
			defer mu.Unlock()
			for i := range urls {
				if subs[i] != nsubs/len(urls) {
					t.Errorf("node %d had %d subscription requests; want %d", i, subs[i], nsubs/len(urls))
				}
				if wantPub := roundRobin || i == 0; (pubs[i] > 0) != wantPub {
					t.Errorf("node %d had %d publish requests; want some: %v", i, pubs[i], wantPub)
				}
			}
		})
	}
}

// TestRunCountsLossAndDuplicates publishes through a hub that drops and
// repeats events, and checks the exact counts.
func TestRunCountsLossAndDuplicates(t *testing.T) {
	srv := httptest.NewServer(&fakeHub{subs: map[chan string]bool{}})
	defer srv.Close()
	for _, model := range ioModels() {
		t.Run(model, func(t *testing.T) {
			const subs = 5
			rep, err := Run(context.Background(), &Options{
				URL: srv.URL + "/events", Topic: "t", Subscribers: subs, Rate: 100, Duration: 500 * time.Millisecond,
				Drain: 300 * time.Millisecond, IO: model, Size: 64,
			})
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			n := rep.Publish.Events
			if n < 40 || rep.Publish.Failed != 0 {
				t.Fatalf("publish = %+v; want about 50 events, none failed", rep.Publish)
			}
			var lost, late, dup uint64 // per subscriber
			for seq := range n {
				switch {
				case seq%10 == 3 && seq == n-1:
					late++ // no later event arrives to show the gap
				case seq%10 == 3:
					lost++
				case seq%10 == 5:
					dup++
				}
			}
			tally := func(n uint64) Tally {
				if n == 0 {
					return Tally{}
				}
				return Tally{Total: subs * n, Max: n, Subscribers: subs}
			}
			if rep.Lost != tally(lost) || rep.Undelivered != tally(late) {
				t.Errorf("lost %+v, undelivered %+v; want %+v, %+v", rep.Lost, rep.Undelivered, tally(lost), tally(late))
			}
			if rep.Duplicated != tally(dup) {
				t.Errorf("duplicated = %+v; want %+v", rep.Duplicated, tally(dup))
			}
			if want := subs * (n - lost + dup); rep.Delivered != want {
				t.Errorf("delivered = %d; want %d", rep.Delivered, want)
			}
		})
	}
}

// scripted answers each subscription with the events of script(n), n
// counting subscriptions from 0, and then holds the stream open or ends
// it.
func scripted(script func(n int, r *http.Request) (events string, end bool)) http.Handler {
	var mu sync.Mutex
	n := 0
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		i := n
		n++
		mu.Unlock()
		events, end := script(i, r)
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, events)
		http.NewResponseController(w).Flush()
		if !end {
			<-r.Context().Done()
		}
	})
}

func events(seqs ...uint64) string {
	var b strings.Builder
	for _, s := range seqs {
		fmt.Fprintf(&b, "id: %d\ndata: %s\n\n", s+1, payload(time.Now().UnixNano(), s))
	}
	return b.String()
}

// TestRunNoPublish measures what others publish: here a server that
// skips 3 and 7 and repeats 5, and for its first subscriber stops before
// 9, which that subscriber counts as undelivered, not as a gap.
func TestRunNoPublish(t *testing.T) {
	for _, model := range ioModels() {
		t.Run(model, func(t *testing.T) {
			srv := httptest.NewServer(scripted(func(n int, _ *http.Request) (string, bool) {
				seqs := []uint64{100, 101, 102, 104, 105, 105, 106, 108, 109}
				if n == 0 {
					seqs = seqs[:len(seqs)-1]
				}
				return events(seqs...), false
			}))
			defer srv.Close()
			rep, err := Run(context.Background(), &Options{
				URL: srv.URL + "/events", Topic: "t", Subscribers: 4, NoPublish: true,
				Duration: 300 * time.Millisecond, IO: model,
			})
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			want := Report{
				Publish:     PublishReport{External: true, Events: 10},
				Delivered:   9*4 - 1,
				Expected:    40,
				Lost:        Tally{Total: 2 * 4, Max: 2, Subscribers: 4},
				Undelivered: Tally{Total: 1, Max: 1, Subscribers: 1},
				Duplicated:  Tally{Total: 4, Max: 1, Subscribers: 4},
			}
			got := Report{Publish: rep.Publish, Delivered: rep.Delivered, Expected: rep.Expected,
				Lost: rep.Lost, Undelivered: rep.Undelivered, Duplicated: rep.Duplicated}
			got.Publish.Rate = 0
			if !reflect.DeepEqual(got, want) {
				t.Errorf("report = %+v; want %+v", got, want)
			}
		})
	}
}

// TestRunReconnects ends every stream after five events; the subscribers
// reconnect with Last-Event-ID and get the rest, losing nothing.
func TestRunReconnects(t *testing.T) {
	var mu sync.Mutex
	var lastIDs []string
	srv := httptest.NewServer(scripted(func(n int, r *http.Request) (string, bool) {
		id := r.Header.Get("Last-Event-ID")
		if id == "" {
			return "retry: 10\n\n" + events(0, 1, 2, 3, 4), true
		}
		mu.Lock()
		lastIDs = append(lastIDs, id)
		mu.Unlock()
		return events(5, 6, 7, 8, 9), false
	}))
	defer srv.Close()
	for _, model := range ioModels() {
		t.Run(model, func(t *testing.T) {
			mu.Lock()
			lastIDs = nil
			mu.Unlock()
			const subs = 3
			rep, err := Run(context.Background(), &Options{
				URL: srv.URL + "/events", Topic: "t", Subscribers: subs, NoPublish: true,
				Duration: 500 * time.Millisecond, IO: model,
			})
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if rep.Disconnects != subs || rep.Reconnects != subs || rep.Lost != (Tally{}) || rep.Undelivered != (Tally{}) || rep.Delivered != subs*10 {
				t.Errorf("disconnects %d, reconnects %d, lost %+v, delivered %d; want %d, %d, none, %d",
					rep.Disconnects, rep.Reconnects, rep.Lost, rep.Delivered, subs, subs, subs*10)
			}
			mu.Lock()
			defer mu.Unlock()
			if got := strings.Join(lastIDs, ","); got != "5,5,5" {
				t.Errorf("Last-Event-IDs on reconnection = %q; want 5,5,5", got)
			}
		})
	}
}

func TestRunInterrupted(t *testing.T) {
	url := startHub(t)
	for _, model := range ioModels() {
		t.Run(model, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			start := time.Now()
			rep, err := Run(ctx, &Options{
				URL: url, Topic: "bench/stop", Subscribers: 5, Rate: 200, Duration: time.Minute, IO: model,
				ProgressEvery: 20 * time.Millisecond,
				Progress: func(p Progress) {
					if p.Delivered >= 50 {
						cancel() // as Ctrl-C does
					}
				},
			})
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if took := time.Since(start); took > 20*time.Second {
				t.Errorf("Run took %v after cancellation; want it to stop promptly", took)
			}
			if !rep.Interrupted || rep.Delivered < 50 || rep.Connected != 5 || rep.Latency.Count == 0 {
				t.Errorf("report: interrupted %v, delivered %d, connected %d, latency %+v; want interrupted with what was measured",
					rep.Interrupted, rep.Delivered, rep.Connected, rep.Latency)
			}
		})
	}
}

func TestRunCannotRun(t *testing.T) {
	// A port with nothing listening.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String() + "/events"
	ln.Close()
	notFound := httptest.NewServer(http.NotFoundHandler())
	defer notFound.Close()

	tests := []struct {
		name    string
		o       Options
		wantIs  error  // nil: no report expected
		wantMsg string // in the error
	}{
		{"unreachable", Options{URL: closed, Subscribers: 100}, ErrNoSubscriber, "refused"},
		{"not found", Options{URL: notFound.URL + "/events", Subscribers: 3}, ErrNoSubscriber, "HTTP 404"},
		{"too many files", Options{URL: closed, Subscribers: 10_000_000}, nil, "open files"},
		{"not http", Options{URL: "ftp://x/events"}, nil, "not an http"},
		{"mixed families", Options{URL: closed, SourceIPs: []netip.Addr{netip.MustParseAddr("::1")}}, nil, "family"},
		{"bad io", Options{URL: closed, IO: "poll"}, nil, "I/O model"},
		{"empty node URL", Options{URL: closed, URLs: []string{""}}, nil, "empty URL"},
		{"mixed schemes", Options{URL: closed, URLs: []string{"https://127.0.0.1:1/events"}, IO: IOGoroutine}, nil, "one scheme"},
		{"mixed node families", Options{URL: closed, URLs: []string{"http://[::1]:1/events"}}, nil, "address family"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := tt.o
			o.Topic = "t"
			rep, err := Run(context.Background(), &o)
			if err == nil {
				t.Fatalf("Run succeeded; want an error")
			}
			if tt.wantIs != nil && (!errors.Is(err, tt.wantIs) || rep == nil) {
				t.Errorf("Run = %v, %v; want a report and an error wrapping %v", rep, err, tt.wantIs)
			}
			if tt.wantIs == nil && rep != nil {
				t.Errorf("Run returned a report with %v; want none", err)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("Run error %q; want it to mention %q", err, tt.wantMsg)
			}
		})
	}
}

func TestResolveTarget(t *testing.T) {
	tests := []struct {
		url, topic                string
		wantURI, wantPub, wantSrc string
		header                    http.Header
		wantHeader                string
	}{
		{"http://127.0.0.1:8080/events", "a/b", "/events?topic=a%2Fb", "http://127.0.0.1:8080/events", "127.0.0.2", nil, ""},
		{"http://127.0.0.1:8080/x/events?topic=old&k=v", "new", "/x/events?k=v&topic=new", "http://127.0.0.1:8080/x/events", "127.0.0.2", nil, ""},
		{"http://[::1]:80/events", "t", "/events?topic=t", "http://[::1]:80/events", "", http.Header{"Authorization": {"Bearer x"}}, "Authorization: Bearer x\r\n"},
	}
	for _, tt := range tests {
		tg, err := resolveTarget(context.Background(), &Options{URL: tt.url, Topic: tt.topic, Header: tt.header}, tt.url)
		if err != nil {
			t.Fatalf("resolveTarget(%q): %v", tt.url, err)
		}
		var src string
		if len(tg.sources) > 0 {
			src = tg.sources[0].String()
		}
		if tg.uri != tt.wantURI || tg.publishURL != tt.wantPub || src != tt.wantSrc || tg.header != tt.wantHeader {
			t.Errorf("resolveTarget(%q) = uri %q, publish %q, first source %q, header %q; want %q, %q, %q, %q",
				tt.url, tg.uri, tg.publishURL, src, tg.header, tt.wantURI, tt.wantPub, tt.wantSrc, tt.wantHeader)
		}
	}
}
