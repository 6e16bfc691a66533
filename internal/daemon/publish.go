package daemon

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ssehub/ssehub/internal/problem"
	"github.com/ssehub/ssehub/sse"
)

const publishUsage = `Usage: ssehub publish --topic T [flags] [--data D | --file PATH]

Publishes an event to a hub and prints its ID. Without --data, every line
of standard input is the data of one event (empty lines are skipped); lines
are sent in NDJSON batches, and the IDs are printed one per line, in order.
--data '' publishes one event with empty data.

--file PATH publishes the file's bytes as one binary event (--file - reads
standard input to its end): the bytes go to the hub as they are, in an
application/octet-stream request, and subscribers receive them as a binary
event (see docs/BINARY.md), whose media type is --media, or else the one
the file's extension names (.png: image/png), or else
application/octet-stream. A file larger than 64 MiB is refused; the hub
has limits of its own (413).

Each event gets the ID R-N, unless --id gives one: R is random, the same
for the whole run (13 lower-case letters and digits), and N is the line's
number on standard input (1 with --data or --file). The hub refuses an ID it already
holds (409), so a request sent again after an error cannot store its
events twice: a 409 for a request that may have been stored before is
taken as "stored", one event at a time.

When the hub cannot be reached, or answers 429, 502, 503 or 504, publish
says so on stderr, waits (as long as a Retry-After says, else backing off
up to 5s) and sends the same events again, for up to --retry-for from the
first failure; then it gives up. A hub restart loses no line and repeats
none. Any other refusal, an untrusted certificate, or a line that is not
valid UTF-8 ends publish with status 1 and one line on stderr naming the
lines not published: the lines before them were published and their IDs
printed, and nothing after them was sent.

A hub with keys needs a publish token (--token, or SSEHUB_TOKEN, which
keeps it off the command line). For an https hub with a self-signed
certificate, give that certificate with --cacert.

Examples:
  ssehub publish --topic chat/general --type message --data 'hello'
  tail -f app.log | ssehub publish --url http://127.0.0.1:8080 --topic logs/app --retry-for 1h
  SSEHUB_TOKEN=$(cat backend.jwt) ssehub publish --topic chat/general --data 'hi'
  ssehub publish --topic cams/door --file snapshot.png
  pg_dump app | gzip | ssehub publish --topic backups --file - --media application/gzip

Variables: SSEHUB_URL and SSEHUB_TOKEN give the hub and the token, and
SSEHUB_CACERT is shared with listen and bench; the event's fields are read
from SSEHUB_PUBLISH_* (listed below), never from serve's variables, so
that SSEHUB_RETRY, serve's, does not become each event's retry.

Exit status: 0 when every event was published; 1 when some could not be;
2 for bad flags.

Flags:
`

// Bounds of one NDJSON request: events, and bytes of the body (the hub
// takes 1 MiB by default).
const (
	maxBatch      = 1000
	maxBatchBytes = 256 << 10
)

// A publishEvent is one event as the hub's JSON and NDJSON publish API
// takes it.
type publishEvent struct {
	Topic   []string `json:"topic"`
	Data    string   `json:"data"`
	Type    string   `json:"type,omitempty"`
	ID      string   `json:"id,omitempty"`
	Retry   int64    `json:"retry,omitempty"` // milliseconds
	Private bool     `json:"private,omitempty"`

	line int // on stdin; 0 for --data and --file

	// binary says the event is --file's: payload is sent as an
	// application/octet-stream body, with media its media type, and
	// Data is unused.
	binary  bool
	payload []byte
	media   string
}

func runPublish(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("publish", flag.ContinueOnError)
	hubURL := fs.String("url", "http://127.0.0.1:8080", "the hub's `URL` (its /events endpoint is used)")
	var topics []string
	fs.Func("topic", "publish to this `topic` (repeatable; at least one)", func(s string) error {
		topics = append(topics, s)
		return nil
	})
	typ := fs.String("type", "", "event type (default: message)")
	id := fs.String("id", "", "event ID (default: R-N, see above); only with --data")
	data := fs.String("data", "", "event data, which may be empty; without it, each stdin line is one event")
	file := fs.String("file", "", "publish the bytes of the file at `PATH` as one binary event ('-': all of stdin)")
	media := fs.String("media", "", "the media `type` of --file's bytes (default: from the file's extension, else application/octet-stream)")
	retry := fs.Duration("retry", 0, "reconnection delay to send with the event")
	private := fs.Bool("private", false, "deliver only to subscribers authorised for the topic")
	token := fs.String("token", "", "send this bearer `token` (a JWT from your issuer or 'ssehub token')")
	retryFor := fs.Duration("retry-for", defaultRetryFor, "while the hub cannot be reached or asks to wait, send again for up to this `duration` from the first failure (0: do not)")
	var tf tlsFlags
	tf.register(fs)
	withEnvHelp(fs)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), publishUsage)
		fs.PrintDefaults()
	}
	pos, code, ok := parseFlags(fs, args, stdout, stderr)
	if !ok {
		return code
	}
	fail := func(status int, format string, a ...any) int {
		fmt.Fprintf(stderr, "ssehub publish: "+format+"\n", a...)
		return status
	}
	dataFlag := false // on the command line, even empty
	fs.Visit(func(f *flag.Flag) { dataFlag = dataFlag || f.Name == "data" })
	if err := applyEnv(fs); err != nil {
		return fail(exitUsage, "%v", err)
	}
	dataGiven := false // on the command line, even empty, or in SSEHUB_PUBLISH_DATA
	fs.Visit(func(f *flag.Flag) { dataGiven = dataGiven || f.Name == "data" })
	endpoint, err := eventsURL(*hubURL)
	switch {
	case len(pos) > 0:
		return fail(exitUsage, "unexpected argument %q (run 'ssehub publish -h')", pos[0])
	case err != nil:
		return fail(exitUsage, "--url: %v", err)
	case len(topics) == 0:
		return fail(exitUsage, "--topic is required")
	case *file != "" && dataFlag:
		return fail(exitUsage, "--file and --data: give one, the event's data is either")
	case *file != "" && dataGiven:
		return fail(exitUsage, "--file and SSEHUB_PUBLISH_DATA: give one, the event's data is either (unset the variable)")
	case *media != "" && *file == "":
		return fail(exitUsage, "--media needs --file: it is the media type of the file's bytes")
	case *id != "" && !dataGiven && *file == "":
		return fail(exitUsage, "--id needs --data or --file: IDs are unique, so stdin lines get IDs of their own")
	case *retry < 0:
		return fail(exitUsage, "--retry must not be negative")
	case *retryFor < 0:
		return fail(exitUsage, "--retry-for must not be negative")
	}
	tlsConf, err := tf.config("publish", stderr)
	if err != nil {
		return fail(exitUsage, "%v", err)
	}
	run, err := newRunID()
	if err != nil {
		return fail(exitFail, "%v", err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsConf
	defer tr.CloseIdleConnections()
	p := &publisher{
		client:   &http.Client{Transport: tr, Timeout: 30 * time.Second},
		url:      endpoint,
		token:    strings.TrimSpace(*token),
		out:      stdout,
		notes:    stderr,
		retryFor: *retryFor,
		run:      run,
	}
	base := publishEvent{Topic: topics, Type: *typ, Retry: retry.Milliseconds(), Private: *private}
	if *file != "" {
		ev := base
		ev.binary, ev.ID = true, *id
		if ev.ID == "" {
			ev.ID = p.eventID(1)
		}
		if ev.payload, err = readPayload(*file, stdin); err != nil {
			return fail(exitFail, "%v", err)
		}
		if ev.media, err = payloadMedia(*file, *media); err != nil {
			return fail(exitUsage, "%v", err)
		}
		err = p.send(ctx, []publishEvent{ev})
	} else if dataGiven {
		ev := base
		ev.Data, ev.ID = *data, *id
		if ev.ID == "" {
			ev.ID = p.eventID(1)
		}
		err = p.send(ctx, []publishEvent{ev})
	} else {
		err = p.lines(ctx, stdin, base)
	}
	if err != nil {
		return fail(exitFail, "%v", err)
	}
	return exitOK
}

// maxFileBytes is the most publish --file reads: sse.MaxBinaryBytes, the
// most a subscriber's Event.Bytes decodes.
const maxFileBytes = sse.MaxBinaryBytes

// readPayload returns the bytes of the file at path, or of stdin when
// path is "-", refusing more than maxFileBytes.
func readPayload(path string, stdin io.Reader) ([]byte, error) {
	r, name := stdin, "stdin"
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("--file: %w", err)
		}
		defer f.Close()
		if fi, err := f.Stat(); err == nil && fi.IsDir() {
			return nil, fmt.Errorf("--file: %s is a directory", path)
		}
		r, name = f, path
	}
	b, err := io.ReadAll(io.LimitReader(r, maxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("--file: read %s: %w", name, err)
	}
	if len(b) > maxFileBytes {
		return nil, fmt.Errorf("--file: %s has more than %d bytes (64 MiB), the most a binary event carries", name, maxFileBytes)
	}
	return b, nil
}

// payloadMedia returns the media type of --file's bytes: given if not
// empty, else the one path's extension names, else
// application/octet-stream. Parameters are written without the space
// after ";" that mime.TypeByExtension puts (and a person may type), since
// the wire form of a binary event holds no space in its media type.
func payloadMedia(path, given string) (string, error) {
	t := given
	if t == "" && path != "-" {
		t = mime.TypeByExtension(filepath.Ext(path))
	}
	if t == "" {
		return sse.DefaultBinaryMediaType, nil
	}
	mt, params, err := mime.ParseMediaType(t)
	if err != nil || !strings.Contains(mt, "/") {
		return "", fmt.Errorf("--media %q is not a media type (type/subtype, as image/png)", t)
	}
	if f := mime.FormatMediaType(mt, params); f != "" {
		t = strings.ReplaceAll(f, "; ", ";")
	}
	if _, err := sse.BinaryData(nil, t); err != nil {
		return "", fmt.Errorf("--media: %w", err)
	}
	return t, nil
}

// defaultRetryFor is how long publish keeps sending again by default: a
// hub restart, or a deploy, fits in it with room to spare, and a script
// whose hub is gone for good learns it within a minute.
const defaultRetryFor = time.Minute

// newRunID returns the R of the IDs R-N: 13 characters of base32, 65
// random bits.
func newRunID() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("random run ID: %w", err)
	}
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:])), nil
}

// eventsURL returns the publish endpoint of the hub at base: base itself
// when it already ends in /events.
func eventsURL(base string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", err
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return "", fmt.Errorf("%q is not an http(s) URL", base)
	}
	if !strings.HasSuffix(u.Path, "/events") {
		u.Path = strings.TrimSuffix(u.Path, "/") + "/events"
	}
	return u.String(), nil
}

// A publisher posts events to a hub and prints their IDs. It sends one
// request at a time, so the hub stores the events in the order given.
type publisher struct {
	client   *http.Client
	url      string
	token    string    // sent as a bearer token when not empty
	out      io.Writer // the IDs
	notes    io.Writer // stderr: what publish waits for
	retryFor time.Duration
	run      string // the R of the IDs R-N
}

// eventID returns the ID of the event of stdin line n (1 with --data).
func (p *publisher) eventID(n int) string {
	return p.run + "-" + strconv.Itoa(n)
}

// lines publishes each non-empty line of r as one event's data. Lines are
// batched while more input is already buffered, so a pipe is sent in large
// NDJSON requests while a person typing sees each ID at once. A line that
// is not valid UTF-8 ends it, after the lines before it are published.
func (p *publisher) lines(ctx context.Context, r io.Reader, base publishEvent) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var batch []publishEvent
	size := 0
	n := 0 // lines read
	for {
		line, err := br.ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return p.flushThen(ctx, batch, fmt.Errorf("read stdin after line %d: %w", n, err))
		}
		eof := err != nil
		if line != "" {
			n++
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if !utf8.ValidString(line) {
			return p.flushThen(ctx, batch, fmt.Errorf("line %d is not valid UTF-8 (at byte %d): it and the lines after it were not published", n, invalidUTF8At(line)+1))
		}
		if line != "" {
			ev := base
			ev.Data, ev.ID, ev.line = line, p.eventID(n), n
			batch = append(batch, ev)
			size += jsonSize(&ev)
		}
		if len(batch) > 0 && (eof || len(batch) >= maxBatch || size >= maxBatchBytes || br.Buffered() == 0) {
			if err := p.send(ctx, batch); err != nil {
				return err
			}
			batch, size = batch[:0], 0
		}
		if eof {
			return nil
		}
	}
}

// jsonSize returns about how many bytes ev takes in JSON, or more.
func jsonSize(ev *publishEvent) int {
	n := 64 + len(ev.Type) + len(ev.ID)
	for _, t := range ev.Topic {
		n += len(t) + 3
	}
	for i := 0; i < len(ev.Data); i++ {
		switch c := ev.Data[i]; {
		case c < 0x20:
			n += 6 // \u00XX
		case c == '"' || c == '\\':
			n += 2
		default:
			n++
		}
	}
	return n
}

// flushThen publishes batch and returns err, or the error of publishing.
func (p *publisher) flushThen(ctx context.Context, batch []publishEvent, err error) error {
	if len(batch) > 0 {
		if e := p.send(ctx, batch); e != nil {
			return e
		}
	}
	return err
}

// invalidUTF8At returns the offset of the first byte of s that is not
// part of valid UTF-8.
func invalidUTF8At(s string) int {
	for i, r := range s {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
				return i
			}
		}
	}
	return len(s)
}

// Backoff between attempts when the hub gives no Retry-After.
const (
	minBackoff = 200 * time.Millisecond
	maxBackoff = 5 * time.Second
)

// send publishes events in one request and prints their IDs. It sends
// again while the hub cannot be reached or asks to wait, for up to
// retryFor, and resolves a 409 for events an earlier attempt may have
// stored one event at a time.
func (p *publisher) send(ctx context.Context, events []publishEvent) error {
	return p.sendAgain(ctx, events, false)
}

// sendAgain is send; maybeStored says that an earlier request may have
// stored events.
func (p *publisher) sendAgain(ctx context.Context, events []publishEvent, maybeStored bool) error {
	var (
		first   time.Time // of the failures of this request; zero while none
		noted   bool      // a wait was announced on stderr
		lastMsg string
		backoff = minBackoff
	)
	for {
		a := p.post(ctx, events)
		switch {
		case a.err == nil:
			if noted {
				fmt.Fprintf(p.notes, "ssehub publish: the hub answered after %s; going on\n", time.Since(first).Round(100*time.Millisecond))
			}
			return p.print(a.ids)
		case a.status == http.StatusConflict && maybeStored && len(events) == 1:
			// The ID is taken: by this very event, sent before.
			return p.print([]string{events[0].ID})
		case a.status == http.StatusConflict && maybeStored && len(events) > 1:
			// At least one event of the batch is stored, maybe all:
			// find which, one at a time.
			for i := range events {
				if err := p.sendAgain(ctx, events[i:i+1], true); err != nil {
					return err
				}
			}
			return nil
		case !a.again:
			return p.failed(events, a.err)
		}
		maybeStored = maybeStored || a.maybeStored
		now := time.Now()
		if first.IsZero() {
			first = now
		}
		deadline := first.Add(p.retryFor)
		wait := a.retryAfter
		if wait == 0 {
			wait = backoff/2 + time.Duration(mrand.Int64N(int64(backoff/2)+1))
			backoff = min(2*backoff, maxBackoff)
		}
		if !now.Before(deadline) {
			if p.retryFor == 0 {
				return p.failed(events, a.err)
			}
			return p.failed(events, fmt.Errorf("gave up after %s (--retry-for): %w", p.retryFor, a.err))
		}
		wait = min(wait, deadline.Sub(now))
		if msg := a.err.Error(); msg != lastMsg {
			lastMsg = msg
			noted = a.status != http.StatusTooManyRequests || noted
			fmt.Fprintf(p.notes, "ssehub publish: waiting for the hub: %s; sending again for up to %s\n", msg, deadline.Sub(now).Round(time.Second))
		}
		select {
		case <-ctx.Done():
			return p.failed(events, fmt.Errorf("interrupted while waiting for the hub: %w", a.err))
		case <-time.After(wait):
		}
	}
}

// failed returns err, saying which lines of stdin were not published.
func (p *publisher) failed(events []publishEvent, err error) error {
	first := events[0].line
	switch {
	case first == 0:
		return err
	case len(events) == 1:
		return fmt.Errorf("line %d and any after it not published: %w", first, err)
	}
	return fmt.Errorf("lines %d-%d and any after them not published: %w", first, events[len(events)-1].line, err)
}

// print writes ids, one a line.
func (p *publisher) print(ids []string) error {
	_, err := io.WriteString(p.out, strings.Join(ids, "\n")+"\n")
	return err
}

// An attempt is the outcome of one publish request.
type attempt struct {
	ids         []string      // the hub's answer, when err is nil
	err         error         // one line
	status      int           // the hub's answer; 0 when there was none
	again       bool          // worth sending again
	retryAfter  time.Duration // as the hub asked; 0: back off
	maybeStored bool          // the hub may have stored the events
}

// post sends events once: one as JSON, several as an NDJSON batch, and a
// binary one as its bytes (see octetRequest).
func (p *publisher) post(ctx context.Context, events []publishEvent) attempt {
	var (
		req *http.Request
		err error
	)
	if len(events) == 1 && events[0].binary {
		req, err = p.octetRequest(ctx, events[0])
	} else {
		req, err = p.jsonRequest(ctx, events)
	}
	if err != nil {
		return attempt{err: err}
	}
	if p.token != "" {
		req.Header.Set("Authorization", "Bearer "+p.token)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return transportAttempt(ctx, err)
	}
	defer resp.Body.Close()
	respBody, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		a := transportAttempt(ctx, fmt.Errorf("read the hub's answer: %w", err))
		a.maybeStored = true
		return a
	}
	if resp.StatusCode != http.StatusOK {
		a := attempt{err: errors.New("hub answered " + problem.Message(resp, respBody)), status: resp.StatusCode}
		switch resp.StatusCode {
		case http.StatusTooManyRequests, http.StatusServiceUnavailable:
			// The hub stored nothing; a proxy in front of it had no hub.
			a.again = true
			a.retryAfter = retryAfter(resp.Header.Get("Retry-After"), time.Now())
		case http.StatusBadGateway, http.StatusGatewayTimeout:
			// A proxy lost the hub, maybe after it had the request.
			a.again, a.maybeStored = true, true
		}
		return a
	}
	ids := strings.Split(strings.TrimRight(string(respBody), "\n"), "\n")
	if len(ids) != len(events) {
		return attempt{err: fmt.Errorf("hub answered %d IDs for %d events", len(ids), len(events)), status: resp.StatusCode}
	}
	return attempt{ids: ids, status: resp.StatusCode}
}

// jsonRequest returns the request that publishes events: one as JSON,
// several as an NDJSON batch.
func (p *publisher) jsonRequest(ctx context.Context, events []publishEvent) (*http.Request, error) {
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	enc.SetEscapeHTML(false)
	for _, ev := range events {
		if err := enc.Encode(ev); err != nil {
			return nil, err
		}
	}
	ctype := "application/json"
	if len(events) > 1 {
		ctype = "application/x-ndjson"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, &body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", ctype)
	return req, nil
}

// octetRequest returns the request that publishes ev, a binary event: its
// payload is the body, as application/octet-stream, and its other fields
// are in the query string (topic repeated, type, id, retry in
// milliseconds, private=true, media).
func (p *publisher) octetRequest(ctx context.Context, ev publishEvent) (*http.Request, error) {
	u, err := url.Parse(p.url)
	if err != nil {
		return nil, err
	}
	q := u.Query()
	for _, t := range ev.Topic {
		q.Add("topic", t)
	}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("type", ev.Type)
	set("id", ev.ID)
	if ev.Retry > 0 {
		q.Set("retry", strconv.FormatInt(ev.Retry, 10))
	}
	if ev.Private {
		q.Set("private", "true")
	}
	set("media", ev.media)
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(ev.payload))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	return req, nil
}

// transportAttempt classifies a request that got no answer.
func transportAttempt(ctx context.Context, err error) attempt {
	err = unwrapURLError(err)
	if ctx.Err() != nil {
		return attempt{err: fmt.Errorf("interrupted: %w", err)}
	}
	if isCertError(err) {
		return attempt{err: tlsHint(err)}
	}
	// A request that never had a connection stored nothing; any other
	// may have reached the hub.
	var op *net.OpError
	dial := errors.As(err, &op) && op.Op == "dial"
	return attempt{err: err, again: true, maybeStored: !dial}
}

// unwrapURLError drops the *url.Error around a client's error: its
// method and URL repeat what the user gave.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// retryAfter parses a Retry-After header, seconds or an HTTP date, into a
// wait from now; 0 when absent or unusable.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s <= 0 {
			return 0
		}
		return time.Duration(min(s, int64(24*time.Hour/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
