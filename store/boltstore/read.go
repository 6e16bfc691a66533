package boltstore

import (
	"bytes"
	"container/heap"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"

	bolt "go.etcd.io/bbolt"

	"github.com/ssehub/ssehub/hub"
)

// Limits of one read transaction. Read and Tail work in short
// transactions and call fn between them, never inside one: a bbolt read
// transaction held open would stop the file from growing, and so every
// Append, for as long as a slow fn ran.
const (
	readBatch = 512  // most records one Read transaction delivers
	scanLimit = 8192 // most records one scanning Read transaction examines
	tailBatch = 1024 // most records one Tail transaction delivers
	// maxTopics is how many topics Read merges from the per-topic index;
	// for selectors that match more, it scans the records instead.
	maxTopics = 256
)

// Read implements hub.Log. For selectors whose topics it can list, exact
// ones and patterns with a literal Prefix, it walks only those topics'
// entries in the per-topic index, merging them in position order and
// delivering a record with several matching topics once: replaying a
// quiet topic costs the same however many records other topics have.
// Selectors that start with a wildcard, or that match more than 256
// topics, make it scan the records after after instead. fn may keep the
// records it is given.
func (s *Store) Read(ctx context.Context, after uint64, sels []hub.Selector, fn func(*hub.Record) bool) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if s.isClosed() {
			return fmt.Errorf("boltstore: read: %w", hub.ErrLogClosed)
		}
		if len(sels) == 0 {
			return nil
		}
		var (
			out  []hub.Record
			next uint64
			done bool
		)
		sn, ok := s.idx.snapshot(sels, after) // before the transaction: see index.go
		err := s.db.View(func(tx *bolt.Tx) error {
			if first, last := bounds(tx); first > after+1 || first == 0 && last > after {
				return hub.ErrTrimmed // records after after, not yet read, are gone
			}
			var err error
			if ok {
				out, next, done, err = s.indexChunk(tx, after, sels, sn)
			} else {
				out, next, done, err = s.scanChunk(tx, after, sels)
			}
			return err
		})
		if err != nil {
			return s.wrap("read", err)
		}
		for i := range out {
			if !fn(&out[i]) {
				return nil
			}
		}
		if done {
			return nil
		}
		after = next
	}
}

// indexChunk returns the next records after after that match sels,
// the position to continue after, and whether there are no more, from
// the per-topic index; it scans instead when too many topics match.
func (s *Store) indexChunk(tx *bolt.Tx, after uint64, sels []hub.Selector, sn snapshot) ([]hub.Record, uint64, bool, error) {
	names, scan := candidates(tx.Bucket(bucketTopics), sels)
	if !scan {
		for t := range sn.topics {
			if !slices.Contains(names, t) {
				names = append(names, t)
			}
		}
		scan = len(names) > maxTopics
	}
	if scan {
		return s.scanChunk(tx, after, sels)
	}
	return s.mergeChunk(tx, after, names, sn)
}

// candidates lists the topics in the index that sels match, or reports
// that a scan is cheaper: for a selector with no literal prefix, or when
// more than maxTopics topics match.
func candidates(b *bolt.Bucket, sels []hub.Selector) (names []string, scan bool) {
	seen := make(map[string]bool)
	add := func(t string) bool {
		if !seen[t] {
			seen[t] = true
			names = append(names, t)
		}
		return len(names) <= maxTopics
	}
	c := b.Cursor()
	for _, sel := range sels {
		switch {
		case sel.String() == "":
			continue // the zero Selector matches nothing
		case sel.Exact():
			if !add(sel.String()) {
				return nil, true
			}
			continue
		}
		prefix := []byte(sel.Prefix())
		if len(prefix) == 0 {
			return nil, true
		}
		// Each topic's entries are adjacent: look at one key per topic,
		// then seek past the topic (its keys continue with NUL, and
		// topic+"\x01" sorts after them and before any other topic).
		visited := 0
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); {
			i := bytes.IndexByte(k, 0)
			if i < 0 {
				k, _ = c.Next()
				continue
			}
			topic := string(k[:i])
			if sel.Match(topic) && !add(topic) {
				return nil, true
			}
			if visited++; visited > 4*maxTopics {
				return nil, true
			}
			k, _ = c.Seek(append([]byte(topic), 1))
		}
	}
	return names, false
}

// mergeChunk merges the index entries of names after after, from disk
// up to sn.indexed and from sn after it.
func (s *Store) mergeChunk(tx *bolt.Tx, after uint64, names []string, sn snapshot) ([]hub.Record, uint64, bool, error) {
	idx, recs := tx.Bucket(bucketTopics), tx.Bucket(bucketRecs)
	h := make(cursorHeap, 0, len(names))
	for _, name := range names {
		if after < sn.indexed {
			tc := &topicCursor{c: idx.Cursor(), prefix: append([]byte(name), 0), limit: sn.indexed}
			if k, _ := tc.c.Seek(appendTopicKey(nil, name, after+1)); tc.load(k) {
				h = append(h, tc)
			}
		}
		if tc := (&topicCursor{mem: sn.topics[name]}); tc.next() {
			h = append(h, tc)
		}
	}
	heap.Init(&h)
	var (
		out  []hub.Record
		prev uint64
		w    view
		key  [8]byte
	)
	for len(h) > 0 && len(out) < readBatch {
		tc := h[0]
		pos := tc.pos
		if tc.next() {
			heap.Fix(&h, 0)
		} else {
			heap.Pop(&h)
		}
		if pos == prev {
			continue // a record with several of the topics
		}
		prev = pos
		binary.BigEndian.PutUint64(key[:], pos)
		v := recs.Get(key[:])
		if v == nil {
			continue // trimmed after the snapshot was taken
		}
		if err := w.parse(pos, v); err != nil {
			return nil, 0, false, err
		}
		out = append(out, w.record(pos))
	}
	s.visited.Add(uint64(len(out)))
	return out, prev, len(h) == 0, nil
}

// scanChunk examines the records after after in position order.
func (s *Store) scanChunk(tx *bolt.Tx, after uint64, sels []hub.Selector) ([]hub.Record, uint64, bool, error) {
	c := tx.Bucket(bucketRecs).Cursor()
	var (
		out     []hub.Record
		w       view
		scanned int
	)
	defer func() { s.visited.Add(uint64(scanned)) }()
	for k, v := c.Seek(posKey(after + 1)); k != nil; k, v = c.Next() {
		pos := binary.BigEndian.Uint64(k)
		if err := w.parse(pos, v); err != nil {
			return nil, 0, false, err
		}
		scanned++
		if w.matches(sels) {
			out = append(out, w.record(pos))
		}
		if len(out) >= readBatch || scanned >= scanLimit {
			return out, pos, false, nil
		}
	}
	return out, 0, true, nil
}

// Tail implements hub.Log. After each commit the committer wakes the
// Tails, which read the new records from the file in batches of up to
// 1024; a Tail that falls behind keeps reading in order from the file.
// A Tail whose next records were trimmed before it read them continues
// with the oldest record held. fn may keep the records it is given.
func (s *Store) Tail(ctx context.Context, after uint64, fn func([]hub.Record) error) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		s.mu.Lock()
		closed, wait := s.closed, s.notify
		s.mu.Unlock()
		if closed {
			return fmt.Errorf("boltstore: tail: %w", hub.ErrLogClosed)
		}
		// wait was taken before last is loaded: a commit after this
		// load closes it.
		if last := s.last.Load(); last > after {
			// Only up to last, which Bounds reports: the file may hold a
			// commit not published yet, and a record the hub fans out
			// before Bounds reports it reaches neither the replay of a
			// subscriber that joins meanwhile nor its live queue.
			var out []hub.Record
			err := s.db.View(func(tx *bolt.Tx) error {
				var err error
				out, err = readFrom(tx, after, last, tailBatch)
				return err
			})
			if err != nil {
				return s.wrap("tail", err)
			}
			if len(out) == 0 {
				after = last // all trimmed
				continue
			}
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

// readFrom returns up to max records after after and at or below upto.
func readFrom(tx *bolt.Tx, after, upto uint64, max int) ([]hub.Record, error) {
	c := tx.Bucket(bucketRecs).Cursor()
	var (
		out []hub.Record
		w   view
	)
	for k, v := c.Seek(posKey(after + 1)); k != nil && len(out) < max; k, v = c.Next() {
		pos := binary.BigEndian.Uint64(k)
		if pos > upto {
			break
		}
		if err := w.parse(pos, v); err != nil {
			return nil, err
		}
		out = append(out, w.record(pos))
	}
	return out, nil
}

// Lookup implements hub.Log. A publisher's ID is found in the ID index;
// an assigned ID, the decimal position, by reading that record.
func (s *Store) Lookup(ctx context.Context, id string) (uint64, error) {
	if s.isClosed() {
		return 0, fmt.Errorf("boltstore: lookup: %w", hub.ErrLogClosed)
	}
	var pos uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		if hub.ReservedID(id) {
			p, err := strconv.ParseUint(id, 10, 64)
			if err != nil {
				return nil
			}
			v := tx.Bucket(bucketRecs).Get(posKey(p))
			if v == nil {
				return nil
			}
			var w view
			if err := w.parse(p, v); err != nil {
				return err
			}
			if w.idEquals(p, id) {
				pos = p
			}
			return nil
		}
		if v := tx.Bucket(bucketIDs).Get([]byte(id)); len(v) == 8 {
			pos = binary.BigEndian.Uint64(v)
		}
		return nil
	})
	if err != nil {
		return 0, s.wrap(fmt.Sprintf("lookup %q", id), err)
	}
	if pos == 0 {
		return 0, fmt.Errorf("boltstore: lookup %q: %w", id, hub.ErrNotFound)
	}
	return pos, nil
}

// Bounds implements hub.Log. Its last is the newest position the
// committer has published, not the newest one in the file: a commit is
// in the file, and seen by new read transactions, a moment before the
// committer has added its records to the memory part of the per-topic
// index, and a Read in that moment would miss them. The committer
// publishes the position once the index holds them (see commit), so a
// Read that starts after Bounds returns sees every record up to last.
func (s *Store) Bounds(ctx context.Context) (first, last uint64, err error) {
	if s.isClosed() {
		return 0, 0, fmt.Errorf("boltstore: bounds: %w", hub.ErrLogClosed)
	}
	last = s.last.Load() // before the transaction, which sees at least as much
	err = s.db.View(func(tx *bolt.Tx) error {
		first, _ = bounds(tx)
		return nil
	})
	if err != nil {
		return 0, 0, s.wrap("bounds", err)
	}
	if first > last {
		// Trim removed every published record, and the file holds only
		// records of a commit not published yet: none, as of last.
		first = 0
	}
	return first, last, nil
}

// bounds returns the positions of the oldest record held in tx (0 for
// none) and of the newest ever assigned.
func bounds(tx *bolt.Tx) (first, last uint64) {
	if k, _ := tx.Bucket(bucketRecs).Cursor().First(); len(k) == 8 {
		first = binary.BigEndian.Uint64(k)
	}
	if v := tx.Bucket(bucketMeta).Get(keyLast); len(v) == 8 {
		last = binary.BigEndian.Uint64(v)
	}
	return first, last
}
