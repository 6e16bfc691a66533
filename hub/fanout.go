package hub

import (
	"errors"
	"strconv"
	"strings"
	"sync"

	"github.com/ssehub/ssehub/sse"
)

// Why the hub ended a subscription; a subscriber's handler logs them.
var (
	errClosed  = errors.New("hub: closed")
	errSlow    = errors.New("hub: subscriber too slow: queue full")
	errStopped = errors.New("hub: not running")
)

// A frame is one event encoded for the wire, shared by every subscriber it
// is queued for. Nothing modifies a frame once it is made.
type frame struct {
	pos uint64 // the record's position in the Log
	b   []byte // the encoded event, ending in its blank line
}

// encodeRecord encodes rec as an event into a new buffer sized for it.
func encodeRecord(rec *Record) ([]byte, error) {
	n := len(rec.ID) + len(rec.Type) + len(rec.Data) + 48 + 6*strings.Count(rec.Data, "\n")
	return appendRecord(make([]byte, 0, n), rec)
}

// appendRecord appends the wire form of rec to dst. It fails, leaving dst
// as it was, when rec's ID or type would break the stream.
func appendRecord(dst []byte, rec *Record) ([]byte, error) {
	return sse.AppendEvent(dst, &sse.Event{ID: rec.ID, Type: rec.Type, Data: rec.Data, Retry: rec.Retry})
}

// A subscriber is one subscription's bounded queue, on the model of
// nats-server's ipQueue: the fan-out appends shared frames to a
// mutex-guarded slice and signals a 1-slot channel without ever blocking;
// the subscription's handler goroutine, its only writer, waits for the
// signal and writes everything queued at once. A push to a full queue ends
// the subscription instead of waiting.
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

	mu    sync.Mutex // guards q, floor and end
	q     []*frame   // queued frames, in position order
	floor uint64     // frames at or below this position are dropped: replay covers them
	end   error      // why the hub ended the subscription; nil while it is open
}

// newSubscriber returns a subscriber for sels with a queue of size frames.
func newSubscriber(sels []Selector, size int) *subscriber {
	s := &subscriber{sels: sels, max: size, signal: make(chan struct{}, 1)}
	for _, sel := range sels {
		if !sel.Exact() {
			s.patterns = append(s.patterns, sel)
		}
	}
	return s
}

// Results of subscriber.push.
const (
	pushed  = iota // queued
	dropped        // not queued: at or below the floor, or the subscription has ended
	evicted        // the queue was full: the subscription is now ended
)

// push queues f, or ends the subscription with errSlow if the queue is
// full. It never blocks.
func (s *subscriber) push(f *frame) int {
	s.mu.Lock()
	switch {
	case s.end != nil || f.pos <= s.floor:
		s.mu.Unlock()
		return dropped
	case len(s.q) >= s.max:
		s.endLocked(errSlow)
		s.mu.Unlock()
		return evicted
	}
	s.q = append(s.q, f)
	s.mu.Unlock()
	s.wake()
	return pushed
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
// queue, and why the subscription ended, if it has.
func (s *subscriber) take(spare []*frame) ([]*frame, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.q
	s.q = spare[:0]
	return q, s.end
}

// stop ends the subscription with err, unless it has ended already.
func (s *subscriber) stop(err error) {
	s.mu.Lock()
	s.endLocked(err)
	s.mu.Unlock()
}

// endLocked ends the subscription with err, unless it has ended already,
// drops the queue and wakes the writer. s.mu must be held.
func (s *subscriber) endLocked(err error) {
	if s.end != nil {
		return
	}
	s.end = err
	s.q = nil // the writer will not write these: let them go now
	s.wake()
}

// wake signals the writer without blocking.
func (s *subscriber) wake() {
	select {
	case s.signal <- struct{}{}:
	default:
	}
}

// register adds s to the fan-out index. It reports false, without
// registering, when Run is not running, and returns errClosed when the Hub
// is closed. A registered subscriber must be unregistered.
func (h *Hub) register(s *subscriber) (bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false, errClosed
	}
	if !h.running {
		return false, nil
	}
	for _, sel := range s.sels {
		if sel.Exact() {
			h.exact[sel.String()] = append(h.exact[sel.String()], s)
		}
	}
	if len(s.patterns) > 0 {
		h.patterns = append(h.patterns, s)
	}
	h.streams++
	h.m.subscriptions.Add(float64(len(s.sels)))
	return true, nil
}

// unregister removes s, registered, from the fan-out index.
func (h *Hub) unregister(s *subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, sel := range s.sels {
		if sel.Exact() {
			t := sel.String()
			if subs := without(h.exact[t], s); len(subs) > 0 {
				h.exact[t] = subs
			} else {
				delete(h.exact, t)
			}
		}
	}
	if len(s.patterns) > 0 {
		h.patterns = without(h.patterns, s)
	}
	h.m.subscriptions.Sub(float64(len(s.sels)))
	h.streams--
	if h.streams == 0 && h.drained != nil {
		close(h.drained)
		h.drained = nil
	}
}

// without removes s from subs, not keeping the order.
func without(subs []*subscriber, s *subscriber) []*subscriber {
	for i, x := range subs {
		if x == s {
			last := len(subs) - 1
			subs[i] = subs[last]
			subs[last] = nil
			return subs[:last]
		}
	}
	return subs
}

// fanout delivers a batch of records from the Log's tail to the
// subscribers. It is Run's callback for Log.Tail, and never blocks on a
// subscriber. Private records are delivered to no one until subscribers
// can be authorised.
func (h *Hub) fanout(recs []Record) error {
	h.m.tailed.Add(float64(len(recs)))
	for i := range recs {
		if !recs[i].Private {
			h.fanoutRecord(&recs[i])
		}
	}
	return nil
}

// fanoutRecord queues rec on every subscriber with a selector matching one
// of its topics, once per subscriber. It encodes rec once, when it finds
// the first such subscriber, and shares the bytes.
func (h *Hub) fanoutRecord(rec *Record) {
	var (
		f                  *frame
		delivered, slowest int
		bad                bool
	)
	deliver := func(s *subscriber) {
		if s.seen == rec.Pos || bad {
			return
		}
		s.seen = rec.Pos
		if f == nil {
			b, err := encodeRecord(rec)
			if err != nil {
				bad = true
				return
			}
			f = &frame{pos: rec.Pos, b: b}
		}
		switch s.push(f) {
		case pushed:
			delivered++
		case evicted:
			slowest++
		}
	}

	h.mu.RLock()
	for _, t := range rec.Topics {
		for _, s := range h.exact[t] {
			deliver(s)
		}
	}
	for _, s := range h.patterns {
		if s.seen != rec.Pos && MatchAny(s.patterns, rec.Topics) {
			deliver(s)
		}
	}
	h.mu.RUnlock()

	if bad {
		h.logger.Error("event cannot be encoded; not delivered", "pos", rec.Pos, "id", strconv.Quote(rec.ID))
	}
	if delivered > 0 {
		h.m.deliveries.Add(float64(delivered))
	}
	if slowest > 0 {
		h.m.slow.Add(float64(slowest))
	}
}
