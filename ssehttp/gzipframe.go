package ssehttp

import (
	"bytes"
	"compress/flate"
	"io"
	"net/http"
	"sync"
)

// gzipHeader is the 10-byte header of a gzip member (RFC 1952) with no
// name, no time and no extra fields, from an unknown operating system.
var gzipHeader = [10]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}

// pingFrame is the heartbeat comment of a GzipFrames stream, deflated
// once for all of them.
var pingFrame = AppendGzipFrame(nil, []byte(": "+pingComment+"\n"))

// AcceptsGzip reports whether r's Accept-Encoding allows a gzip-encoded
// response (RFC 9110, section 12.5.3), as NewStream decides it for
// Options.Gzip and Options.GzipFrames.
func AcceptsGzip(r *http.Request) bool {
	return acceptsGzip(r.Header.Values("Accept-Encoding"))
}

// AppendGzipHeader appends to dst the header of a gzip stream, which the
// frames of AppendGzipFrame follow.
func AppendGzipHeader(dst []byte) []byte {
	return append(dst, gzipHeader[:]...)
}

// AppendGzipFrame appends to dst p deflated on its own: with no
// reference to any earlier bytes, and ending in a sync flush (an empty
// stored block) so that it ends on a byte boundary and a decoder gives
// out all of p once it has the frame. A gzip header (AppendGzipHeader)
// followed by any sequence of such frames is therefore a valid gzip
// stream, short only of its end: a frame can be made once and sent to
// any number of streams, each at its own place.
//
// The ratio is that of p alone: several-fold on events of a kilobyte,
// far less on events of a hundred bytes, which gain most from context
// across events (see docs/BENCHMARKS.md). AppendGzipFrame is safe for
// concurrent use; it takes a compressor from a pool shared by all
// callers, so it holds no memory per stream.
func AppendGzipFrame(dst, p []byte) []byte {
	fz := getFrameWriter()
	buf := bytes.NewBuffer(dst)
	fz.Reset(buf)
	// Writes to a bytes.Buffer do not fail.
	_, _ = fz.Write(p)
	_ = fz.Flush()
	fz.Reset(io.Discard) // drop buf, which is the caller's
	frameWriters.Put(fz)
	return buf.Bytes()
}

// frameWriters holds idle compressors of AppendGzipFrame, at
// flate.BestSpeed. Every frame needs a compressor reset to forget the
// last one, and the other levels' reset clears 640 KiB of hash tables:
// measured, a frame took 6 µs at BestSpeed and 35-38 µs at
// DefaultCompression, for frames a sixth larger on 100-byte events
// (BestSpeed only Huffman-codes blocks under 128 bytes) and 3 % larger
// on 1 KiB ones (BenchmarkGzipSchemes, docs/BENCHMARKS.md). The hub
// deflates on its one fan-out goroutine, where 38 µs an event would cap
// its rate.
var frameWriters sync.Pool

func getFrameWriter() *flate.Writer {
	if fz, ok := frameWriters.Get().(*flate.Writer); ok {
		return fz
	}
	fz, _ := flate.NewWriter(nil, flate.BestSpeed) // a valid level: cannot fail
	return fz
}

// zbufs holds *[]byte buffers for the frames of the writes of GzipFrames
// streams, shared so that an idle stream holds none.
var zbufs sync.Pool

func getZbuf() *[]byte {
	if p, ok := zbufs.Get().(*[]byte); ok {
		return p
	}
	b := make([]byte, 0, 1024)
	return &b
}

func putZbuf(p *[]byte) {
	if cap(*p) > maxKeptBuf {
		return
	}
	*p = (*p)[:0]
	zbufs.Put(p)
}
