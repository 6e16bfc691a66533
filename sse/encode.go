package sse

import (
	"io"
	"strconv"
	"strings"
)

// AppendEvent appends the wire form of ev to dst and returns the extended
// buffer. It does not allocate when dst has room. It returns ErrInvalidID or
// ErrInvalidType, and dst unchanged, when a field would break the stream.
//
// Fields are written in the order comment, id, event, retry, data, and the
// event is ended by a blank line. An event with empty Data and empty Type
// writes no "data" line, so a client updates its last event ID and retry
// delay without dispatching anything; an event with only a Comment is
// written as comment lines alone, without the blank line.
func AppendEvent(dst []byte, ev *Event) ([]byte, error) {
	if err := ev.validate(); err != nil {
		return dst, err
	}
	if ev.Comment != "" {
		dst = appendLines(dst, ":", ev.Comment)
	}
	if ev.ID == "" && ev.Type == "" && ev.Retry == 0 && ev.Data == "" {
		return dst, nil // a comment at most: no field, so no blank line
	}
	if ev.ID != "" {
		dst = append(dst, "id: "...)
		dst = append(dst, ev.ID...)
		dst = append(dst, '\n')
	}
	if ev.Type != "" {
		dst = append(dst, "event: "...)
		dst = append(dst, ev.Type...)
		dst = append(dst, '\n')
	}
	if ev.Retry > 0 {
		dst = append(dst, "retry: "...)
		dst = strconv.AppendInt(dst, ev.Retry.Milliseconds(), 10)
		dst = append(dst, '\n')
	}
	if ev.dispatches() {
		dst = appendLines(dst, "data:", ev.Data)
	}
	return append(dst, '\n'), nil
}

// appendLines writes text as one prefix line per line of text, splitting on
// CRLF, CR and LF. A non-empty line gets a space after the prefix, so a
// leading space in the text survives the one space a parser strips.
func appendLines(dst []byte, prefix, text string) []byte {
	// Two IndexByte searches are much faster than one IndexAny. lf is the
	// index of the next LF in text, or len(text), kept from one line to
	// the next while it is ahead, so that text with CR line breaks is not
	// searched for an LF again at every line.
	lf := -1
	for {
		if lf < 0 {
			if lf = strings.IndexByte(text, '\n'); lf < 0 {
				lf = len(text)
			}
		}
		i := lf // the line's end
		if j := strings.IndexByte(text[:lf], '\r'); j >= 0 {
			i = j
		}
		dst = append(dst, prefix...)
		if i > 0 {
			dst = append(dst, ' ')
			dst = append(dst, text[:i]...)
		}
		dst = append(dst, '\n')
		if i == len(text) {
			return dst
		}
		next := i + 1 // past the line break
		if text[i] == '\r' && next < len(text) && text[next] == '\n' {
			next++
		}
		text, lf = text[next:], lf-next // lf < 0 once passed
	}
}

// An Encoder writes events to an io.Writer. Each Encode call makes exactly
// one Write of the whole event. An Encoder reuses one buffer and does not
// allocate once that buffer has grown to the largest event written.
//
// An Encoder is not safe for concurrent use. The zero value is not usable;
// call NewEncoder.
type Encoder struct {
	w   io.Writer
	buf []byte
}

// NewEncoder returns an Encoder that writes to w.
func NewEncoder(w io.Writer) *Encoder {
	return &Encoder{w: w, buf: make([]byte, 0, 512)}
}

// Encode writes ev to the underlying writer. It writes nothing and returns
// ErrInvalidID or ErrInvalidType when a field would break the stream.
func (e *Encoder) Encode(ev Event) error {
	var err error
	e.buf, err = AppendEvent(e.buf[:0], &ev)
	if err != nil || len(e.buf) == 0 {
		return err
	}
	_, err = e.w.Write(e.buf)
	return err
}
