package hub

import (
	"bytes"
	"errors"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/ssehub/ssehub/sse"
)

// Subscriptions over HTTP/1.x without TLS take over their connection
// from net/http (http.ResponseController.Hijack) once the request is
// validated and registered. The handler writes the response head, the
// opening bytes and any replay itself, then hands the subscriber to a
// shard of the Hub and returns: net/http's connection goroutine, its
// background reader, its 4 KiB read and write buffers and the request
// are all let go, and an idle subscription holds only its connection
// and its queue. Its live events are written by the shard, straight to
// the connection, with no chunk framing.
//
// The response is close-delimited (RFC 9112, section 6.3): no
// Content-Length, no Transfer-Encoding, and Connection: close. That is
// valid HTTP/1.1, and the only framing an HTTP/1.0 client understands;
// EventSource does not care, since the stream's end is the end of the
// connection either way. The status line says HTTP/1.1 for either
// request version, as net/http's does.
//
// Nothing reads from a taken-over connection (an EventSource sends
// nothing after its request), so a peer that goes away is found by
// writing: a write that fails (the peer reset the connection) or that
// cannot finish within WriteTimeout ends the stream. A peer that closes
// cleanly (a FIN) leaves the socket writable: the next write succeeds
// and draws a reset, and the one after fails. To find such peers on idle
// streams too, without a reader goroutine, a shard checks each idle
// connection's read side without blocking about once a second and ends
// the stream on end of file or a reset; bytes a client sends are read
// and dropped. A dead peer that sends nothing (a host gone without a
// reset) is found by the first heartbeat that cannot be written within
// WriteTimeout: within Heartbeat plus WriteTimeout.

// aLongTimeAgo is a deadline that has passed: setting it makes a blocked
// write return at once.
var aLongTimeAgo = time.Unix(1, 0)

// errPeerGone ends a subscription whose idle connection the peer closed.
var errPeerGone = errors.New("hub: peer closed the connection")

// hopHeaders are response header fields a taken-over response must not
// copy from the handler's header map: the framing is ours.
var hopHeaders = map[string]bool{
	"Connection":        true,
	"Content-Length":    true,
	"Keep-Alive":        true,
	"Proxy-Connection":  true,
	"Trailer":           true,
	"Transfer-Encoding": true,
	"Upgrade":           true,
	"Content-Encoding":  true, // the hub's own: see appendHead
}

// appendHead appends the head of a close-delimited event stream
// response to b: a 200 status line, the fields already in hd (set by
// middleware, such as CORS), which it completes with the event stream's
// own, and a blank line. With gz, it says the body is gzip-compressed.
func appendHead(b []byte, hd http.Header, gz bool) []byte {
	hd.Set("Content-Type", "text/event-stream")
	if hd.Get("Cache-Control") == "" {
		hd.Set("Cache-Control", "no-cache")
	}
	if hd.Get("X-Accel-Buffering") == "" {
		hd.Set("X-Accel-Buffering", "no")
	}
	if _, ok := hd["Date"]; !ok {
		hd.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	}
	buf := bytes.NewBuffer(b)
	buf.WriteString("HTTP/1.1 200 OK\r\n")
	_ = hd.WriteSubset(buf, hopHeaders) // a bytes.Buffer does not fail
	if gz {
		buf.WriteString("Content-Encoding: gzip\r\n")
	}
	buf.WriteString("Connection: close\r\n\r\n")
	return buf.Bytes()
}

// appendOpening appends the first bytes of every stream to b: a comment,
// so that the client's open event fires at once, and the retry field
// when retry is positive. They are those ssehttp.NewStream sends.
func appendOpening(b []byte, retry time.Duration) []byte {
	b, _ = sse.AppendEvent(b, &sse.Event{Comment: "open", Retry: max(retry, 0)}) // cannot fail
	return b
}

// hijack takes over the connection of w for an event stream. It reports
// false, with nothing done, when w cannot be taken over (HTTP/2, or a
// ResponseWriter wrapper without Unwrap), and returns an error if taking
// over failed otherwise. It drops net/http's buffered reader and writer:
// nothing that a client sends after its request is read, and anything
// it pipelined is ignored, since a close-delimited response is the last
// one on its connection.
func hijack(w http.ResponseWriter) (net.Conn, bool, error) {
	conn, _, err := http.NewResponseController(w).Hijack()
	switch {
	case errors.Is(err, http.ErrNotSupported):
		return nil, false, nil
	case err != nil:
		return nil, false, err
	}
	return conn, true, nil
}

// rawConnOf returns conn's syscall.RawConn, or nil if it has none (a
// wrapped connection) or the platform cannot write to it without
// blocking. Without one, a shard hands every write to a goroutine.
func rawConnOf(conn net.Conn) syscall.RawConn {
	if !nonblockingIO {
		return nil
	}
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// An ioBuffer does the writes and reads of one shard on raw connections
// without blocking. Its methods are bound once, so that calling RawConn
// Write and Read allocates no closure.
type ioBuffer struct {
	p       []byte // to write, or to read into
	n       int    // written or read
	err     error
	writeFn func(fd uintptr) bool
	readFn  func(fd uintptr) bool
}

func newIOBuffer() *ioBuffer {
	b := &ioBuffer{}
	b.writeFn = b.write
	b.readFn = b.read
	return b
}

// tryWrite writes as much of p to rc as the socket takes without
// blocking, and returns how much that was. It returns an error only when
// the connection failed.
func (b *ioBuffer) tryWrite(rc syscall.RawConn, p []byte) (int, error) {
	b.p, b.n, b.err = p, 0, nil
	err := rc.Write(b.writeFn)
	b.p = nil
	if err != nil {
		return 0, err
	}
	return b.n, b.err
}

// readGone reads and drops what rc has to read without blocking, and
// reports whether the peer has closed or reset the connection.
func (b *ioBuffer) readGone(rc syscall.RawConn, scratch []byte) bool {
	for range 4 { // a client that keeps sending is not worth more
		b.p, b.n, b.err = scratch, 0, nil
		err := rc.Read(b.readFn)
		b.p = nil
		switch {
		case err != nil || b.err != nil:
			return true
		case b.n == 0:
			return false // would block: nothing to read
		case b.n < 0:
			return true // end of file
		}
	}
	return false
}

// varyHas reports whether the Vary field of hd names field, or is "*".
func varyHas(hd http.Header, field string) bool {
	for _, v := range hd.Values("Vary") {
		for t := range strings.SplitSeq(v, ",") {
			t = strings.TrimSpace(t)
			if t == "*" || strings.EqualFold(t, field) {
				return true
			}
		}
	}
	return false
}
