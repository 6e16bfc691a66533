package hub

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ssehub/ssehub/sse"
	"github.com/ssehub/ssehub/ssehttp"
)

// Why the hub ended a subscription; a subscriber's handler logs them.
var (
	errClosed  = errors.New("hub: closed")
	errSlow    = errors.New("hub: subscriber too slow: queue full")
	errStopped = errors.New("hub: not running")
	errLogBack = errors.New("hub: the log went back: its backend lost records")

	errTooManyStreams    = errors.New("the hub serves as many event streams as it may")
	errTooManyFromClient = errors.New("this client address holds as many event streams as it may")
)

// A frame is one event encoded for the wire, shared by every subscriber it
// is queued for. Nothing modifies a frame once it is made.
type frame struct {
	pos uint64 // the record's position in the Log
	b   []byte // the encoded event, ending in its blank line
	// gz is b deflated on its own (ssehttp.AppendGzipFrame), for the
	// subscribers whose stream is compressed. The fan-out sets it before
	// it queues the frame on the first of them; nil until then.
	gz []byte
}

// newFrame returns a frame of b at pos, with its compressed form when
// gz is set.
func newFrame(pos uint64, b []byte, gz bool) *frame {
	f := &frame{pos: pos, b: b}
	if gz {
		f.gz = ssehttp.AppendGzipFrame(nil, b)
	}
	return f
}

// bytes returns f's bytes as a subscriber whose stream is compressed
// (gz) or not is sent them.
func (f *frame) bytes(gz bool) []byte {
	if gz {
		return f.gz
	}
	return f.b
}

// encodeRecord encodes rec as an event, as d shows it, into a new buffer
// sized for it.
func encodeRecord(rec *Record, d *dialect) ([]byte, error) {
	n := len(rec.ID) + len(d.idPrefix) + len(rec.Type) + len(rec.Data) + 48 + 6*strings.Count(rec.Data, "\n")
	return appendRecord(make([]byte, 0, n), rec, d)
}

// appendRecord appends the wire form of rec to dst, with its ID as d
// shows it. It fails, leaving dst
// as it was, when rec's ID or type would break the stream.
//
// The event always has a data line, even when rec's data is empty: an
// accepted event reaches its subscribers, and a client dispatches an
// event only if it has a data line ("data:" alone gives it empty data).
// sse.AppendEvent writes none for an event with neither data nor type,
// so one is added before its blank line.
func appendRecord(dst []byte, rec *Record, d *dialect) ([]byte, error) {
	out, err := sse.AppendEvent(dst, &sse.Event{ID: d.showID(rec.ID), Type: rec.Type, Data: rec.Data, Retry: rec.Retry})
	if err != nil || rec.Data != "" || rec.Type != "" {
		return out, err
	}
	if len(out) > len(dst) {
		out = out[:len(out)-1] // the blank line
	}
	return append(out, "data:\n\n"...), nil
}

// A subscriber is one subscription's bounded queue, on the model of
// nats-server's ipQueue: the fan-out appends shared frames to a
// mutex-guarded slice without ever blocking, and whoever writes the
// subscription drains everything queued at once. A push to a full queue
// ends the subscription instead of waiting.
//
// One writer at a time owns the connection, and owner says which:
//   - ownerHandler: the subscription's handler goroutine. It waits on
//     signal. A stream over ssehttp (HTTP/2, TLS) stays with its handler;
//     a taken-over HTTP/1.x connection is with it only until the opening
//     bytes and the replay are written.
//   - ownerShard: the subscriber's shard, which writes to the connection
//     without blocking. A push that finds nothing scheduled puts the
//     subscriber on the shard's ready list (see Hub.fanout).
//   - ownerDrain: a goroutine of the shard that writes with blocking
//     writes, while the socket's buffer is full (or when the connection
//     cannot be written without blocking). It waits on signal, and hands
//     the subscriber back to the shard once the queue is empty.
type subscriber struct {
	// Set by newSubscriber and not changed after.
	sels     []Selector    // all the selectors, for replay
	patterns []Selector    // the ones with wildcards, matched during fan-out
	max      int           // queue capacity, in frames
	signal   chan struct{} // 1-slot: something was queued, or the subscription ended

	// seen is the position of the last record the fan-out considered for
	// this subscriber, so that a record with several matching topics is
	// queued once. It is owned by the fan-out, which runs on Run's
	// goroutine only.
	seen uint64
	// d is the front-end's dialect: how IDs are shown, which private
	// records it may receive. Set by newSubscriber and not changed
	// after; beside seen, as the fan-out reads both for every delivery.
	d *dialect

	// sh is the shard that writes the subscriber's taken-over connection.
	// It is set by register and not changed after.
	sh *shard

	// Set by the handler before the connection is handed to the shard,
	// and not changed after; conn under mu, as endLocked reads it.
	conn   net.Conn        // the taken-over connection; nil on an ssehttp stream
	raw    syscall.RawConn // conn's, for writes that do not block; nil if it has none
	remote string          // the client's address, for logs

	// gz is set when the stream is gzip-compressed: the subscriber is
	// sent frames' gz bytes. Set before register and not changed after.
	gz bool

	mu        sync.Mutex // guards the fields below
	q         []*frame   // queued frames, in position order
	floor     uint64     // frames at or below this position are dropped: replay covers them
	end       error      // why the subscription ended; nil while it is open
	owner     uint8      // who writes to the connection: ownerHandler, ownerShard or ownerDrain
	scheduled bool       // on its shard's ready list, or about to be
	finished  bool       // the connection is closed and the subscriber unregistered, or about to be
	expiring  bool       // the grant expired: authFrame is queued, and the subscription ends once it is written

	// Owned by the connection's owner of the moment, handed over under mu.
	lastWrite time.Duration // when the last write ended, on the Hub's clock
	lastCheck time.Duration // when the shard last looked for a closed peer

	// Guarded by the Hub's mu.
	unregistered bool        // set by unregister
	expiry       *time.Timer // set by register: calls Hub.expire when the grant expires; nil if it does not

	// Set before register, and not changed after. Last, so that the
	// fields the fan-out touches for every record share cache lines.
	grant        *Grant     // what the subscriber's token allows; nil if it has none
	client       netip.Addr // the client's address, for the per-client limit
	subscriberID string     // the IRI that names it in Mercure's active subscriptions; "" when they are off
}

// Owners of a subscriber's connection.
const (
	ownerHandler = iota
	ownerShard
	ownerDrain
)

// newSubscriber returns a subscriber of dialect d for sels with a queue
// of size frames.
func newSubscriber(d *dialect, sels []Selector, size int) *subscriber {
	s := &subscriber{d: d, sels: sels, max: size, signal: make(chan struct{}, 1)}
	for _, sel := range sels {
		if !sel.Exact() {
			s.patterns = append(s.patterns, sel)
		}
	}
	return s
}

// Results of subscriber.push, a base result and flags.
const (
	pushed  = iota // queued
	dropped        // not queued: at or below the floor, or the subscription has ended
	evicted        // the queue was full: the subscription is now ended

	resultMask   = 3
	needSchedule = 4 // the caller must put the subscriber on its shard's ready list
	needUrgent   = 8 // the queue is half full: the shard should not wait to write it
)

// push queues f, or ends the subscription with errSlow if the queue is
// full. It never blocks. Its result is pushed, dropped or evicted, with
// needSchedule set when the caller must put s on its shard's ready list
// (s.scheduled is now set), and needUrgent when s's queue is half full.
func (s *subscriber) push(f *frame) int {
	s.mu.Lock()
	switch {
	case s.end != nil || s.expiring || f.pos <= s.floor:
		s.mu.Unlock()
		return dropped
	case len(s.q) >= s.max:
		r := evicted
		if s.endLocked(errSlow) {
			r |= needSchedule
		}
		s.mu.Unlock()
		return r
	}
	s.q = append(s.q, f)
	r := pushed
	if s.owner == ownerShard {
		if !s.scheduled {
			s.scheduled = true
			r |= needSchedule
		}
		if len(s.q) == s.max/2+1 {
			r |= needUrgent
		}
		s.mu.Unlock()
		return r
	}
	s.mu.Unlock()
	s.wake()
	return r
}

// setFloor makes the queue drop every frame at or below pos, those queued
// already and those pushed later.
func (s *subscriber) setFloor(pos uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.floor = pos
	i := 0
	for i < len(s.q) && s.q[i].pos <= pos {
		i++
	}
	if i > 0 {
		n := copy(s.q, s.q[i:])
		clear(s.q[n:])
		s.q = s.q[:n]
	}
}

// take returns the queued frames, leaving spare (emptied) as the new
// queue, and why the subscription ended, if it has. last reports that
// the frames end with authFrame: once they are written, the subscription
// ends with errExpired.
func (s *subscriber) take(spare []*frame) (q []*frame, end error, last bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q = s.q
	s.q = spare[:0]
	return q, s.end, s.expiring
}

// appendQueuedLocked appends the queued frames to b and empties the
// queue, keeping its array unless it has grown large. s.mu must be held.
func (s *subscriber) appendQueuedLocked(b []byte) []byte {
	for _, f := range s.q {
		b = append(b, f.bytes(s.gz)...)
	}
	clear(s.q)
	if cap(s.q) > maxSpare {
		s.q = nil
	} else {
		s.q = s.q[:0]
	}
	return b
}

// stop ends the subscription with err, unless it has ended already.
func (s *subscriber) stop(err error) {
	s.mu.Lock()
	sched := s.endLocked(err)
	s.mu.Unlock()
	if sched {
		s.sh.schedule(s)
	}
}

// endLocked ends the subscription with err, unless it has ended already:
// it drops the queue, wakes a writer goroutine, and interrupts a write in
// progress on a taken-over connection. It reports whether the caller
// must put s on its shard's ready list, for the shard to close the
// connection. s.mu must be held.
func (s *subscriber) endLocked(err error) bool {
	if s.end != nil {
		return false
	}
	s.end = err
	s.q = nil // the writer will not write these: let them go now
	if s.conn != nil {
		_ = s.conn.SetWriteDeadline(aLongTimeAgo)
	}
	if s.owner == ownerShard && !s.scheduled {
		s.scheduled = true
		return true
	}
	s.wake()
	return false
}

// wake signals the writer goroutine without blocking.
func (s *subscriber) wake() {
	select {
	case s.signal <- struct{}{}:
	default:
	}
}

// writeBlocking writes p to the taken-over connection, waiting at most
// timeout (none if zero). It fails at once, without writing, once the
// subscription has ended, and a write in progress when it ends is
// interrupted. Only the connection's owner calls it.
func (s *subscriber) writeBlocking(p []byte, timeout time.Duration) error {
	s.mu.Lock()
	if s.end != nil {
		s.mu.Unlock()
		return s.end
	}
	// Under mu, so that an end cannot come between the check and the
	// deadline and have its interruption overwritten.
	if timeout > 0 {
		_ = s.conn.SetWriteDeadline(time.Now().Add(timeout))
	}
	s.mu.Unlock()
	if _, err := s.conn.Write(p); err != nil {
		return fmt.Errorf("hub: write: %w", err)
	}
	return nil
}

// register adds s to the fan-out index and gives it a shard. It reports
// false, without registering, when Run is not running, and returns
// errClosed when the Hub is closed, and errTooManyStreams or
// errTooManyFromClient when a stream limit is reached. A registered
// subscriber must be unregistered.
func (h *Hub) register(s *subscriber) (bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.closed:
		return false, errClosed
	case !h.running:
		return false, nil
	case h.lim.maxStreams > 0 && h.streams >= h.lim.maxStreams:
		return false, errTooManyStreams
	case h.lim.maxPerClient > 0 && h.perClient[s.client] >= h.lim.maxPerClient:
		return false, errTooManyFromClient
	}
	h.perClient[s.client]++
	for _, sel := range s.sels {
		if sel.Exact() {
			h.exact[sel.String()] = append(h.exact[sel.String()], s)
		}
	}
	if len(s.patterns) > 0 {
		h.patterns = append(h.patterns, s)
	}
	if len(h.shards) > 0 {
		s.sh = h.shards[h.nextShard%len(h.shards)]
		h.nextShard++
	}
	h.streams++
	h.m.subscriptions.Add(float64(len(s.sels)))
	if s.subscriberID != "" {
		h.active.started(s) // under h.mu: before its end, which unregister announces
	}
	if g := s.grant; g != nil && !g.Expires.IsZero() {
		// Stopped by unregister. If the grant expires before the stream
		// opens, the stream ends after its replay.
		s.expiry = time.AfterFunc(time.Until(g.Expires), func() { h.expire(s) })
	}
	return true, nil
}

// unregister removes s, registered, from the fan-out index.
func (h *Hub) unregister(s *subscriber) {
	h.unregisterAll([]*subscriber{s})
}

// unregisterAll removes subs, each registered, from the fan-out index,
// with one pass over each list they are in.
func (h *Hub) unregisterAll(subs []*subscriber) {
	if len(subs) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	patterns := false
	var topics []string
	for _, s := range subs {
		if s.unregistered {
			continue
		}
		s.unregistered = true
		if s.subscriberID != "" {
			h.active.ended(s) // lock order: h.mu, then the announcer's mu
		}
		if s.expiry != nil {
			s.expiry.Stop()
		}
		if n := h.perClient[s.client] - 1; n > 0 {
			h.perClient[s.client] = n
		} else {
			delete(h.perClient, s.client)
		}
		for _, sel := range s.sels {
			if sel.Exact() {
				topics = append(topics, sel.String())
			}
		}
		patterns = patterns || len(s.patterns) > 0
		h.m.subscriptions.Sub(float64(len(s.sels)))
		h.streams--
	}
	slices.Sort(topics)
	for _, t := range slices.Compact(topics) {
		subs, ok := h.exact[t]
		if !ok {
			continue // done already: a topic of several subscribers
		}
		if subs = withoutUnregistered(subs); len(subs) > 0 {
			h.exact[t] = subs
		} else {
			delete(h.exact, t)
		}
	}
	if patterns {
		h.patterns = withoutUnregistered(h.patterns)
	}
	if h.streams == 0 && h.drained != nil {
		close(h.drained)
		h.drained = nil
	}
}

// withoutUnregistered removes the unregistered subscribers from subs,
// keeping the order of the others. h.mu must be held.
func withoutUnregistered(subs []*subscriber) []*subscriber {
	n := 0
	for _, s := range subs {
		if !s.unregistered {
			subs[n] = s
			n++
		}
	}
	clear(subs[n:])
	if n == 0 {
		return nil
	}
	return subs[:n]
}

// forEachLocked calls fn for every registered subscriber, once or more
// (a subscriber with several exact selectors is in several lists). h.mu
// must be held.
func (h *Hub) forEachLocked(fn func(*subscriber)) {
	for _, subs := range h.exact {
		for _, s := range subs {
			fn(s)
		}
	}
	for _, s := range h.patterns {
		fn(s)
	}
}

// fanout delivers a batch of records from the Log's tail to the
// subscribers. It is Run's callback for Log.Tail, and never blocks on a
// subscriber. A private record goes only to the subscribers whose grant
// allows it (see subscriber.mayReceive).
//
// Subscribers written by a shard are put on its ready list once per
// batch, not once per record, and each shard is woken once per batch.
func (h *Hub) fanout(recs []Record) error {
	h.m.tailed.Add(float64(len(recs)))
	var delivered, slowest int
	for i := range recs {
		// Not held across the batch: registering waits at most for one
		// record.
		if h.active != nil {
			h.active.apply(&recs[i])
		}
		h.mu.RLock()
		d, e := h.fanoutRecordLocked(&recs[i])
		h.mu.RUnlock()
		delivered += d
		slowest += e
	}
	for i := range h.pending {
		p := &h.pending[i]
		if len(p.subs) > 0 || p.urgent {
			h.shards[i].enqueue(p.subs, p.urgent)
			clear(p.subs)
			p.subs, p.urgent = p.subs[:0], false
		}
	}
	if delivered > 0 {
		h.m.deliveries.Add(float64(delivered))
	}
	if slowest > 0 {
		h.m.slow.Add(float64(slowest))
	}
	return nil
}

// matchPatterns reports whether one of sels matches one of topics, the
// topics of the record being fanned out. A URI template's answer is
// kept in h.memo for the rest of the record: subscribers to the same
// template share its compiled form, so it runs once per record, not
// once per subscriber. Only the fan-out calls it.
func (h *Hub) matchPatterns(sels []Selector, topics []string) bool {
	for i := range sels {
		sel := &sels[i]
		switch sel.re {
		case matchAll:
			return true
		case nil:
			for _, t := range topics {
				if sel.Match(t) {
					return true
				}
			}
			continue
		}
		m, ok := h.memo[sel.re]
		if !ok {
			m = slices.ContainsFunc(topics, sel.Match)
			if h.memo == nil {
				h.memo = make(map[*regexp.Regexp]bool)
			}
			h.memo[sel.re] = m
		}
		if m {
			return true
		}
	}
	return false
}

// fanoutRecord delivers one record, as fanout does.
func (h *Hub) fanoutRecord(rec *Record) {
	_ = h.fanout([]Record{*rec})
}

// fanoutRecordLocked queues rec on every subscriber with a selector
// matching one of its topics, once per subscriber, and returns how many
// it queued it on and how many it evicted. It encodes rec once for each
// dialect, when it finds the first subscriber of that dialect, and shares
// the bytes. h.mu must be
// held for reading.
func (h *Hub) fanoutRecordLocked(rec *Record) (delivered, slowest int) {
	if rec.Type == nodeEventType {
		return 0, 0 // the hub's own, for its nodes only
	}
	var (
		frames [numDialects]*frame // rec, as each dialect shows it
		bad    bool
	)
	deliver := func(s *subscriber) {
		if s.seen == rec.Pos || bad {
			return
		}
		s.seen = rec.Pos
		if rec.Private && !s.mayReceive(rec) {
			return
		}
		f := frames[s.d.slot]
		if f == nil {
			b, err := encodeRecord(rec, s.d)
			if err != nil {
				bad = true
				return
			}
			f = &frame{pos: rec.Pos, b: b}
			frames[s.d.slot] = f
		}
		if s.gz && f.gz == nil {
			// Before f is queued on a subscriber that reads it.
			f.gz = ssehttp.AppendGzipFrame(nil, f.b)
		}
		r := s.push(f)
		switch r & resultMask {
		case pushed:
			delivered++
		case evicted:
			slowest++
		}
		if r&(needSchedule|needUrgent) != 0 {
			p := &h.pending[s.sh.id]
			if r&needSchedule != 0 {
				p.subs = append(p.subs, s)
			}
			if r&needUrgent != 0 {
				p.urgent = true
			}
		}
	}

	for _, t := range rec.Topics {
		for _, s := range h.exact[t] {
			deliver(s)
		}
	}
	if len(h.patterns) > 0 {
		clear(h.memo)
		for _, s := range h.patterns {
			if s.seen != rec.Pos && h.matchPatterns(s.patterns, rec.Topics) {
				deliver(s)
			}
		}
	}

	if bad {
		h.logger.Error("event cannot be encoded; not delivered", "pos", rec.Pos, "id", strconv.Quote(rec.ID))
	}
	return delivered, slowest
}
