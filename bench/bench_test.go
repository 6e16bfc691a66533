package bench

import (
	"runtime"
	"testing"
)

// benchStream runs op, which handles the whole stream once, as the body of
// b. It reports throughput against len(stream), allocations, and two
// per-event figures: allocs/event counts every allocation made while b
// runs, divided by numEvents, so it includes each op's fixed setup cost;
// ns/event is ns/op divided by numEvents.
func benchStream(b *testing.B, op func()) {
	b.Helper()
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	before := ms.Mallocs
	for b.Loop() {
		op()
	}
	runtime.ReadMemStats(&ms)
	events := float64(b.N) * numEvents
	b.ReportMetric(float64(ms.Mallocs-before)/events, "allocs/event")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/events, "ns/event")
}
