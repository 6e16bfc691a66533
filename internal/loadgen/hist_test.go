package loadgen

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBucketBounds(t *testing.T) {
	// Every value lands in a bucket whose middle is within 1/128 of it,
	// and buckets increase with values.
	prev := -1
	for _, v := range []uint64{0, 1, 127, 128, 129, 255, 256, 257, 1000, 1 << 20, 123456789, 1 << 40, maxValue} {
		i := bucketOf(v)
		if i < prev || i >= numBuckets {
			t.Fatalf("bucketOf(%d) = %d; want in [%d, %d)", v, i, prev, numBuckets)
		}
		prev = i
		mid := bucketMid(i)
		if diff := float64(max(mid, v) - min(mid, v)); diff > float64(v)/128+0.5 {
			t.Errorf("bucketMid(bucketOf(%d)) = %d; want within 1/128", v, mid)
		}
	}
	if got := bucketOf(maxValue + 1<<50); got != numBuckets-1 {
		t.Errorf("bucketOf(huge) = %d; want the last bucket %d", got, numBuckets-1)
	}
}

func TestHistogramQuantiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var parts [3]histogram
	var all []time.Duration
	for i := range 30000 {
		d := time.Duration(rng.ExpFloat64() * float64(time.Millisecond))
		all = append(all, d)
		parts[i%3].record(d)
	}
	var h histogram
	for i := range parts {
		h.merge(&parts[i])
	}
	slices.Sort(all)
	tests := []struct {
		q    float64
		want time.Duration
	}{
		{0.5, all[len(all)/2-1]},
		{0.9, all[len(all)*9/10-1]},
		{0.99, all[len(all)*99/100-1]},
		{1, all[len(all)-1]},
	}
	for _, tt := range tests {
		got := h.quantile(tt.q)
		if diff := (got - tt.want).Abs(); float64(diff) > float64(tt.want)/100 {
			t.Errorf("quantile(%v) = %v; want %v within 1%%", tt.q, got, tt.want)
		}
	}
	if h.n != 30000 || time.Duration(h.max) != all[len(all)-1] || time.Duration(h.min) != all[0] {
		t.Errorf("n, min, max = %d, %v, %v; want 30000, %v, %v", h.n, time.Duration(h.min), time.Duration(h.max), all[0], all[len(all)-1])
	}
	var empty histogram
	if empty.quantile(0.99) != 0 || empty.summary() != (Percentiles{}) {
		t.Errorf("empty histogram: quantile %v, summary %+v; want zeros", empty.quantile(0.99), empty.summary())
	}
	var neg histogram
	neg.record(-time.Second)
	if neg.max != 0 || neg.n != 1 {
		t.Errorf("negative duration recorded as max %d, n %d; want 0, 1", neg.max, neg.n)
	}
}

func BenchmarkHistogramRecord(b *testing.B) {
	var h histogram
	d := time.Duration(1)
	for b.Loop() {
		h.record(d)
		d = d*7 + 13&0xffffff
	}
}
