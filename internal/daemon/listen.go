package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ssehub/ssehub/eventsource"
	"github.com/ssehub/ssehub/internal/problem"
)

const listenUsage = `Usage: ssehub listen [flags] URL

Connects to an SSE stream as a browser's EventSource does (reconnecting with
Last-Event-ID) and prints every event it fires: open, message, named events
and error.

` + listenBinaryUsage + `
Examples:
  ssehub listen --json --max-events 10 http://127.0.0.1:8080/events?topic=chat
  ssehub listen --out snaps 'http://127.0.0.1:8080/events?topic=cams/**'
  ssehub listen --cacert cert.pem https://127.0.0.1:8443/events?topic=chat

Exit status: 0 when stopped by --max-events, --timeout or Ctrl-C after the
stream opened; 1 when the connection failed for good (a 204, another
non-200 status, with the hub's problem detail, or a content type that is
not text/event-stream), when the hub's certificate is not trusted, or when
the stream never opened; 2 for bad flags.

The only variable read is SSEHUB_CACERT, shared with the other client
commands.

Flags:
`

func runListen(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("listen", flag.ContinueOnError)
	jsonOut := fs.Bool("json", false, "print one JSON object per line for every event an EventSource fires")
	header := http.Header{}
	fs.Func("header", "add a request header `'Key: Value'` (repeatable)", func(s string) error {
		return addHeader(header, s)
	})
	lastID := fs.String("last-event-id", "", "send this Last-Event-ID on the first request")
	maxEvents := fs.Int("max-events", 0, "exit 0 after `N` message events (0: no limit)")
	timeout := fs.Duration("timeout", 0, "stop after this long, with status 0 if the stream opened (0: no limit)")
	retry := fs.Duration("retry", 0, "initial reconnection delay, until the stream sends retry: (default 3s, as browsers)")
	outPath := fs.String("out", "", "write each binary event's bytes to a file in `DIR` named after its ID (see above)")
	maxEvent := fs.Int("max-event-size", 0, "largest event in `bytes` (default 1 MiB; with --out, 85 MiB: the base64 of a 64 MiB payload)")
	var tf tlsFlags
	tf.register(fs)
	withEnvHelp(fs)
	fs.Usage = func() {
		io.WriteString(fs.Output(), listenUsage)
		fs.PrintDefaults()
	}
	pos, code, ok := parseFlags(fs, args, stdout, stderr)
	if !ok {
		return code
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "ssehub listen: "+format+"\n", a...)
		return exitUsage
	}
	err := applyEnv(fs)
	if err != nil {
		return fail("%v", err)
	}
	switch {
	case len(pos) != 1:
		return fail("want exactly one URL, got %d arguments (run 'ssehub listen -h')", len(pos))
	case *maxEvents < 0:
		return fail("--max-events must not be negative")
	case *timeout < 0:
		return fail("--timeout must not be negative")
	case *retry < 0:
		return fail("--retry must not be negative")
	case *maxEvent < 0:
		return fail("--max-event-size must not be negative")
	}
	var out *outDir
	if *outPath != "" {
		if out, err = openOutDir(*outPath); err != nil {
			return fail("%v", err)
		}
		defer out.Close()
		if *maxEvent == 0 {
			*maxEvent = maxListenBinaryEvent
		}
	}
	tlsConf, err := tf.config("listen", stderr)
	if err != nil {
		return fail("%v", err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsConf
	defer tr.CloseIdleConnections()
	ft := &failureTransport{base: tr}
	es, err := eventsource.New(pos[0], &eventsource.Options{
		Client:       &http.Client{Transport: ft},
		Header:       header,
		LastEventID:  *lastID,
		Retry:        *retry,
		MaxEventSize: *maxEvent,
	})
	if err != nil {
		return fail("%v", err)
	}
	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}

	p := newPrinter(stdout, *jsonOut)
	p.out = out
	messages := 0
	opened := false
	var lastErr error // of the last error event
	for ev := range es.Events(ctx) {
		if err := p.print(ev); err != nil {
			fmt.Fprintf(stderr, "ssehub listen: %v\n", err)
			return exitFail
		}
		switch {
		case ev.Type == "open":
			opened = true
		case ev.Type == "error" && ev.Err != nil:
			lastErr = ev.Err
		}
		if !opened && isCertError(lastErr) {
			break // no reconnection can mend it
		}
		if ev.IsMessage() {
			messages++
			if *maxEvents > 0 && messages >= *maxEvents {
				break
			}
		}
	}
	if err := es.Err(); err != nil {
		if re, ok := errors.AsType[*eventsource.ResponseError](err); ok && re.StatusCode != http.StatusOK {
			fmt.Fprintf(stderr, "ssehub listen: the server answered %s\n", ft.failure(re))
		} else {
			fmt.Fprintf(stderr, "ssehub listen: %v\n", err)
		}
		return exitFail
	}
	if !opened {
		why := "no answer"
		if lastErr != nil {
			why = tlsHint(unwrapURLError(lastErr)).Error()
		}
		fmt.Fprintf(stderr, "ssehub listen: the stream never opened: %s\n", why)
		return exitFail
	}
	return exitOK
}

// A failureTransport keeps the start of the body of the last response
// that was not a 200, so that listen can show a failed connection's
// problem detail, which an EventSource does not read.
type failureTransport struct {
	base http.RoundTripper

	mu     sync.Mutex // guards status and body
	status string     // "400 Bad Request"
	body   []byte
}

// maxFailureBody bounds the body kept of a failed response.
const maxFailureBody = 4 << 10

// RoundTrip implements http.RoundTripper.
func (t *failureTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil || resp.StatusCode == http.StatusOK {
		return resp, err
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxFailureBody))
	t.mu.Lock()
	t.status, t.body = resp.Status, b
	t.mu.Unlock()
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(b), resp.Body), resp.Body}
	return resp, nil
}

// failure returns one line about the response re reports: its status and
// problem detail.
func (t *failureTransport) failure(re *eventsource.ResponseError) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	resp := &http.Response{StatusCode: re.StatusCode, Status: t.status, Header: re.Header}
	if !strings.HasPrefix(t.status, strconv.Itoa(re.StatusCode)+" ") {
		resp.Status = fmt.Sprintf("%d %s", re.StatusCode, http.StatusText(re.StatusCode))
		return problem.Message(resp, nil)
	}
	return problem.Message(resp, t.body)
}

// addHeader parses "Key: Value" into h. eventsource.New checks that the
// name and value can be sent.
func addHeader(h http.Header, s string) error {
	k, v, ok := strings.Cut(s, ":")
	k, v = strings.TrimSpace(k), strings.TrimSpace(v)
	if !ok || k == "" {
		return errors.New("want 'Key: Value'")
	}
	h.Add(k, v)
	return nil
}

// A printer writes events as JSON lines or in an aligned human format.
type printer struct {
	w     io.Writer
	json  bool
	color bool
	enc   *json.Encoder
	out   *outDir // --out; nil without
}

func newPrinter(w io.Writer, jsonOut bool) *printer {
	p := &printer{w: w, json: jsonOut, color: !jsonOut && isTerminal(w) && os.Getenv("NO_COLOR") == ""}
	p.enc = json.NewEncoder(w)
	p.enc.SetEscapeHTML(false)
	return p
}

// The JSON forms mirror the DOM events: MessageEvent has data and
// lastEventId, the error Event has the readyState it left behind.
type (
	jsonOpen struct {
		Type string `json:"type"`
	}
	jsonMessage struct {
		Type        string `json:"type"`
		Data        string `json:"data"`
		LastEventID string `json:"lastEventId"`
	}
	jsonBinary struct {
		Type        string `json:"type"`
		Binary      bool   `json:"binary"`
		Media       string `json:"media,omitempty"`
		Encoding    string `json:"encoding,omitempty"`
		Size        *int   `json:"size,omitempty"`
		LastEventID string `json:"lastEventId"`
		File        string `json:"file,omitempty"`
		Error       string `json:"error,omitempty"`
	}
	jsonError struct {
		Type       string `json:"type"`
		ReadyState int    `json:"readyState"`
	}
)

func (p *printer) print(ev eventsource.Event) error {
	var bin binaryView
	if ev.IsBinary() {
		var err error
		if bin, err = viewBinary(ev, p.out); err != nil {
			return err
		}
	}
	if p.json {
		var v any
		switch {
		case ev.IsBinary():
			jb := jsonBinary{Type: ev.Type, Binary: true, LastEventID: ev.LastEventID, File: bin.file}
			if bin.err != nil {
				jb.Error = bin.err.Error()
			}
			if h := bin.header; h.MediaType != "" {
				jb.Media, jb.Encoding, jb.Size = h.MediaType, h.Encoding, &h.Size
			}
			v = jb
		case ev.IsMessage():
			v = jsonMessage{ev.Type, ev.Data, ev.LastEventID}
		case ev.Type == "open":
			v = jsonOpen{ev.Type}
		default:
			v = jsonError{ev.Type, int(ev.ReadyState)}
		}
		return p.enc.Encode(v)
	}
	return p.human(ev, bin)
}

// ANSI colours, used only on a terminal.
const (
	ansiDim    = "\x1b[2m"
	ansiGreen  = "\x1b[32m"
	ansiRed    = "\x1b[31m"
	ansiYellow = "\x1b[33m"
	ansiCyan   = "\x1b[36m"
	ansiReset  = "\x1b[0m"
)

// human writes one event as "time  type      id=...  data", with data
// lines after the first indented under the first.
func (p *printer) human(ev eventsource.Event, bin binaryView) error {
	var b strings.Builder
	stamp := time.Now().Format("15:04:05.000")
	p.paint(&b, ansiDim, stamp)
	b.WriteString("  ")
	var colour, detail string
	switch {
	case ev.IsMessage():
		colour = ansiCyan
		if ev.LastEventID != "" {
			detail = "id=" + ev.LastEventID + "  "
		}
		detail += ev.Data
		if ev.IsBinary() {
			detail = detail[:len(detail)-len(ev.Data)] + bin.String()
		}
	case ev.Type == "open":
		colour = ansiGreen
	case ev.ReadyState == eventsource.Closed:
		colour, detail = ansiRed, "closed"
	default:
		colour, detail = ansiYellow, "reconnecting"
	}
	if !ev.IsMessage() && ev.Err != nil {
		detail += ": " + ev.Err.Error()
	}
	if detail == "" {
		p.paint(&b, colour, ev.Type)
	} else {
		p.paint(&b, colour, fmt.Sprintf("%-10s", ev.Type))
		b.WriteString(" ")
		indent := "\n" + strings.Repeat(" ", len(stamp)+2+max(10, len(ev.Type))+1)
		b.WriteString(strings.ReplaceAll(detail, "\n", indent))
	}
	b.WriteString("\n")
	_, err := io.WriteString(p.w, b.String())
	return err
}

// String returns "binary image/png, 1234 bytes -> out/1", or the reason
// the event could not be decoded.
func (v binaryView) String() string {
	var b strings.Builder
	b.WriteString("binary")
	if h := v.header; h.MediaType != "" {
		fmt.Fprintf(&b, " %s, %d bytes", h.MediaType, h.Size)
	}
	if v.err != nil {
		b.WriteString(", not decoded: " + v.err.Error())
	}
	if v.file != "" {
		b.WriteString(" -> " + v.file)
	}
	return b.String()
}

func (p *printer) paint(b *strings.Builder, colour, s string) {
	if p.color {
		b.WriteString(colour + s + ansiReset)
		return
	}
	b.WriteString(s)
}

// isTerminal reports whether w is a character device, such as a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
