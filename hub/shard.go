package hub

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"time"
)

// Timing of the shards.
const (
	// coalesce is the shortest time between the starts of two passes of
	// a shard over its ready subscribers. A shard woken within coalesce of
	// its last pass waits for the rest of it, so that at high rates each
	// write carries the events of a few milliseconds; at low rates,
	// events further apart than this, it writes at once. So it adds at
	// most coalesce to any event's latency, and only under load.
	coalesce = 2 * time.Millisecond
	// checkEvery is how often a shard looks, without blocking, whether
	// the peer of an idle connection has closed or reset it.
	checkEvery = time.Second
	// maxPassBuf is the largest write buffer a shard keeps between passes.
	maxPassBuf = 256 << 10
)

// A shard writes the live events of the taken-over connections given to
// it, one of GOMAXPROCS shards a Run starts: each subscriber is given to
// one shard when it registers. Rather than a goroutine per subscriber
// waiting for its queue, a shard has one goroutine that takes, in one
// pass, every subscriber the fan-out has put on its ready list since the
// last pass, and writes each one's queued events with one write(2) that
// does not block. A subscriber whose socket buffer is full is handed to a
// goroutine of the shard that finishes its writes with blocking writes,
// under the write timeout, and hands it back when its queue is empty; so
// a slow subscriber never delays the others. The shard also sends
// heartbeats, looks for peers that closed idle connections, and closes
// the connections of subscriptions that ended.
type shard struct {
	h  *Hub
	id int // index in the Hub's shards and pending lists

	wake   chan struct{} // 1-slot: ready has subscribers, or quit is set
	urgent chan struct{} // 1-slot: a ready subscriber's queue is half full

	mu    sync.Mutex    // guards ready, added and quit
	ready []*subscriber // to be written or closed, each once (its scheduled flag is set)
	added []*subscriber // handed over by their handlers since the last pass
	quit  bool          // Run is returning: close everything and stop

	// Everything below is owned by the shard's goroutine (run).
	subs    []*subscriber // all the subscribers handed over, for heartbeats and checks
	spare   []*subscriber // the ready list of the last pass, emptied
	gone    []*subscriber // finished in this pass, to unregister together
	buf     []byte        // the write buffer
	io      *ioBuffer
	scratch [512]byte      // what peers send, read and dropped
	drains  sync.WaitGroup // the goroutines writing to full sockets
	ping    []byte         // the heartbeat comment
	gzPing  []byte         // ping, deflated on its own for compressed streams (the Hub's); nil without Options.Gzip
}

func newShard(h *Hub, id int) *shard {
	return &shard{
		h:      h,
		id:     id,
		wake:   make(chan struct{}, 1),
		urgent: make(chan struct{}, 1),
		io:     newIOBuffer(),
		ping:   []byte(heartbeatComment),
		gzPing: h.gzPing,
	}
}

// numShards returns how many shards a Run starts: one for each
// processor Go may run on at once, since a shard's writes never block.
func numShards() int { return runtime.GOMAXPROCS(0) }

// now returns the time on the Hub's monotonic clock.
func (h *Hub) now() time.Duration { return time.Since(h.epoch) }

// adopt hands s, whose handler has written its opening bytes and replay,
// to the shard. It reports false if s has ended (or Run is returning),
// and then the handler must finish it.
func (sh *shard) adopt(s *subscriber) bool {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	s.mu.Lock()
	if s.end != nil || sh.quit {
		s.mu.Unlock()
		return false
	}
	s.owner = ownerShard
	if s.conn != nil {
		_ = s.conn.SetWriteDeadline(time.Time{})
	}
	s.lastWrite = sh.h.now()
	s.lastCheck = s.lastWrite
	sched := len(s.q) > 0
	s.scheduled = sched
	s.mu.Unlock()
	sh.added = append(sh.added, s)
	if sched {
		sh.ready = append(sh.ready, s)
	}
	sh.signal()
	return true
}

// schedule puts s, whose scheduled flag its caller has set, on the ready
// list and wakes the shard.
func (sh *shard) schedule(s *subscriber) {
	sh.mu.Lock()
	sh.ready = append(sh.ready, s)
	sh.mu.Unlock()
	sh.signal()
}

// enqueue puts subs, whose scheduled flags the fan-out has set, on the
// ready list and wakes the shard, at once if urgent.
func (sh *shard) enqueue(subs []*subscriber, urgent bool) {
	if len(subs) > 0 {
		sh.mu.Lock()
		sh.ready = append(sh.ready, subs...)
		sh.mu.Unlock()
		sh.signal()
	}
	if urgent {
		select {
		case sh.urgent <- struct{}{}:
		default:
		}
	}
}

// signal wakes the shard without blocking.
func (sh *shard) signal() {
	select {
	case sh.wake <- struct{}{}:
	default:
	}
}

// stop makes the shard close every connection it has and return. Run
// calls it after ending every subscription.
func (sh *shard) stop() {
	sh.mu.Lock()
	sh.quit = true
	sh.mu.Unlock()
	sh.signal()
}

// sweepEvery returns how often a shard sweeps its subscribers for
// heartbeats and closed peers.
func (h *Hub) sweepEvery() time.Duration {
	d := checkEvery
	if hb := h.opts.Heartbeat; hb > 0 {
		d = min(d, max(hb/4, time.Millisecond))
	}
	return d
}

// run is the shard's goroutine. It returns once stop was called and the
// shard has closed every connection it had, and its drain goroutines
// have returned.
func (sh *shard) run() {
	tick := time.NewTicker(sh.h.sweepEvery())
	defer tick.Stop()
	wait := time.NewTimer(time.Hour)
	wait.Stop()
	var last time.Duration = -coalesce // the start of the last pass
	for {
		select {
		case <-sh.wake:
		case <-tick.C:
			sh.sweep()
			continue
		}
		sh.mu.Lock()
		quit := sh.quit
		sh.mu.Unlock()
		if quit {
			sh.close()
			return
		}
		if d := last + coalesce - sh.h.now(); d > 0 {
			wait.Reset(d)
			select {
			case <-wait.C:
			case <-sh.urgent:
				wait.Stop()
			}
		}
		select { // an urgent wake-up is for this pass
		case <-sh.urgent:
		default:
		}
		last = sh.h.now()
		sh.pass(last)
	}
}

// pass writes or closes every subscriber on the ready list.
func (sh *shard) pass(now time.Duration) {
	sh.mu.Lock()
	ready := sh.ready
	sh.ready = sh.spare[:0]
	sh.subs = append(sh.subs, sh.added...)
	clear(sh.added)
	sh.added = sh.added[:0]
	sh.mu.Unlock()

	for _, s := range ready {
		sh.serve(s, now)
	}
	clear(ready)
	sh.spare = ready[:0]
	if cap(sh.buf) > maxPassBuf {
		sh.buf = nil
	}
	sh.unregisterGone()
}

// serve writes what s has queued, or closes its connection if it has
// ended. s is on the ready list, so the shard owns its connection.
func (sh *shard) serve(s *subscriber, now time.Duration) {
	s.mu.Lock()
	s.scheduled = false
	if s.owner != ownerShard {
		// Handed to a drain goroutine by a heartbeat after it was put on
		// the list: the goroutine writes the queue, and hands s back
		// (scheduled, if it has ended).
		s.mu.Unlock()
		return
	}
	if s.end != nil {
		s.mu.Unlock()
		sh.finish(s)
		return
	}
	last := s.expiring // the queue ends with authFrame
	b := s.appendQueuedLocked(sh.buf[:0])
	s.mu.Unlock()
	sh.buf = b
	if sh.write(s, b, now) && last {
		sh.end(s, errExpired)
	}
}

// write writes b to s's connection without blocking, or hands what
// remains of it to a drain goroutine. It reports whether it wrote all of
// b.
func (sh *shard) write(s *subscriber, b []byte, now time.Duration) bool {
	if len(b) == 0 {
		return true
	}
	n := 0
	if s.raw != nil {
		var err error
		n, err = sh.io.tryWrite(s.raw, b)
		if err != nil {
			sh.end(s, fmt.Errorf("hub: write: %w", err))
			return false
		}
		if n == len(b) {
			s.lastWrite = now
			return true
		}
	}
	// The socket's buffer is full, or the connection cannot be written
	// without blocking: a goroutine writes the rest.
	s.mu.Lock()
	if s.end != nil {
		s.mu.Unlock()
		return false // scheduled by whoever ended it
	}
	s.owner = ownerDrain
	s.mu.Unlock()
	bp := getBuf()
	*bp = append(*bp, b[n:]...)
	sh.drains.Go(func() { sh.drain(s, bp) })
	return false
}

// end ends the subscription of s, which the shard owns, with err, and
// finishes it at once.
func (sh *shard) end(s *subscriber, err error) {
	s.mu.Lock()
	s.endLocked(err)
	s.mu.Unlock()
	sh.finish(s)
}

// drain is the goroutine that owns s's connection while a write would
// block: it writes p, then whatever s has queued since, each with a
// blocking write under the write timeout, until the queue is empty or
// the subscription ends, and then hands s back to the shard: ended, if
// what it wrote ended with authFrame. bp is from getBuf, and drain
// returns it.
func (sh *shard) drain(s *subscriber, bp *[]byte) {
	timeout := max(sh.h.opts.WriteTimeout, 0)
	p := *bp
	defer func() {
		*bp = p
		putBuf(bp)
	}()
	for {
		if err := s.writeBlocking(p, timeout); err != nil {
			s.stop(err)
		}
		p = p[:0]
		s.mu.Lock()
		if s.end != nil || len(s.q) == 0 {
			s.owner = ownerShard
			if s.end == nil && s.expiring { // authFrame is written
				s.end = errExpired
			}
			if s.end == nil {
				_ = s.conn.SetWriteDeadline(time.Time{}) // shard writes do not block
			}
			s.lastWrite = sh.h.now()
			sched := s.end != nil && !s.scheduled
			s.scheduled = s.scheduled || sched
			s.mu.Unlock()
			if sched {
				sh.schedule(s) // for the shard to close it
			}
			return
		}
		p = s.appendQueuedLocked(p)
		s.mu.Unlock()
	}
}

// sweep sends a heartbeat on each connection idle for Heartbeat, looks
// for closed peers on those idle for checkEvery, and forgets the
// subscribers it has finished.
func (sh *shard) sweep() {
	now := sh.h.now()
	hb := max(sh.h.opts.Heartbeat, 0)
	n := 0
	for _, s := range sh.subs {
		s.mu.Lock()
		finished, mine := s.finished, s.owner == ownerShard && !s.scheduled && s.end == nil
		s.mu.Unlock()
		if finished {
			continue
		}
		sh.subs[n] = s
		n++
		if !mine {
			continue
		}
		if s.raw != nil && now-s.lastWrite >= checkEvery && now-s.lastCheck >= checkEvery {
			s.lastCheck = now
			if sh.io.readGone(s.raw, sh.scratch[:]) {
				sh.end(s, errPeerGone)
				continue
			}
		}
		if hb > 0 && now-s.lastWrite >= hb {
			ping := sh.ping
			if s.gz {
				ping = sh.gzPing
			}
			sh.write(s, ping, now)
		}
	}
	clear(sh.subs[n:])
	sh.subs = sh.subs[:n]
	if cap(sh.subs) > 64 && n < cap(sh.subs)/4 {
		sh.subs = append([]*subscriber(nil), sh.subs...)
	}
	sh.unregisterGone()
}

// finish closes the connection of s, which has ended, logs why, and
// puts s on the list to unregister at the end of the pass.
func (sh *shard) finish(s *subscriber) {
	if sh.h.finish(s) {
		sh.gone = append(sh.gone, s)
	}
}

// unregisterGone unregisters the subscribers finished in this pass.
func (sh *shard) unregisterGone() {
	if len(sh.gone) > 0 {
		sh.h.unregisterAll(sh.gone)
		clear(sh.gone)
		sh.gone = sh.gone[:0]
	}
}

// close finishes every subscriber of the shard. Run calls it, through
// stop, once every subscription has ended: each drain goroutine's write
// has been interrupted and it hands its subscriber back.
func (sh *shard) close() {
	sh.drains.Wait()
	sh.mu.Lock()
	ready := sh.ready
	sh.ready = nil
	sh.subs = append(sh.subs, sh.added...)
	sh.added = nil
	sh.mu.Unlock()
	for _, s := range ready {
		sh.finish(s)
	}
	for _, s := range sh.subs {
		sh.finish(s)
	}
	sh.subs = nil
	sh.unregisterGone()
}

// finish closes the taken-over connection of s, which has ended, counts
// and logs the end, and reports whether the caller must unregister s: it
// reports false, doing nothing, if s was finished already.
func (h *Hub) finish(s *subscriber) bool {
	s.mu.Lock()
	if s.finished {
		s.mu.Unlock()
		return false
	}
	s.finished = true
	end := s.end
	if end == nil { // the shard is closing: Run is returning
		end = errStopped
		s.end = end
	}
	s.mu.Unlock()
	if errors.Is(end, os.ErrDeadlineExceeded) {
		// The peer read nothing for WriteTimeout: it is most likely
		// gone. A reset frees at once the megabytes the kernel may hold
		// for it, which a close would keep until they are sent or time
		// out; were it alive after all, it resumes after what it read.
		if lc, ok := s.conn.(interface{ SetLinger(int) error }); ok {
			_ = lc.SetLinger(0)
		}
	}
	_ = s.conn.Close()
	h.m.connections.Dec()
	h.logEnd(s.remote, end)
	return true
}

// logEnd logs why a subscription ended.
func (h *Hub) logEnd(remote string, err error) {
	switch {
	case errors.Is(err, errSlow):
		h.logger.Info("subscriber disconnected: too slow", slog.String("remote", remote), "queue", h.opts.QueueSize)
	case errors.Is(err, errReplayBudget):
		h.logger.Debug("subscription ended: replay budget reached", slog.String("remote", remote), "max", h.lim.maxReplay)
	case errors.Is(err, errExpired):
		h.logger.Debug("subscription ended: token expired", slog.String("remote", remote))
	case errors.Is(err, errStopped), errors.Is(err, errClosed):
		h.logger.Debug("subscription ended: hub stopped", slog.String("remote", remote))
	default:
		h.logger.Debug("unsubscribed", slog.String("remote", remote), "err", err)
	}
}
