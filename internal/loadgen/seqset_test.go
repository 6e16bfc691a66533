package loadgen

import (
	"math/rand/v2"
	"testing"
)

func TestSeqSet(t *testing.T) {
	tests := []struct {
		name     string
		fixed    bool
		adds     []uint64
		from, to uint64 // the expected range for missing
		missing  uint64
		dups     uint64
		lo, hi   uint64
	}{
		{"in order", true, seqs(0, 1000), 0, 999, 0, 0, 0, 999},
		{"none", true, nil, 0, 9, 10, 0, 0, 0},
		{"tail missing", true, seqs(0, 100), 0, 199, 100, 0, 0, 99},
		{"holes and repeats", true, []uint64{0, 1, 3, 3, 5, 1, 130, 130, 70}, 0, 130, 125, 3, 0, 130},
		{"repeat below the window", true, append(seqs(0, 200), 5, 199), 0, 199, 0, 2, 0, 199},
		{"starts late", false, seqs(1000, 1100), 1000, 1099, 0, 0, 1000, 1099},
		{"starts late, out of order", false, []uint64{500, 502, 499, 300, 501}, 300, 502, 198, 0, 300, 502},
		{"starts late, repeats", false, []uint64{70, 71, 71, 70, 72}, 70, 80, 8, 2, 70, 72},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := seqSet{fixed: tt.fixed}
			for _, v := range tt.adds {
				s.add(v)
			}
			if got := s.missing(tt.from, tt.to); got != tt.missing {
				t.Errorf("missing(%d, %d) = %d; want %d", tt.from, tt.to, got, tt.missing)
			}
			if s.dups != tt.dups || len(tt.adds) > 0 && (s.lo != tt.lo || s.hi != tt.hi) {
				t.Errorf("dups %d, lo %d, hi %d; want %d, %d, %d", s.dups, s.lo, s.hi, tt.dups, tt.lo, tt.hi)
			}
		})
	}
}

// TestSeqSetRandom checks the window against a map.
func TestSeqSetRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for round := range 20 {
		s := seqSet{fixed: true}
		seen := map[uint64]bool{}
		var dups uint64
		const n = 5000
		for i := range uint64(n) {
			// Mostly in order, some late, some lost, some repeated.
			v := i
			switch r := rng.IntN(100); {
			case r < 3:
				continue
			case r < 6 && i > 100:
				v = i - uint64(rng.IntN(100))
			}
			if seen[v] {
				dups++
			}
			seen[v] = true
			if s.add(v) == addOutOfRange {
				t.Fatalf("add(%d) out of range", v)
			}
		}
		if got, want := s.missing(0, n-1), uint64(n-len(seen)); got != want || s.dups != dups || s.unique != uint64(len(seen)) {
			t.Errorf("round %d: missing %d, dups %d, unique %d; want %d, %d, %d", round, got, s.dups, s.unique, want, dups, len(seen))
		}
		var sub uint64
		for v := uint64(1000); v <= 2000; v++ {
			if !seen[v] {
				sub++
			}
		}
		if got := s.missing(1000, 2000); got != sub {
			t.Errorf("round %d: missing(1000, 2000) = %d; want %d", round, got, sub)
		}
	}
}

func TestSeqSetInOrderNoAllocs(t *testing.T) {
	s := seqSet{fixed: true}
	var v uint64
	s.add(v)
	allocs := testing.AllocsPerRun(10000, func() {
		v++
		s.add(v)
	})
	if allocs != 0 || len(s.words) > 1 {
		t.Errorf("in-order add: %.2f allocations, %d words; want 0, at most 1", allocs, len(s.words))
	}
	if s.add(maxWindow+s.base+1) != addOutOfRange {
		t.Errorf("a number far past the window was accepted")
	}
}

func seqs(from, to uint64) []uint64 {
	var s []uint64
	for v := from; v < to; v++ {
		s = append(s, v)
	}
	return s
}

func TestMissingSplit(t *testing.T) {
	tests := []struct {
		name              string
		adds              []uint64
		from, to          uint64
		except            []seqRange
		lost, undelivered uint64
	}{
		{"all", seqs(0, 10), 0, 9, nil, 0, 0},
		{"gap", []uint64{0, 1, 3, 4}, 0, 4, nil, 1, 0},
		{"tail", []uint64{0, 1, 2}, 0, 9, nil, 0, 7},
		{"gap and tail", []uint64{0, 2}, 0, 5, nil, 1, 3},
		{"nothing received", nil, 0, 4, nil, 0, 5},
		{"failed publishes left out", []uint64{0, 3, 4}, 0, 7, []seqRange{{1, 2}, {6, 6}}, 0, 2},
		{"from the first received", []uint64{5, 7}, 5, 9, nil, 1, 2},
	}
	for _, tt := range tests {
		s := seqSet{fixed: true}
		for _, v := range tt.adds {
			s.add(v)
		}
		lost, late := missingSplit(&s, tt.from, tt.to, tt.except)
		if lost != tt.lost || late != tt.undelivered {
			t.Errorf("%s: missingSplit = %d lost, %d undelivered; want %d, %d", tt.name, lost, late, tt.lost, tt.undelivered)
		}
	}
}
