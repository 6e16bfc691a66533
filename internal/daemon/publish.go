package daemon

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ssehub/ssehub/internal/problem"
)

const publishUsage = `Usage: ssehub publish --topic T [flags] [--data D]

Publishes an event to a hub and prints its ID. Without --data, every line
of standard input is the data of one event (empty lines are skipped); lines
are sent in NDJSON batches, and the IDs are printed one per line, in order.

A hub with keys needs a publish token (--token, or SSEHUB_TOKEN, which
keeps it off the command line). When the hub answers 429, publish waits
as long as its Retry-After says (up to a minute) and sends again.

Examples:
  ssehub publish --topic chat/general --type message --data 'hello'
  tail -f app.log | ssehub publish --url http://127.0.0.1:8080 --topic logs/app
  SSEHUB_TOKEN=$(cat backend.jwt) ssehub publish --topic chat/general --data 'hi'

Flags:
`

// maxBatch bounds the events of one NDJSON request.
const maxBatch = 1000

// A publishEvent is one event as the hub's JSON and NDJSON publish API
// takes it.
type publishEvent struct {
	Topic   []string `json:"topic"`
	Data    string   `json:"data"`
	Type    string   `json:"type,omitempty"`
	ID      string   `json:"id,omitempty"`
	Retry   int64    `json:"retry,omitempty"` // milliseconds
	Private bool     `json:"private,omitempty"`
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
	id := fs.String("id", "", "event ID (default: assigned by the hub); only with --data")
	data := fs.String("data", "", "event data; without it, each stdin line is one event")
	retry := fs.Duration("retry", 0, "reconnection delay to send with the event")
	private := fs.Bool("private", false, "deliver only to subscribers authorised for the topic")
	token := fs.String("token", "", "send this bearer `token` (a JWT from your issuer or 'ssehub token')")
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
	if err := applyEnv(fs); err != nil {
		return fail(exitUsage, "%v", err)
	}
	dataGiven := false // on the command line or, through applyEnv, in SSEHUB_DATA
	fs.Visit(func(f *flag.Flag) { dataGiven = dataGiven || f.Name == "data" })
	endpoint, err := eventsURL(*hubURL)
	switch {
	case len(pos) > 0:
		return fail(exitUsage, "unexpected argument %q (run 'ssehub publish -h')", pos[0])
	case err != nil:
		return fail(exitUsage, "--url: %v", err)
	case len(topics) == 0:
		return fail(exitUsage, "--topic is required")
	case *id != "" && !dataGiven:
		return fail(exitUsage, "--id needs --data: IDs are unique, so stdin lines get IDs from the hub")
	case *retry < 0:
		return fail(exitUsage, "--retry must not be negative")
	}
	p := &publisher{client: &http.Client{Timeout: 30 * time.Second}, url: endpoint, token: strings.TrimSpace(*token), out: stdout}
	base := publishEvent{Topic: topics, Type: *typ, ID: *id, Retry: retry.Milliseconds(), Private: *private}
	if dataGiven {
		ev := base
		ev.Data = *data
		err = p.send(ctx, []publishEvent{ev})
	} else {
		err = p.lines(ctx, stdin, base)
	}
	if err != nil {
		return fail(exitFail, "%v", err)
	}
	return exitOK
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

// A publisher posts events to a hub and prints their IDs.
type publisher struct {
	client *http.Client
	url    string
	token  string // sent as a bearer token when not empty
	out    io.Writer
}

// maxRetryAfter is the longest Retry-After that send waits for.
const maxRetryAfter = time.Minute

// lines publishes each non-empty line of r as one event's data. Lines are
// batched while more input is already buffered, so a pipe is sent in large
// NDJSON requests while a person typing sees each ID at once.
func (p *publisher) lines(ctx context.Context, r io.Reader, base publishEvent) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var batch []publishEvent
	for {
		line, err := br.ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read stdin: %w", err)
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if line != "" {
			ev := base
			ev.Data = line
			batch = append(batch, ev)
		}
		eof := err != nil
		if len(batch) > 0 && (eof || len(batch) >= maxBatch || br.Buffered() == 0) {
			if err := p.send(ctx, batch); err != nil {
				return err
			}
			batch = batch[:0]
		}
		if eof {
			return nil
		}
	}
}

// send publishes events: one as JSON, several as an NDJSON batch. On a
// 429 it waits for the Retry-After the hub gives, if at most
// maxRetryAfter, and sends again.
func (p *publisher) send(ctx context.Context, events []publishEvent) error {
	for {
		wait, err := p.post(ctx, events)
		if wait == 0 {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

// post sends events once. When the hub answers 429 with a Retry-After of
// at most maxRetryAfter, it returns that delay with the error.
func (p *publisher) post(ctx context.Context, events []publishEvent) (time.Duration, error) {
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	enc.SetEscapeHTML(false)
	for _, ev := range events {
		if err := enc.Encode(ev); err != nil {
			return 0, err
		}
	}
	ctype := "application/json"
	if len(events) > 1 {
		ctype = "application/x-ndjson"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, &body)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", ctype)
	if p.token != "" {
		req.Header.Set("Authorization", "Bearer "+p.token)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	respBody, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, fmt.Errorf("read response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		err := errors.New("hub answered " + problem.Message(resp, respBody))
		if resp.StatusCode == http.StatusTooManyRequests {
			if s, e := strconv.Atoi(resp.Header.Get("Retry-After")); e == nil && s > 0 && time.Duration(s)*time.Second <= maxRetryAfter {
				return time.Duration(s) * time.Second, err
			}
		}
		return 0, err
	}
	ids := strings.Split(strings.TrimRight(string(respBody), "\n"), "\n")
	if len(ids) != len(events) {
		return 0, fmt.Errorf("hub answered %d IDs for %d events", len(ids), len(events))
	}
	_, err = io.WriteString(p.out, strings.Join(ids, "\n")+"\n")
	return 0, err
}
