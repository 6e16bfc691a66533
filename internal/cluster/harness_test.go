package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ssehub/ssehub/eventsource"
	"github.com/ssehub/ssehub/internal/testserver"
)

// ssehubBin is the ssehub binary that TestMain builds for the run.
var ssehubBin string

// client makes every request of the suite: publishes, probes and the
// subscribers' streams. TestMain closes its idle connections before it
// looks for leaked goroutines.
var client = &http.Client{Transport: &http.Transport{
	MaxIdleConnsPerHost: 64,
	DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
}}

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "ssehub-cluster-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "cluster tests:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if ssehubBin, err = buildSSEHub(dir); err != nil {
		fmt.Fprintln(os.Stderr, "cluster tests:", err)
		return 1
	}
	code := m.Run()
	client.CloseIdleConnections()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "cluster tests: goroutines left behind:", err)
			return 1
		}
	}
	return code
}

// buildSSEHub builds ./cmd/ssehub of this module into dir.
func buildSSEHub(dir string) (string, error) {
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	out, err := exec.Command(gobin, "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("go env GOMOD: not in a module")
	}
	bin := filepath.Join(dir, "ssehub")
	cmd := exec.Command(gobin, "build", "-o", bin, "./cmd/ssehub")
	cmd.Dir = filepath.Dir(gomod)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/ssehub: %v\n%s", err, out)
	}
	return bin, nil
}

// The backends a cluster runs on.
const (
	redisKind = "redis"
	natsKind  = "nats"
)

var backendKinds = []string{redisKind, natsKind}

// forEachBackend runs test once per backend, as subtests named after
// them, each with a backend server of its own, already started.
func forEachBackend(t *testing.T, test func(t *testing.T, be *backend)) {
	forEachKind(t, func(t *testing.T, be *backend) {
		be.srv.Start()
		test(t, be)
	})
}

// forEachKind is forEachBackend with the backend not started.
func forEachKind(t *testing.T, test func(t *testing.T, be *backend)) {
	for _, kind := range backendKinds {
		t.Run(kind, func(t *testing.T) {
			test(t, newBackend(t, kind))
		})
	}
}

// randomName returns prefix followed by 8 random hex digits.
func randomName(prefix string) string {
	var b [4]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// waitFor polls cond every 20ms until it holds, and fails the test with
// the message when it does not within timeout.
func waitFor(t testing.TB, timeout time.Duration, cond func() bool, format string, a ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: "+format, append([]any{timeout}, a...)...)
		}
		time.Sleep(20 * time.Millisecond) // polling processes the test does not control
	}
}

// A proc is a process started by a test: a node.
type proc struct {
	name   string
	cmd    *exec.Cmd
	logs   *testserver.Tail
	exited chan struct{} // closed when the process has ended and been waited for
}

// startProc starts bin with args, its stdout and stderr kept in logs.
// The test kills it, if it is still running, when it ends, and prints
// its last output lines if the test failed.
func startProc(t testing.TB, name string, logs *testserver.Tail, bin string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = t.TempDir() // whatever it writes where it runs goes away
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, logs: logs, exited: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.kill(t)
	})
	return p
}

// running reports whether the process has not ended.
func (p *proc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// kill kills the process with SIGKILL and waits for its end.
func (p *proc) kill(t testing.TB) {
	t.Helper()
	if p.running() {
		p.cmd.Process.Signal(syscall.SIGKILL)
	}
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		t.Errorf("%s (pid %d) still running 10s after SIGKILL", p.name, p.cmd.Process.Pid)
	}
}

// showLogs registers a cleanup that prints the last output lines of
// what logs holds, under name, if the test failed.
func showLogs(t testing.TB, name string, logs *testserver.Tail) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last lines of %s:\n%s", name, logs)
		}
	})
}

// A backend is a redis-server or nats-server that one test started and
// may kill and start again, on the same port and data directory, and
// the place in it (a key prefix, a stream) of the one hub that the
// test's nodes make up.
type backend struct {
	kind string
	name string // the Redis key prefix or the JetStream stream name
	srv  *testserver.Server
}

// newBackend prepares a backend of kind without starting it: call
// be.srv.Start. redis-server runs with appendonly yes and appendfsync
// always, so that an acknowledged append survives a SIGKILL.
func newBackend(t testing.TB, kind string) *backend {
	t.Helper()
	switch kind {
	case redisKind:
		return &backend{kind: kind, name: randomName("ct-"),
			srv: testserver.Redis(t, testserver.RedisOptions{AppendOnly: true, Stopped: true})}
	default:
		return &backend{kind: kind, name: randomName("CT_"),
			srv: testserver.NATS(t, testserver.NATSOptions{Stopped: true})}
	}
}

// nodeFlags are the flags of "ssehub serve" that put a node on this
// backend.
func (be *backend) nodeFlags() []string {
	switch be.kind {
	case redisKind:
		return []string{"--store", "redis", "--redis-url", be.srv.URL(), "--redis-prefix", be.name}
	default:
		return []string{"--store", "nats", "--nats-url", be.srv.URL(), "--nats-stream", be.name}
	}
}

// A node is an "ssehub serve" process.
type node struct {
	name string
	base string // http://127.0.0.1:port
	logs *testserver.Tail
	p    *proc
}

// startNode starts "ssehub serve" with the given store flags on a free
// port and, if ready, waits until its /readyz answers 200.
func startNode(t testing.TB, name string, storeFlags []string, ready bool) *node {
	t.Helper()
	addr := testserver.FreeAddr(t)
	n := &node{name: name, base: "http://" + addr, logs: &testserver.Tail{}}
	args := append([]string{"serve", "--addr", addr,
		"--heartbeat", "500ms", "--retry", "100ms", "--publish-rate", "-1",
		"--max-streams-per-client", "-1", "--log-level", "info"}, storeFlags...)
	fmt.Fprintf(n.logs, "--- ssehub %s\n", strings.Join(args, " "))
	showLogs(t, "node "+name, n.logs)
	n.p = startProc(t, "node "+name, n.logs, ssehubBin, args...)
	if ready {
		waitFor(t, 20*time.Second, func() bool {
			if !n.p.running() {
				t.Fatalf("node %s exited at start", name)
			}
			return n.status("/readyz") == http.StatusOK
		}, "node %s: /readyz not 200", name)
	}
	return n
}

// startNodes starts count nodes, named A, B, C..., on be and waits until
// they are ready.
func startNodes(t testing.TB, be *backend, count int) []*node {
	t.Helper()
	nodes := make([]*node, count)
	for i := range nodes {
		nodes[i] = startNode(t, string(rune('A'+i)), be.nodeFlags(), true)
	}
	return nodes
}

// boltFlags are the store flags of a single node on its own bolt store.
func boltFlags(t testing.TB) []string {
	return []string{"--store", "bolt", "--data-dir", t.TempDir()}
}

// status returns the status of a GET of path, or 0 when there is none.
func (n *node) status(path string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, n.base+path, nil)
	resp, err := client.Do(req)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// A published is the outcome of one publish request.
type published struct {
	status     int      // 0 when no answer came
	ids        []string // the IDs answered with 200, in order
	retryAfter string   // the Retry-After header
	body       string
	err        error
	start, end time.Time
}

// publish POSTs body of content type ct to n's /events, bounded by
// timeout.
func (n *node) publish(ct, body string, timeout time.Duration) published {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	r := published{start: time.Now()}
	defer func() { r.end = time.Now() }()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, n.base+"/events", strings.NewReader(body))
	req.Header.Set("Content-Type", ct)
	resp, err := client.Do(req)
	if err != nil {
		r.err = err
		r.end = time.Now()
		return r
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	r.end = time.Now()
	r.status, r.body, r.retryAfter = resp.StatusCode, string(b), resp.Header.Get("Retry-After")
	if err != nil {
		r.err = err
		return r
	}
	if r.status == http.StatusOK {
		r.ids = strings.Fields(r.body)
	}
	return r
}

// publishData publishes one event with data to topic on n, and fails
// the test unless it is acknowledged. It returns the event's ID.
func (n *node) publishData(t testing.TB, topic, data string) string {
	t.Helper()
	r := n.publish("application/json", eventJSON(topic, data), 10*time.Second)
	if r.status != http.StatusOK || len(r.ids) != 1 {
		t.Fatalf("publish on node %s: status %d, %v, %q; want 200 and one ID", n.name, r.status, r.err, r.body)
	}
	return r.ids[0]
}

// eventJSON is the JSON publish body of one event.
func eventJSON(topic, data string) string {
	return fmt.Sprintf(`{"topic":%q,"data":%q}`, topic, data)
}

// A received is one event a subscriber received.
type received struct {
	id, data, node string
}

// A subscriber reads one topic's stream with an EventSource, in a
// goroutine of its own that ends with the test. With failover, it moves
// to the next of its nodes whenever its stream fails, as behind a load
// balancer, resuming with the last event ID it saw; without, the
// EventSource reconnects to its one node by itself.
type subscriber struct {
	name     string
	topic    string
	nodes    []*node
	failover bool
	cancel   context.CancelFunc
	done     chan struct{} // closed when the goroutine has ended

	mu     sync.Mutex // guards the fields below
	got    []received
	opens  []string // the node of each stream opened
	errors []string // each error event: the node and the error
	odd    []string // events of other types (a gap)
}

// subscribe starts a subscriber to topic on nodes[0] (resuming after
// lastID if not empty), and waits until its stream is open.
func subscribe(t testing.TB, name, topic, lastID string, failover bool, nodes ...*node) *subscriber {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &subscriber{name: name, topic: topic, nodes: nodes, failover: failover, cancel: cancel, done: make(chan struct{})}
	go s.run(ctx, lastID)
	t.Cleanup(s.stop)
	waitFor(t, 10*time.Second, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.opens) > 0
	}, "subscriber %s: no stream opened on node %s", name, nodes[0].name)
	return s
}

// stop ends the subscriber and waits for its goroutine.
func (s *subscriber) stop() {
	s.cancel()
	<-s.done
}

func (s *subscriber) run(ctx context.Context, lastID string) {
	defer close(s.done)
	for i := 0; ctx.Err() == nil; i++ {
		n := s.nodes[i%len(s.nodes)]
		es, err := eventsource.New(n.base+"/events?topic="+url.QueryEscape(s.topic), &eventsource.Options{
			Client: client, LastEventID: lastID, Retry: 100 * time.Millisecond, MaxRetry: 500 * time.Millisecond,
		})
		if err != nil {
			panic(err) // a URL this file built
		}
	events:
		for ev := range es.Events(ctx) {
			s.mu.Lock()
			switch ev.Type {
			case "open":
				s.opens = append(s.opens, n.name)
			case "error":
				s.errors = append(s.errors, fmt.Sprintf("node %s: %v", n.name, ev.Err))
			case "message":
				s.got = append(s.got, received{id: ev.LastEventID, data: ev.Data, node: n.name})
				lastID = ev.LastEventID
			default:
				s.odd = append(s.odd, fmt.Sprintf("node %s: event %q, data %q", n.name, ev.Type, ev.Data))
			}
			s.mu.Unlock()
			if ev.Type == "error" && s.failover {
				break events
			}
		}
		// A stream refused for good (or left for the next node) is tried
		// again after a pause, not at once.
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// received returns what s has received so far.
func (s *subscriber) received() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.got...)
}

// ids returns the IDs s has received so far, in order.
func (s *subscriber) ids() []string {
	var ids []string
	for _, r := range s.received() {
		ids = append(ids, r.id)
	}
	return ids
}

func (s *subscriber) errorList() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.errors...)
}

// checkNoOddEvents fails the test if s received events of types other
// than message (a gap, say), naming them.
func (s *subscriber) checkNoOddEvents(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.odd) > 0 {
		t.Errorf("subscriber %s: unexpected events %v", s.name, s.odd)
	}
}

func (s *subscriber) openCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.opens)
}

// waitData waits until s has received an event with each data of want
// (the keys), and fails the test when it has not within timeout.
func (s *subscriber) waitData(t testing.TB, want map[string]string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		have := make(map[string]bool)
		for _, r := range s.received() {
			have[r.data] = true
		}
		var missing []string
		for data := range want {
			if !have[data] {
				missing = append(missing, data)
			}
		}
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("subscriber %s: %d of %d events missing after %v, such as %s (errors %v)",
				s.name, len(missing), len(want), timeout, strings.Join(missing[:min(10, len(missing))], ","), s.errorList())
		}
		time.Sleep(20 * time.Millisecond) // polling a stream the test does not control
	}
}

// waitAll waits until s has received every ID of want, and fails the
// test, saying which are missing, when it has not within timeout.
func (s *subscriber) waitAll(t testing.TB, want []string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		have := make(map[string]bool)
		for _, id := range s.ids() {
			have[id] = true
		}
		var missing []string
		for _, id := range want {
			if !have[id] {
				missing = append(missing, id)
			}
		}
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("subscriber %s: %d of %d events missing after %v, first %s (errors %v)",
				s.name, len(missing), len(want), timeout, strings.Join(missing[:min(10, len(missing))], ","), s.errorList())
		}
		time.Sleep(20 * time.Millisecond) // polling a stream the test does not control
	}
}

// checkExactlyOnce checks what a subscriber received against what was
// published: every acknowledged event (acked maps its data to its ID)
// once and with its ID, no event twice, nothing but acknowledged events
// and those whose publish had no clear outcome (maybe holds their data),
// and IDs, the positions the Log assigned, increasing.
func checkExactlyOnce(t testing.TB, who string, got []received, acked map[string]string, maybe map[string]bool) {
	t.Helper()
	var bad []string
	fail := func(format string, a ...any) { bad = append(bad, fmt.Sprintf(format, a...)) }
	byID := make(map[string]int)
	byData := make(map[string]int)
	var prev uint64
	for i, r := range got {
		if j, ok := byID[r.id]; ok {
			fail("event ID %s received twice, at %d and %d", r.id, j, i)
		}
		byID[r.id] = i
		if j, ok := byData[r.data]; ok {
			fail("event %q received twice, at %d and %d", r.data, j, i)
		}
		byData[r.data] = i
		pos, err := strconv.ParseUint(r.id, 10, 64)
		if err != nil {
			fail("event ID %q is not a position", r.id)
			continue
		}
		if pos <= prev {
			fail("event %s received after %d: out of order", r.id, prev)
		}
		prev = pos
		if id, ok := acked[r.data]; ok && id != r.id {
			fail("event %q received with ID %s; it was acknowledged as %s", r.data, r.id, id)
		}
		if _, ok := acked[r.data]; !ok && !maybe[r.data] {
			fail("received event %q (ID %s), which no publish of this test could have made", r.data, r.id)
		}
	}
	var missing []string
	for data, id := range acked {
		if _, ok := byData[data]; !ok {
			missing = append(missing, data+"="+id)
		}
	}
	if len(missing) > 0 {
		fail("%d acknowledged events never received: %v", len(missing), missing[:min(10, len(missing))])
	}
	if len(bad) > 0 {
		t.Errorf("%s received %d events with %d problems, such as:\n  %s", who, len(got), len(bad), strings.Join(bad[:min(8, len(bad))], "\n  "))
	}
}

// checkUniqueIDs fails the test when two acknowledged events (acked
// maps their data to their IDs) got the same ID: the Log gave one
// position twice.
func checkUniqueIDs(t testing.TB, acked map[string]string) {
	t.Helper()
	byID := make(map[string][]string)
	for data, id := range acked {
		byID[id] = append(byID[id], data)
	}
	var bad []string
	for id, data := range byID {
		if len(data) > 1 {
			slices.Sort(data)
			bad = append(bad, fmt.Sprintf("%s: %v", id, data))
		}
	}
	if len(bad) > 0 {
		slices.Sort(bad)
		t.Errorf("%d IDs were each acknowledged for several events published concurrently on different nodes, such as:\n  %s",
			len(bad), strings.Join(bad[:min(8, len(bad))], "\n  "))
	}
}

// sameIDs fails the test unless got and want are the same IDs in the
// same order.
func sameIDs(t testing.TB, who string, got, want []string) {
	t.Helper()
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("%s received %d events:\n  %v\nwant %d:\n  %v", who, len(got), got, len(want), want)
	}
}

// A loadPublisher publishes one event after another to each of its
// nodes, from a goroutine per node (a node given twice gets two), until
// halted, and keeps every outcome. Each event's data is unique: the
// node's name, the goroutine's number and the event's.
type loadPublisher struct {
	stop     chan struct{}
	halt     sync.Once
	wg       sync.WaitGroup
	mu       sync.Mutex // guards results
	results  []outcome
	topic    string
	pause    time.Duration
	timeout  time.Duration
	ackedNow int
}

// An outcome is a publish request of a loadPublisher and its answer.
type outcome struct {
	node string
	data string
	published
}

// startPublishers starts a loadPublisher to topic on nodes. Each
// request is bounded by timeout and followed by a pause.
func startPublishers(t testing.TB, topic string, timeout, pause time.Duration, nodes ...*node) *loadPublisher {
	lp := &loadPublisher{stop: make(chan struct{}), topic: topic, pause: pause, timeout: timeout}
	for i, n := range nodes {
		lp.wg.Go(func() { lp.run(n, fmt.Sprintf("%s%d", n.name, i)) })
	}
	t.Cleanup(lp.halted)
	return lp
}

func (lp *loadPublisher) run(n *node, name string) {
	for k := 0; ; k++ {
		select {
		case <-lp.stop:
			return
		default:
		}
		data := fmt.Sprintf("%s-%d", name, k)
		r := n.publish("application/json", eventJSON(lp.topic, data), lp.timeout)
		lp.mu.Lock()
		lp.results = append(lp.results, outcome{node: n.name, data: data, published: r})
		if r.status == http.StatusOK {
			lp.ackedNow++
		}
		lp.mu.Unlock()
		select {
		case <-lp.stop:
			return
		case <-time.After(lp.pause):
		}
	}
}

// halted stops the publishers and waits for them.
func (lp *loadPublisher) halted() {
	lp.halt.Do(func() { close(lp.stop) })
	lp.wg.Wait()
}

// acked returns how many events have been acknowledged so far.
func (lp *loadPublisher) acked() int {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	return lp.ackedNow
}

// outcomes returns every outcome so far, the acknowledged events (data
// to ID), and the data of the events whose publish had no clear outcome
// (no answer, or an error that may have come after the append).
func (lp *loadPublisher) outcomes() (all []outcome, acked map[string]string, maybe map[string]bool) {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	acked, maybe = make(map[string]string), make(map[string]bool)
	for _, o := range lp.results {
		switch {
		case o.status == http.StatusOK && len(o.ids) == 1:
			acked[o.data] = o.ids[0]
		case o.status >= 400 && o.status < 500:
			// Refused before the append.
		default:
			maybe[o.data] = true
		}
	}
	return append([]outcome(nil), lp.results...), acked, maybe
}
