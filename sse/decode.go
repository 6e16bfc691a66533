package sse

import (
	"bytes"
	"encoding/binary"
	"io"
	"math"
	"strings"
	"time"
	"unicode/utf8"
)

// DefaultMaxEventSize is the Decoder's limit on one event, and on one line,
// unless SetMaxEventSize changes it.
const DefaultMaxEventSize = 1 << 20

const initialBufSize = 16 << 10

// lineSlack is how much longer than the maximum event size a line may be,
// with its line end: room for "event: " and a CRLF around a value of the
// maximum size, and then some.
const lineSlack = 16

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
// Decode makes one allocation per dispatched event: a string that holds the
// event's Data and Type and, when the event has at most 256 bytes of them,
// a new last event ID, so that keeping one of them keeps the others' memory
// too. A larger event with a new ID, or one with invalid UTF-8, costs one
// or two allocations more.
//
// A Decoder reads from its reader in chunks, and so may read past the event
// it returns. It never closes the reader. A Decoder is not safe for
// concurrent use. The zero value is not usable; call NewDecoder.
type Decoder struct {
	r   io.Reader
	max int

	// The read buffer: unread bytes are buf[start:end].
	buf        []byte
	start, end int
	// cr and lf remember how far the searches for line ends have got, so
	// that no byte is searched for the same character twice: buf[start:cr]
	// holds no CR, and either cr == end, or buf[cr] is the next CR, or cr is
	// where the search stopped before the last fill. The same holds for lf,
	// except that the search for LF stops at the next CR. A stream with LF
	// line ends thus costs one search for CR per buffer fill, not one per
	// line, and a stream with CR line ends no search for LF past each line.
	cr, lf int

	rerr    error // error from r or from the line limit, returned once buf is drained
	err     error // sticky error already returned by Decode
	bomDone bool  // the start of the stream has been checked for a BOM
	skipLF  bool  // the last line ended in a CR at the end of buf

	// The parser's buffers, named as in the standard, holding bytes as
	// received: the UTF-8 decoding is done at dispatch. Each line of data
	// is followed by an LF.
	data   []byte // data buffer
	typ    []byte // event type buffer
	id     []byte // last event ID buffer
	lastID string // last event ID string, as of the last blank line

	// The first data line of an event is not copied to the data buffer at
	// once: while pending is set, the data buffer is pend followed by an
	// LF, and pend points into buf. Most events have one data line, which
	// is thus copied once, from buf straight into the event's string. A
	// second data line, or a fill, which may overwrite buf, first copies
	// pend to data (see flush).
	pend    []byte
	pending bool

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
// and last event ID of one event together, in bytes of UTF-8 after any
// invalid byte has been replaced by U+FFFD. Past it, Decode returns
// ErrEventTooLarge; it does the same for a line longer than n+15 bytes
// (which leaves room for a field name), as the line must be held whole. The
// Decoder's memory stays within a small multiple of n. A value of zero or
// less restores DefaultMaxEventSize. Call it before the first Decode.
func (d *Decoder) SetMaxEventSize(n int) {
	if n <= 0 {
		n = DefaultMaxEventSize
	}
	d.max = n
}

// Reset makes d read a new stream from r, as a client does on reconnection:
// the partial event, buffered input and any error are dropped, while the
// last event ID and the retry delay are kept. The buffers are reused.
func (d *Decoder) Reset(r io.Reader) {
	d.r = r
	d.start, d.end, d.lf, d.cr = 0, 0, 0, 0
	d.rerr, d.err = nil, nil
	d.bomDone, d.skipLF = false, false
	d.data, d.typ = d.data[:0], d.typ[:0]
	d.pend, d.pending = nil, false
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
// whether or not its event is dispatched. A value too large for a
// time.Duration is ignored.
func (d *Decoder) Retry() (time.Duration, bool) { return d.retry, d.retrySet }

// Decode reads the next dispatched event into ev, setting all its fields.
// Type is empty for an event with no "event" field or an empty one, which a
// browser dispatches as "message".
//
// At the end of the stream Decode returns io.EOF, discarding any event not
// ended by a blank line. It returns ErrEventTooLarge when an event or a
// line passes the maximum event size, io.ErrNoProgress when the reader
// keeps returning no data and no error, and any other error from the
// reader, after the events before it. Every error is sticky: later calls
// return it again, until Reset.
func (d *Decoder) Decode(ev *Event) error {
	if d.err != nil {
		return d.err
	}
	for {
		// The fast path, written out here because the compiler would not
		// inline it: the next line ends in an LF already in the buffer,
		// and no CR is left in the buffer. That d.cr has reached d.end
		// also means that readLine has run since the last fill, and so has
		// dealt with a pending BOM or skipLF: fill leaves d.cr short of
		// d.end whenever it adds bytes, and an empty buffer has no line.
		var line []byte
		ok := false
		if d.cr >= d.end {
			// As in readLine, but a blank line, a quarter of a typical
			// stream, is seen without calling IndexByte.
			i := max(d.lf, d.start)
			if i < d.end && d.buf[i] != '\n' {
				if j := bytes.IndexByte(d.buf[i:d.end], '\n'); j >= 0 {
					i += j
				} else {
					i = d.end
				}
			}
			if i < d.end {
				line, ok = d.buf[d.start:i], true
				d.start = i + 1
			} else {
				d.lf = d.end
			}
		}
		var err error
		if !ok {
			line, err = d.readLine()
		}
		if err == nil {
			if len(line) > 0 {
				err = d.field(line)
			} else if ok, err = d.dispatch(ev); ok {
				return nil
			}
		}
		if err != nil {
			d.err = err
			return err
		}
	}
}

// field processes one non-empty line. A comment, which starts with a
// colon, and a field of any other name are ignored.
func (d *Decoder) field(line []byte) error {
	// The size of an event is that of its data, type and last event ID.
	// The first byte tells which field the line can be.
	switch line[0] {
	case 'd':
		value, ok := fieldValue(line, "data")
		if !ok {
			return nil
		}
		n := len(value) // the data's new length
		if d.pending || len(d.data) > 0 {
			n += d.dataLen() + 1
		}
		if n+len(d.typ)+len(d.id) > d.max {
			return ErrEventTooLarge
		}
		if !d.pending && len(d.data) == 0 {
			d.pend, d.pending = value, true
			return nil
		}
		d.flush()
		if n+1 > cap(d.data) {
			d.data = grow(d.data, n+1, d.max+1)
		}
		d.data = append(d.data, value...)
		d.data = append(d.data, '\n')
	case 'i':
		value, ok := fieldValue(line, "id")
		if !ok || hasNUL(value) {
			return nil
		}
		if d.dataLen()+len(d.typ)+len(value) > d.max {
			return ErrEventTooLarge
		}
		if len(value) > cap(d.id) {
			d.id = grow(d.id, len(value), d.max)
		}
		d.id = append(d.id[:0], value...)
	case 'e':
		value, ok := fieldValue(line, "event")
		if !ok {
			return nil
		}
		if d.dataLen()+len(value)+len(d.id) > d.max {
			return ErrEventTooLarge
		}
		if len(value) > cap(d.typ) {
			d.typ = grow(d.typ, len(value), d.max)
		}
		d.typ = append(d.typ[:0], value...)
	case 'r':
		value, ok := fieldValue(line, "retry")
		if !ok {
			return nil
		}
		if ms, ok := parseRetry(value); ok {
			d.retry, d.retrySet, d.evRetry = ms, true, ms
		}
	}
	return nil
}

// hasNUL reports whether b holds a NUL byte. IDs are short, and for a few
// bytes a loop beats the call to bytes.IndexByte.
func hasNUL(b []byte) bool {
	if len(b) > 16 {
		return bytes.IndexByte(b, 0) >= 0
	}
	for _, c := range b {
		if c == 0 {
			return true
		}
	}
	return false
}

// dataLen returns the length of the event's data: the data buffer without
// its final LF.
func (d *Decoder) dataLen() int {
	if d.pending {
		return len(d.pend)
	}
	return max(len(d.data)-1, 0)
}

// flush copies a pending first data line to the data buffer.
func (d *Decoder) flush() {
	if !d.pending {
		return
	}
	if n := len(d.pend) + 1; n > cap(d.data) {
		d.data = grow(d.data, n, d.max+1)
	}
	d.data = append(d.data, d.pend...)
	d.data = append(d.data, '\n')
	d.pend, d.pending = nil, false
}

// fieldValue reports whether line is a field of the given name, "name" or
// "name:value", and returns its value without the one leading space the
// standard removes. Testing the few names the parser knows this way is
// faster than searching the line for its colon.
func fieldValue(line []byte, name string) ([]byte, bool) {
	if len(line) < len(name) || string(line[:len(name)]) != name {
		return nil, false
	}
	v := line[len(name):]
	if len(v) == 0 {
		return v, true
	}
	if v[0] != ':' {
		return nil, false
	}
	v = v[1:]
	if len(v) > 0 && v[0] == ' ' {
		v = v[1:]
	}
	return v, true
}

// grow returns b with the same contents and a capacity of at least n,
// doubling as append does but never past limit, so that no buffer of the
// Decoder outgrows the maximum event size (by more than the data buffer's
// final LF). n must not exceed limit.
func grow(b []byte, n, limit int) []byte {
	c := min(max(n, 2*cap(b), 64), limit)
	nb := make([]byte, len(b), c)
	copy(nb, b)
	return nb
}

// maxRetryMS is the largest retry value, in milliseconds, that a
// time.Duration holds.
const maxRetryMS = math.MaxInt64 / int64(time.Millisecond)

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
		digit := int64(c - '0')
		if ms > (maxRetryMS-digit)/10 {
			return 0, false
		}
		ms = ms*10 + digit
	}
	return time.Duration(ms) * time.Millisecond, true
}

// idInline is the largest data and type, in bytes, whose event shares one
// allocation with a new last event ID. Above it the ID gets its own string,
// so a long-lived ID never pins a large event's data.
const idInline = 256

// dispatch handles a blank line. It reports whether an event was written to
// ev; either way it resets the event buffers.
func (d *Decoder) dispatch(ev *Event) (bool, error) {
	// The compiler compares without converting d.id to a string.
	idChanged := string(d.id) != d.lastID
	retry := d.evRetry
	data, typ := d.pend, d.typ
	if !d.pending {
		data = d.data[:max(len(d.data)-1, 0)] // without the final LF
	}
	empty := !d.pending && len(d.data) == 0
	d.data, d.typ, d.pend, d.pending, d.evRetry = d.data[:0], d.typ[:0], nil, false, 0
	if empty {
		if idChanged {
			id := validString(d.id)
			if len(id) > d.max {
				return false, ErrEventTooLarge // only when U+FFFD lengthened it
			}
			d.lastID = id
		}
		return false, nil
	}

	// One allocation holds data, type and, for a small event, a new ID,
	// one after the other.
	inline := idChanged && len(data)+len(typ) <= idInline
	n := len(data) + len(typ)
	if inline {
		n += len(d.id)
	}
	var s string
	dn, tn := len(data), len(typ)
	// Check the parts, which are in the cache, before copying them to the
	// new string's memory, which usually is not.
	if isASCII(data) && isASCII(typ) && (!inline || isASCII(d.id)) ||
		utf8.Valid(data) && utf8.Valid(typ) && (!inline || utf8.Valid(d.id)) {
		var sb strings.Builder
		sb.Grow(n)
		sb.Write(data)
		sb.Write(typ)
		if inline {
			sb.Write(d.id)
		}
		s = sb.String()
	} else {
		// Decoding may lengthen each part, so lay them out anew.
		dv, tv := validString(data), validString(typ)
		s, dn, tn = dv+tv, len(dv), len(tv)
		if inline {
			s += validString(d.id)
		}
	}
	id := d.lastID
	if inline {
		id = s[dn+tn:]
	} else if idChanged {
		id = validString(d.id)
	}
	if dn+tn+len(id) > d.max {
		return false, ErrEventTooLarge // only when U+FFFD lengthened the event
	}
	d.lastID = id
	ev.ID, ev.Type, ev.Data, ev.Retry = id, s[dn:dn+tn], s[:dn], retry
	if ev.Comment != "" {
		ev.Comment = "" // written only when needed: a store costs a GC write barrier
	}
	return true, nil
}

// isASCII reports whether b is all ASCII, the usual case, several times
// faster than utf8.Valid for short texts. It ORs eight-byte words together
// and tests their high bits once at the end; the last word, or for a short
// b the last few bytes, may overlap bytes already read.
func isASCII(b []byte) bool {
	var x uint64
	n := len(b)
	switch {
	case n >= 16:
		for i := 16; i <= n; i += 16 {
			x |= binary.LittleEndian.Uint64(b[i-16:i-8]) | binary.LittleEndian.Uint64(b[i-8:i])
		}
		x |= binary.LittleEndian.Uint64(b[n-16:n-8]) | binary.LittleEndian.Uint64(b[n-8:])
	case n >= 8:
		x = binary.LittleEndian.Uint64(b) | binary.LittleEndian.Uint64(b[n-8:])
	case n >= 4:
		x = uint64(binary.LittleEndian.Uint32(b) | binary.LittleEndian.Uint32(b[n-4:]))
	case n > 0:
		x = uint64(b[0] | b[n/2] | b[n-1])
	}
	return x&0x8080808080808080 == 0
}

// readLine returns the next line without its terminator. The line is valid
// until the next call.
func (d *Decoder) readLine() ([]byte, error) {
	for {
		if d.skipLF && d.start < d.end {
			d.skipLF = false
			if d.buf[d.start] == '\n' {
				d.start++
			}
		}
		if !d.bomDone {
			b := d.buf[d.start:d.end]
			// Decide once three bytes are in, or fewer that cannot start
			// a BOM, or at the end of the input.
			if len(b) >= len(bom) || !bytes.HasPrefix(bom, b) || d.rerr != nil {
				d.bomDone = true
				if bytes.HasPrefix(b, bom) {
					d.start += len(bom)
				}
			}
		}
		if d.bomDone && !d.skipLF {
			start, end, buf := d.start, d.end, d.buf
			// Find the next CR, then the next LF before it, each search
			// resuming where the last one stopped (see Decoder.lf).
			cr := max(d.cr, start)
			if cr < end && buf[cr] != '\r' {
				if j := bytes.IndexByte(buf[cr:end], '\r'); j >= 0 {
					cr += j
				} else {
					cr = end
				}
				d.cr = cr
			}
			lf := max(d.lf, start)
			if lf < cr && buf[lf] != '\n' {
				if j := bytes.IndexByte(buf[lf:cr], '\n'); j >= 0 {
					lf += j
				} else {
					lf = cr
				}
			}
			d.lf = lf
			if lf < cr { // buf[lf] is an LF: the usual case
				d.start = lf + 1
				return buf[start:lf], nil
			}
			if cr < end {
				d.start = cr + 1
				if cr+1 == end {
					d.skipLF = true
				} else if buf[cr+1] == '\n' {
					d.start++
				}
				return buf[start:cr], nil
			}
		}
		if d.rerr != nil {
			return nil, d.rerr
		}
		d.fill()
	}
}

var bom = []byte("\xEF\xBB\xBF")

// fill reads more input, compacting or growing the buffer first. It records
// any error, including a line that cannot fit, in d.rerr.
func (d *Decoder) fill() {
	d.flush() // pend points into buf
	if d.start > 0 {
		d.end = copy(d.buf, d.buf[d.start:d.end])
		d.lf = max(d.lf-d.start, 0)
		d.cr = max(d.cr-d.start, 0)
		d.start = 0
	}
	if d.end == len(d.buf) {
		limit := d.max + lineSlack
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
