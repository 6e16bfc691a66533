package ssehttp_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ssehub/ssehub/sse"
	"github.com/ssehub/ssehub/ssehttp"
)

// discard is a ResponseWriter that throws bytes away, can flush and can
// set write deadlines, so benchmarks measure the Stream alone.
type discard struct{ h http.Header }

func (d discard) Header() http.Header            { return d.h }
func (discard) Write(p []byte) (int, error)      { return len(p), nil }
func (discard) WriteHeader(int)                  {}
func (discard) FlushError() error                { return nil }
func (discard) SetWriteDeadline(time.Time) error { return nil }

func BenchmarkStream(b *testing.B) {
	ev := sse.Event{ID: "12345", Type: "price", Data: `{"symbol":"ACME","usd":42.17}`}
	wire, _ := sse.AppendEvent(nil, &ev)
	for _, gz := range []bool{false, true} {
		name := map[bool]string{false: "identity", true: "gzip"}[gz]
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Accept-Encoding", "gzip")
		open := func(b *testing.B) *ssehttp.Stream {
			s, err := ssehttp.NewStream(discard{make(http.Header)}, r, &ssehttp.Options{Gzip: gz, Heartbeat: -1})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Close() })
			return s
		}
		b.Run(name+"/Send", func(b *testing.B) {
			s := open(b)
			b.ReportAllocs()
			b.SetBytes(int64(len(wire)))
			for b.Loop() {
				if err := s.Send(ev); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/WriteRaw", func(b *testing.B) {
			s := open(b)
			b.ReportAllocs()
			b.SetBytes(int64(len(wire)))
			for b.Loop() {
				if err := s.WriteRaw(wire); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// counter is a discard that counts the bytes written.
type counter struct {
	discard
	n *int64
}

func (c counter) Write(p []byte) (int, error) { *c.n += int64(len(p)); return len(p), nil }

// benchEvent returns event i of a load test, as the wire carries it: the
// payload of ssehub bench (see internal/loadgen) padded to size bytes.
func benchEvent(i, size int) []byte {
	data := fmt.Sprintf(`{"t":%d,"seq":%d,"pad":"`, 1767225600000000000+int64(i)*50_000_017, i)
	data += strings.Repeat("x", max(size-len(data)-2, 0)) + `"}`
	return fmt.Appendf(nil, "id: %d\ndata: %s\n\n", 1000+i, data)
}

// BenchmarkGzipSchemes compares the two ways to compress a stream, per
// delivery (one event written to one subscriber's stream), for the
// 100-byte payload of ssehub bench and a 1 KiB one:
//
//   - identity: no compression;
//   - per-stream: Options.Gzip, a compressor per stream, with the context
//     of the earlier events;
//   - shared: Options.GzipFrames, the event deflated once
//     (AppendGzipFrame, shared-deflate: its cost once per event, for all
//     subscribers) and the same bytes written to every stream
//     (WriteDeflated, shared-write: per delivery).
//
// wire-B/event is the bytes written per event; B/stream is the heap a
// stream holds, idle, after its first event.
func BenchmarkGzipSchemes(b *testing.B) {
	const events = 4096 // more than a 32 KiB window holds: no event repeats within it
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Accept-Encoding", "gzip")
	for _, size := range []int{100, 1024} {
		evs := make([][]byte, events)
		frames := make([][]byte, events)
		for i := range evs {
			evs[i] = benchEvent(i, size)
			frames[i] = ssehttp.AppendGzipFrame(nil, evs[i])
		}
		open := func(b *testing.B, o ssehttp.Options, n *int64) *ssehttp.Stream {
			o.Heartbeat = -1
			s, err := ssehttp.NewStream(counter{discard{make(http.Header)}, n}, r, &o)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Close() })
			return s
		}
		schemes := []struct {
			name  string
			opts  ssehttp.Options
			write func(s *ssehttp.Stream, i int) error
		}{
			{"identity", ssehttp.Options{}, func(s *ssehttp.Stream, i int) error { return s.WriteRaw(evs[i]) }},
			{"per-stream", ssehttp.Options{Gzip: true}, func(s *ssehttp.Stream, i int) error { return s.WriteRaw(evs[i]) }},
			{"shared-write", ssehttp.Options{GzipFrames: true}, func(s *ssehttp.Stream, i int) error { return s.WriteDeflated(frames[i]) }},
		}
		for _, sc := range schemes {
			b.Run(fmt.Sprint(size, "/", sc.name), func(b *testing.B) {
				var n int64
				s := open(b, sc.opts, &n)
				n = 0
				i := 0
				b.ReportAllocs()
				for b.Loop() {
					if err := sc.write(s, i%events); err != nil {
						b.Fatal(err)
					}
					i++
				}
				b.ReportMetric(float64(n)/float64(i), "wire-B/event")
			})
		}
		b.Run(fmt.Sprint(size, "/shared-deflate"), func(b *testing.B) {
			var dst []byte
			var n, i int
			b.ReportAllocs()
			for b.Loop() {
				dst = ssehttp.AppendGzipFrame(dst[:0], evs[i%events])
				n += len(dst)
				i++
			}
			b.ReportMetric(float64(n)/float64(i), "wire-B/event")
		})
	}
	for _, sc := range []struct {
		name string
		opts ssehttp.Options
	}{{"identity", ssehttp.Options{}}, {"per-stream", ssehttp.Options{Gzip: true}}, {"shared", ssehttp.Options{GzipFrames: true}}} {
		b.Run("idle/"+sc.name, func(b *testing.B) {
			const n = 1000
			var perStream float64
			for b.Loop() {
				streams := make([]*ssehttp.Stream, n)
				runtime.GC() // twice: the compressors pooled by the last
				runtime.GC() // round are let go, not reused
				// A compressor in AppendGzipFrame's pool, shared by all
				// streams, is not counted.
				ssehttp.AppendGzipFrame(nil, benchEvent(0, 100))
				var m0, m1 runtime.MemStats
				runtime.ReadMemStats(&m0)
				for i := range streams {
					o := sc.opts
					o.Heartbeat = -1
					s, err := ssehttp.NewStream(discard{make(http.Header)}, r, &o)
					if err != nil {
						b.Fatal(err)
					}
					if err := s.WriteRaw(benchEvent(i, 100)); err != nil {
						b.Fatal(err)
					}
					streams[i] = s
				}
				runtime.GC()
				runtime.ReadMemStats(&m1)
				perStream = float64(int64(m1.HeapAlloc)-int64(m0.HeapAlloc)) / n
				for _, s := range streams {
					s.Close()
				}
			}
			b.ReportMetric(perStream, "B/stream")
		})
	}
}
