package ssehttp

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/ssehub/ssehub/sse"
)

// Errors returned by NewStream and by a Stream.
var (
	// ErrFlushUnsupported is returned by NewStream when the ResponseWriter,
	// followed through its Unwrap chain, cannot flush. A middleware that
	// wraps the ResponseWriter without an Unwrap method causes it.
	ErrFlushUnsupported = errors.New("ssehttp: response writer cannot flush")
	// ErrClosed is returned by a Stream's send methods after Close.
	ErrClosed = errors.New("ssehttp: stream closed")
	// ErrNotFramed is returned by WriteDeflated on a stream that is not
	// compressed in frames (see Options.GzipFrames).
	ErrNotFramed = errors.New("ssehttp: stream not compressed in frames")
)

// Defaults used when the matching Options field is zero.
const (
	// DefaultHeartbeat is the idle time after which a heartbeat comment is
	// sent.
	DefaultHeartbeat = 15 * time.Second
	// DefaultWriteTimeout bounds each write to the client.
	DefaultWriteTimeout = 10 * time.Second
)

// Options configures a Stream. The zero value, like a nil *Options, gives
// the defaults documented on each field.
type Options struct {
	// Heartbeat is how long the stream may stay idle before a comment is
	// sent to keep proxies and the client from timing it out. Any write
	// restarts the wait. If zero, DefaultHeartbeat is used; if negative, no
	// heartbeats are sent.
	Heartbeat time.Duration

	// WriteTimeout bounds each write and flush to the client, including
	// heartbeats. A write that cannot finish in time fails and ends the
	// stream, so a peer that stops reading cannot pin a goroutine. The
	// deadline covers one write, not the stream: between writes none is
	// set. If zero, DefaultWriteTimeout is used; if negative, writes have
	// no deadline. A ResponseWriter that cannot set write deadlines (such
	// as an httptest.ResponseRecorder) is written without one.
	WriteTimeout time.Duration

	// Gzip compresses the stream with gzip when the request's
	// Accept-Encoding allows it, flushing the compressor after every write
	// so that each event reaches the client whole. The response then
	// carries Vary: Accept-Encoding whether or not it is compressed. Each
	// compressed stream holds a compressor of about 800 KiB until Close, so
	// weigh the memory against the bandwidth at large fan-out. If false,
	// the stream is never compressed.
	Gzip bool

	// GzipFrames compresses the stream with gzip when the request's
	// Accept-Encoding allows it, as Gzip does, but with no compressor
	// kept per stream: each write is deflated on its own and flushed
	// (see AppendGzipFrame), and WriteDeflated writes frames that the
	// caller deflated once for many streams. The response carries Vary:
	// Accept-Encoding whether or not it is compressed; GzipFrames
	// reports whether it is. The stream holds no memory for compression,
	// but each write compresses without the context of earlier ones, so
	// small events shrink less than with Gzip. The gzip data is never
	// ended: Close writes no trailer, and a client's decoder reports an
	// unexpected end where the response ends (an EventSource reconnects
	// as after any end). It is ignored when Gzip is set. If false, the
	// stream is not compressed this way.
	GzipFrames bool

	// Retry, if positive, is sent in a retry field with the opening bytes,
	// telling the client how long to wait before reconnecting. It is sent
	// with millisecond precision. If zero or negative, no retry field is
	// sent and the client uses its own default.
	Retry time.Duration
}

// The opening comment flushed by NewStream, and the heartbeat comment.
const (
	openComment = "open"
	pingComment = "ping"
)

// maxKeptBuf is the largest encoding buffer a Stream keeps between sends;
// a larger event's buffer is dropped after use.
const maxKeptBuf = 64 << 10

// A Stream is an open event stream on one HTTP response. Its methods are
// safe for concurrent use; writes are serialised, and each is written and
// flushed whole.
//
// A Stream ends at the first of: Close, a failed write (including a
// heartbeat's), and the end of the request's context. From then on Done is
// closed, Err says why, and every send method returns that error without
// writing.
//
// The handler that created the Stream must call Close before it returns,
// however the stream ended: it stops the heartbeat, which would otherwise
// use the ResponseWriter after the handler has returned, and it ends the
// gzip data. The zero value is not usable; call NewStream.
type Stream struct {
	// Set by NewStream and not changed after.
	rc           *http.ResponseController
	heartbeat    time.Duration // 0 when disabled
	writeTimeout time.Duration // 0 when writes have no deadline
	lastEventID  string
	stopCtx      func() bool // unregisters the request context's AfterFunc
	done         chan struct{}

	mu        sync.Mutex // held across every write; guards the fields below
	w         io.Writer  // the ResponseWriter, or gz
	gz        *gzip.Writer
	frames    bool // compressed in independent frames (Options.GzipFrames); set by NewStream
	buf       []byte
	lastWrite time.Time
	hb        *time.Timer // nil when heartbeats are disabled
	closed    bool

	// err is why the stream ended, nil while it is open. It is set once,
	// with both mu and errMu held, so either suffices to read it; Err
	// uses errMu, which is never held across a write.
	errMu sync.Mutex
	err   error
}

// NewStream starts an event stream in response to r. Call it before
// anything is written to w, and call Close on the returned Stream before the
// handler returns.
//
// NewStream sets Content-Type: text/event-stream, and Cache-Control:
// no-cache and X-Accel-Buffering: no unless the handler has already set
// them; on HTTP/1.x it also sets Connection: keep-alive, which HTTP/2
// forbids. With opts.Gzip it negotiates compression from Accept-Encoding as
// described on Options. It then flushes the headers and an opening comment
// (and a retry field when opts.Retry is set), so the client's open event
// fires at once, and arms the heartbeat.
//
// It returns ErrFlushUnsupported, with w's headers as they were and nothing
// written, when w cannot flush; the handler can still answer with an error
// status. It returns an error wrapping the write error if the opening bytes
// cannot be sent. A nil opts means the defaults.
func NewStream(w http.ResponseWriter, r *http.Request, opts *Options) (*Stream, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	s := &Stream{
		rc:           http.NewResponseController(w),
		heartbeat:    positive(o.Heartbeat, DefaultHeartbeat),
		writeTimeout: positive(o.WriteTimeout, DefaultWriteTimeout),
		lastEventID:  LastEventID(r),
		done:         make(chan struct{}),
		w:            w,
	}

	h := w.Header()
	var saved [len(streamHeaders)][]string
	for i, k := range streamHeaders {
		saved[i] = h[k]
	}
	compress := setHeaders(h, r, o.Gzip || o.GzipFrames)

	// Flushing commits the headers, so it doubles as the test of whether w
	// can flush at all; when it cannot, nothing has been sent yet.
	if err := s.rc.Flush(); err != nil {
		for i, k := range streamHeaders {
			if saved[i] == nil {
				delete(h, k)
			} else {
				h[k] = saved[i]
			}
		}
		if errors.Is(err, http.ErrNotSupported) {
			return nil, ErrFlushUnsupported
		}
		return nil, fmt.Errorf("ssehttp: flush headers: %w", err)
	}
	if s.writeTimeout > 0 && errors.Is(s.rc.SetWriteDeadline(time.Time{}), http.ErrNotSupported) {
		s.writeTimeout = 0
	}
	switch {
	case compress && o.Gzip:
		s.gz = getGzip(w)
		s.w = s.gz
	case compress:
		s.frames = true
	}

	// The opening bytes: a comment, then the retry field if asked for.
	ev := sse.Event{Comment: openComment}
	if o.Retry > 0 {
		ev.Retry = o.Retry
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf, _ = sse.AppendEvent(make([]byte, 0, 512), &ev) // cannot fail: no ID or type
	if s.frames {
		zp := getZbuf()
		*zp = AppendGzipFrame(AppendGzipHeader(*zp), s.buf)
		err := s.writeDeflatedLocked(*zp)
		putZbuf(zp)
		if err != nil {
			return nil, err
		}
	} else if err := s.writeLocked(s.buf); err != nil {
		s.releaseGzipLocked()
		return nil, err
	}
	if s.heartbeat > 0 {
		s.hb = time.AfterFunc(s.heartbeat, s.beat)
	}
	ctx := r.Context()
	s.stopCtx = context.AfterFunc(ctx, func() {
		// Wait for a write in progress: if it fails, its error is the
		// better account of why the stream ended (a failed HTTP/1 write
		// cancels the request's context itself).
		s.mu.Lock()
		defer s.mu.Unlock()
		s.failLocked(context.Cause(ctx))
	})
	return s, nil
}

// positive returns d if it is positive, def if it is zero, and 0 (meaning
// disabled) if it is negative.
func positive(d, def time.Duration) time.Duration {
	switch {
	case d > 0:
		return d
	case d == 0:
		return def
	}
	return 0
}

// Send writes ev to the stream and flushes it. It writes nothing and returns
// sse.ErrInvalidID, sse.ErrInvalidType or sse.ErrInvalidRetry when a field
// would break the stream; the stream stays open. An event with no fields
// writes nothing. If the write fails, the stream ends and Send returns the
// error, as do all later sends.
func (s *Stream) Send(ev sse.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := sse.AppendEvent(s.buf[:0], &ev)
	if err != nil {
		return err
	}
	s.keepBufLocked(b)
	if len(b) == 0 {
		return s.err
	}
	return s.writeLocked(b)
}

// Comment writes text as comment lines, one per line of text, which clients
// ignore; an empty text writes a single ":" line. Like every write it counts
// as activity and postpones the next heartbeat. Errors are as for Send.
func (s *Stream) Comment(text string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b []byte
	if text == "" {
		b = append(s.buf[:0], ":\n"...)
	} else {
		b, _ = sse.AppendEvent(s.buf[:0], &sse.Event{Comment: text}) // comments cannot fail
	}
	s.keepBufLocked(b)
	return s.writeLocked(b)
}

// WriteRaw writes p, already in the wire format, with one write and one
// flush. It is for callers that encode an event once (with sse.AppendEvent)
// and share the bytes among many streams, or that batch several queued
// events into one write. p must hold zero or more complete events and
// comments, each ending in its line break (an event in its blank line);
// WriteRaw does not check, and a partial event would merge with the next.
// WriteRaw does not keep p. Errors are as for Send.
func (s *Stream) WriteRaw(p []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(p) == 0 {
		return s.err
	}
	return s.writeLocked(p)
}

// WriteDeflated writes p, one or more frames made by AppendGzipFrame
// from bytes that WriteRaw would take, with one write and one flush, on
// a stream that GzipFrames reports compressed; it is how a frame
// deflated once is shared by many streams. On any other stream it
// writes nothing and returns ErrNotFramed. WriteDeflated does not keep
// p. Errors are otherwise as for Send.
func (s *Stream) WriteDeflated(p []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case !s.frames:
		return ErrNotFramed
	case len(p) == 0:
		return s.err
	}
	return s.writeDeflatedLocked(p)
}

// GzipFrames reports whether the stream is gzip-compressed in
// independent frames: Options.GzipFrames was set and the request
// accepts gzip. Its writes are then compressed, and WriteDeflated takes
// frames compressed by the caller.
func (s *Stream) GzipFrames() bool { return s.frames }

// LastEventID returns the last event ID the client sent when it connected,
// as LastEventID(r) reported for the request; empty for a first connection.
func (s *Stream) LastEventID() string { return s.lastEventID }

// Done returns a channel that is closed when the stream ends: on Close, on a
// failed write, or when the request's context ends. When the context ends
// during a write, Done is closed once that write returns, which the write
// deadline bounds.
func (s *Stream) Done() <-chan struct{} { return s.done }

// Err returns nil while the stream is open. Once Done is closed it returns
// why the stream ended, and always the same error: ErrClosed after Close,
// the write error after a failed write, or context.Cause of the request's
// context when that ended first.
func (s *Stream) Err() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.err
}

// Close ends the stream: it stops the heartbeat, waits for a write in
// progress, and, if the stream was compressed and still open, writes and
// flushes the end of the gzip data. It returns the error from that last
// write, if any. Later sends return ErrClosed, or the error that ended the
// stream before. Close is idempotent; calls after the first return nil.
//
// Once Close returns, nothing touches the ResponseWriter on the Stream's
// behalf: no heartbeat runs again, and a context callback that fires later
// finds the stream ended and returns.
//
// Close leaves a write deadline of WriteTimeout in place, so that the
// server's own end of the response cannot block on a dead peer either; the
// handler should return soon after Close.
func (s *Stream) Close() error {
	s.stopCtx()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	wasOpen := s.err == nil
	s.failLocked(ErrClosed) // stops the heartbeat; a beat waiting for mu gives up
	var err error
	if s.gz != nil && wasOpen {
		s.setDeadline()
		err = s.gz.Close()
		if err == nil {
			err = s.rc.Flush()
		}
		if err != nil {
			err = fmt.Errorf("ssehttp: end gzip stream: %w", err)
		}
	}
	s.releaseGzipLocked()
	s.setDeadline()
	return err
}

// writeLocked writes p, flushes it through the compressor and to the
// client under a fresh write deadline, and clears the deadline. A failure
// ends the stream. s.mu must be held.
func (s *Stream) writeLocked(p []byte) error {
	if s.err != nil {
		return s.err
	}
	if s.frames {
		zp := getZbuf()
		*zp = AppendGzipFrame(*zp, p)
		err := s.writeDeflatedLocked(*zp)
		putZbuf(zp)
		return err
	}
	return s.writeDeflatedLocked(p)
}

// writeDeflatedLocked writes p as it is (through the compressor of a
// Gzip stream), as writeLocked does. s.mu must be held.
func (s *Stream) writeDeflatedLocked(p []byte) error {
	if s.err != nil {
		return s.err
	}
	s.setDeadline()
	_, err := s.w.Write(p)
	if err == nil && s.gz != nil {
		err = s.gz.Flush()
	}
	if err == nil {
		err = s.rc.Flush()
	}
	// On HTTP/2 a write deadline is a timer that resets the stream when it
	// passes, even while nothing is being written, so it must not outlive
	// the write.
	if s.writeTimeout > 0 {
		_ = s.rc.SetWriteDeadline(time.Time{})
	}
	if err != nil {
		return s.failLocked(fmt.Errorf("ssehttp: write: %w", err))
	}
	s.lastWrite = time.Now()
	return nil
}

// setDeadline sets the write deadline WriteTimeout from now, when there is
// one.
func (s *Stream) setDeadline() {
	if s.writeTimeout > 0 {
		_ = s.rc.SetWriteDeadline(time.Now().Add(s.writeTimeout))
	}
}

// keepBufLocked keeps b as the encoding buffer for the next write, unless
// it has grown too large to hold on to. s.mu must be held.
func (s *Stream) keepBufLocked(b []byte) {
	if cap(b) <= maxKeptBuf {
		s.buf = b[:0]
	} else {
		s.buf = nil
	}
}

// releaseGzipLocked returns the compressor, if any, to the pool. s.mu must
// be held, and the stream must not write again.
func (s *Stream) releaseGzipLocked() {
	if s.gz != nil {
		putGzip(s.gz)
		s.gz = nil
	}
}

// beat runs on the heartbeat timer's goroutine. It sends a heartbeat
// comment if the stream has been idle for a full period, and re-arms the
// timer for the rest of the period otherwise. It returns at once when the
// stream has ended, without re-arming, so after Close no beat runs again.
func (s *Stream) beat() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return
	}
	next := s.heartbeat - time.Since(s.lastWrite)
	if next <= 0 {
		var err error
		if s.frames {
			err = s.writeDeflatedLocked(pingFrame)
		} else {
			s.buf, _ = sse.AppendEvent(s.buf[:0], &sse.Event{Comment: pingComment})
			err = s.writeLocked(s.buf)
		}
		if err != nil {
			return
		}
		next = s.heartbeat
	}
	s.hb.Reset(next)
}

// failLocked ends the stream with err unless it has already ended, and
// returns the error it ended with. s.mu must be held.
func (s *Stream) failLocked(err error) error {
	if s.err == nil {
		s.errMu.Lock()
		s.err = err
		s.errMu.Unlock()
		close(s.done)
		if s.hb != nil {
			s.hb.Stop()
		}
	}
	return s.err
}

// gzipPool holds idle compressors, at gzip.DefaultCompression. A stream
// flushes after every small event, so what compresses is the repetition
// across events, which the levels from 2 up all find. gzip.BestSpeed does
// not suit: Go's fast encoder writes blocks this small without looking for
// matches, so each flushed event grows instead of shrinking.
var gzipPool sync.Pool

func getGzip(w io.Writer) *gzip.Writer {
	if z, ok := gzipPool.Get().(*gzip.Writer); ok {
		z.Reset(w)
		return z
	}
	return gzip.NewWriter(w)
}

func putGzip(z *gzip.Writer) {
	z.Reset(io.Discard) // drop the ResponseWriter
	gzipPool.Put(z)
}
