package eventsource

import "github.com/ssehub/ssehub/sse"

// IsBinary reports whether ev is a binary event: a message whose data
// begins with sse.BinaryPrefix (see package sse, "Binary events"). Its
// payload is Bytes; its media type, encoding and size are in the header
// sse.ParseBinaryHeader(ev.Data) returns.
func (ev Event) IsBinary() bool {
	e := sse.Event{Data: ev.Data}
	return ev.IsMessage() && e.IsBinary()
}

// Bytes returns the payload of ev, a binary event, decoded from its data
// as sse.Event.Bytes does: base64, then gunzip when its encoding is gzip.
// It returns sse.ErrNotBinary for a text event and for the connection's
// open and error events, and an error wrapping sse.ErrMalformedBinary for
// a binary event whose data cannot be decoded or whose payload is not as
// long as its header says. It decodes at most sse.MaxBinaryBytes. The
// slice is the caller's.
func (ev Event) Bytes() ([]byte, error) {
	if !ev.IsMessage() {
		return nil, sse.ErrNotBinary
	}
	e := sse.Event{Data: ev.Data}
	return e.Bytes()
}
