// Package sse implements the Server-Sent Events wire format of the WHATWG
// HTML Living Standard ("Server-sent events"): an Encoder that writes events
// and a Decoder that parses an event stream exactly as a browser's
// EventSource does.
//
// The package uses the standard library only (not even net/http); streaming
// over HTTP lives in package ssehttp and the client in package eventsource.
//
// Writing:
//
//	enc := sse.NewEncoder(w)
//	err := enc.Encode(sse.Event{ID: "7", Type: "price", Data: `{"usd":42}`})
//
// Reading:
//
//	dec := sse.NewDecoder(r)
//	for {
//		var ev sse.Event
//		if err := dec.Decode(&ev); err != nil {
//			break // io.EOF at a clean end of stream
//		}
//		fmt.Println(ev.Type, ev.Data)
//	}
//
// # Line breaks in data
//
// The wire format has no way to carry a CR inside a data line: every CR,
// LF and CRLF in Event.Data starts a new "data:" line, and a spec-conforming
// client joins those lines with LF. A receiver therefore sees every line
// break in Data normalised to a single LF ("a\r\nb" and "a\rb" both arrive
// as "a\nb").
package sse
