package loadgen

import (
	"math/bits"
	"time"
)

// Histogram layout: values below 2^subBits are counted exactly; above,
// each power of two is split into 2^subBits buckets of equal width, so a
// value is known to within 1/128 (0.8%) of itself. Values are
// nanoseconds; those above maxValue (about 18 minutes) share the last
// bucket, and Max still holds the exact largest.
const (
	subBits    = 7
	subCount   = 1 << subBits
	maxShift   = 33 // 2^(33+8) ns ≈ 36 minutes
	numBuckets = (maxShift+1)*subCount + subCount
	maxValue   = uint64(1)<<(maxShift+subBits+1) - 1
)

// A histogram counts durations in log-linear buckets, as HdrHistogram
// does, in fixed memory and with no allocation per value. It is not safe
// for concurrent use: each I/O worker owns one, and they are merged for
// reports. The zero value is an empty histogram.
type histogram struct {
	counts [numBuckets]uint64
	n      uint64
	sum    uint64 // nanoseconds, for the mean
	min    uint64
	max    uint64
}

// bucketOf returns the bucket that counts v.
func bucketOf(v uint64) int {
	if v < subCount {
		return int(v)
	}
	if v > maxValue {
		v = maxValue
	}
	shift := bits.Len64(v) - subBits - 1
	return shift<<subBits + int(v>>shift)
}

// bucketMid returns a value representative of bucket i: the middle of
// the range of values it counts.
func bucketMid(i int) uint64 {
	if i < 2*subCount {
		return uint64(i)
	}
	shift := i>>subBits - 1
	low := uint64(i&(subCount-1)|subCount) << shift
	return low + (uint64(1)<<shift)/2
}

// record counts one duration; a negative one counts as zero.
func (h *histogram) record(d time.Duration) {
	v := uint64(max(d, 0))
	h.counts[bucketOf(v)]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	h.max = max(h.max, v)
	h.n++
	h.sum += v
}

// merge adds the counts of o to h.
func (h *histogram) merge(o *histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.n += o.n
	h.sum += o.sum
}

// quantile returns the value below which a fraction q (0..1) of the
// counted values lie, to within the bucket precision; never more than
// the largest value counted. It returns 0 for an empty histogram.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(min(max(bucketMid(i), h.min), h.max))
		}
	}
	return time.Duration(h.max)
}

// summary returns the usual percentiles of h.
func (h *histogram) summary() Percentiles {
	if h.n == 0 {
		return Percentiles{}
	}
	return Percentiles{
		Count: h.n,
		Min:   ms(time.Duration(h.min)),
		Mean:  ms(time.Duration(h.sum / h.n)),
		P50:   ms(h.quantile(0.50)),
		P90:   ms(h.quantile(0.90)),
		P99:   ms(h.quantile(0.99)),
		P999:  ms(h.quantile(0.999)),
		Max:   ms(time.Duration(h.max)),
	}
}

// ms converts d to milliseconds, the unit of the report.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
