package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// A scriptServer answers the n-th request with the n-th response function,
// and the last one for every later request. It records the Last-Event-ID
// header of each request.
type scriptServer struct {
	*httptest.Server
	mu       sync.Mutex // guards requests and lastIDs
	requests int
	lastIDs  []string
	headers  []http.Header
}

func newScriptServer(t *testing.T, responses ...http.HandlerFunc) *scriptServer {
	t.Helper()
	s := &scriptServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		n := s.requests
		s.requests++
		s.lastIDs = append(s.lastIDs, r.Header.Get("Last-Event-ID"))
		s.headers = append(s.headers, r.Header.Clone())
		s.mu.Unlock()
		responses[min(n, len(responses)-1)](w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *scriptServer) seenLastIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.lastIDs...)
}

// stream answers with an event stream made of chunks, flushed one by one,
// and then ends the response.
func stream(chunks ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		for _, c := range chunks {
			if _, err := w.Write([]byte(c)); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
		}
	}
}

// hold answers with an event stream of chunks and keeps it open until the
// client goes away.
func hold(chunks ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		stream(chunks...)(w, r)
		<-r.Context().Done()
	}
}

func status(code int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(code) }
}

func runMain(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return runMainIn(t, strings.NewReader(""), args...)
}

// checkFails runs ssehub with args and checks that it exits with status
// code and says why in one line on stderr containing want, with nothing on
// stdout.
func checkFails(t *testing.T, args []string, code int, want string) {
	t.Helper()
	got, stdout, stderr := runMain(t, args...)
	if got != code {
		t.Errorf("exit status %d; want %d", got, code)
	}
	if stdout != "" || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, want) {
		t.Errorf("stdout %q, stderr %q; want nothing, and one line on stderr containing %q", stdout, stderr, want)
	}
}

func runMainIn(t *testing.T, stdin io.Reader, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	code = Main(ctx, args, stdin, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestListenJSON(t *testing.T) {
	srv := newScriptServer(t,
		stream("retry: 10\n\n",
			"data: hello\n\n",
			"id: 1\nevent: greet\ndata: a\ndata: b\n\n",
			": comment\ndata: <b>&\n\n",
			"id: 2\ndata: lost because unterminated"),
		stream("data: second\n\n"),
		status(http.StatusNoContent),
	)
	code, stdout, stderr := runMain(t, "listen", "--json", srv.URL)
	want := `{"type":"open"}
{"type":"message","data":"hello","lastEventId":""}
{"type":"greet","data":"a\nb","lastEventId":"1"}
{"type":"message","data":"<b>&","lastEventId":"1"}
{"type":"error","readyState":0}
{"type":"open"}
{"type":"message","data":"second","lastEventId":"1"}
{"type":"error","readyState":0}
{"type":"error","readyState":2}
`
	if stdout != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", stdout, want)
	}
	if code != exitFail {
		t.Errorf("exit status %d; want %d", code, exitFail)
	}
	if lines := strings.Count(stderr, "\n"); lines != 1 || !strings.Contains(stderr, "204") {
		t.Errorf("stderr = %q; want one line naming status 204", stderr)
	}
	// The unterminated event's id never counted: the reconnections resume
	// from "1".
	if got, want := strings.Join(srv.seenLastIDs(), ","), ",1,1"; got != want {
		t.Errorf("Last-Event-ID per request = %q; want %q", got, want)
	}
}

func TestListenMaxEventsAndFlags(t *testing.T) {
	srv := newScriptServer(t, hold("data: 1\n\n", "data: 2\n\n", "data: 3\n\n"))
	// Flags after the URL work too, as users type them.
	code, stdout, stderr := runMain(t, "listen", srv.URL, "--json", "--max-events", "2",
		"--header", "X-Token: abc", "--last-event-id", "41")
	if code != exitOK {
		t.Fatalf("exit status %d (stderr %q); want 0", code, stderr)
	}
	var messages int
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		var v map[string]any
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("line %q is not JSON: %v", line, err)
		}
		if v["type"] == "message" {
			messages++
		}
	}
	if messages != 2 {
		t.Errorf("printed %d messages; want 2 (--max-events 2)\n%s", messages, stdout)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if got := srv.headers[0].Get("X-Token"); got != "abc" {
		t.Errorf("X-Token header = %q; want %q", got, "abc")
	}
	if got := srv.lastIDs[0]; got != "41" {
		t.Errorf("first Last-Event-ID = %q; want %q", got, "41")
	}
}

func TestListenTimeout(t *testing.T) {
	srv := newScriptServer(t, hold(": open\n\n"))
	start := time.Now()
	code, stdout, stderr := runMain(t, "listen", "--json", "--timeout", "300ms", srv.URL)
	if code != exitOK {
		t.Fatalf("exit status %d (stderr %q); want 0", code, stderr)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("returned after %v; want at least the 300ms timeout", d)
	}
	if stdout != "{\"type\":\"open\"}\n" {
		t.Errorf("stdout = %q; want just the open event", stdout)
	}
}

func TestListenHuman(t *testing.T) {
	srv := newScriptServer(t, stream("id: 7\nevent: price\ndata: line1\ndata: line2\n\n"), status(http.StatusInternalServerError))
	code, stdout, _ := runMain(t, "listen", "--retry", "10ms", srv.URL)
	if code != exitFail {
		t.Errorf("exit status %d; want %d", code, exitFail)
	}
	lines := strings.Split(strings.TrimRight(stdout, "\n"), "\n")
	if len(lines) != 5 {
		t.Fatalf("got %d lines; want 5 (open, 2 for the event, 2 errors):\n%s", len(lines), stdout)
	}
	if strings.Contains(stdout, "\x1b[") {
		t.Errorf("colour codes written to a non-terminal:\n%q", stdout)
	}
	// "15:04:05.000  price      id=7  line1" and the next data line
	// aligned under the first.
	first, second := lines[1], lines[2]
	if !strings.HasSuffix(first, "price      id=7  line1") {
		t.Errorf("event line = %q; want it to end in %q", first, "price      id=7  line1")
	}
	if col := strings.Index(first, "id=7"); strings.TrimSpace(second[:col]) != "" || second[col:] != "line2" {
		t.Errorf("continuation line %q not aligned under %q", second, first)
	}
	if !strings.Contains(lines[4], "error") || !strings.Contains(lines[4], "closed") || !strings.Contains(lines[4], "500") {
		t.Errorf("last line = %q; want an error saying closed and 500", lines[4])
	}
}

func TestListenBadUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string // in the one-line error
	}{
		{"no url", []string{"listen"}, "exactly one URL"},
		{"two urls", []string{"listen", "http://a", "http://b"}, "exactly one URL"},
		{"unknown flag", []string{"listen", "--nope", "http://a"}, "nope"},
		{"bad duration", []string{"listen", "--timeout", "soon", "http://a"}, "timeout"},
		{"negative max", []string{"listen", "--max-events", "-1", "http://a"}, "max-events"},
		{"bad header", []string{"listen", "--header", "NoColon", "http://a"}, "Key: Value"},
		{"header injection", []string{"listen", "--header", "X: a\r\nB: c", "http://a"}, "invalid request header"},
		{"id injection", []string{"listen", "--last-event-id", "a\nb", "http://a"}, "Last-Event-ID"},
		{"bad scheme", []string{"listen", "ftp://example.com/x"}, "ftp"},
		{"unknown command", []string{"frobnicate"}, "unknown command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkFails(t, tt.args, exitUsage, tt.want) })
	}
}

func TestHelp(t *testing.T) {
	code, stdout, _ := runMain(t, "listen", "-h")
	if code != exitOK || !strings.Contains(stdout, "Examples:") || !strings.Contains(stdout, "-max-events") {
		t.Errorf("listen -h: status %d, output %q; want 0 and the usage with an example", code, stdout)
	}
	code, stdout, _ = runMain(t, "help")
	if code != exitOK || !strings.Contains(stdout, "listen") {
		t.Errorf("help: status %d, output %q; want 0 and the command list", code, stdout)
	}
}

// TestListenProblemDetail: a refusal is shown with the hub's problem
// detail, not only its status.
func TestListenProblemDetail(t *testing.T) {
	srv := newScriptServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"type":"about:blank","title":"Bad Request","status":400,"detail":"topic is required"}`)
	})
	code, _, stderr := runMain(t, "listen", srv.URL)
	if want := "ssehub listen: the server answered 400 Bad Request: topic is required\n"; code != exitFail || stderr != want {
		t.Errorf("status %d, stderr %q; want 1 and %q", code, stderr, want)
	}
}

// TestListenNeverOpened: a stream that never opened is an error, even
// when --timeout ends the wait.
func TestListenNeverOpened(t *testing.T) {
	silent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // never answers
	}))
	t.Cleanup(silent.Close)
	tests := []struct {
		name, url, want string
	}{
		{"nothing listens", "http://" + freeAddr(t) + "/events", "the stream never opened: dial tcp"},
		{"no answer", silent.URL, "the stream never opened: no answer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runMain(t, "listen", "--timeout", "500ms", tt.url)
			if code != exitFail || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, tt.want) {
				t.Errorf("status %d, stderr %q; want 1 and one line containing %q", code, stderr, tt.want)
			}
		})
	}
}

// TestListenTLS: against an https stream, listen stops at once with a
// one-line error without the server's certificate, and works with
// --cacert or, with a warning, --insecure.
func TestListenTLS(t *testing.T) {
	srv := httptest.NewTLSServer(hold(": open\n\n"))
	t.Cleanup(srv.Close)
	cacert := filepath.Join(t.TempDir(), "ca.pem")
	writePEMCert(t, cacert, srv.Certificate().Raw)

	start := time.Now()
	code, _, stderr := runMain(t, "listen", "--timeout", "10s", srv.URL)
	if code != exitFail || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "--cacert") || !strings.Contains(stderr, "never opened") {
		t.Errorf("listen without --cacert: status %d, stderr %q; want 1 and one line about --cacert", code, stderr)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("listen without --cacert took %v; want it to stop at the first certificate error", took)
	}
	for _, tt := range []struct {
		flag, value, wantErr string
	}{
		{"--cacert", cacert, ""},
		{"--insecure", "true", "WARNING: --insecure"},
	} {
		code, stdout, stderr := runMain(t, "listen", "--json", "--timeout", "300ms", tt.flag+"="+tt.value, srv.URL)
		if code != exitOK || stdout != "{\"type\":\"open\"}\n" || !strings.Contains(stderr, tt.wantErr) || tt.wantErr == "" && stderr != "" {
			t.Errorf("listen %s: status %d, stdout %q, stderr %q; want 0, the open event and stderr %q", tt.flag, code, stdout, stderr, tt.wantErr)
		}
	}
}
