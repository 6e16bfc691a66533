package boltstore

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ssehub/ssehub/hub"
	"github.com/ssehub/ssehub/hub/logtest"
)

// BenchmarkAppend measures acknowledged publishing from concurrent
// publishers, each waiting for its Append before the next, with fsync on
// (durable) and off. One op is one Append of batch records of 100 bytes,
// each publisher on its own topic.
func BenchmarkAppend(b *testing.B) {
	data := strings.Repeat("x", 100)
	for _, durable := range []bool{true, false} {
		for _, c := range []struct{ publishers, batch int }{{16, 1}, {16, 100}, {256, 1}} {
			publishers, batch := c.publishers, c.batch
			name := fmt.Sprintf("durable=%v/publishers=%d/batch=%d", durable, publishers, batch)
			b.Run(name, func(b *testing.B) {
				s := openTest(b, b.TempDir(), &Options{NoSync: !durable})
				defer s.Close()
				ctx := context.Background()
				var next atomic.Int64
				var wg sync.WaitGroup
				b.ReportAllocs()
				b.ResetTimer()
				start := time.Now()
				for p := range publishers {
					wg.Go(func() {
						topic := fmt.Sprintf("bench/%d", p)
						for next.Add(1) <= int64(b.N) {
							recs := make([]hub.Record, batch)
							for i := range recs {
								recs[i] = hub.Record{Topics: []string{topic}, Data: data}
							}
							if err := s.Append(ctx, recs); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				elapsed := time.Since(start)
				b.StopTimer()
				st := s.Stats()
				b.ReportMetric(float64(b.N*batch)/elapsed.Seconds(), "events/s")
				b.ReportMetric(float64(st.Appends)/float64(max(st.Commits, 1)), "appends/commit")
			})
		}
	}
}

// BenchmarkReadQuietTopic reads the 10 records of a quiet topic from the
// start of a Log that holds other records on a busy topic: the cost
// should not grow with the busy topic's volume.
func BenchmarkReadQuietTopic(b *testing.B) {
	ctx := context.Background()
	quiet := logtest.Selectors(b, "quiet")
	pattern := logtest.Selectors(b, "quiet/**")
	for _, other := range []int{1000, 10000, 200000} {
		s := openTest(b, b.TempDir(), nil)
		const batch = 5000
		for i := 0; i < other; i += batch {
			recs := records(min(batch, other-i), "busy")
			// 10 quiet records spread through the busy ones.
			for j := range recs {
				if (i+j)%(other/10) == 0 {
					recs[j].Topics = []string{"quiet", "quiet/x"}
				}
			}
			if err := s.Append(ctx, recs); err != nil {
				b.Fatal(err)
			}
		}
		for _, bc := range []struct {
			name string
			sels []hub.Selector
		}{{"exact", quiet}, {"pattern", pattern}} {
			b.Run(fmt.Sprintf("%s/other=%d", bc.name, other), func(b *testing.B) {
				b.ReportAllocs()
				before := s.visited.Load()
				n := 0
				for b.Loop() {
					err := s.Read(ctx, 0, bc.sels, func(*hub.Record) bool { n++; return true })
					if err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(s.visited.Load()-before)/float64(b.N), "decoded/op")
				b.ReportMetric(float64(n)/float64(b.N), "records/op")
			})
		}
		s.Close()
	}
}
