package loadgen

import (
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"io"
	"sync"
)

// maxHistory is how much of a compressed stream's decoded bytes a stream
// keeps: the window of deflate, which later data may refer back into.
const maxHistory = 32 << 10

// trustAlone is how many segments must decode without the window, none
// needing it, before a stream stops keeping one. A hub that shares
// frames among its subscribers deflates each on its own; a compressor of
// the stream's own refers back within its first events. Keeping 32 KiB
// for each of ten thousand subscribers that never need it would cost
// this tool hundreds of megabytes and the CPU to touch them.
const trustAlone = 16

// maxPending is the most compressed bytes a stream holds while it waits
// for the end of a flushed segment.
const maxPending = 4 << 20

// syncMarker ends every flush of a deflate stream: the length fields of
// an empty stored block.
var syncMarker = []byte{0, 0, 0xff, 0xff}

// An inflater decodes the gzip body of one stream as it arrives, without
// a goroutine or a compressor of its own. A hub flushes its compressor
// after every write, so the bytes received so far end, most of the time,
// in the sync marker of a flush; the inflater decodes what it holds each
// time they do, with a decompressor from a pool and the stream's last
// 32 KiB of decoded bytes as its window, and holds the bytes otherwise.
// A segment that refers to no earlier bytes (as the frames a hub shares
// among streams do not) is decoded without copying the window in, and a
// stream whose first trustAlone segments all stood alone keeps no
// window: should a later one refer back, the stream ends as malformed.
//
// The marker's bytes can also occur inside compressed data: a segment
// cut there fails to decode, and the stream ends as malformed. Hubs that
// flush after each event make that rare enough for a load test. What
// follows the last flush (the final block and the trailer, at the end
// of a stream) is not decoded.
type inflater struct {
	header  bool   // the gzip header has been read
	pending []byte // compressed bytes not decoded yet
	history []byte // the last decoded bytes, up to maxHistory
	// standalone counts the first segments that decoded without the
	// window, up to trustAlone; refers is set once one needed it.
	standalone int
	refers     bool
	ended      bool // the final block was decoded
}

// inflateBuf is the shared state of decoding: a decompressor and a
// buffer for its output.
type inflateBuf struct {
	fr  io.ReadCloser
	src bytes.Reader
	out []byte
}

var inflateBufs = sync.Pool{New: func() any {
	return &inflateBuf{fr: flate.NewReader(bytes.NewReader(nil)), out: make([]byte, 0, 64<<10)}
}}

// errInflate is wrapped by the errors of a gzip body that cannot be
// decoded.
var errInflate = fmt.Errorf("%w: bad gzip body", errProtocol)

// feed takes the next compressed bytes b and calls emit with what they
// decode to, if anything, before it returns. The bytes given to emit are
// valid only during the call.
func (z *inflater) feed(b []byte, emit func([]byte)) error {
	if z.ended {
		return nil // the trailer, and anything after it, is not read
	}
	z.pending = append(z.pending, b...)
	if !z.header {
		n, ok, err := gzipHeaderLen(z.pending)
		if err != nil || !ok {
			return err
		}
		z.header = true
		z.pending = z.pending[:copy(z.pending, z.pending[n:])]
	}
	end := bytes.LastIndex(z.pending, syncMarker)
	if end < 0 {
		if len(z.pending) > maxPending {
			return fmt.Errorf("%w: %d bytes without a flush", errInflate, len(z.pending))
		}
		return nil
	}
	end += len(syncMarker)
	seg := z.pending[:end]
	out, err, cached := decoded.get(seg)
	if !cached {
		ib := inflateBufs.Get().(*inflateBuf)
		defer inflateBufs.Put(ib)
		out, err = ib.inflate(seg, nil)
		var corrupt flate.CorruptInputError
		switch {
		case errors.As(err, &corrupt) && z.standalone >= trustAlone:
			return fmt.Errorf("%w: a segment refers to earlier bytes after %d that did not, and this tool no longer keeps them", errInflate, trustAlone)
		case errors.As(err, &corrupt) && len(z.history) > 0:
			out, err = ib.inflate(seg, z.history) // it refers back: give it the window
			z.refers = true
		case err == nil || errors.Is(err, io.ErrUnexpectedEOF):
			decoded.put(seg, out, err) // it stands alone
		}
	}
	switch {
	case err == nil:
		z.ended = true
	case errors.Is(err, io.ErrUnexpectedEOF): // the end of a flushed segment
	default:
		return fmt.Errorf("%w: %v", errInflate, err)
	}
	rest := len(z.pending) - end
	switch {
	case rest > 0:
		z.pending = z.pending[:copy(z.pending, z.pending[end:])]
	case cap(z.pending) > 64<<10:
		z.pending = nil
	default:
		z.pending = z.pending[:0]
	}
	if !z.refers && z.standalone < trustAlone {
		if z.standalone++; z.standalone == trustAlone {
			z.history = nil // frames that stand alone: no window needed
		}
	}
	if z.refers || z.standalone < trustAlone {
		z.remember(out)
	}
	if len(out) > 0 {
		emit(out)
	}
	return nil
}

// inflate decodes all of in, with dict as the window, into ib.out, and
// returns it with the decompressor's error: io.ErrUnexpectedEOF when in
// ends without a final block.
func (ib *inflateBuf) inflate(in, dict []byte) ([]byte, error) {
	ib.src.Reset(in)
	_ = ib.fr.(flate.Resetter).Reset(&ib.src, dict) // cannot fail
	out := ib.out[:0]
	for {
		if len(out) == cap(out) {
			out = append(out, 0)[:len(out)]
		}
		n, err := ib.fr.Read(out[len(out):cap(out)])
		out = out[:len(out)+n]
		if err != nil {
			if cap(out) <= 1<<20 {
				ib.out = out[:0]
			}
			if err == io.EOF {
				err = nil
			}
			return out, err
		}
	}
}

// remember adds out to the window.
func (z *inflater) remember(out []byte) {
	if len(out) >= maxHistory {
		z.history = append(z.history[:0], out[len(out)-maxHistory:]...)
		return
	}
	if extra := len(z.history) + len(out) - maxHistory; extra > 0 {
		z.history = z.history[:copy(z.history, z.history[extra:])]
	}
	z.history = append(z.history, out...)
}

// gzipHeaderLen returns the length of the gzip header (RFC 1952) at the
// start of b, with ok false while b may hold only part of it.
func gzipHeaderLen(b []byte) (n int, ok bool, err error) {
	if len(b) < 10 {
		return 0, false, nil
	}
	if b[0] != 0x1f || b[1] != 0x8b || b[2] != 8 {
		return 0, false, fmt.Errorf("%w: not a gzip header", errInflate)
	}
	flg := b[3]
	n = 10
	if flg&4 != 0 { // FEXTRA
		if len(b) < n+2 {
			return 0, false, nil
		}
		n += 2 + (int(b[n]) | int(b[n+1])<<8)
	}
	for _, f := range []byte{8, 16} { // FNAME, FCOMMENT: zero-terminated
		if flg&f == 0 {
			continue
		}
		i := bytes.IndexByte(b[min(n, len(b)):], 0)
		if i < 0 {
			return 0, false, nil
		}
		n += i + 1
	}
	if flg&2 != 0 { // FHCRC
		n += 2
	}
	if len(b) < n {
		return 0, false, nil
	}
	return n, true, nil
}

// decoded keeps what recent segments that stand alone (that decode
// without a window) decode to. A hub that shares its compressed frames
// among subscribers sends each of them the same bytes, so one decode
// serves them all: without it, decoding each subscriber's copy (about
// 4 µs a frame) would take this tool more CPU than the hub spends
// writing them, and it would become the bottleneck it measures. A
// segment that stands alone decodes the same whatever came before it in
// its stream, so the cache changes no result.
var decoded = segmentCache{m: make(map[string]cachedSegment)}

// maxCachedSegments bounds the cache; it is emptied when full.
const maxCachedSegments = 4096

// A segmentCache maps compressed segments to what they decode to. It is
// safe for concurrent use.
type segmentCache struct {
	mu sync.Mutex // guards m
	m  map[string]cachedSegment
}

type cachedSegment struct {
	out []byte
	err error // nil when the segment ends its stream, else io.ErrUnexpectedEOF
}

// get returns what seg decodes to, if it is cached. out must not be
// modified.
func (c *segmentCache) get(seg []byte) (out []byte, err error, ok bool) {
	c.mu.Lock()
	e, ok := c.m[string(seg)]
	c.mu.Unlock()
	return e.out, e.err, ok
}

// put caches what seg decodes to: out, copied, and the decoder's error.
func (c *segmentCache) put(seg, out []byte, err error) {
	if len(seg) > 4<<10 {
		return // a replay or a burst: unlikely to be shared
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxCachedSegments {
		clear(c.m)
	}
	c.m[string(seg)] = cachedSegment{out: append([]byte(nil), out...), err: err}
}
