package loadgen

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/ssehub/ssehub/hub"
	"github.com/ssehub/ssehub/ssehttp"
	"github.com/ssehub/ssehub/store/memstore"
)

// gzipBodies returns the events of a stream and two gzip bodies of them,
// each flushed after every event: one made of frames deflated on their
// own (as a hub shares them), one from a single compressor whose events
// refer back to earlier ones, ended with its trailer.
func gzipBodies(t *testing.T) (plain []byte, framed, streamed []byte) {
	t.Helper()
	framed = ssehttp.AppendGzipHeader(nil)
	var sb bytes.Buffer
	zw := gzip.NewWriter(&sb)
	for i := range 200 {
		ev := fmt.Appendf(nil, "id: %d\ndata: %s\n\n", i, payload(int64(1767225600000000000+i), uint64(i)))
		if i%50 == 7 {
			ev = append(ev, bytes.Repeat([]byte(": padding to pass the window\n"), 1500)...)
		}
		plain = append(plain, ev...)
		framed = ssehttp.AppendGzipFrame(framed, ev)
		if _, err := zw.Write(ev); err != nil {
			t.Fatal(err)
		}
		if err := zw.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return plain, framed, sb.Bytes()
}

// TestInflater feeds gzip bodies cut at random places and checks that
// they decode to the plain stream: frames that stand alone, and a
// stream whose events refer back into the window.
func TestInflater(t *testing.T) {
	plain, framed, streamed := gzipBodies(t)
	rng := rand.New(rand.NewPCG(3, 4))
	for _, tc := range []struct {
		name string
		body []byte
	}{{"frames", framed}, {"one compressor", streamed}} {
		for run := range 10 {
			t.Run(fmt.Sprint(tc.name, "/", run), func(t *testing.T) {
				var z inflater
				var got []byte
				b := tc.body
				for len(b) > 0 {
					n := min(len(b), 1+rng.IntN(300))
					if run == 0 {
						n = 1 // byte by byte
					}
					if err := z.feed(b[:n], func(p []byte) { got = append(got, p...) }); err != nil {
						t.Fatalf("feed at %d: %v", len(tc.body)-len(b), err)
					}
					b = b[n:]
				}
				if !bytes.Equal(got, plain) {
					t.Fatalf("decoded %d bytes, not the %d of the stream", len(got), len(plain))
				}
			})
		}
	}
	var z inflater
	if err := z.feed([]byte("HTTP/1.1 200 OK\r\n"), func([]byte) {}); err == nil {
		t.Error("feed of a body that is not gzip = nil; want an error")
	}

	// After trustAlone frames that stand alone, a segment that refers
	// back cannot be decoded: the window is no longer kept.
	ev := []byte("id: 1\ndata: the same event again and again\n\n")
	var fb bytes.Buffer
	fw, _ := flate.NewWriter(&fb, flate.DefaultCompression)
	fw.Write(ev)
	fw.Flush()
	fb.Reset()
	fw.Write(ev)
	fw.Flush() // refers back to the first ev
	z = inflater{}
	if err := z.feed(ssehttp.AppendGzipHeader(nil), func([]byte) {}); err != nil {
		t.Fatal(err)
	}
	for i := range trustAlone {
		if err := z.feed(ssehttp.AppendGzipFrame(nil, ev), func([]byte) {}); err != nil {
			t.Fatalf("feed of frame %d = %v", i, err)
		}
	}
	if len(z.history) != 0 {
		t.Fatalf("after %d frames that stand alone, a window of %d bytes; want none", trustAlone, len(z.history))
	}
	if err := z.feed(fb.Bytes(), func([]byte) {}); !errors.Is(err, errInflate) {
		t.Errorf("feed of a segment that refers back, after %d that did not = %v; want errInflate", trustAlone, err)
	}
}

// TestRunGzip runs against a hub that compresses: with Gzip, every
// stream is compressed and every event decoded; without, none is.
func TestRunGzip(t *testing.T) {
	log := memstore.New()
	t.Cleanup(func() { log.Close() })
	url := startHubWith(t, log, &hub.Options{Retry: 20 * time.Millisecond, Gzip: true}, nil)
	for _, model := range ioModels() {
		for _, gz := range []bool{true, false} {
			t.Run(fmt.Sprint(model, "/gzip=", gz), func(t *testing.T) {
				const subs, rate = 20, 50
				rep, err := Run(context.Background(), &Options{
					URL: url, Topic: fmt.Sprint("bench/gz/", model, gz), Subscribers: subs, Rate: rate,
					Duration: time.Second, IO: model, Workers: 2, Gzip: gz, Size: 1024,
				})
				if err != nil {
					t.Fatalf("Run: %v", err)
				}
				if want := uint64(subs) * rep.Publish.Events; rep.Delivered != want || rep.Lost != (Tally{}) || rep.Duplicated != (Tally{}) || rep.Foreign != 0 {
					t.Errorf("delivered %d, lost %+v, duplicated %+v, foreign %d; want %d, none", rep.Delivered, rep.Lost, rep.Duplicated, rep.Foreign, want)
				}
				wantGz := uint64(0)
				if gz {
					wantGz = subs
				}
				if rep.Gzipped != wantGz {
					t.Errorf("gzipped streams = %d; want %d", rep.Gzipped, wantGz)
				}
				perEvent := float64(rep.BodyBytes) / float64(max(rep.Delivered, 1))
				if gz && perEvent >= 1024 || !gz && perEvent < 1024 {
					t.Errorf("body bytes per delivery = %.1f with gzip %v; want under 1024 only with gzip", perEvent, gz)
				}
				t.Logf("body bytes per delivery of 1 KiB payloads: %.1f", perEvent)
			})
		}
	}
}

// BenchmarkInflater decodes one frame of a 100-byte payload, as each of
// a hub's compressed subscribers receives it.
func BenchmarkInflater(b *testing.B) {
	ev := fmt.Appendf(nil, "id: 1234\ndata: %s\n\n", payload(1767225600000000000, 1234))
	frame := ssehttp.AppendGzipFrame(nil, ev)
	z := inflater{header: true}
	n := 0
	b.ReportAllocs()
	for b.Loop() {
		if err := z.feed(frame, func(p []byte) { n += len(p) }); err != nil {
			b.Fatal(err)
		}
	}
}
