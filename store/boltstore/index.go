package boltstore

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"slices"
	"strings"
	"sync"

	bolt "go.etcd.io/bbolt"

	"github.com/ssehub/ssehub/hub"
)

// The per-topic index is kept in two parts. On disk, the topics bucket
// holds the entries of the records up to position indexed (meta key
// "indexed"). In memory, pending holds the entries of the later records.
// The committer writes pending to disk, sorted, in the transaction of the
// commit that brings it to Options' index lag (4096 entries by default),
// so a commit of records on many topics does not rewrite one index page
// per topic: each page is rewritten once per flush instead. Open rebuilds
// pending by reading the records after indexed.
//
// Read takes a snapshot of the memory part, then opens its transaction:
// the disk part it sees then covers at least the snapshot's indexed, so
// taking disk entries up to indexed and memory entries after it sees
// each record once.

// defaultIndexLag is how many index entries wait in memory.
const defaultIndexLag = 4096

// An entry is one record's entry in one topic's index.
type entry struct {
	topic string
	pos   uint64
}

// A pendingIndex is the memory part of the per-topic index. The
// committer is its only writer, and Open before the committer starts.
type pendingIndex struct {
	mu      sync.RWMutex        // guards the fields below
	indexed uint64              // the disk part covers positions up to this one
	topics  map[string][]uint64 // positions after indexed, ascending, by topic
	n       int                 // entries in topics
}

func (p *pendingIndex) add(es []entry) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.topics == nil {
		p.topics = make(map[string][]uint64)
	}
	for _, e := range es {
		p.topics[e.topic] = append(p.topics[e.topic], e.pos)
	}
	p.n += len(es)
}

// flushed records that the disk part now covers positions up to indexed.
func (p *pendingIndex) flushed(indexed uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.indexed, p.topics, p.n = indexed, nil, 0
}

// entries returns the pending entries and es, sorted by index key, for a
// flush. Only the committer calls it, so it needs no lock.
func (p *pendingIndex) entries(es []entry) []entry {
	all := make([]entry, 0, p.n+len(es))
	for t, ps := range p.topics {
		for _, pos := range ps {
			all = append(all, entry{t, pos})
		}
	}
	all = append(all, es...)
	slices.SortFunc(all, func(a, b entry) int {
		if c := strings.Compare(a.topic, b.topic); c != 0 {
			return c
		}
		return cmp.Compare(a.pos, b.pos)
	})
	return all
}

// A snapshot is what Read needs of the memory part: the position the
// disk part covers, and the pending positions after a Read's position of
// the topics its selectors match.
type snapshot struct {
	indexed uint64
	topics  map[string][]uint64
}

// snapshot takes a snapshot for sels after after. It reports false when
// a scan is cheaper: a selector has no literal prefix, or more than
// maxTopics topics match.
func (p *pendingIndex) snapshot(sels []hub.Selector, after uint64) (snapshot, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	sn := snapshot{indexed: p.indexed, topics: make(map[string][]uint64)}
	add := func(t string, ps []uint64) {
		if _, ok := sn.topics[t]; ok {
			return
		}
		i, _ := slices.BinarySearch(ps, after+1)
		if i < len(ps) {
			sn.topics[t] = slices.Clone(ps[i:])
		}
	}
	for _, sel := range sels {
		switch {
		case sel.String() == "":
		case sel.Exact():
			if ps, ok := p.topics[sel.String()]; ok {
				add(sel.String(), ps)
			}
		case sel.Prefix() == "":
			return snapshot{}, false
		default:
			prefix := sel.Prefix()
			for t, ps := range p.topics {
				if strings.HasPrefix(t, prefix) && sel.Match(t) {
					add(t, ps)
				}
			}
		}
		if len(sn.topics) > maxTopics {
			return snapshot{}, false
		}
	}
	return sn, true
}

// flushIndex writes es, sorted, to the disk part of the index, skipping
// the entries of records already trimmed, and records that it covers
// positions up to last.
func flushIndex(tx *bolt.Tx, es []entry, last uint64) error {
	topics := tx.Bucket(bucketTopics)
	topics.FillPercent = 0.9 // most entries go at the end of their topic
	var first uint64
	if k, _ := tx.Bucket(bucketRecs).Cursor().First(); len(k) == 8 {
		first = binary.BigEndian.Uint64(k)
	}
	var keys []byte // an arena: bbolt keeps keys until the commit
	for _, e := range es {
		if e.pos < first {
			continue
		}
		from := len(keys)
		keys = appendTopicKey(keys, e.topic, e.pos)
		if err := topics.Put(keys[from:len(keys):len(keys)], nil); err != nil {
			return err
		}
	}
	return tx.Bucket(bucketMeta).Put(keyIndexed, posKey(last))
}

// loadPending reads the records after the disk part of the index into p.
func loadPending(tx *bolt.Tx, p *pendingIndex) error {
	if v := tx.Bucket(bucketMeta).Get(keyIndexed); len(v) == 8 {
		p.indexed = binary.BigEndian.Uint64(v)
	}
	c := tx.Bucket(bucketRecs).Cursor()
	var (
		w  view
		es []entry
	)
	for k, v := c.Seek(posKey(p.indexed + 1)); k != nil; k, v = c.Next() {
		pos := binary.BigEndian.Uint64(k)
		if err := w.parse(pos, v); err != nil {
			return err
		}
		for _, t := range w.topics {
			es = append(es, entry{string(t), pos})
		}
	}
	p.add(es)
	return nil
}

// A topicCursor yields one topic's positions in order: from the disk
// part of the index up to a limit, or from a snapshot of the memory part.
type topicCursor struct {
	c      *bolt.Cursor // nil for the memory part
	prefix []byte       // the topic and NUL
	limit  uint64       // the disk part's indexed
	mem    []uint64     // the memory part's remaining positions
	pos    uint64       // the current position
}

// load sets tc.pos from the disk key k and reports whether k is one of
// the topic's entries within the limit.
func (tc *topicCursor) load(k []byte) bool {
	if len(k) != len(tc.prefix)+8 || !bytes.HasPrefix(k, tc.prefix) {
		return false
	}
	tc.pos = binary.BigEndian.Uint64(k[len(tc.prefix):])
	return tc.pos <= tc.limit
}

// next advances tc and reports whether it has a position.
func (tc *topicCursor) next() bool {
	if tc.c == nil {
		if len(tc.mem) == 0 {
			return false
		}
		tc.pos, tc.mem = tc.mem[0], tc.mem[1:]
		return true
	}
	k, _ := tc.c.Next()
	return tc.load(k)
}

// cursorHeap orders topic cursors by position.
type cursorHeap []*topicCursor

func (h cursorHeap) Len() int           { return len(h) }
func (h cursorHeap) Less(i, j int) bool { return h[i].pos < h[j].pos }
func (h cursorHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *cursorHeap) Push(x any)        { *h = append(*h, x.(*topicCursor)) }
func (h *cursorHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
