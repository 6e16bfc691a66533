package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/ssehub/ssehub/sse"
	"github.com/ssehub/ssehub/ssehttp"
)

// GapEventType is the type of the event the hub sends to a subscriber
// that resumes from a Last-Event-ID it cannot resume from losslessly,
// before the events it still holds. Its data is a Gap in JSON.
const GapEventType = "ssehub-gap"

// Reasons in a Gap.
const (
	gapUnknown = "unknown"
	gapExpired = "expired"
)

// errReplayBudget ends a subscription whose replay reached
// Limits.MaxReplay: its client resumes after the last event replayed.
var errReplayBudget = errors.New("hub: replay budget reached; the client resumes from its last event")

// A Gap is the data of a GapEventType event, in JSON:
//
//	event: ssehub-gap
//	id: 41
//	data: {"lastEventId":"41","reason":"expired","first":"42"}
//
// It tells a client that resumed with a Last-Event-ID that events may be
// missing before the ones that follow: at the start of the replay, or in
// the middle of it when retention removed records the replay had not
// reached yet. The event's own id is the position the replay starts
// after, so that a client reconnecting before the next event resumes
// from there without being told of the gap again.
//
// A Last-Event-ID the Log does not hold (reason "unknown") gets no
// replay at all: the gap event, then live events. The hub cannot place
// such an ID (garbage, a publisher's ID retention removed, a position
// beyond the newest, as a client holds after its hub's Log was reset),
// so it cannot tell which events the client lacks; replaying all the
// history it holds, up to a million events by default, would let any
// request cost that much, and would still leave the client unable to
// tell which of them it had seen. The gap event says where the complete
// stream begins.
type Gap struct {
	// LastEventID is the client's last event ID when the gap was found:
	// the Last-Event-ID it sent or, when retention overtook the replay
	// while it was under way, the ID of the last event replayed.
	LastEventID string `json:"lastEventId"`
	// Reason is "expired" when the ID is a position the Log no longer
	// holds (retention removed it and later events): the events the Log
	// still holds follow. It is "unknown" when the Log does not know the
	// ID: it never did, or retention removed a publisher-given ID, which
	// the hub cannot tell apart, or it is a position beyond the newest.
	// Only live events follow.
	Reason string `json:"reason"`
	// First is the decimal position from which the stream is complete:
	// every matching event at this position or later is delivered. It is
	// the oldest position the Log holds, or the next position to be
	// assigned when it holds none.
	First string `json:"first"`
}

// Buffer sizes of a subscription.
const (
	// replayChunk is how many bytes of replayed events are written at once.
	replayChunk = 32 << 10
	// maxPooledBuf is the largest write buffer kept for reuse.
	maxPooledBuf = 256 << 10
	// maxSpare is the largest queue slice a writer keeps between drains;
	// a subscriber that had a burst gives the larger one back.
	maxSpare = 64
)

// bufPool holds *[]byte write buffers, shared by all subscriptions so that
// an idle one holds none.
var bufPool sync.Pool

func getBuf() *[]byte {
	if p, ok := bufPool.Get().(*[]byte); ok {
		return p
	}
	b := make([]byte, 0, replayChunk+replayChunk/2)
	return &b
}

func putBuf(p *[]byte) {
	if cap(*p) > maxPooledBuf {
		return
	}
	*p = (*p)[:0]
	bufPool.Put(p)
}

// parseSelectors parses the topic parameters of a subscription in
// dialect d, dropping repeats.
func (l *limits) parseSelectors(d *dialect, raw []string) ([]Selector, error) {
	switch {
	case len(raw) == 0:
		return nil, errors.New("at least one topic parameter is required")
	case len(raw) > l.maxSelectors:
		return nil, fmt.Errorf("at most %d topic parameters are allowed", l.maxSelectors)
	}
	sels := make([]Selector, 0, len(raw))
next:
	for _, r := range raw {
		for _, s := range sels {
			if s.String() == r {
				continue next
			}
		}
		if len(r) > l.maxSelectorBytes {
			return nil, fmt.Errorf("topic selector %.32q... is longer than %d bytes", r, l.maxSelectorBytes)
		}
		sel, err := d.parse(r)
		if err != nil {
			return nil, errors.New(trimPrefix(err))
		}
		sels = append(sels, sel)
	}
	return sels, nil
}

// serveSubscribe serves GET /events: the native front-end of subscribe.
func (h *Hub) serveSubscribe(w http.ResponseWriter, r *http.Request) {
	grant, ok := h.authenticate(w, r, true)
	if !ok {
		return
	}
	sels, err := h.lim.parseSelectors(nativeDialect, r.URL.Query()["topic"])
	if err != nil {
		writeProblem(w, http.StatusBadRequest, err.Error(), nil)
		return
	}
	s := newSubscriber(nativeDialect, sels, h.opts.QueueSize)
	s.grant = grant
	h.subscribe(w, r, s, ssehttp.LastEventID(r))
}

// subscribe serves the subscription of s, which a front-end made of r
// and has authorised, resuming after the cursor lastID ("" for none).
//
// The order of its steps is what makes replay and live delivery meet
// without a gap or a repeat. It registers the subscriber for live events
// first, so every event the fan-out handles from then on reaches its
// queue; then it reads the Log's newest position, last: every event after
// last is delivered live, and the queue drops those at or below it, which
// the replay covers (or, for a first connection, which precede it). Both
// happen before the stream opens, so an event published after the client
// saw the stream open is always delivered. (A first read of the Log's end,
// before registering, already lets the queue drop the events the fan-out
// has yet to handle from before then.)
//
// Over HTTP/1.x without TLS it takes the connection over (see conn.go),
// writes the opening and the replay itself, hands the subscriber to its
// shard and returns, leaving the stream to the Hub. Otherwise (HTTP/2,
// TLS, or a ResponseWriter that cannot be taken over) the stream is an
// ssehttp.Stream, written by this handler until it ends.
func (h *Hub) subscribe(w http.ResponseWriter, r *http.Request, s *subscriber, lastID string) {
	grant := s.grant
	s.client = clientAddr(r, h.opts.TrustedProxies)
	s.remote = remoteOf(s.client, r)
	if h.opts.Gzip {
		// As ssehttp.NewStream decides it with GzipFrames, so that both
		// paths agree; middleware that encodes the body itself wins.
		hd := w.Header()
		s.gz = hd.Get("Content-Encoding") == "" && ssehttp.AcceptsGzip(r)
		if !varyHas(hd, "Accept-Encoding") {
			hd.Add("Vary", "Accept-Encoding")
		}
	}
	// A provisional floor, set before s is shared: the stream starts from
	// the Log's end read after registering, so the records up to its end
	// now need not be queued. Without it, a subscriber that registers
	// while the fan-out is far behind the Log's end (a large batch just
	// appended) has its queue filled with them, and is evicted as too
	// slow before its stream has begun.
	t0 := time.Now()
	_, last0, err := h.log.Bounds(r.Context())
	h.m.observeStore(opBounds, t0, err)
	if err == nil {
		s.floor = last0
	}
	registered, err := h.register(s)
	if err != nil {
		retry := h.retryAfter()
		switch err {
		case errTooManyStreams, errTooManyFromClient:
			reason := refusedStreams
			if err == errTooManyFromClient {
				reason = refusedPerClient
			}
			h.m.refused.WithLabelValues(reason).Inc()
			h.logRefused(r, http.StatusTooManyRequests, err.Error(), grant)
			w.Header().Set("Retry-After", retry)
			writeProblem(w, http.StatusTooManyRequests, err.Error(), nil)
		default:
			if h.opts.Retry > 0 {
				w.Header().Set("Retry-After", retry)
			}
			writeProblem(w, http.StatusServiceUnavailable, "the hub is shutting down", nil)
		}
		return
	}

	// The store calls end when the client goes or the hub closes,
	// whichever is first.
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(h.ctx, cancel)
	defer stop()

	var (
		last uint64
		cur  cursor
	)
	if registered {
		var first uint64
		t0 := time.Now()
		first, last, err = h.log.Bounds(ctx)
		h.m.observeStore(opBounds, t0, err)
		if err == nil {
			s.setFloor(last)
			cur, err = h.resolve(ctx, s.d, lastID, first, last)
		}
		if err != nil && ctx.Err() == nil {
			h.logger.Warn("subscription ended: log unavailable", slog.String("remote", s.remote), "err", err)
		}
		if err == nil && s.d.cursorHeader && lastID != "" {
			w.Header().Set("Last-Event-ID", cur.shown)
		}
	}

	if registered && err == nil && r.ProtoMajor == 1 && r.TLS == nil && s.sh != nil {
		conn, ok, herr := hijack(w)
		switch {
		case herr != nil:
			h.unregister(s)
			h.logger.Warn("subscription refused: cannot take over the connection", slog.String("remote", s.remote), "err", herr)
			return
		case ok:
			h.serveTakenOver(ctx, conn, w.Header(), s, cur, last)
			return
		}
	}
	if registered {
		defer h.unregister(s)
	}

	st, serr := ssehttp.NewStream(w, r, &h.streamOpts)
	if serr == nil && st.GzipFrames() != s.gz {
		st.Close()
		h.logger.Error("subscription refused: compression negotiated twice, differently", slog.Bool("stream", st.GzipFrames()), slog.Bool("hub", s.gz))
		return
	}
	if serr != nil {
		if errors.Is(serr, ssehttp.ErrFlushUnsupported) {
			h.logger.Error("subscription refused: response cannot flush", "err", serr)
			writeProblem(w, http.StatusInternalServerError, "the response cannot be streamed", nil)
		}
		return
	}
	defer st.Close()
	if !registered || err != nil {
		// Not 503: an EventSource would give up for good. Ending the
		// stream makes it retry after the retry delay.
		_ = st.Comment("hub unavailable; reconnect later")
		return
	}
	if s.gz { // before connections, for tests that wait for that
		h.m.gzipped.Inc()
	}
	h.m.connections.Inc()
	defer h.m.connections.Dec()
	h.logger.Debug("subscribed", slog.String("remote", s.remote), "selectors", len(s.sels))

	if err := h.start(ctx, st, s, cur, last); err != nil {
		h.logStartFailed(s.remote, err, ctx.Err() == nil && st.Err() == nil)
		h.logEnd(s.remote, err)
		return
	}
	stop()
	cancel()
	h.logEnd(s.remote, h.writeLive(st, s))
}

// serveTakenOver serves a subscription whose connection conn it has
// taken over: it writes the response head, built from hd, and the
// opening bytes, then what start sends, and hands s to its shard. If
// anything fails, or the subscription ends first, it closes conn and
// unregisters s itself.
func (h *Hub) serveTakenOver(ctx context.Context, conn net.Conn, hd http.Header, s *subscriber, cur cursor, last uint64) {
	if s.gz {
		h.m.gzipped.Inc()
	}
	h.m.connections.Inc()
	h.logger.Debug("subscribed", slog.String("remote", s.remote), "selectors", len(s.sels))

	// The head and opening bytes are written even if the subscription
	// has ended already, so that the client sees a stream that ends, and
	// retries. For a first connection, the id event goes with them.
	bp := getBuf()
	b := appendHead((*bp)[:0], hd, s.gz)
	body := len(b)
	b = appendOpening(b, h.opts.Retry)
	if !cur.given {
		b, _ = sse.AppendEvent(b, &sse.Event{ID: s.d.showPos(last)}) // no CR, LF or NUL: cannot fail
	}
	if s.gz {
		zp := getBuf()
		*zp = ssehttp.AppendGzipFrame(ssehttp.AppendGzipHeader((*zp)[:0]), b[body:])
		b = append(b[:body], *zp...)
		putBuf(zp)
	}
	if h.opts.WriteTimeout > 0 {
		_ = conn.SetWriteDeadline(time.Now().Add(h.opts.WriteTimeout))
	}
	_, err := conn.Write(b)
	*bp = b[:0]
	putBuf(bp)
	s.mu.Lock()
	s.conn = conn // from now on, ending s interrupts its writes
	s.mu.Unlock()
	s.raw = rawConnOf(conn)

	hw := &handlerWriter{s: s, timeout: h.opts.WriteTimeout, failed: err != nil}
	if err == nil && cur.given {
		err = h.start(ctx, hw, s, cur, last)
	}
	if err == nil && s.sh.adopt(s) {
		return
	}
	if err != nil {
		h.logStartFailed(s.remote, err, ctx.Err() == nil && !hw.failed)
		s.stop(err) // unless it has ended already
	}
	if h.finish(s) {
		h.unregister(s)
	}
}

// logStartFailed logs, as a warning, that start returned err when that
// is unexpected: when neither the client nor the hub went away and the
// replay did not just reach its budget. The end of the subscription is
// logged as any end is, by logEnd.
func (h *Hub) logStartFailed(remote string, err error, unexpected bool) {
	if unexpected && !errors.Is(err, errReplayBudget) {
		h.logger.Warn("subscription ended: cannot start", slog.String("remote", remote), "err", err)
	}
}

// A handlerWriter writes the replay of a taken-over connection, from its
// handler's goroutine, with blocking writes. It deflates each write on
// its own when the stream is compressed.
type handlerWriter struct {
	s       *subscriber
	timeout time.Duration
	failed  bool   // a write failed (or the subscription ended)
	zbuf    []byte // the compressed form of a write
}

func (w *handlerWriter) WriteRaw(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	if w.s.gz {
		w.zbuf = ssehttp.AppendGzipFrame(w.zbuf[:0], p)
		p = w.zbuf
	}
	err := w.s.writeBlocking(p, max(w.timeout, 0))
	w.failed = w.failed || err != nil
	return err
}

// A streamWriter writes bytes already in the wire format, with one write
// and one flush: an ssehttp.Stream, or a handlerWriter.
type streamWriter interface {
	WriteRaw(p []byte) error
}

// start sends what a subscription begins with, after the opening bytes:
// for a first connection (no Last-Event-ID), an event that only sets the
// client's last event ID to last, so that its reconnection resumes from
// there; for a resumption from cur, a gap event if the ID cannot be
// resumed from losslessly, then the matching events the Log holds after
// it, up to last. When those are more than Limits.MaxReplay, it sends
// that many and returns errReplayBudget: the subscription must end, and
// its client resumes after them.
//
// last is the Log's newest position, read after s was registered, and
// s's queue already drops the events at or below it.
func (h *Hub) start(ctx context.Context, st streamWriter, s *subscriber, cur cursor, last uint64) error {
	if !cur.given {
		b, _ := sse.AppendEvent(nil, &sse.Event{ID: s.d.showPos(last)}) // no CR, LF or NUL: cannot fail
		return st.WriteRaw(b)
	}
	lastID, after, gap := cur.id, cur.after, cur.gap
	var err error
	if after > last { // an ID appended since Bounds: not replayed, so not live either
		s.setFloor(after)
	}

	bp := getBuf()
	defer putBuf(bp)
	b := *bp
	defer func() { *bp = b }()

	h.m.replays.Inc()
	if gap != "" {
		b = h.appendGap(b, s.d, lastID, gap, after)
	}

	var (
		n       int
		werr    error
		cut     bool          // the replay reached the budget with events left
		writing time.Duration // spent writing, to leave out of the read latency
	)
	budget := h.lim.maxReplay
	fn := func(rec *Record) bool {
		if rec.Pos > last {
			return false // past the floor: the queue has the rest
		}
		if rec.Type == nodeEventType {
			return true
		}
		if !s.mayReceive(rec) {
			return true
		}
		if budget > 0 && n == budget {
			cut = true
			return false
		}
		nb, err := appendRecord(b, rec, s.d)
		if err != nil {
			h.logger.Error("event cannot be encoded; not replayed", "pos", rec.Pos, "id", strconv.Quote(rec.ID))
			return true
		}
		b = nb
		n++
		lastID = s.d.showID(rec.ID)
		if len(b) >= replayChunk {
			w0 := time.Now()
			werr = st.WriteRaw(b)
			writing += time.Since(w0)
			b = b[:0]
		}
		return werr == nil
	}
	t0 := time.Now()
	for after < last {
		err = h.log.Read(ctx, after, s.sels, fn)
		if werr != nil || cut || !errors.Is(err, ErrTrimmed) {
			break
		}
		// Retention removed records the replay had not reached: say so,
		// as for a resumption from too far back, and go on from the
		// oldest record held. lastID is now the last event sent.
		first, _, berr := h.log.Bounds(ctx)
		if berr != nil {
			err = berr
			break
		}
		next := last // none of the records up to last is held any more
		if first > 0 {
			next = min(first-1, last)
		}
		b = h.appendGap(b, s.d, lastID, gapExpired, next)
		after, err = next, nil
	}
	h.m.store.WithLabelValues(opRead).Observe((time.Since(t0) - writing).Seconds())
	if err != nil && werr == nil && !errors.Is(err, context.Canceled) {
		h.m.storeErrors.WithLabelValues(opRead).Inc()
	}
	h.m.replayed.Add(float64(n))
	switch {
	case werr != nil:
		return werr
	case err != nil:
		return fmt.Errorf("hub: replay: %w", err)
	case ctx.Err() != nil: // Read may stop early without an error
		return ctx.Err()
	}
	if err := st.WriteRaw(b); err != nil {
		return err
	}
	if cut {
		h.m.replayCuts.Inc()
		return errReplayBudget
	}
	return nil
}

// appendGap appends to b the GapEventType event telling a client whose
// last event ID is lastID that events may be missing, for reason, before
// those after position after, and counts it. Its ID is after, as d
// shows it.
func (h *Hub) appendGap(b []byte, d *dialect, lastID, reason string, after uint64) []byte {
	h.m.gaps.WithLabelValues(reason).Inc()
	data, _ := json.Marshal(Gap{LastEventID: lastID, Reason: reason, First: strconv.FormatUint(after+1, 10)})
	b, _ = sse.AppendEvent(b, &sse.Event{ID: d.showPos(after), Type: GapEventType, Data: string(data)})
	return b
}

// A cursor is where a subscription resumes: it replays the records
// after position after. The zero cursor is a first connection's.
type cursor struct {
	given bool   // the client gave a Last-Event-ID
	id    string // the one it gave
	after uint64
	gap   string // empty when resuming is lossless; otherwise why not (a Gap reason)
	shown string // the ID of the position after, as the endpoint's Last-Event-ID header shows it
}

// resolve finds where a subscription of dialect d resuming from lastID
// starts. first and last are the Log's bounds. An ID the Log holds
// resumes after it; an ID of digits, or positionIRI and digits, is a
// position, and resumes after it when it is still held or is the
// oldest position the Log can resume from; d's earliest keyword resumes
// from the oldest record held.
func (h *Hub) resolve(ctx context.Context, d *dialect, lastID string, first, last uint64) (cursor, error) {
	if lastID == "" {
		return cursor{after: last}, nil
	}
	cur := cursor{given: true, id: lastID, shown: lastID}
	// The oldest position the replay can start after.
	oldest := last
	if first > 0 {
		oldest = first - 1
	}
	if d.earliest != "" && lastID == d.earliest {
		cur.after = oldest
		return cur, nil
	}
	t0 := time.Now()
	pos, err := h.log.Lookup(ctx, lastID)
	if errors.Is(err, ErrNotFound) {
		h.m.observeStore(opLookup, t0, nil) // an answer, not a failure
	} else {
		h.m.observeStore(opLookup, t0, err)
	}
	switch {
	case err == nil:
		cur.after = pos
		return cur, nil
	case !errors.Is(err, ErrNotFound):
		return cursor{}, fmt.Errorf("hub: look up last event id: %w", err)
	}
	// A position: the hub assigned it, or the client has it from a gap
	// event or from the start of a stream. The record need not be held:
	// it is enough that no later one is gone.
	if p, ok := cursorPos(lastID); ok && p <= last {
		if p >= oldest {
			cur.after = p
			return cur, nil
		}
		cur.after, cur.gap, cur.shown = oldest, gapExpired, d.showPos(oldest)
		return cur, nil
	}
	// Not a place in this Log: live events only (see Gap).
	cur.after, cur.gap, cur.shown = last, gapUnknown, d.showPos(last)
	return cur, nil
}

// parsePos parses id as a position when it is made only of ASCII digits.
func parsePos(id string) (uint64, bool) {
	if !allDigits(id) {
		return 0, false
	}
	p, err := strconv.ParseUint(id, 10, 64)
	return p, err == nil
}

// allDigits reports whether s is non-empty and made only of ASCII digits.
func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// writeLive is a subscription's writer loop: it waits for frames to be
// queued and writes each batch of them with one write and one flush,
// until the stream ends (client gone, a failed write), the hub ends the
// subscription (too slow, Run stopped) or the hub closes. It returns why.
// Heartbeats are the Stream's, sent from its own timer.
func (h *Hub) writeLive(st *ssehttp.Stream, s *subscriber) error {
	var spare []*frame
	for {
		select {
		case <-s.signal:
		case <-st.Done():
			return st.Err()
		case <-h.ctx.Done():
			return errClosed
		}
		q, end, last := s.take(spare)
		if end != nil {
			return end
		}
		err := writeFrames(st, q, s.gz)
		if err == nil && last {
			err = errExpired
		}
		clear(q) // let the frames go
		spare = nil
		if cap(q) <= maxSpare {
			spare = q[:0]
		}
		if err != nil {
			return err
		}
	}
}

// writeFrames writes q to st with one write and one flush: their
// compressed bytes when gz is set (st is compressed in frames).
func writeFrames(st *ssehttp.Stream, q []*frame, gz bool) error {
	write := st.WriteRaw
	if gz {
		write = st.WriteDeflated
	}
	switch len(q) {
	case 0:
		return nil
	case 1:
		return write(q[0].bytes(gz))
	}
	bp := getBuf()
	b := (*bp)[:0]
	for _, f := range q {
		b = append(b, f.bytes(gz)...)
	}
	err := write(b)
	*bp = b
	putBuf(bp)
	return err
}
