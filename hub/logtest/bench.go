package logtest

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ssehub/ssehub/hub"
)

// BenchAppend measures acknowledged appends to l from publishers
// concurrent publishers (b.SetParallelism spreads them over the
// processors), each waiting for its Append before the next: one op is
// one Append of batch records of 100 bytes, each publisher on a topic of
// its own. It reports the events appended per second as "events/s", so
// that backends' figures compare.
func BenchAppend(b *testing.B, l hub.Log, publishers, batch int) {
	data := strings.Repeat("x", 100)
	ctx := context.Background()
	if _, _, err := l.Bounds(ctx); err != nil { // a remote Log is reachable
		b.Fatal(err)
	}
	var publisher atomic.Int64
	procs := runtime.GOMAXPROCS(0)
	b.SetParallelism((publishers + procs - 1) / procs)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		topic := fmt.Sprintf("bench/%d", publisher.Add(1))
		recs := make([]hub.Record, batch)
		for pb.Next() {
			for i := range recs {
				recs[i] = hub.Record{Topics: []string{topic}, Data: data}
			}
			if err := l.Append(ctx, recs); err != nil {
				b.Error(err)
				return
			}
		}
	})
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N*batch)/elapsed.Seconds(), "events/s")
}
