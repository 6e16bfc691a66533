package natsstore

import (
	"slices"
	"sort"
	"strconv"

	"github.com/ssehub/ssehub/hub"
)

// An entry is what the index keeps of one record: where its batch is and
// what Trim and Lookup need. It is 40 bytes.
type entry struct {
	seq  uint64 // stream sequence of the batch message holding it
	idx  uint32 // its index in that batch
	time int64  // Time, Unix nanoseconds
	id   string // the publisher's ID; "" when it is the decimal position
}

// An index is a Store's in-memory picture of the stream, built by the
// follower from every message in stream order (and by the committer from
// the batches it has just published). It is guarded by Store.mu.
type index struct {
	seq       uint64              // the last stream sequence applied
	newest    uint64              // the newest position ever assigned
	base      uint64              // the position of entries[0]; newest+1 when none is held
	entries   []entry             // held records, base onwards
	topics    map[string][]uint64 // topic → positions held, ascending
	ids       map[string]uint64   // publisher's ID → position
	markerSeq uint64              // stream sequence of the newest trim marker applied
}

func newIndex() index {
	return index{base: 1, topics: make(map[string][]uint64), ids: make(map[string]uint64)}
}

// first returns the position of the oldest record held, or 0.
func (x *index) first() uint64 {
	if len(x.entries) == 0 {
		return 0
	}
	return x.base
}

// trimmedAfter reports whether records after position after have been
// removed before Read reached them.
func (x *index) trimmedAfter(after uint64) bool {
	if len(x.entries) == 0 {
		return x.newest > after
	}
	return x.base > after+1
}

// applyBatch adds the records of the batch message at stream sequence
// seq. It ignores a message it has applied already.
func (x *index) applyBatch(seq uint64, recs []hub.Record) {
	if seq <= x.seq || len(recs) == 0 {
		return
	}
	x.seq = seq
	first, last := recs[0].Pos, recs[len(recs)-1].Pos
	if last <= x.newest {
		return // positions are never reused: not a record of this Log
	}
	if first > x.newest+1 {
		// The batches between were purged by a Trim whose marker is
		// still to come: what is held before them is trimmed too.
		x.newest = first - 1
		x.applyFloor(first)
	}
	for i := range recs {
		r := &recs[i]
		if r.Pos <= x.newest {
			continue
		}
		x.newest = r.Pos
		if r.Pos < x.base {
			continue // a batch straddling the floor
		}
		e := entry{seq: seq, idx: uint32(i), time: r.Time.UnixNano()}
		if r.ID != strconv.FormatUint(r.Pos, 10) {
			e.id = r.ID
			x.ids[r.ID] = r.Pos
		}
		x.entries = append(x.entries, e)
		for j, t := range r.Topics {
			if slices.Contains(r.Topics[:j], t) {
				continue
			}
			x.topics[t] = append(x.topics[t], r.Pos)
		}
	}
	if len(x.entries) == 0 {
		x.base = x.newest + 1
	}
}

// applyMarker applies the trim marker at stream sequence seq.
func (x *index) applyMarker(seq, floor uint64) int {
	if seq <= x.seq {
		return 0
	}
	x.seq, x.markerSeq = seq, seq
	x.newest = max(x.newest, floor-1)
	return x.applyFloor(floor)
}

// applyFloor removes the records before position floor and returns how
// many it removed.
func (x *index) applyFloor(floor uint64) int {
	if floor <= x.base {
		return 0
	}
	n := int(min(floor-x.base, uint64(len(x.entries))))
	for _, e := range x.entries[:n] {
		if e.id != "" {
			delete(x.ids, e.id)
		}
	}
	x.entries = x.entries[n:]
	if cap(x.entries) > 1024 && cap(x.entries) > 4*len(x.entries) {
		x.entries = slices.Clone(x.entries) // let the trimmed part go
	}
	x.base = floor
	if len(x.entries) == 0 {
		x.base = x.newest + 1
	}
	for t, ps := range x.topics {
		i := sort.Search(len(ps), func(i int) bool { return ps[i] >= floor })
		switch {
		case i == len(ps):
			delete(x.topics, t)
		case i > 0:
			ps = ps[i:]
			if cap(ps) > 64 && cap(ps) > 4*len(ps) {
				ps = slices.Clone(ps)
			}
			x.topics[t] = ps
		}
	}
	return n
}

// at returns the entry of the held position pos.
func (x *index) at(pos uint64) (entry, bool) {
	if pos < x.base || pos-x.base >= uint64(len(x.entries)) {
		return entry{}, false
	}
	return x.entries[pos-x.base], true
}

// lookup returns the position of the held record with ID id.
func (x *index) lookup(id string) (uint64, bool) {
	if hub.ReservedID(id) {
		pos, err := strconv.ParseUint(id, 10, 64)
		if err != nil || strconv.FormatUint(pos, 10) != id {
			return 0, false
		}
		e, ok := x.at(pos)
		return pos, ok && e.id == ""
	}
	pos, ok := x.ids[id]
	return pos, ok
}

// A loc is where a record is: its position, batch message and index in
// it.
type loc struct {
	pos uint64
	seq uint64
	idx uint32
}

func (x *index) loc(pos uint64) loc {
	e := x.entries[pos-x.base]
	return loc{pos: pos, seq: e.seq, idx: e.idx}
}

// span appends to locs the held records after after, at most n of them.
func (x *index) span(locs []loc, after uint64, n int) []loc {
	for p := max(after+1, x.base); p <= x.newest && n > 0; p++ {
		locs = append(locs, x.loc(p))
		n--
	}
	return locs
}

// denseTopics is the number of matching topics above which Read walks
// every position rather than merge the topics' lists.
const denseTopics = 32

// matching returns the topics held that match one of sels, or dense
// true when Read had better walk every position.
func (x *index) matching(sels []hub.Selector) (topics []string, dense bool) {
	seen := map[string]bool{}
	for _, s := range sels {
		if s.Exact() {
			if _, ok := x.topics[s.String()]; ok && !seen[s.String()] {
				seen[s.String()] = true
				topics = append(topics, s.String())
			}
			continue
		}
		for t := range x.topics {
			if !seen[t] && s.Match(t) {
				seen[t] = true
				topics = append(topics, t)
				if len(topics) > denseTopics {
					return nil, true
				}
			}
		}
	}
	return topics, false
}

// merge appends to locs the held positions after after on any of topics,
// in order and each once, at most n of them. It returns them and whether
// positions beyond them remain.
func (x *index) merge(locs []loc, after uint64, topics []string, n int) ([]loc, bool) {
	lists := make([][]uint64, 0, len(topics))
	for _, t := range topics {
		ps := x.topics[t]
		i := sort.Search(len(ps), func(i int) bool { return ps[i] > after })
		if i < len(ps) {
			lists = append(lists, ps[i:])
		}
	}
	for len(lists) > 0 {
		if n == 0 {
			return locs, true
		}
		low := lists[0][0]
		for _, ps := range lists[1:] {
			low = min(low, ps[0])
		}
		locs = append(locs, x.loc(low))
		n--
		keep := lists[:0]
		for _, ps := range lists {
			if ps[0] == low {
				ps = ps[1:]
			}
			if len(ps) > 0 {
				keep = append(keep, ps)
			}
		}
		lists = keep
	}
	return locs, false
}
