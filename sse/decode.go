package sse

import (
	"bytes"
	"io"
	"math"
	"time"
	"unicode/utf8"
)

// DefaultMaxEventSize is the Decoder's limit on one event, and on one line,
// unless SetMaxEventSize changes it.
const DefaultMaxEventSize = 1 << 20

const initialBufSize = 16 << 10

// A Decoder reads events from an event stream, following the parsing and
// dispatch rules of the WHATWG HTML standard exactly:
//   - a leading UTF-8 BOM is dropped, and lines end in CRLF, LF or CR (a CR
//     at the end of one read and an LF at the start of the next are one
//     line end);
//   - invalid UTF-8 is replaced by U+FFFD as a browser's decoder does;
//   - comments, unknown fields, "id" values containing NUL and "retry"
//     values that are not all ASCII digits are ignored;
//   - an event with an empty data buffer is not dispatched, though its "id"
//     still sets the last event ID, and an event not ended by a blank line
//     when the stream ends is discarded.
//
// Each dispatched event costs at most one allocation for an event of
// ordinary size. A Decoder is not safe for concurrent use. The zero value is
// not usable; call NewDecoder.
type Decoder struct {
	r   io.Reader
	max int

	buf        []byte // read buffer; unread bytes are buf[start:end]
	start, end int
	rerr       error // sticky error from r or from the size limit
	bomDone    bool  // the start of the stream has been checked for a BOM
	skipLF     bool  // the last line ended in a CR at the end of buf

	// The parser's buffers, named as in the standard.
	data   []byte // data buffer
	typ    []byte // event type buffer
	id     []byte // last event ID buffer
	lastID string // last event ID string, as of the last blank line

	retry    time.Duration // reconnection time from the last valid retry field
	retrySet bool
	evRetry  time.Duration // retry set within the event being built
}

// NewDecoder returns a Decoder that reads from r, with the default maximum
// event size.
func NewDecoder(r io.Reader) *Decoder {
	return &Decoder{r: r, max: DefaultMaxEventSize}
}

// SetMaxEventSize sets the largest event the Decoder holds: the data, type
// and ID of one event together, and the length of any one line. Past it,
// Decode returns ErrEventTooLarge. A value of zero or less restores
// DefaultMaxEventSize. Call it before the first Decode.
func (d *Decoder) SetMaxEventSize(n int) {
	if n <= 0 {
		n = DefaultMaxEventSize
	}
	d.max = n
}

// Reset makes d read a new stream from r, as a client does on reconnection:
// the partial event and buffered input are dropped, while the last event ID
// and the retry delay are kept. The read buffer is reused.
func (d *Decoder) Reset(r io.Reader) {
	d.r = r
	d.start, d.end = 0, 0
	d.rerr = nil
	d.bomDone, d.skipLF = false, false
	d.data, d.typ = d.data[:0], d.typ[:0]
	d.id = append(d.id[:0], d.lastID...)
	d.evRetry = 0
}

// SetLastEventID sets the last event ID that events without an "id" field
// report, as a client resuming a stream does. It contains no NUL by the
// caller's promise; one would be kept as is.
func (d *Decoder) SetLastEventID(id string) {
	d.lastID = id
	d.id = append(d.id[:0], id...)
}

// LastEventID returns the stream's last event ID string: the value of the
// last "id" field seen before the most recent blank line. This is the ID a
// client sends in Last-Event-ID when it reconnects.
func (d *Decoder) LastEventID() string { return d.lastID }

// Retry returns the reconnection delay from the most recent valid "retry"
// field, and whether there was one. A retry field takes effect at once,
// whether or not its event is dispatched.
func (d *Decoder) Retry() (time.Duration, bool) { return d.retry, d.retrySet }

// Decode reads the next dispatched event into ev. At the end of the stream
// it returns io.EOF, discarding any event not ended by a blank line. It
// returns ErrEventTooLarge when an event or a line passes the maximum event
// size, and any other error from the underlying reader; every error is
// sticky.
func (d *Decoder) Decode(ev *Event) error {
	for {
		line, err := d.readLine()
		if err != nil {
			return err
		}
		if len(line) > 0 {
			if err := d.field(line); err != nil {
				d.rerr = err
				return err
			}
			continue
		}
		if d.dispatch(ev) {
			return nil
		}
	}
}

// field processes one non-empty line.
func (d *Decoder) field(line []byte) error {
	if line[0] == ':' {
		return nil // a comment
	}
	name, value := line, line[len(line):]
	if i := bytes.IndexByte(line, ':'); i >= 0 {
		name, value = line[:i], line[i+1:]
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
	}
	switch string(name) {
	case "data":
		if len(d.data)+len(value)+1+len(d.typ)+len(d.id) > d.max {
			return ErrEventTooLarge
		}
		d.data = append(d.data, value...)
		d.data = append(d.data, '\n')
	case "event":
		if len(d.data)+len(value)+len(d.id) > d.max {
			return ErrEventTooLarge
		}
		d.typ = append(d.typ[:0], value...)
	case "id":
		if bytes.IndexByte(value, 0) >= 0 {
			return nil
		}
		if len(d.data)+len(d.typ)+len(value) > d.max {
			return ErrEventTooLarge
		}
		d.id = append(d.id[:0], value...)
	case "retry":
		if ms, ok := parseRetry(value); ok {
			d.retry, d.retrySet, d.evRetry = ms, true, ms
		}
	}
	return nil
}

// parseRetry interprets a retry value of ASCII digits only, as
// milliseconds. An empty value, any other byte, or a value too large for a
// time.Duration is refused.
func parseRetry(v []byte) (time.Duration, bool) {
	if len(v) == 0 {
		return 0, false
	}
	var ms int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		if ms > (math.MaxInt64/int64(time.Millisecond)-9)/10 {
			return 0, false
		}
		ms = ms*10 + int64(c-'0')
	}
	return time.Duration(ms) * time.Millisecond, true
}

// idInline is the largest data and type, in bytes, whose event shares one
// allocation with a new last event ID. Above it the ID gets its own string,
// so a long-lived ID never pins a large event's data.
const idInline = 256

// dispatch handles a blank line. It reports whether an event was written to
// ev; either way it resets the event buffers.
func (d *Decoder) dispatch(ev *Event) bool {
	idChanged := string(d.id) != d.lastID
	if len(d.data) == 0 {
		if idChanged {
			d.lastID = validString(d.id)
		}
		d.typ, d.evRetry = d.typ[:0], 0
		return false
	}

	// One allocation holds data, type and, for small events, a new ID.
	b := d.data[:len(d.data)-1] // drop the final LF
	dn, tn := len(b), len(d.typ)
	b = append(b, d.typ...)
	inline := idChanged && dn+tn <= idInline
	if inline {
		b = append(b, d.id...)
	}
	s := string(b)
	if !utf8.ValidString(s) {
		data, typ := validString(b[:dn]), validString(b[dn:dn+tn])
		s, dn, tn = data+typ, len(data), len(typ)
		if inline {
			s += validString(d.id)
		}
	}
	ev.Data, ev.Type = s[:dn], s[dn:dn+tn]
	if idChanged {
		if inline {
			d.lastID = s[dn+tn:]
		} else {
			d.lastID = validString(d.id)
		}
	}
	ev.ID, ev.Retry, ev.Comment = d.lastID, d.evRetry, ""

	d.data, d.typ, d.evRetry = d.data[:0], d.typ[:0], 0
	return true
}

// readLine returns the next line without its terminator. The line is valid
// until the next call.
func (d *Decoder) readLine() ([]byte, error) {
	for {
		b := d.buf[d.start:d.end]
		if d.skipLF && len(b) > 0 {
			d.skipLF = false
			if b[0] == '\n' {
				d.start++
				b = b[1:]
			}
		}
		if !d.bomDone && (len(b) >= 3 || d.rerr != nil) {
			d.bomDone = true
			if bytes.HasPrefix(b, bom) {
				d.start += len(bom)
				b = b[len(bom):]
			}
		}
		if d.bomDone {
			if i := indexEOL(b); i >= 0 {
				line := b[:i]
				n := i + 1
				if b[i] == '\r' {
					if i+1 == len(b) {
						d.skipLF = true
					} else if b[i+1] == '\n' {
						n++
					}
				}
				d.start += n
				return line, nil
			}
		}
		if d.rerr != nil {
			return nil, d.rerr
		}
		d.fill()
	}
}

var bom = []byte("\xEF\xBB\xBF")

// indexEOL returns the index of the first CR or LF in b, or -1.
func indexEOL(b []byte) int {
	i := bytes.IndexByte(b, '\n')
	seg := b
	if i >= 0 {
		seg = b[:i]
	}
	if j := bytes.IndexByte(seg, '\r'); j >= 0 {
		return j
	}
	return i
}

// fill reads more input, compacting or growing the buffer first. It records
// any error, including a line that cannot fit, in d.rerr.
func (d *Decoder) fill() {
	if d.start > 0 {
		d.end = copy(d.buf, d.buf[d.start:d.end])
		d.start = 0
	}
	if d.end == len(d.buf) {
		limit := d.max + 2 // a line of max bytes and its CRLF
		if len(d.buf) >= limit {
			d.rerr = ErrEventTooLarge
			return
		}
		n := max(initialBufSize, 2*len(d.buf))
		buf := make([]byte, min(n, limit))
		d.end = copy(buf, d.buf[:d.end])
		d.buf = buf
	}
	for range 100 {
		n, err := d.r.Read(d.buf[d.end:])
		d.end += n
		if err != nil {
			d.rerr = err
			return
		}
		if n > 0 {
			return
		}
	}
	d.rerr = io.ErrNoProgress
}

// validString returns b as a string, with each maximal invalid UTF-8
// subsequence replaced by U+FFFD as the WHATWG UTF-8 decoder does.
func validString(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	out := make([]byte, 0, len(b)+8)
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n <= 1 {
			n = maximalSubpart(b)
			out = append(out, "\uFFFD"...)
		} else {
			out = append(out, b[:n]...)
		}
		b = b[n:]
	}
	return string(out)
}

// maximalSubpart returns the length of the invalid sequence at the start of
// b that the WHATWG decoder turns into one U+FFFD: the lead byte and any
// continuation bytes that could still have completed it.
func maximalSubpart(b []byte) int {
	lo, hi := byte(0x80), byte(0xBF)
	need := 0
	switch c := b[0]; {
	case c >= 0xC2 && c <= 0xDF:
		need = 1
	case c == 0xE0:
		need, lo = 2, 0xA0
	case c == 0xED:
		need, hi = 2, 0x9F
	case c >= 0xE1 && c <= 0xEF:
		need = 2
	case c == 0xF0:
		need, lo = 3, 0x90
	case c == 0xF4:
		need, hi = 3, 0x8F
	case c >= 0xF1 && c <= 0xF3:
		need = 3
	default:
		return 1
	}
	n := 1
	for ; n <= need && n < len(b); n++ {
		if b[n] < lo || b[n] > hi {
			break
		}
		lo, hi = 0x80, 0xBF
	}
	return n
}
