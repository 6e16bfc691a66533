package memstore

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/ssehub/ssehub/hub"
)

var _ hub.Log = (*Store)(nil)

// A Store is an in-memory hub.Log. It is safe for concurrent use and
// starts no goroutines. The zero value is not usable; call New.
type Store struct {
	now func() time.Time

	mu     sync.Mutex        // guards the fields below
	recs   []hub.Record      // held records, in position order
	ids    map[string]uint64 // event ID → position, for held records
	last   uint64            // newest position ever assigned
	notify chan struct{}     // closed and replaced on every append
	closed bool
}

// New returns an empty Store. Close it to make its Tails return.
func New() *Store {
	return &Store{now: time.Now, ids: make(map[string]uint64), notify: make(chan struct{})}
}

// Append implements hub.Log. It refuses an ID made only of ASCII
// digits, the form of the IDs it assigns, with an error wrapping
// hub.ErrDuplicateID. It keeps a copy of each record, not recs.
func (s *Store) Append(ctx context.Context, recs []hub.Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return hub.ErrLogClosed
	}
	seen := make(map[string]bool, len(recs))
	for i := range recs {
		id := recs[i].ID
		if id == "" {
			continue
		}
		if hub.ReservedID(id) {
			// Reserved for assigned IDs: accepting "7" would collide
			// with the ID assigned to position 7.
			return fmt.Errorf("memstore: append %q: id of digits is reserved: %w", id, hub.ErrDuplicateID)
		}
		if _, dup := s.ids[id]; dup || seen[id] {
			return fmt.Errorf("memstore: append %q: %w", id, hub.ErrDuplicateID)
		}
		seen[id] = true
	}
	now := s.now()
	for i := range recs {
		s.last++
		r := &recs[i]
		r.Pos, r.Time = s.last, now
		if r.ID == "" {
			r.ID = strconv.FormatUint(r.Pos, 10)
		}
		s.ids[r.ID] = r.Pos
		stored := *r
		stored.Topics = slices.Clone(r.Topics) // the caller keeps its slice
		s.recs = append(s.recs, stored)
	}
	close(s.notify)
	s.notify = make(chan struct{})
	return nil
}

// indexAfterLocked returns the index in s.recs of the first record with
// Pos > after.
func (s *Store) indexAfterLocked(after uint64) int {
	if len(s.recs) == 0 || after < s.recs[0].Pos {
		return 0
	}
	i := int(after - s.recs[0].Pos + 1) // positions are dense
	return min(i, len(s.recs))
}

// trimmedAfterLocked reports whether records after position after have
// been removed: the oldest held is past after+1, or none is held though
// later ones were appended.
func (s *Store) trimmedAfterLocked(after uint64) bool {
	if len(s.recs) == 0 {
		return s.last > after
	}
	return s.recs[0].Pos > after+1
}

// batch bounds how many records Read and Tail copy, and how many Read
// examines, while holding the lock.
const batch = 256

// Read implements hub.Log. It copies the matching records under the lock,
// then calls fn without it. The records fn receives share their Topics
// with the Store: fn may keep them but must not modify them.
func (s *Store) Read(ctx context.Context, after uint64, sels []hub.Selector, fn func(*hub.Record) bool) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return hub.ErrLogClosed
		}
		if s.trimmedAfterLocked(after) {
			s.mu.Unlock()
			return hub.ErrTrimmed
		}
		var out []hub.Record
		i := s.indexAfterLocked(after)
		for end := i + 16*batch; i < len(s.recs) && i < end && len(out) < batch; i++ {
			if hub.MatchAny(sels, s.recs[i].Topics) {
				out = append(out, s.recs[i])
			}
		}
		more := i < len(s.recs)
		if i > 0 && i <= len(s.recs) {
			after = s.recs[i-1].Pos
		}
		s.mu.Unlock()
		for j := range out {
			if !fn(&out[j]) {
				return nil
			}
		}
		if !more {
			return nil
		}
	}
}

// Tail implements hub.Log. It calls fn with at most 256 records at a
// time; as with Read, fn must not modify them.
func (s *Store) Tail(ctx context.Context, after uint64, fn func([]hub.Record) error) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return hub.ErrLogClosed
		}
		var out []hub.Record
		if i := s.indexAfterLocked(after); i < len(s.recs) {
			out = append(out, s.recs[i:min(i+batch, len(s.recs))]...)
		}
		wait := s.notify
		s.mu.Unlock()
		if len(out) > 0 {
			if err := fn(out); err != nil {
				return err
			}
			after = out[len(out)-1].Pos
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wait:
		}
	}
}

// Lookup implements hub.Log.
func (s *Store) Lookup(ctx context.Context, id string) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, hub.ErrLogClosed
	}
	pos, ok := s.ids[id]
	if !ok {
		return 0, fmt.Errorf("memstore: lookup %q: %w", id, hub.ErrNotFound)
	}
	return pos, nil
}

// Bounds implements hub.Log.
func (s *Store) Bounds(ctx context.Context) (first, last uint64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, 0, hub.ErrLogClosed
	}
	if len(s.recs) > 0 {
		first = s.recs[0].Pos
	}
	return first, s.last, nil
}

// Trim implements hub.Log.
func (s *Store) Trim(ctx context.Context, r hub.Retention) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, hub.ErrLogClosed
	}
	n := 0
	if r.MaxCount > 0 && len(s.recs) > r.MaxCount {
		n = len(s.recs) - r.MaxCount
	}
	if r.MaxAge > 0 {
		cutoff := s.now().Add(-r.MaxAge)
		for n < len(s.recs) && s.recs[n].Time.Before(cutoff) {
			n++
		}
	}
	if n == 0 {
		return 0, nil
	}
	for _, rec := range s.recs[:n] {
		delete(s.ids, rec.ID)
	}
	s.recs = append([]hub.Record(nil), s.recs[n:]...)
	return n, nil
}

// Close implements hub.Log. Tail calls in progress return
// hub.ErrLogClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(s.notify)
	}
	return nil
}
