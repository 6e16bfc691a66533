package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ssehub/ssehub/eventsource"
	"github.com/ssehub/ssehub/sse"
)

// A fakeHub answers publish requests as a hub does, after a script of
// failures: it records the events it stored and refuses an ID it holds
// with 409, a whole batch at once.
type fakeHub struct {
	*httptest.Server
	// before, if not nil, answers request n (from 0), whose body is
	// body, instead of the hub when it returns true. It may call answer.
	before func(n int, body []byte, w http.ResponseWriter, r *http.Request) bool

	mu       sync.Mutex // guards the fields below
	requests int
	stored   []publishEvent
	bodies   []string
	times    []time.Time // of the requests
}

func newFakeHub(t *testing.T, before func(n int, body []byte, w http.ResponseWriter, r *http.Request) bool) *fakeHub {
	t.Helper()
	h := &fakeHub{before: before}
	h.Server = httptest.NewServer(h)
	t.Cleanup(h.Close)
	return h
}

func (h *fakeHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if r.Header.Get("Content-Type") == "application/octet-stream" {
		var err error
		if body, err = octetAsJSON(r.URL.Query(), body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	}
	h.mu.Lock()
	n := h.requests
	h.requests++
	h.bodies = append(h.bodies, string(body))
	h.times = append(h.times, time.Now())
	h.mu.Unlock()
	if h.before != nil && h.before(n, body, w, r) {
		return
	}
	h.answer(w, body)
}

// octetAsJSON returns the JSON form of a binary publish request, as the
// hub reads it: the fields from query, the data sse.BinaryData of body.
func octetAsJSON(query url.Values, body []byte) ([]byte, error) {
	data, err := sse.BinaryData(body, query.Get("media"))
	if err != nil {
		return nil, err
	}
	ev := publishEvent{Topic: query["topic"], Data: data, Type: query.Get("type"), ID: query.Get("id"), Private: query.Get("private") == "true"}
	if v := query.Get("retry"); v != "" {
		if ev.Retry, err = strconv.ParseInt(v, 10, 64); err != nil {
			return nil, err
		}
	}
	return json.Marshal(ev)
}

// answer stores the events of body and answers as the hub does.
func (h *fakeHub) answer(w http.ResponseWriter, body []byte) {
	var evs []publishEvent
	dec := json.NewDecoder(bytes.NewReader(body))
	for {
		var ev publishEvent
		if err := dec.Decode(&ev); err == io.EOF {
			break
		} else if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		evs = append(evs, ev)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, ev := range evs {
		for _, s := range h.stored {
			if ev.ID != "" && s.ID == ev.ID {
				w.Header().Set("Content-Type", "application/problem+json")
				w.WriteHeader(http.StatusConflict)
				json.NewEncoder(w).Encode(map[string]any{"title": "Conflict", "status": 409, "detail": fmt.Sprintf("event id %q is already in the log", ev.ID)})
				return
			}
		}
	}
	var ids []string
	for _, ev := range evs {
		if ev.ID == "" {
			ev.ID = fmt.Sprint(len(h.stored) + 1)
		}
		h.stored = append(h.stored, ev)
		ids = append(ids, ev.ID)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, strings.Join(ids, "\n")+"\n")
}

// datas returns the data of the stored events, in order.
func (h *fakeHub) datas() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var d []string
	for _, ev := range h.stored {
		d = append(d, ev.Data)
	}
	return d
}

func (h *fakeHub) requestBodies() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.bodies...)
}

// numberedLines returns "line from\n" ... "line to\n".
func numberedLines(from, to int) string {
	var b strings.Builder
	for i := from; i <= to; i++ {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	return b.String()
}

func wantLines(from, to int) []string {
	return strings.Fields(strings.ReplaceAll(strings.TrimSpace(numberedLines(from, to)), "line ", "line_"))
}

// fieldsOf turns "line 1" data into "line_1", as wantLines has them.
func fieldsOf(datas []string) []string {
	out := make([]string, len(datas))
	for i, d := range datas {
		out[i] = strings.ReplaceAll(d, " ", "_")
	}
	return out
}

// A lineWatch is an io.Writer that tests can wait on.
type lineWatch struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (w *lineWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *lineWatch) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// waitFor polls cond until it holds, for up to timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond) // polling what another goroutine does
	}
}

// startPublish runs "ssehub publish" with args in the background, its
// stdin the returned writer. The returned function waits for its exit
// status.
func startPublish(t *testing.T, args ...string) (stdin *io.PipeWriter, stdout, stderr *lineWatch, wait func() int) {
	t.Helper()
	pr, pw := io.Pipe()
	stdout, stderr = &lineWatch{}, &lineWatch{}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	done := make(chan struct{})
	var code int // set before done is closed
	go func() {
		defer close(done)
		code = Main(ctx, append([]string{"publish"}, args...), pr, stdout, stderr)
		pr.Close()
	}()
	t.Cleanup(func() {
		cancel()
		pw.Close()
		<-done
	})
	return pw, stdout, stderr, func() int {
		<-done
		return code
	}
}

// replay returns the data of every event of topic the hub at base holds,
// reading n of them.
func replay(t *testing.T, base, topic string, n int) (datas, ids []string) {
	t.Helper()
	es, err := eventsource.New(base+"/events?topic="+topic, &eventsource.Options{LastEventID: "0"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for ev := range es.Events(ctx) {
		if ev.IsMessage() {
			datas = append(datas, ev.Data)
			ids = append(ids, ev.LastEventID)
			if len(datas) == n {
				break
			}
		}
	}
	return datas, ids
}

// TestPublishSurvivesHubRestart restarts a real hub (bolt store, same
// port) in the middle of a stdin stream: every line arrives once, in
// order, and publish says on stderr that it waited.
func TestPublishSurvivesHubRestart(t *testing.T) {
	c := testServeConfig(t, "127.0.0.1:0")
	base, stop := startServe(t, c)
	in, stdout, stderr, wait := startPublish(t, "--url", base, "--topic", "logs/app", "--retry-for", "30s")
	ids := func() int { return strings.Count(stdout.String(), "\n") }

	for i := 0; i < 3; i++ { // three batches before the restart
		io.WriteString(in, numberedLines(100*i+1, 100*i+100))
		waitFor(t, 10*time.Second, "the IDs of the first lines", func() bool { return ids() == 100*i+100 })
	}
	if err := stop(); err != nil {
		t.Fatalf("stopping the hub: %v", err)
	}
	io.WriteString(in, numberedLines(301, 400)) // to no hub
	waitFor(t, 10*time.Second, "publish to say it waits", func() bool {
		return strings.Contains(stderr.String(), "waiting for the hub")
	})
	c.addr = strings.TrimPrefix(base, "http://")
	startServe(t, c)
	io.WriteString(in, numberedLines(401, 500))
	in.Close()
	if code := wait(); code != exitOK {
		t.Fatalf("publish: status %d; stderr %q", code, stderr)
	}
	printed := strings.Fields(stdout.String())
	if len(printed) != 500 {
		t.Fatalf("publish printed %d IDs; want 500", len(printed))
	}
	datas, got := replay(t, base, "logs/app", 500)
	if want := wantLines(1, 500); strings.Join(fieldsOf(datas), " ") != strings.Join(want, " ") {
		t.Errorf("the hub holds %d events %q...; want lines 1 to 500 once each, in order", len(datas), datas[:min(len(datas), 5)])
	}
	if strings.Join(got, " ") != strings.Join(printed, " ") {
		t.Errorf("the stored IDs differ from the printed ones")
	}
	if !strings.Contains(stderr.String(), "the hub answered after") {
		t.Errorf("stderr %q; want it to say when the hub answered again", stderr)
	}
}

// loseAnswer makes h store the events of request n and then close the
// connection without an answer: the publisher cannot know that they were
// stored.
func loseAnswer(t *testing.T, h **fakeHub, n int) func(int, []byte, http.ResponseWriter, *http.Request) bool {
	return func(i int, body []byte, w http.ResponseWriter, r *http.Request) bool {
		if i != n {
			return false
		}
		(*h).answer(httptest.NewRecorder(), body)
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return true
		}
		conn.Close()
		return true
	}
}

// TestPublishRepeatsNone: when the hub stored a batch but its answer was
// lost, the batch sent again answers 409, and publish finds, one event at
// a time, that each is stored: no line is lost or stored twice.
func TestPublishRepeatsNone(t *testing.T) {
	var h *fakeHub
	h = newFakeHub(t, loseAnswer(t, &h, 1))
	in, stdout, stderr, wait := startPublish(t, "--url", h.URL, "--topic", "t", "--retry-for", "10s")
	for i := 0; i < 3; i++ {
		io.WriteString(in, numberedLines(100*i+1, 100*i+100))
		waitFor(t, 10*time.Second, "the IDs of a batch", func() bool {
			return strings.Count(stdout.String(), "\n") == 100*i+100
		})
	}
	in.Close()
	if code := wait(); code != exitOK {
		t.Fatalf("publish: status %d; stderr %q", code, stderr)
	}
	if got, want := fieldsOf(h.datas()), wantLines(1, 300); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("the hub stored %d events; want lines 1 to 300 once each, in order", len(got))
	}
	printed := strings.Fields(stdout.String())
	if len(printed) != 300 || !strings.HasSuffix(printed[150], "-151") {
		t.Errorf("publish printed %d IDs, the 151st %q; want 300, the 151st ending in -151", len(printed), printed[min(150, len(printed)-1)])
	}
	if !strings.Contains(stderr.String(), "waiting for the hub") {
		t.Errorf("stderr %q; want it to say that publish waited", stderr)
	}
}

// TestPublishDataRepeatsNone: --data is sent again too, with its ID, and
// a lost answer does not store the event twice.
func TestPublishDataRepeatsNone(t *testing.T) {
	for _, args := range [][]string{{"--data", "once"}, {"--data", "once", "--id", "my-id"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var h *fakeHub
			h = newFakeHub(t, loseAnswer(t, &h, 0))
			code, stdout, stderr := runMain(t, append([]string{"publish", "--url", h.URL, "--topic", "t"}, args...)...)
			if code != exitOK {
				t.Fatalf("publish: status %d; stderr %q", code, stderr)
			}
			if got := h.datas(); len(got) != 1 || got[0] != "once" {
				t.Errorf("the hub stored %q; want the event once", got)
			}
			h.mu.Lock()
			id := h.stored[0].ID
			h.mu.Unlock()
			if stdout != id+"\n" || id == "" {
				t.Errorf("publish printed %q; want the stored ID %q", stdout, id)
			}
		})
	}
}

// TestPublishWaitsOut: 503 and 429 are waited out (429 for its
// Retry-After), 502 and 504 too, saying so on stderr.
func TestPublishWaitsOut(t *testing.T) {
	h := newFakeHub(t, func(n int, _ []byte, w http.ResponseWriter, _ *http.Request) bool {
		switch n {
		case 0:
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `{"title":"Service Unavailable","status":503,"detail":"the log is unavailable"}`)
		case 1:
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
		case 2:
			w.WriteHeader(http.StatusBadGateway)
		default:
			return false
		}
		return true
	})
	code, stdout, stderr := runMain(t, "publish", "--url", h.URL, "--topic", "t", "--data", "x")
	if code != exitOK || !strings.HasSuffix(stdout, "-1\n") {
		t.Fatalf("publish: status %d, stdout %q, stderr %q; want 0 and an ID", code, stdout, stderr)
	}
	for _, want := range []string{"503 Service Unavailable: the log is unavailable", "429 Too Many Requests", "502 Bad Gateway"} {
		if !strings.Contains(stderr, "waiting for the hub: hub answered "+want) {
			t.Errorf("stderr %q; want it to say it waits after %s", stderr, want)
		}
	}
	h.mu.Lock()
	times := h.times
	h.mu.Unlock()
	if len(times) != 4 {
		t.Fatalf("the hub had %d requests; want 4", len(times))
	}
	if gap := times[2].Sub(times[1]); gap < 900*time.Millisecond {
		t.Errorf("sent again %v after the 429; want it to have waited out the Retry-After of 1s", gap)
	}
	if got := h.datas(); len(got) != 1 {
		t.Errorf("the hub stored %d events; want 1", len(got))
	}
}

// TestPublishGivesUp: publish waits no longer than --retry-for, and not
// at all with --retry-for 0; a refusal is not sent again.
func TestPublishGivesUp(t *testing.T) {
	down := "http://" + freeAddr(t)
	refuse := newFakeHub(t, func(_ int, _ []byte, w http.ResponseWriter, _ *http.Request) bool {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `{"title":"Forbidden","status":403,"detail":"the token does not grant publishing to t"}`)
		return true
	})
	tests := []struct {
		name      string
		args      []string
		stdin     string
		wantLines int // on stderr
		want      string
		max       time.Duration
	}{
		{"retry-for", []string{"--url", down, "--retry-for", "700ms", "--data", "x"}, "", 2, "gave up after 700ms (--retry-for): dial tcp", 5 * time.Second},
		{"no retries", []string{"--url", down, "--retry-for", "0", "--data", "x"}, "", 1, "connection refused", time.Second},
		{"refused", []string{"--url", refuse.URL, "--data", "x"}, "", 1, "hub answered 403 Forbidden: the token does not grant publishing to t", time.Second},
		{"refused lines", []string{"--url", refuse.URL}, "a\nb\n", 1, "lines 1-2 and any after them not published: hub answered 403", time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			code, stdout, stderr := runMainIn(t, strings.NewReader(tt.stdin), append([]string{"publish", "--topic", "t"}, tt.args...)...)
			took := time.Since(start)
			if code != exitFail || stdout != "" || strings.Count(stderr, "\n") != tt.wantLines || !strings.Contains(stderr, tt.want) {
				t.Errorf("status %d, stdout %q, stderr %q; want 1, nothing, and %d lines on stderr containing %q", code, stdout, stderr, tt.wantLines, tt.want)
			}
			if took > tt.max {
				t.Errorf("gave up after %v; want within %v", took, tt.max)
			}
		})
	}
	if n := len(refuse.requestBodies()); n != 2 {
		t.Errorf("the refusing hub had %d requests; want 2, one for each run: a refusal is not sent again", n)
	}
}

// TestPublishInvalidUTF8: a line that is not UTF-8 ends publish with an
// error naming it, after the lines before it are published; nothing is
// replaced with U+FFFD.
func TestPublishInvalidUTF8(t *testing.T) {
	h := newFakeHub(t, nil)
	code, stdout, stderr := runMainIn(t, strings.NewReader("good 1\n\ngood 3\nbad \xff here\ngood 5\n"), "publish", "--url", h.URL, "--topic", "t")
	if code != exitFail || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "line 4 is not valid UTF-8 (at byte 5)") {
		t.Errorf("status %d, stderr %q; want 1 and one line naming line 4", code, stderr)
	}
	if got := h.datas(); strings.Join(got, "|") != "good 1|good 3" {
		t.Errorf("the hub stored %q; want the two good lines before the bad one", got)
	}
	if n := len(strings.Fields(stdout)); n != 2 {
		t.Errorf("publish printed %q; want the 2 IDs of the lines published", stdout)
	}
}

// TestPublishEmptyData: an empty --data publishes one event with empty data
// and does not read stdin.
func TestPublishEmptyData(t *testing.T) {
	h := newFakeHub(t, nil)
	code, stdout, stderr := runMainIn(t, strings.NewReader("not read\n"), "publish", "--url", h.URL, "--topic", "t", "--data", "")
	if code != exitOK || strings.Count(stdout, "\n") != 1 {
		t.Fatalf("publish --data '': status %d, stdout %q, stderr %q; want 0 and one ID", code, stdout, stderr)
	}
	bodies := h.requestBodies()
	if len(bodies) != 1 || !strings.Contains(bodies[0], `"data":""`) {
		t.Errorf("publish sent %q; want one event with \"data\":\"\"", bodies)
	}
}

// TestPublishEnv: serve's SSEHUB_RETRY and other variables named after
// an event field do not change what publish sends; SSEHUB_PUBLISH_* do.
func TestPublishEnv(t *testing.T) {
	h := newFakeHub(t, nil)
	t.Setenv("SSEHUB_RETRY", "7s")
	t.Setenv("SSEHUB_TYPE", "x")
	t.Setenv("SSEHUB_DATA", "from serve's world")
	t.Setenv("SSEHUB_PRIVATE", "true")
	t.Setenv("SSEHUB_TOPIC", "leaked")
	code, _, stderr := runMainIn(t, strings.NewReader("line\n"), "publish", "--url", h.URL, "--topic", "t")
	if code != exitOK {
		t.Fatalf("publish: status %d, stderr %q", code, stderr)
	}
	t.Setenv("SSEHUB_PUBLISH_RETRY", "3s")
	t.Setenv("SSEHUB_PUBLISH_TYPE", "y")
	t.Setenv("SSEHUB_PUBLISH_TOPIC", "u")
	t.Setenv("SSEHUB_PUBLISH_DATA", "d")
	if code, _, stderr := runMain(t, "publish", "--url", h.URL); code != exitOK {
		t.Fatalf("publish with SSEHUB_PUBLISH_*: status %d, stderr %q", code, stderr)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.stored) != 2 {
		t.Fatalf("the hub stored %d events; want 2", len(h.stored))
	}
	got := fmt.Sprintf("%q %q %q %d %v", h.stored[0].Topic, h.stored[0].Data, h.stored[0].Type, h.stored[0].Retry, h.stored[0].Private)
	if want := `["t"] "line" "" 0 false`; got != want {
		t.Errorf("with serve's variables set, publish sent %s; want %s", got, want)
	}
	got = fmt.Sprintf("%q %q %q %d", h.stored[1].Topic, h.stored[1].Data, h.stored[1].Type, h.stored[1].Retry)
	if want := `["u"] "d" "y" 3000`; got != want {
		t.Errorf("with SSEHUB_PUBLISH_*, publish sent %s; want %s", got, want)
	}
}

// TestPublishBatchBytes: a batch stays far below the hub's body limit
// however long the lines.
func TestPublishBatchBytes(t *testing.T) {
	h := newFakeHub(t, nil)
	line := strings.Repeat("x", 100<<10) + "\n"
	code, _, stderr := runMainIn(t, strings.NewReader(strings.Repeat(line, 12)), "publish", "--url", h.URL, "--topic", "t")
	if code != exitOK {
		t.Fatalf("publish: status %d, stderr %q", code, stderr)
	}
	for i, b := range h.requestBodies() {
		if len(b) > 512<<10 {
			t.Errorf("request %d has %d bytes; want at most 512 KiB", i, len(b))
		}
	}
	if n := len(h.datas()); n != 12 {
		t.Errorf("the hub stored %d events; want 12", n)
	}
}

// TestPublishTLS: against an https hub, publish fails in one line without
// the hub's certificate, works with --cacert, and with --insecure warns.
func TestPublishTLS(t *testing.T) {
	h := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "id-1\n")
	}))
	t.Cleanup(h.Close)
	cacert := filepath.Join(t.TempDir(), "ca.pem")
	writePEMCert(t, cacert, h.Certificate().Raw)

	args := []string{"publish", "--url", h.URL, "--topic", "t", "--data", "x", "--id", "id-1"}
	checkFails(t, args, exitFail, "--cacert")
	code, stdout, stderr := runMain(t, append(args, "--cacert", cacert)...)
	if code != exitOK || stdout != "id-1\n" || stderr != "" {
		t.Errorf("publish --cacert: status %d, stdout %q, stderr %q; want 0, the ID and nothing on stderr", code, stdout, stderr)
	}
	t.Setenv("SSEHUB_CACERT", cacert)
	if code, _, stderr := runMain(t, args...); code != exitOK {
		t.Errorf("publish with SSEHUB_CACERT: status %d, stderr %q; want 0", code, stderr)
	}
	t.Setenv("SSEHUB_CACERT", "")
	code, stdout, stderr = runMain(t, append(args, "--insecure")...)
	if code != exitOK || stdout != "id-1\n" || !strings.Contains(stderr, "WARNING: --insecure") {
		t.Errorf("publish --insecure: status %d, stdout %q, stderr %q; want 0, the ID and a warning", code, stdout, stderr)
	}
	byName := strings.Replace(h.URL, "127.0.0.1", "localhost", 1) // the certificate is for 127.0.0.1 and example.com
	checkFails(t, []string{"publish", "--url", byName, "--topic", "t", "--data", "x", "--cacert", cacert}, exitFail, "the URL must name the host the certificate is for")
	checkFails(t, append(args, "--insecure", "--cacert", cacert), exitUsage, "not both")
	checkFails(t, append(args, "--cacert", filepath.Join(t.TempDir(), "none.pem")), exitUsage, "--cacert: open")
}
