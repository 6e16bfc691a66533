package natsstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ssehub/ssehub/hub"
)

// cacheBytes bounds the decoded batches a Store keeps in memory, roughly
// in bytes of their records.
const cacheBytes = 32 << 20

// A cache holds the newest decoded batches, by stream sequence, so that
// Tail and the Reads of resuming subscribers rarely ask the server.
type cache struct {
	mu    sync.Mutex // guards the fields below
	m     map[uint64][]hub.Record
	order []uint64 // sequences in m, oldest put first
	bytes int
	max   int
}

func batchSize(recs []hub.Record) int {
	n := 0
	for i := range recs {
		r := &recs[i]
		n += 96 + len(r.ID) + len(r.Type) + len(r.Data)
		for _, t := range r.Topics {
			n += 16 + len(t)
		}
	}
	return n
}

func (c *cache) put(seq uint64, recs []hub.Record) {
	size := batchSize(recs)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[seq]; ok || size > c.max {
		return
	}
	c.m[seq] = recs
	c.order = append(c.order, seq)
	c.bytes += size
	for c.bytes > c.max && len(c.order) > 0 {
		old := c.order[0]
		c.order = c.order[1:]
		c.bytes -= batchSize(c.m[old])
		delete(c.m, old)
	}
	if cap(c.order) > 4096 && cap(c.order) > 4*len(c.order) {
		c.order = append([]uint64(nil), c.order...)
	}
}

// drop empties the cache.
func (c *cache) drop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.m)
	c.order, c.bytes = nil, 0
}

func (c *cache) get(seq uint64) ([]hub.Record, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	recs, ok := c.m[seq]
	return recs, ok
}

// errGone is returned by fetch for a batch purged by a Trim.
var errGone = errors.New("natsstore: batch purged")

// fetch returns the records of the batch message at stream sequence seq,
// from the cache or from the server.
func (s *Store) fetch(ctx context.Context, st jetstream.Stream, seq uint64) ([]hub.Record, error) {
	if recs, ok := s.cache.get(seq); ok {
		return recs, nil
	}
	m, err := st.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, errGone
	}
	if err != nil {
		return nil, fmt.Errorf("get message %d: %w", seq, err)
	}
	if m.Subject != s.batchSubj {
		return nil, fmt.Errorf("%w: message %d on %q", errCorrupt, seq, m.Subject)
	}
	recs, err := decodeMsg(m.Header, m.Data)
	if err != nil {
		return nil, fmt.Errorf("message %d: %w", seq, err)
	}
	s.cache.put(seq, recs)
	return recs, nil
}

// fetchers is how many direct gets prefetch keeps in flight.
const fetchers = 16

// prefetch fetches, concurrently, the batches of locs that are not
// cached, when there are several: a cold Read of small batches then
// waits for one round trip per 16 batches rather than one per batch. It
// returns the batches it fetched, and the first error of a fetch.
func (s *Store) prefetch(ctx context.Context, st jetstream.Stream, locs []loc) (map[uint64][]hub.Record, error) {
	var seqs []uint64
	for i, l := range locs {
		if i > 0 && l.seq == locs[i-1].seq {
			continue
		}
		if _, ok := s.cache.get(l.seq); !ok {
			seqs = append(seqs, l.seq)
		}
	}
	if len(seqs) < 2 {
		return nil, nil
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex // guards out and first
		out   = make(map[uint64][]hub.Record, len(seqs))
		first error
		next  = make(chan uint64)
	)
	for range min(fetchers, len(seqs)) {
		wg.Go(func() {
			for seq := range next {
				recs, err := s.fetch(ctx, st, seq)
				mu.Lock()
				if err != nil && first == nil {
					first = err
				}
				if err == nil {
					out[seq] = recs
				}
				mu.Unlock()
			}
		})
	}
	for _, seq := range seqs {
		if ctx.Err() != nil {
			break
		}
		next <- seq
	}
	close(next)
	wg.Wait()
	return out, first
}

// chunk is how many records Read and Tail take from the index at a
// time.
const chunk = 256

// Read implements hub.Log. It finds the matching positions in the
// in-memory index, by topic (a pattern's matching topics are merged; a
// selector matching more than 32 topics walks every position instead),
// and fetches only the batch messages holding them, from a cache of
// recent batches or from the server. fn may keep the records but must
// not modify them.
func (s *Store) Read(ctx context.Context, after uint64, sels []hub.Selector, fn func(*hub.Record) bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	st, err := s.stream(ctx)
	if err != nil {
		return fmt.Errorf("natsstore: read: %w", err)
	}
	if len(sels) == 0 {
		return nil
	}
	s.mu.Lock()
	topics, dense := s.idx.matching(sels)
	s.mu.Unlock()
	var locs []loc
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return fmt.Errorf("natsstore: read: %w", hub.ErrLogClosed)
		}
		if s.idx.trimmedAfter(after) {
			s.mu.Unlock()
			return fmt.Errorf("natsstore: read after %d: %w", after, hub.ErrTrimmed)
		}
		more := false
		locs = locs[:0]
		if dense {
			locs = s.idx.span(locs, after, chunk)
			more = len(locs) == chunk
		} else {
			locs, more = s.idx.merge(locs, after, topics, chunk)
		}
		s.mu.Unlock()
		fetched, err := s.prefetch(ctx, st, locs)
		if err != nil && !errors.Is(err, errGone) {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("natsstore: read: %w", err)
		}
		var recs []hub.Record
		var seq uint64
		for _, l := range locs {
			if recs == nil || l.seq != seq {
				if recs = fetched[l.seq]; recs != nil {
					err = nil
				} else if recs, err = s.fetch(ctx, st, l.seq); err != nil {
					if errors.Is(err, errGone) {
						return fmt.Errorf("natsstore: read after %d: %w", after, hub.ErrTrimmed)
					}
					if ctx.Err() != nil {
						return ctx.Err()
					}
					return fmt.Errorf("natsstore: read: %w", err)
				}
				seq = l.seq
			}
			after = l.pos
			r := recs[l.idx]
			if dense && !hub.MatchAny(sels, r.Topics) {
				continue
			}
			if !fn(&r) {
				return nil
			}
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if !more {
			return nil
		}
	}
}

// Tail implements hub.Log. It is fed by the follower: it delivers the
// records the index holds after after, at most 256 at a time, and waits
// for the index to grow. While NATS is unreachable it keeps waiting, or
// returns an error when it must fetch a batch that is not cached. As
// with Read, fn must not modify the records.
func (s *Store) Tail(ctx context.Context, after uint64, fn func([]hub.Record) error) error {
	var locs []loc
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return fmt.Errorf("natsstore: tail: %w", hub.ErrLogClosed)
		}
		if s.idx.trimmedAfter(after) {
			after = max(after, s.idx.base-1) // go on from the oldest held
		}
		locs = s.idx.span(locs[:0], after, chunk)
		st, ch := s.st, s.changed
		s.mu.Unlock()
		if len(locs) == 0 {
			if err := s.awaitChange(ctx, ch, 0); err != nil {
				return tailErr(err)
			}
			continue
		}
		out, err := s.records(ctx, st, locs)
		if errors.Is(err, errGone) {
			// Trimmed under us: wait for the marker to reach the index.
			if err := s.awaitChange(ctx, ch, 10*time.Millisecond); err != nil {
				return tailErr(err)
			}
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("natsstore: tail after %d: %w", after, err)
		}
		if err := fn(out); err != nil {
			return err
		}
		after = out[len(out)-1].Pos
	}
}

// tailErr is Tail's error for awaitChange's err: ctx's error as it is,
// ErrLogClosed wrapped.
func tailErr(err error) error {
	if errors.Is(err, hub.ErrLogClosed) {
		return fmt.Errorf("natsstore: tail: %w", err)
	}
	return err
}

// records returns the records at locs.
func (s *Store) records(ctx context.Context, st jetstream.Stream, locs []loc) ([]hub.Record, error) {
	out := make([]hub.Record, 0, len(locs))
	var recs []hub.Record
	var seq uint64
	for _, l := range locs {
		if recs == nil || l.seq != seq {
			var err error
			if recs, err = s.fetch(ctx, st, l.seq); err != nil {
				return nil, err
			}
			seq = l.seq
		}
		out = append(out, recs[l.idx])
	}
	return out, nil
}

// Lookup implements hub.Log. An ID the index does not hold makes it
// catch up with the stream first, so an ID appended on another node is
// found once that Append has returned.
func (s *Store) Lookup(ctx context.Context, id string) (uint64, error) {
	for synced := false; ; synced = true {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return 0, fmt.Errorf("natsstore: lookup: %w", hub.ErrLogClosed)
		}
		pos, ok := s.idx.lookup(id)
		s.mu.Unlock()
		if ok {
			return pos, nil
		}
		if synced {
			return 0, fmt.Errorf("natsstore: lookup %q: %w", id, hub.ErrNotFound)
		}
		if err := s.sync(ctx); err != nil {
			return 0, fmt.Errorf("natsstore: lookup %q: %w", id, err)
		}
	}
}

// Bounds implements hub.Log. It asks the server for the stream's last
// sequence and waits until the index holds it, so it costs one round
// trip and fails within ctx while NATS is unreachable.
func (s *Store) Bounds(ctx context.Context) (first, last uint64, err error) {
	if err := s.sync(ctx); err != nil {
		return 0, 0, fmt.Errorf("natsstore: bounds: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.idx.first(), s.idx.newest, nil
}
