package natsstore_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ssehub/ssehub/hub"
	"github.com/ssehub/ssehub/hub/logtest"
	"github.com/ssehub/ssehub/internal/testserver"
	"github.com/ssehub/ssehub/store/natsstore"
)

// BenchmarkAppendParallel measures acknowledged appends from 16
// concurrent publishers (logtest.BenchAppend): one op is one Append of
// one event, or of a batch of 100 (an NDJSON publish).
func BenchmarkAppendParallel(b *testing.B) {
	u := testserver.NATSURL(b)
	for _, c := range []struct {
		name  string
		batch int
	}{{"single", 1}, {"batch100", 100}} {
		b.Run(c.name, func(b *testing.B) {
			s := openStore(b, u)
			defer s.Close()
			logtest.BenchAppend(b, s, 16, c.batch)
		})
	}
}

// fill appends n events of 100 bytes in batches of 100 on topic "busy",
// every every-th event on "quiet" instead.
func fill(b *testing.B, s *natsstore.Store, n, every int) {
	b.Helper()
	data := strings.Repeat("x", 100)
	ctx := context.Background()
	for i := 0; i < n; i += 100 {
		recs := make([]hub.Record, min(100, n-i))
		for j := range recs {
			recs[j] = hub.Record{Topics: []string{"busy"}, Data: data}
			if every > 0 && (i+j)%every == every/2 {
				recs[j].Topics = []string{"quiet"}
			}
		}
		if err := s.Append(ctx, recs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReplayQuietTopic replays a quiet topic, one event per 10,000,
// from the start of a Log of 100,000: the index finds its 10 events and
// Read fetches only their 10 batches. "cold" reads them from the server
// (an empty cache, as on a node that just started), "cached" from memory.
func BenchmarkReplayQuietTopic(b *testing.B) {
	s := openStore(b, testserver.NATSURL(b))
	defer s.Close()
	fill(b, s, 100_000, 10_000)
	quiet := logtest.Selectors(b, "quiet")
	for _, cold := range []bool{true, false} {
		b.Run(map[bool]string{true: "cold", false: "cached"}[cold], func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if cold {
					s.DropCache()
				}
				n := 0
				if err := s.Read(ctx, 0, quiet, func(*hub.Record) bool { n++; return true }); err != nil {
					b.Fatal(err)
				}
				if n != 10 {
					b.Fatalf("Read delivered %d quiet events; want 10", n)
				}
			}
		})
	}
}

// BenchmarkCatchUp reads 100,000 events behind, stored in batches of 100,
// as a subscriber that reconnects far behind does; "cold" from the
// server, "cached" from memory.
func BenchmarkCatchUp(b *testing.B) {
	const n = 100_000
	s := openStore(b, testserver.NATSURL(b))
	defer s.Close()
	fill(b, s, n, 0)
	catchUp(b, s, n)
}

// BenchmarkCatchUpSingles reads 20,000 events behind, each stored in its
// own message, as a lone publisher's events are: the worst case of a
// cold read, one direct get per event.
func BenchmarkCatchUpSingles(b *testing.B) {
	const n = 20_000
	s := openStore(b, testserver.NATSURL(b))
	defer s.Close()
	data := strings.Repeat("x", 100)
	for range n {
		if err := s.Append(context.Background(), []hub.Record{{Topics: []string{"busy"}, Data: data}}); err != nil {
			b.Fatal(err)
		}
	}
	catchUp(b, s, n)
}

func catchUp(b *testing.B, s *natsstore.Store, n int) {
	busy := logtest.Selectors(b, "busy")
	for _, cold := range []bool{true, false} {
		b.Run(map[bool]string{true: "cold", false: "cached"}[cold], func(b *testing.B) {
			ctx := context.Background()
			var elapsed time.Duration
			for b.Loop() {
				if cold {
					s.DropCache()
				}
				start := time.Now()
				got := 0
				if err := s.Read(ctx, 0, busy, func(*hub.Record) bool { got++; return true }); err != nil {
					b.Fatal(err)
				}
				elapsed += time.Since(start)
				if got != n {
					b.Fatalf("Read delivered %d events; want %d", got, n)
				}
			}
			b.ReportMetric(float64(n*b.N)/elapsed.Seconds(), "events/s")
		})
	}
}
