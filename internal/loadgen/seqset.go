package loadgen

import "math/bits"

// maxWindow bounds how far past the lowest sequence number a subscriber
// has not yet received a new one may be: 2^26 bits, 8 MiB. A number
// further out is not a payload of this run.
const maxWindow = 1 << 26

// A seqSet records which sequence numbers one subscriber has received,
// to count the lost and the duplicated. It keeps a sliding bitset: every
// number below base has been received, and bit i of the window stands for
// base+i, so in-order delivery needs one word and no allocation. It is not
// safe for concurrent use. The zero value expects numbers to start with
// the first one received; set fixed to expect them from 0.
type seqSet struct {
	fixed  bool     // the expected numbers start at 0, not at the first received
	base   uint64   // the number of bit 0 of words[head]; a multiple of 64
	words  []uint64 // the window is words[head:]
	head   int
	slid   bool   // base has moved past received numbers
	lo, hi uint64 // the lowest and highest numbers received
	unique uint64 // numbers received at least once
	dups   uint64 // receptions of a number already received
}

// An addResult says what add made of a sequence number.
type addResult uint8

const (
	addNew addResult = iota
	addDup
	addOutOfRange
)

// add records the reception of seq.
func (s *seqSet) add(seq uint64) addResult {
	if s.unique == 0 && s.dups == 0 {
		if !s.fixed {
			s.base = seq &^ 63
			s.lo = seq
		}
		s.hi = seq
	}
	if seq < s.base {
		if s.slid || s.fixed {
			s.dups++
			return addDup
		}
		// Numbers may arrive a little out of order (several publishers):
		// grow the window downwards until it first slides.
		n := int((s.base - seq + 63) >> 6)
		grown := make([]uint64, n+len(s.words)-s.head, n+len(s.words)-s.head+4)
		copy(grown[n:], s.words[s.head:])
		s.words, s.head = grown, 0
		s.base -= uint64(n) << 6
	}
	off := seq - s.base
	if off >= maxWindow {
		return addOutOfRange
	}
	w := s.head + int(off>>6)
	for w >= len(s.words) {
		s.words = append(s.words, 0)
	}
	m := uint64(1) << (off & 63)
	if s.words[w]&m != 0 {
		s.dups++
		return addDup
	}
	s.words[w] |= m
	s.unique++
	s.lo = min(s.lo, seq)
	s.hi = max(s.hi, seq)
	// Slide past words complete from lo on.
	for s.head < len(s.words) && s.words[s.head]|s.belowLo() == ^uint64(0) {
		s.head++
		s.base += 64
		s.slid = true
		switch {
		case s.head == len(s.words):
			s.words, s.head = s.words[:0], 0
		case s.head > 32 && 2*s.head > len(s.words):
			n := copy(s.words, s.words[s.head:])
			s.words, s.head = s.words[:n], 0
		}
	}
	return addNew
}

// belowLo returns the mask of the bits of the first window word that
// stand for numbers below lo, which are not expected.
func (s *seqSet) belowLo() uint64 {
	if s.lo <= s.base {
		return 0
	}
	if s.lo-s.base >= 64 {
		return ^uint64(0)
	}
	return uint64(1)<<(s.lo-s.base) - 1
}

// missing returns how many of the numbers from..to (inclusive) have not
// been received. Numbers below the window count as received.
func (s *seqSet) missing(from, to uint64) uint64 {
	if to < from {
		return 0
	}
	from = max(from, s.base)
	if to < from {
		return 0
	}
	var n uint64
	end := s.base + uint64(len(s.words)-s.head)<<6 // first number past the window
	if to >= end {
		n += to - max(from, end) + 1
		if from >= end {
			return n
		}
		to = end - 1
	}
	// from..to lies in the window.
	for seq := from; seq <= to; {
		off := seq - s.base
		w := s.words[s.head+int(off>>6)]
		bit := off & 63
		last := min(to-seq, 63-bit) // bits bit..bit+last of w
		span := ^uint64(0) >> (63 - last) << bit
		n += uint64(bits.OnesCount64(^w & span))
		seq += last + 1
		if seq == 0 { // wrapped past the largest number
			break
		}
	}
	return n
}
