package hub

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ssehub/ssehub/ssehttp"
)

// Benchmarks of the fan-out without a network: subscribers are queues
// drained into Streams over a ResponseWriter that discards.

var fanoutSizes = []int{10, 1000, 10000}

// discardWriter is a ResponseWriter that throws bytes away and can flush
// and set write deadlines, so that benchmarks measure the hub alone.
type discardWriter struct{ h http.Header }

func (d discardWriter) Header() http.Header            { return d.h }
func (discardWriter) Write(p []byte) (int, error)      { return len(p), nil }
func (discardWriter) WriteHeader(int)                  {}
func (discardWriter) FlushError() error                { return nil }
func (discardWriter) SetWriteDeadline(time.Time) error { return nil }

func discardStream(b *testing.B) *ssehttp.Stream {
	r := httptest.NewRequest(http.MethodGet, "/events", nil)
	st, err := ssehttp.NewStream(discardWriter{make(http.Header)}, r, &ssehttp.Options{Heartbeat: -1, WriteTimeout: -1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st
}

var benchRecord = Record{Topics: []string{"prices/acme"}, ID: "evt", Type: "price", Data: `{"symbol":"ACME","usd":42.17}`}

// benchSubs registers n subscribers with selector sel on a running Hub,
// each with a Stream to drain into.
func benchSubs(b *testing.B, n int, sel string) (*Hub, []*subscriber, []*ssehttp.Stream) {
	return benchSubsOf(b, nativeDialect, n, sel)
}

// benchSubsOf is benchSubs for subscribers of dialect d.
func benchSubsOf(b *testing.B, d *dialect, n int, sel string) (*Hub, []*subscriber, []*ssehttp.Stream) {
	// In-process subscribers have no address: the per-client limit would
	// count them all as one client.
	h := runningHub(b, &Options{QueueSize: 1024, Limits: Limits{MaxStreamsPerClient: -1}})
	subs := make([]*subscriber, n)
	streams := make([]*ssehttp.Stream, n)
	for i := range subs {
		sels, err := h.lim.parseSelectors(d, []string{sel})
		if err != nil {
			b.Fatal(err)
		}
		subs[i] = newSubscriber(d, sels, 1024)
		if ok, err := h.register(subs[i]); !ok || err != nil {
			b.Fatal(ok, err)
		}
		streams[i] = discardStream(b)
	}
	return h, subs, streams
}

// BenchmarkFanout delivers one event to every subscriber, exact or
// pattern, and drains each queue into its Stream: push, signal, take, one
// write and flush. ns/delivery is the cost per subscriber. The mercure
// kinds are subscribers of the Mercure endpoint: an exact topic, a URI
// template, and "*".
func BenchmarkFanout(b *testing.B) {
	for _, kind := range []struct {
		name, sel string
		d         *dialect
	}{
		{"exact", "prices/acme", nativeDialect},
		{"pattern", "prices/*", nativeDialect},
		{"mercure-exact", "prices/acme", mercureDialect},
		{"mercure-template", "prices/{symbol}", mercureDialect},
		{"mercure-all", "*", mercureDialect},
	} {
		for _, n := range fanoutSizes {
			b.Run(fmt.Sprintf("%s/%d", kind.name, n), func(b *testing.B) {
				h, subs, streams := benchSubsOf(b, kind.d, n, kind.sel)
				spare := make([][]*frame, n)
				rec := benchRecord
				b.ReportAllocs()
				for b.Loop() {
					rec.Pos++
					h.fanoutRecord(&rec)
					for i, s := range subs {
						<-s.signal
						q, _, _ := s.take(spare[i])
						if err := writeFrames(streams[i], q, false); err != nil {
							b.Fatal(err)
						}
						clear(q)
						spare[i] = q[:0]
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/delivery")
			})
		}
	}
}

// BenchmarkEncode compares encoding an event once and sharing the bytes
// among n subscriber queues ("once", what the hub does) with encoding it
// for each subscriber ("each").
func BenchmarkEncode(b *testing.B) {
	for _, mode := range []string{"once", "each"} {
		for _, n := range fanoutSizes {
			b.Run(fmt.Sprintf("%s/%d", mode, n), func(b *testing.B) {
				subs := make([]*subscriber, n)
				spare := make([][]*frame, n)
				for i := range subs {
					subs[i] = newSubscriber(nativeDialect, nil, 1024)
				}
				rec := benchRecord
				b.ReportAllocs()
				for b.Loop() {
					rec.Pos++
					var f *frame
					for _, s := range subs {
						if f == nil || mode == "each" {
							p, err := encodeRecord(&rec, nativeDialect)
							if err != nil {
								b.Fatal(err)
							}
							f = &frame{pos: rec.Pos, b: p}
						}
						s.push(f)
					}
					for i, s := range subs {
						<-s.signal
						q, _, _ := s.take(spare[i])
						clear(q)
						spare[i] = q[:0]
					}
				}
			})
		}
	}
}

// BenchmarkDrain writes a queue of k events to a Stream in one write.
func BenchmarkDrain(b *testing.B) {
	for _, k := range []int{1, 16, 256} {
		b.Run(fmt.Sprint(k), func(b *testing.B) {
			st := discardStream(b)
			enc, _ := encodeRecord(&benchRecord, nativeDialect)
			q := make([]*frame, k)
			for i := range q {
				q[i] = &frame{pos: uint64(i + 1), b: enc}
			}
			b.ReportAllocs()
			b.SetBytes(int64(k * len(enc)))
			for b.Loop() {
				if err := writeFrames(st, q, false); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkIdleSubscriber opens 1000 idle subscriptions over loopback
// HTTP/1.1 (raw TCP clients, which hold next to nothing) to a running Hub
// and reports what they cost per subscription, connection included,
// clients too: B/sub, the heap and stack in use after a GC;
// RSS-B/sub, the growth of the process's resident set (VmRSS), which
// also counts garbage not yet collected and memory the runtime keeps;
// and goroutines/sub.
//
// The gzip variant asks for gzip from a hub with Options.Gzip: its
// streams hold no compressor, so they should cost what the others do.
func BenchmarkIdleSubscriber(b *testing.B) {
	const n = 1000
	for _, gz := range []bool{false, true} {
		name := fmt.Sprint(n)
		if gz {
			name += "/gzip"
		}
		b.Run(name, func(b *testing.B) { benchIdleSubscriber(b, n, gz) })
	}
}

func benchIdleSubscriber(b *testing.B, n int, gz bool) {
	{
		h := runHub(b, &Options{Heartbeat: -1, Gzip: gz})
		srv := httptest.NewServer(h)
		defer srv.Close()
		var perSub, rssPerSub, goroutines float64
		for b.Loop() {
			debug.FreeOSMemory()
			before, g0 := memInUse()
			rss0 := vmRSS()
			conns := make([]net.Conn, n)
			for i := range conns {
				c, err := net.Dial("tcp", srv.Listener.Addr().String())
				if err != nil {
					b.Fatal(err)
				}
				conns[i] = c
				io.WriteString(c, "GET /events?topic=prices/acme HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n")
			}
			for _, c := range conns { // read up to the id-only event: the handler is idle
				br := bufio.NewReader(c)
				if gz {
					readGzipOpening(b, br)
					continue
				}
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						b.Fatal(err)
					}
					if strings.HasPrefix(line, "id: ") {
						break
					}
				}
			}
			// Let the handlers that return (those that hand their
			// subscribers over) return.
			for g := -1; g != runtime.NumGoroutine(); {
				g = runtime.NumGoroutine()
				time.Sleep(10 * time.Millisecond)
			}
			rssPerSub = float64(vmRSS()-rss0) / float64(n)
			after, g1 := memInUse()
			perSub = float64(after-before) / float64(n)
			goroutines = float64(g1-g0) / float64(n)
			for _, c := range conns {
				c.Close()
			}
			// Let the streams end, so the next round starts clean.
			for {
				h.mu.RLock()
				n := h.streams
				h.mu.RUnlock()
				if n == 0 && runtime.NumGoroutine() <= g0 {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		b.ReportMetric(perSub, "B/sub")
		b.ReportMetric(rssPerSub, "RSS-B/sub")
		b.ReportMetric(goroutines, "goroutines/sub")
	}
}

// readGzipOpening reads a compressed stream's head and its first frame,
// which ends in the sync marker of a flush, without decoding it.
func readGzipOpening(b *testing.B, br *bufio.Reader) {
	b.Helper()
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			b.Fatal(err)
		}
		if line == "\r\n" {
			break
		}
	}
	var got []byte
	for !bytes.HasSuffix(got, []byte{0, 0, 0xff, 0xff}) {
		c, err := br.ReadByte()
		if err != nil {
			b.Fatal(err)
		}
		got = append(got, c)
	}
}

// vmRSS returns the process's resident set size, in bytes.
func vmRSS() int64 {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(status)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// memInUse returns the heap and stack in use after a GC, and the number
// of goroutines.
func memInUse() (uint64, int) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse + ms.StackInuse, runtime.NumGoroutine()
}
