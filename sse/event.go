package sse

import (
	"errors"
	"time"
)

// Errors returned by the Encoder and the Decoder.
var (
	// ErrInvalidID is returned when an event ID contains CR, LF or NUL.
	// Such an ID could end the "id:" line early and inject fields.
	ErrInvalidID = errors.New("sse: event id contains CR, LF or NUL")
	// ErrInvalidType is returned when an event type contains CR, LF or NUL.
	ErrInvalidType = errors.New("sse: event type contains CR, LF or NUL")
	// ErrInvalidRetry is returned when Event.Retry is negative.
	ErrInvalidRetry = errors.New("sse: negative retry")
	// ErrEventTooLarge is returned by the Decoder when an event, or a single
	// line, would grow beyond the maximum event size.
	ErrEventTooLarge = errors.New("sse: event exceeds maximum size")
)

// An Event is one server-sent event. The zero value is an empty event.
type Event struct {
	// ID is the "id" field. When encoding, an empty ID writes no "id" line.
	// When decoding, ID holds the stream's last event ID at the time of
	// dispatch, which persists across events, as a browser's
	// MessageEvent.lastEventId does.
	ID string

	// Type is the "event" field. Empty means the default type, "message".
	Type string

	// Data is the payload. See the package documentation for how line
	// breaks inside Data are carried.
	Data string

	// Retry is the reconnection delay sent in a "retry" field, with
	// millisecond precision. Zero writes no "retry" line. When decoding it
	// holds the retry value set within this event's block, or zero.
	Retry time.Duration

	// Comment is written as one ":" comment line per line of text, before
	// the fields. Decoders ignore comments; the Decoder never sets it.
	Comment string
}

// dispatches reports whether a browser would fire an event for e: an event
// with an empty data buffer is not dispatched.
func (e *Event) dispatches() bool { return e.Data != "" || e.Type != "" }

// validate reports whether e can be written without breaking the stream.
func (e *Event) validate() error {
	if !safeField(e.ID) {
		return ErrInvalidID
	}
	if !safeField(e.Type) {
		return ErrInvalidType
	}
	if e.Retry < 0 {
		return ErrInvalidRetry
	}
	return nil
}

func safeField(s string) bool {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\r', '\n', 0:
			return false
		}
	}
	return true
}
