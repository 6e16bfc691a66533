package eventsource

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"math/rand/v2"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ssehub/ssehub/sse"
)

// A ReadyState is the state of an EventSource, as the browser's
// EventSource.readyState. The zero value is Connecting.
type ReadyState int32

// The ready states, with the browser's numeric values.
const (
	// Connecting: the connection has not been established yet, or it was
	// lost and the EventSource is reconnecting.
	Connecting ReadyState = 0
	// Open: a stream is open and events are being dispatched.
	Open ReadyState = 1
	// Closed: the EventSource was closed, or the connection failed for
	// good. It does not reconnect.
	Closed ReadyState = 2
)

// String returns "CONNECTING", "OPEN" or "CLOSED", the names of the
// browser's constants, or "ReadyState(n)" for any other value.
func (s ReadyState) String() string {
	switch s {
	case Connecting:
		return "CONNECTING"
	case Open:
		return "OPEN"
	case Closed:
		return "CLOSED"
	}
	return "ReadyState(" + strconv.Itoa(int(s)) + ")"
}

// An Event is one event fired by an EventSource: "open" when a stream
// opens, "error" when a connection is lost or fails, and "message" or a
// named type for each event the stream dispatches. The zero value is an
// event of empty type. Handlers receive a copy, which they may keep.
//
// As in a browser, a stream can send an event named "open" or "error"
// (with an "event:" field); it reaches the listeners of that type with its
// Data and LastEventID set, ReadyState Open and a nil Err.
type Event struct {
	// Type is "open", "error", "message", or the named type from the
	// stream's "event" field.
	Type string
	// Data is the event's data, for message and named events.
	Data string
	// LastEventID is the stream's last event ID when the event was
	// dispatched, for message and named events.
	LastEventID string
	// ReadyState is the EventSource's state when the event fired. An
	// error event with Connecting means the EventSource will reconnect;
	// with Closed, it failed for good.
	ReadyState ReadyState
	// Err is the cause of an error event: a network error, an error
	// wrapping io.EOF when the server ended the stream, an error wrapping
	// sse.ErrEventTooLarge, a *ResponseError when a response failed the
	// connection, or an error wrapping ErrInvalidHeader when the stream's
	// last event ID cannot be sent. It is nil for every other event.
	Err error

	// message is set for the events the stream dispatched: a browser's
	// MessageEvent, as opposed to the plain Event of open and error.
	message bool
}

// IsMessage reports whether ev was dispatched by the stream, as a
// browser's MessageEvent is, rather than fired by the connection: an event
// the stream names "open" or "error" is a message; the connection's own
// open and error events are not.
func (ev Event) IsMessage() bool { return ev.message }

// Options configure an EventSource. A nil *Options, like the zero value,
// selects every default. New copies what it needs; changing an Options
// afterwards has no effect on the EventSource.
type Options struct {
	// Client makes the requests. If nil, http.DefaultClient is used,
	// which has no overall Timeout (a Timeout would end every stream).
	// Redirects are followed as the Client does. A cookie jar on the
	// Client is how a Go program sends credentials, as a browser does
	// for withCredentials.
	Client *http.Client

	// Header holds extra headers sent with every request. The
	// EventSource sets Accept, Cache-Control and Last-Event-ID itself,
	// replacing any values here.
	Header http.Header

	// LastEventID is the initial last event ID: it is sent in the
	// Last-Event-ID header of the first request, and events without an
	// "id" field report it until the stream sets another. If empty, the
	// first request has no Last-Event-ID header.
	LastEventID string

	// MaxEventSize is the largest event, and the longest line, the
	// decoder holds. A stream that goes past it is treated as a network
	// error: the EventSource reconnects. If zero or less,
	// sse.DefaultMaxEventSize is used.
	MaxEventSize int

	// Retry is the initial reconnection delay; a "retry" field in the
	// stream replaces it. If zero or less, 3s is used, as browsers do.
	Retry time.Duration

	// MaxRetry caps the exponential backoff between attempts that fail
	// to connect, though never below the reconnection delay. If zero or
	// less, 30s is used.
	MaxRetry time.Duration
}

// Defaults for Options.
const (
	defaultRetry    = 3 * time.Second
	defaultMaxRetry = 30 * time.Second

	// minBackoff is the least wait after an attempt that failed to
	// connect, so that a "retry: 0" stream cannot make a client dial a
	// down server in a tight loop. It does not apply after a stream that
	// opened.
	minBackoff = 100 * time.Millisecond
)

// An EventSource is a client for a server-sent event stream that behaves
// as the browser's EventSource of the WHATWG HTML standard: it connects,
// dispatches the stream's events to listeners, reconnects after a network
// error or the end of a stream, and stops for good on a response that is
// not a 200 text/event-stream.
//
// Run, or a range over Events, does the work on the caller's goroutine;
// the EventSource starts no goroutine of its own, so none remains once Run
// returns. Every other method is safe for concurrent use, including from
// inside a handler. Run owns each response body and closes it. The zero
// value is not usable; call New.
type EventSource struct {
	url      string
	client   *http.Client
	header   http.Header // sent on every request, before Accept etc. are set
	initID   string
	maxSize  int
	retry    time.Duration
	maxRetry time.Duration

	state atomic.Int32 // a ReadyState; Closed is final

	mu        sync.Mutex             // guards everything below
	listeners map[string][]*listener // copy on write: a slice is never modified
	slots     [numSlots]*listener    // the onX handlers, nil when unset
	started   bool                   // Run has been called
	cancel    context.CancelFunc     // ends the running Run's requests and waits
	err       error                  // what Run returned
	lastID    string                 // the last event ID as of the last blank line
}

// A listener is one registered function. Its fn is guarded by
// EventSource.mu; nil means removed.
type listener struct {
	fn func(Event)
}

const (
	slotOpen = iota
	slotMessage
	slotError
	numSlots
)

var slotTypes = [numSlots]string{"open", "message", "error"}

// New returns an EventSource for the absolute http or https URL rawURL,
// configured by opts (nil for the defaults). It does no I/O: the
// connection starts when Run is called. The EventSource starts in the
// Connecting state.
//
// New returns an error wrapping ErrInvalidURL for a URL that does not parse
// or is not http or https, and one wrapping ErrInvalidHeader for an
// Options.Header or Options.LastEventID that cannot be sent.
func New(rawURL string, opts *Options) (*EventSource, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %w", ErrInvalidURL, rawURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%w %q: scheme must be http or https", ErrInvalidURL, rawURL)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("%w %q: no host", ErrInvalidURL, rawURL)
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	for name, values := range o.Header {
		if !validHeaderName(name) {
			return nil, fmt.Errorf("%w: name %q", ErrInvalidHeader, name)
		}
		for _, v := range values {
			if !validHeaderValue(v) {
				return nil, fmt.Errorf("%w: %s value %q", ErrInvalidHeader, name, v)
			}
		}
	}
	if !validHeaderValue(o.LastEventID) {
		return nil, fmt.Errorf("%w: Last-Event-ID %q", ErrInvalidHeader, o.LastEventID)
	}
	es := &EventSource{
		url:       u.String(),
		client:    o.Client,
		header:    o.Header.Clone(),
		initID:    o.LastEventID,
		maxSize:   o.MaxEventSize,
		retry:     o.Retry,
		maxRetry:  o.MaxRetry,
		listeners: make(map[string][]*listener),
		lastID:    o.LastEventID,
	}
	if es.client == nil {
		es.client = http.DefaultClient
	}
	if es.header == nil {
		es.header = make(http.Header)
	}
	if es.retry <= 0 {
		es.retry = defaultRetry
	}
	if es.maxRetry <= 0 {
		es.maxRetry = defaultMaxRetry
	}
	return es, nil
}

// URL returns the URL the EventSource connects to, as parsed by New. It
// stays the same after a redirect: every reconnection starts from it.
func (es *EventSource) URL() string { return es.url }

// ReadyState returns the current state. It is safe to call from any
// goroutine.
func (es *EventSource) ReadyState() ReadyState { return ReadyState(es.state.Load()) }

// LastEventID returns the stream's last event ID: the ID sent in
// Last-Event-ID on the next reconnection. Before any stream sets one it is
// Options.LastEventID. It is safe to call from any goroutine.
func (es *EventSource) LastEventID() string {
	es.mu.Lock()
	defer es.mu.Unlock()
	return es.lastID
}

// Err returns what Run returned, or nil while Run has not returned. After
// a range over Events ends, it tells why: nil when the loop broke, Close
// was called or the context was done, and the cause, usually a
// *ResponseError, when the connection failed for good.
func (es *EventSource) Err() error {
	es.mu.Lock()
	defer es.mu.Unlock()
	return es.err
}

// AddEventListener registers fn for events of type typ: "open", "error",
// "message", or a type named by the stream's "event" field (named events
// do not reach "message" listeners). Listeners of a type are called in the
// order they were added, on Run's goroutine, with the onX handler in the
// place where it was first set. Each call adds a new listener, even for
// the same fn; a nil fn is ignored.
//
// The returned function removes the listener; it is idempotent. Listeners
// may be added and removed at any time from any goroutine, including from
// inside a handler: as in the DOM, a listener added during an event's
// dispatch is not called for that event, and a listener removed during it
// is not called if it has not been already.
func (es *EventSource) AddEventListener(typ string, fn func(Event)) (remove func()) {
	if fn == nil {
		return func() {}
	}
	es.mu.Lock()
	defer es.mu.Unlock()
	l := es.addLocked(typ, fn)
	return func() {
		es.mu.Lock()
		defer es.mu.Unlock()
		es.removeLocked(typ, l)
	}
}

// addLocked appends a listener for typ. es.mu must be held.
func (es *EventSource) addLocked(typ string, fn func(Event)) *listener {
	l := &listener{fn: fn}
	old := es.listeners[typ]
	es.listeners[typ] = append(old[:len(old):len(old)], l)
	return l
}

// removeLocked removes l from the listeners of typ, if it is there.
// es.mu must be held.
func (es *EventSource) removeLocked(typ string, l *listener) {
	if l.fn == nil {
		return
	}
	l.fn = nil
	old := es.listeners[typ]
	ls := make([]*listener, 0, len(old))
	for _, x := range old {
		if x != l {
			ls = append(ls, x)
		}
	}
	if len(ls) == 0 {
		delete(es.listeners, typ)
	} else {
		es.listeners[typ] = ls
	}
}

// OnOpen sets the onopen handler, replacing the previous one; nil clears
// it. Like the browser's event handler attribute, it is called among the
// "open" listeners at the position where it was set while unset, and
// replacing it keeps that position.
func (es *EventSource) OnOpen(fn func(Event)) { es.setSlot(slotOpen, fn) }

// OnMessage sets the onmessage handler, replacing the previous one; nil
// clears it. It is called for "message" events only, at its place among
// the "message" listeners, as OnOpen describes.
func (es *EventSource) OnMessage(fn func(Event)) { es.setSlot(slotMessage, fn) }

// OnError sets the onerror handler, replacing the previous one; nil clears
// it. It is called for "error" events, at its place among the "error"
// listeners, as OnOpen describes.
func (es *EventSource) OnError(fn func(Event)) { es.setSlot(slotError, fn) }

func (es *EventSource) setSlot(i int, fn func(Event)) {
	es.mu.Lock()
	defer es.mu.Unlock()
	l := es.slots[i]
	switch {
	case fn == nil && l != nil:
		es.removeLocked(slotTypes[i], l)
		es.slots[i] = nil
	case fn != nil && l != nil:
		l.fn = fn
	case fn != nil:
		es.slots[i] = es.addLocked(slotTypes[i], fn)
	}
}

// Close closes the EventSource, as the browser's close(): the state
// becomes Closed at once, an in-flight request or reconnection wait is
// aborted, Run returns nil promptly, and no further event fires. Called
// from a handler, it lets the rest of that event's listeners run, as in
// the DOM; likewise an event whose dispatch had begun when Close was
// called from another goroutine is finished. No error event fires. Close is idempotent and safe to call from
// any goroutine, including from inside a handler, and before Run.
func (es *EventSource) Close() {
	es.state.Store(int32(Closed))
	es.mu.Lock()
	cancel := es.cancel
	es.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// Run connects and dispatches events until the EventSource is closed or
// fails, calling the listeners in order on the caller's goroutine. It may
// be called once; a second call returns ErrAlreadyStarted.
//
// Run returns nil when Close is called or ctx is done (which acts as
// Close: the state becomes Closed and no error event fires). When a
// response fails the connection it fires an error event with ReadyState
// Closed and returns the cause, a *ResponseError; it returns an error
// wrapping ErrInvalidHeader, after the same error event, when the stream
// set a last event ID that cannot be sent. A panic in a handler propagates
// out of Run, which closes the EventSource on the way. When Run returns
// the state is Closed and no goroutine started by Run remains.
//
// The processing model is the browser's: each request is a GET with
// Accept: text/event-stream, Cache-Control: no-cache, Last-Event-ID when
// the last event ID is not empty, and Options.Header. A 200 response whose
// Content-Type essence is text/event-stream (parameters such as charset
// are ignored; the body is always read as UTF-8) opens the stream: the
// state becomes Open and an "open" event fires. Any other response fails
// the connection. A network error while connecting, or the end of an open
// stream by EOF, a read error or an event larger than
// Options.MaxEventSize, sets the state to Connecting, fires an "error"
// event and reconnects after the reconnection delay: Options.Retry until
// the stream sends a "retry" field. Consecutive attempts that fail to
// connect wait the delay, then twice it, four times it and so on, at least
// 100ms and at most Options.MaxRetry (never less than the delay); an
// opened stream resets that backoff. Each wait is lengthened by a random
// jitter of up to a fifth, so that clients dropped together do not return
// together.
func (es *EventSource) Run(ctx context.Context) error {
	return es.run(ctx, nil)
}

// Events returns an iterator over every event the EventSource fires, in
// order: open, message, named and error events alike, each after the
// listeners of its type have been called. Ranging over it calls Run on
// the ranging goroutine with ctx. Breaking out of the loop closes the
// EventSource; the loop also ends when Close is called, ctx is done, or
// the connection fails for good, after its error event. Afterwards Err
// returns what Run returned. The iterator may be ranged over once; as Run
// twice, a second range yields nothing and leaves Err unchanged.
func (es *EventSource) Events(ctx context.Context) iter.Seq[Event] {
	return func(yield func(Event) bool) {
		stopped := false
		es.run(ctx, func(ev Event) {
			if stopped {
				return
			}
			if !yield(ev) {
				stopped = true
				es.Close()
			}
		})
	}
}

func (es *EventSource) run(ctx context.Context, sink func(Event)) (err error) {
	es.mu.Lock()
	if es.started {
		es.mu.Unlock()
		return ErrAlreadyStarted
	}
	es.started = true
	if es.ReadyState() == Closed {
		es.mu.Unlock()
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	es.cancel = cancel
	es.mu.Unlock()

	r := &runner{es: es, ctx: ctx, sink: sink}
	defer func() {
		// Also on a handler's panic: leave the EventSource closed.
		es.state.Store(int32(Closed))
		cancel()
		es.mu.Lock()
		es.err = err
		es.mu.Unlock()
	}()
	return r.loop()
}

// A runner is one Run call. Everything in it is owned by Run's goroutine.
type runner struct {
	es       *EventSource
	ctx      context.Context // canceled by Close
	sink     func(Event)     // the Events iterator, or nil
	dec      *sse.Decoder
	failures int    // consecutive attempts that failed to connect
	lastID   string // the last event ID last given to es.setLastID
}

func (r *runner) loop() error {
	es := r.es
	r.dec = sse.NewDecoder(nil)
	r.dec.SetMaxEventSize(es.maxSize)
	r.dec.SetLastEventID(es.initID)
	r.lastID = es.initID
	for {
		if id := r.dec.LastEventID(); !validHeaderValue(id) {
			return r.fail(fmt.Errorf("%w: Last-Event-ID %q", ErrInvalidHeader, id))
		}
		resp, err := r.connect()
		if err != nil {
			if r.closed() {
				return nil
			}
			r.failures++
			if !r.reestablish(err) {
				return nil
			}
			continue
		}
		end, rerr := r.stream(resp)
		resp.Body.Close()
		if rerr != nil {
			return r.fail(rerr)
		}
		if r.closed() || !r.reestablish(end) {
			return nil
		}
	}
}

// connect sends one request.
func (r *runner) connect() (*http.Response, error) {
	es := r.es
	req, err := http.NewRequestWithContext(r.ctx, http.MethodGet, es.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header = es.header.Clone()
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	if id := r.dec.LastEventID(); id != "" {
		req.Header.Set("Last-Event-ID", id)
	}
	return es.client.Do(req)
}

// stream handles one response. It returns a *ResponseError when the
// response fails the connection. Otherwise it announces the connection,
// dispatches events until the stream ends, and returns why it ended; end
// is nil when the EventSource was closed.
func (r *runner) stream(resp *http.Response) (end error, fail *ResponseError) {
	if rerr := checkResponse(resp); rerr != nil {
		return nil, rerr
	}
	// Announce the connection.
	if !r.es.state.CompareAndSwap(int32(Connecting), int32(Open)) || r.closed() {
		return nil, nil
	}
	r.failures = 0
	r.fire(Event{Type: "open", ReadyState: Open})
	r.dec.Reset(resp.Body)
	for !r.closed() {
		var ev sse.Event
		err := r.dec.Decode(&ev)
		if id := r.dec.LastEventID(); id != r.lastID {
			r.lastID = id
			r.es.setLastID(id)
		}
		switch {
		case r.closed():
			return nil, nil
		case err == io.EOF:
			return fmt.Errorf("eventsource: stream ended by server: %w", err), nil
		case err != nil:
			return fmt.Errorf("eventsource: read stream: %w", err), nil
		}
		typ := ev.Type
		if typ == "" {
			typ = "message"
		}
		r.fire(Event{Type: typ, Data: ev.Data, LastEventID: ev.ID, ReadyState: Open, message: true})
	}
	return nil, nil
}

// checkResponse returns the reason resp fails the connection, or nil.
func checkResponse(resp *http.Response) *ResponseError {
	ct := resp.Header.Get("Content-Type")
	if resp.StatusCode == http.StatusOK && isEventStream(ct) {
		return nil
	}
	return &ResponseError{StatusCode: resp.StatusCode, ContentType: ct, Header: resp.Header}
}

// isEventStream reports whether the essence of the MIME type ct is
// text/event-stream. Parameters are ignored, even malformed ones.
func isEventStream(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil && !errors.Is(err, mime.ErrInvalidMediaParameter) {
		return false
	}
	return mt == "text/event-stream"
}

// reestablish reestablishes the connection after cause: the state becomes
// Connecting, an error event fires, and it waits the reconnection delay.
// It reports false if the EventSource was closed meanwhile.
func (r *runner) reestablish(cause error) bool {
	es := r.es
	if !es.state.CompareAndSwap(int32(Open), int32(Connecting)) && es.ReadyState() != Connecting {
		return false
	}
	r.fire(Event{Type: "error", ReadyState: Connecting, Err: cause})
	if r.closed() {
		return false
	}
	base := es.retry
	if d, ok := r.dec.Retry(); ok {
		base = d
	}
	d := withJitter(backoff(base, es.maxRetry, r.failures))
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.ctx.Done():
		}
	}
	return !r.closed()
}

// backoff returns the wait before the next attempt when the reconnection
// delay is base and the last failures attempts failed to connect: base
// after a stream that opened, and otherwise base doubled failures-1 times,
// at least minBackoff, at most max(maxRetry, base).
func backoff(base, maxRetry time.Duration, failures int) time.Duration {
	if failures == 0 {
		return base
	}
	limit := max(maxRetry, base)
	d := max(base, minBackoff)
	for i := 1; i < failures && d < limit; i++ {
		if d > limit/2 {
			d = limit
			break
		}
		d *= 2
	}
	return min(d, limit)
}

// withJitter lengthens d by a random amount of up to a fifth of d.
func withJitter(d time.Duration) time.Duration {
	if d <= 0 {
		return d
	}
	if j := d + rand.N(d/5+1); j > d {
		return j
	}
	return d
}

// fail fails the connection with cause: the state becomes Closed and an
// error event fires. It returns cause, or nil if the EventSource had been
// closed already.
func (r *runner) fail(cause error) error {
	for {
		s := r.es.state.Load()
		if ReadyState(s) == Closed || r.ctx.Err() != nil {
			r.es.state.Store(int32(Closed))
			return nil
		}
		if r.es.state.CompareAndSwap(s, int32(Closed)) {
			break
		}
	}
	r.fire(Event{Type: "error", ReadyState: Closed, Err: cause})
	return cause
}

// closed reports whether the EventSource is closed, closing it if its
// context is done.
func (r *runner) closed() bool {
	if r.ctx.Err() != nil {
		r.es.state.Store(int32(Closed))
		return true
	}
	return r.es.ReadyState() == Closed
}

// fire dispatches ev to the listeners of its type, then to the sink.
func (r *runner) fire(ev Event) {
	es := r.es
	es.mu.Lock()
	ls := es.listeners[ev.Type]
	es.mu.Unlock()
	for _, l := range ls {
		es.mu.Lock()
		fn := l.fn
		es.mu.Unlock()
		if fn != nil {
			fn(ev)
		}
	}
	if r.sink != nil {
		r.sink(ev)
	}
}

func (es *EventSource) setLastID(id string) {
	es.mu.Lock()
	es.lastID = id
	es.mu.Unlock()
}

// validHeaderName reports whether name is an HTTP token.
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// validHeaderValue reports whether net/http will send v as a header value:
// it holds no control character other than tab.
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}
