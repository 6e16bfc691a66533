package ssehttp_test

import (
	"net/http"
	"net/http/httptest"
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
