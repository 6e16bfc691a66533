package sse

import (
	"bufio"
	"bytes"
	"io"
	"runtime"
	"testing"
	"time"
)

// benchEncodeEvent is a typical event: an ID, a type and 100 bytes of JSON,
// as in the decode benchmark's stream, plus a retry.
func benchEncodeEvent() Event {
	return Event{
		ID:    "12345",
		Type:  "update",
		Data:  string(benchJSON(12345)),
		Retry: 3 * time.Second,
	}
}

// BenchmarkEncode encodes one event per op with a reused Encoder; it makes
// no allocation.
func BenchmarkEncode(b *testing.B) {
	ev := benchEncodeEvent()
	enc := NewEncoder(io.Discard)
	if err := enc.Encode(ev); err != nil { // grow the buffer once
		b.Fatal(err)
	}
	b.SetBytes(int64(len(enc.buf)))
	b.ReportAllocs()
	for b.Loop() {
		if err := enc.Encode(ev); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendEvent appends one event per op to a reused buffer.
func BenchmarkAppendEvent(b *testing.B) {
	ev := benchEncodeEvent()
	buf, err := AppendEvent(nil, &ev)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = AppendEvent(buf[:0], &ev)
	}
}

// BenchmarkDecode decodes the stream of benchstream_test.go, all of it in
// each op. Besides allocs/op, for the whole stream, it reports
// allocs/event.
func BenchmarkDecode(b *testing.B) {
	stream := benchStream()
	r := bytes.NewReader(stream)
	dec := NewDecoder(r)
	var ev Event
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before) // not timed: the timer starts in b.Loop
	events := 0
	for b.Loop() {
		r.Reset(stream)
		dec.Reset(r)
		for {
			err := dec.Decode(&ev)
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			events++
		}
	}
	runtime.ReadMemStats(&after)
	if events != b.N*benchStreamEvents {
		b.Fatalf("decoded %d events in %d ops; want %d each", events, b.N, benchStreamEvents)
	}
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(events), "allocs/event")
}

// BenchmarkBufioScanLines is a ceiling for BenchmarkDecode: it only splits
// the same stream, read through the same kind of reader, into lines with a
// bufio.Scanner.
func BenchmarkBufioScanLines(b *testing.B) {
	stream := benchStream()
	r := bytes.NewReader(stream)
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(stream)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
		}
		if err := sc.Err(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIndexByteLines is the bare ceiling: a loop of bytes.IndexByte
// over the stream in memory, with no reader, no copy and no line-end rules
// beyond LF.
func BenchmarkIndexByteLines(b *testing.B) {
	stream := benchStream()
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	lines := 0
	for b.Loop() {
		lines = 0
		for p := stream; ; lines++ {
			i := bytes.IndexByte(p, '\n')
			if i < 0 {
				break
			}
			p = p[i+1:]
		}
	}
	if want := 4 * benchStreamEvents; lines != want {
		b.Fatalf("found %d lines; want %d", lines, want)
	}
}
