package redisstore

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/ssehub/ssehub/hub"
	"github.com/ssehub/ssehub/hub/logtest"
	"github.com/ssehub/ssehub/internal/testserver"
)

// publishers is how many goroutines append at once in
// BenchmarkAppendParallel.
const publishers = 16

// BenchmarkAppendParallel measures acknowledged appends from 16
// concurrent publishers (logtest.BenchAppend): one op is one Append of
// batch records. single and batch100 run against testserver.RedisURL's
// Redis: SSEHUB_TEST_REDIS_URL's with its own settings, if set, else a
// redis-server the benchmark starts without persistence; aof-always/...
// against a redis-server the benchmark starts with appendonly yes and
// appendfsync always, the setting under which an acknowledged record
// survives a crash of Redis.
func BenchmarkAppendParallel(b *testing.B) {
	url := testserver.RedisURL(b)
	aof := testserver.Redis(b, testserver.RedisOptions{AppendOnly: true})
	for _, bc := range []struct {
		name  string
		aof   bool
		batch int
	}{{"single", false, 1}, {"batch100", false, 100}, {"aof-always/single", true, 1}, {"aof-always/batch100", true, 100}} {
		b.Run(bc.name, func(b *testing.B) {
			u := url
			if bc.aof {
				u = aof.URL()
			}
			logtest.BenchAppend(b, openStore(b, u, Options{}), publishers, bc.batch)
		})
	}
}

// fill appends n records of 100 bytes in batches of 1000; every
// quietEvery-th is on the topic quiet instead of busy.
func fill(b *testing.B, s *Store, n, quietEvery int, busy, quiet string) {
	b.Helper()
	data := strings.Repeat("x", 100)
	for i := 0; i < n; i += 1000 {
		recs := make([]hub.Record, min(1000, n-i))
		for j := range recs {
			t := busy
			if quietEvery > 0 && (i+j)%quietEvery == quietEvery/2 {
				t = quiet
			}
			recs[j] = hub.Record{Topics: []string{t}, Data: data}
		}
		if err := s.Append(context.Background(), recs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReplayQuietTopic replays, from the start, a quiet topic with
// one record per 10,000 of a busy topic, 200,000 records in all: through
// the per-topic index (an exact selector), and by scanning the log (a
// pattern without a literal prefix, matching the same topic). One op is
// one Read of the 20 quiet records.
func BenchmarkReplayQuietTopic(b *testing.B) {
	s := openStore(b, testserver.RedisURL(b), Options{})
	fill(b, s, 200_000, 10_000, "b/busy", "q/quiet")
	ctx := context.Background()
	for _, bc := range []struct {
		name string
		sels []hub.Selector
	}{{"index", logtest.Selectors(b, "q/quiet")}, {"scan", logtest.Selectors(b, "*/quiet")}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			before := s.visited.Load()
			n := 0
			for b.Loop() {
				err := s.Read(ctx, 0, bc.sels, func(*hub.Record) bool { n++; return true })
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)/float64(b.N), "records/op")
			b.ReportMetric(float64(s.visited.Load()-before)/float64(b.N), "decoded/op")
		})
	}
}

// BenchmarkCatchUp measures a subscriber 100,000 records behind catching
// up: one op is a Read of all 100,000 records of its topic (the replay),
// or a Tail from position 0 until it has them (a node's bus).
func BenchmarkCatchUp(b *testing.B) {
	const n = 100_000
	s := openStore(b, testserver.RedisURL(b), Options{})
	fill(b, s, n, 0, "a", "")
	ctx := context.Background()
	errDone := errors.New("done")
	b.Run("read", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			got := 0
			err := s.Read(ctx, 0, logtest.Selectors(b, "a"), func(*hub.Record) bool { got++; return true })
			if err != nil || got != n {
				b.Fatalf("Read = %v after %d records; want %d", err, got, n)
			}
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "events/s")
	})
	b.Run("tail", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			got := 0
			err := s.Tail(ctx, 0, func(recs []hub.Record) error {
				if got += len(recs); got >= n {
					return errDone
				}
				return nil
			})
			if !errors.Is(err, errDone) {
				b.Fatalf("Tail = %v after %d records", err, got)
			}
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "events/s")
	})
}
