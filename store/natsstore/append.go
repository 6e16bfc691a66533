package natsstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ssehub/ssehub/hub"
)

// An appendReq is one Append waiting for the committer.
type appendReq struct {
	ctx    context.Context
	recs   []hub.Record // copies of the caller's records; the committer assigns them
	assign []bool       // which of recs came without an ID: the committer assigns theirs, anew at each try
	size   int          // bytes of their encoding, about
	done   chan error   // 1 slot: the outcome
}

// Append implements hub.Log. It queues recs for the committer goroutine,
// which publishes every queued Append as one batch message (see the
// package doc), and waits for the outcome. An Append whose ctx ends
// while its message is in flight returns ctx's error, and its records
// may nevertheless have been stored, as with any remote store; a retry
// with the same IDs then gets hub.ErrDuplicateID.
func (s *Store) Append(ctx context.Context, recs []hub.Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, err := s.stream(ctx); err != nil {
		return fmt.Errorf("natsstore: append: %w", err)
	}
	if len(recs) == 0 {
		return nil
	}
	req := &appendReq{ctx: ctx, recs: make([]hub.Record, len(recs)), assign: make([]bool, len(recs)), done: make(chan error, 1)}
	for i := range recs {
		r := recs[i]
		if r.ID != "" {
			if hub.ReservedID(r.ID) {
				return fmt.Errorf("natsstore: append %q: id of digits is reserved: %w", r.ID, hub.ErrDuplicateID)
			}
			for _, o := range recs[:i] {
				if o.ID == r.ID {
					return fmt.Errorf("natsstore: append %q: twice in one batch: %w", r.ID, hub.ErrDuplicateID)
				}
			}
		}
		r.Topics = slices.Clone(r.Topics)
		req.recs[i] = r
		req.assign[i] = r.ID == ""
		req.size += 32 + len(r.ID) + len(r.Type) + len(r.Data)
		for _, t := range r.Topics {
			req.size += 2 + len(t)
		}
	}
	if max := s.maxPayload(); req.size > max {
		return fmt.Errorf("natsstore: append: %d records of about %d bytes exceed the server's max_payload of %d", len(recs), req.size, max)
	}
	s.qmu.Lock()
	s.pending = append(s.pending, req)
	s.qmu.Unlock()
	select {
	case s.signal <- struct{}{}:
	default:
	}
	select {
	case err := <-req.done:
		if err != nil {
			return err
		}
		for i := range recs {
			recs[i].Pos, recs[i].ID, recs[i].Time = req.recs[i].Pos, req.recs[i].ID, req.recs[i].Time
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("natsstore: append: %w", ctx.Err())
	}
}

// maxPayload returns the largest message the server takes, less room for
// the headers.
func (s *Store) maxPayload() int {
	n := int(s.nc.MaxPayload())
	if n <= 0 {
		n = 1 << 20 // not connected yet: the server's default
	}
	return n - 256
}

// commit is the committer goroutine: it takes the queued Appends, as
// many as fit in one message, and commits them together. It ends at
// Close, failing the Appends still queued.
func (s *Store) commit() {
	for {
		select {
		case <-s.signal:
		case <-s.closing:
			s.qmu.Lock()
			pending := s.pending
			s.pending = nil
			s.qmu.Unlock()
			for _, req := range pending {
				req.done <- fmt.Errorf("natsstore: append: %w", hub.ErrLogClosed)
			}
			return
		}
		for {
			group := s.take()
			if len(group) == 0 {
				break
			}
			s.commitGroup(group)
		}
	}
}

// take removes from the queue the oldest Appends that fit in one message.
func (s *Store) take() []*appendReq {
	limit := s.maxPayload()
	s.qmu.Lock()
	defer s.qmu.Unlock()
	size, n := 0, 0
	for n < len(s.pending) && (n == 0 || size+s.pending[n].size <= limit) {
		size += s.pending[n].size
		n++
	}
	group := slices.Clone(s.pending[:n])
	s.pending = s.pending[n:]
	if len(s.pending) == 0 {
		s.pending = nil
	}
	return group
}

// commitGroup publishes group as one batch message. It checks each
// Append's IDs against the index and assigns positions after the
// newest the index holds, then publishes expecting the stream's last
// sequence to be the last one the index has applied: when another node
// (or a Trim) published meanwhile, JetStream refuses, and commitGroup
// waits for the follower to apply the newcomer and tries again. So
// positions stay dense and an ID is taken once across all nodes.
func (s *Store) commitGroup(group []*appendReq) {
	ctx, cancel := context.WithTimeout(s.ctx, publishTimeout)
	defer cancel()
	fail := func(reqs []*appendReq, err error) {
		for _, req := range reqs {
			req.done <- fmt.Errorf("natsstore: append: %w", err)
		}
	}
	for {
		live := group[:0]
		for _, req := range group {
			if err := req.ctx.Err(); err != nil {
				req.done <- err
				continue
			}
			live = append(live, req)
		}
		group = live
		if len(group) == 0 {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			fail(group, hub.ErrLogClosed)
			return
		}
		st := s.st
		if st == nil {
			s.mu.Unlock()
			fail(group, errNotReady)
			return
		}
		lastSeq, next := s.idx.seq, s.idx.newest+1
		taken := map[string]bool{}
		var ok []*appendReq
		for _, req := range group {
			dup := ""
			for i, r := range req.recs {
				if req.assign[i] {
					continue
				}
				if _, held := s.idx.ids[r.ID]; held || taken[r.ID] {
					dup = r.ID
					break
				}
			}
			if dup != "" {
				req.done <- fmt.Errorf("natsstore: append %q: %w", dup, hub.ErrDuplicateID)
				continue
			}
			for i := range req.recs {
				r := &req.recs[i]
				r.Pos = next
				next++
				if req.assign[i] {
					// Assigned anew at each try: a try that lost the
					// race for the stream's end gave it an older one.
					r.ID = strconv.FormatUint(r.Pos, 10)
				} else {
					taken[r.ID] = true
				}
			}
			ok = append(ok, req)
		}
		s.mu.Unlock()
		group = ok
		if len(group) == 0 {
			return
		}

		now := time.Now()
		var all []hub.Record
		size := 0
		for _, req := range group {
			size += req.size
		}
		buf := batchHeader(make([]byte, 0, size+16), now)
		for _, req := range group {
			for i := range req.recs {
				r := &req.recs[i]
				r.Time = now
				buf = appendRecord(buf, r)
				all = append(all, *r)
			}
		}
		msg := nats.NewMsg(s.batchSubj)
		msg.Header.Set(hdrFirst, strconv.FormatUint(all[0].Pos, 10))
		msg.Header.Set(hdrCount, strconv.Itoa(len(all)))
		msg.Data = buf
		ack, err := s.js.PublishMsg(ctx, msg, jetstream.WithExpectLastSequence(lastSeq))
		if isWrongLast(err) {
			// Someone else published first: catch up and check again.
			// If the index does not catch up soon, the stream may have
			// lost messages instead (see lostLocked): sync finds out.
			wctx, cancel := context.WithTimeout(ctx, time.Second)
			err := s.waitIndexed(wctx, lastSeq+1)
			cancel()
			if err != nil && ctx.Err() == nil && !errors.Is(err, hub.ErrLogClosed) {
				err = s.sync(ctx)
			}
			if err != nil {
				fail(group, err)
				return
			}
			continue
		}
		s.streamGone(err)
		if err != nil {
			fail(group, err)
			return
		}
		s.cache.put(ack.Sequence, all)
		s.mu.Lock()
		if s.idx.seq == lastSeq {
			s.idx.applyBatch(ack.Sequence, all)
			s.notifyLocked()
		}
		s.mu.Unlock()
		for _, req := range group {
			req.done <- nil
		}
		return
	}
}
