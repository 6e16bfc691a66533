package eventsource

import (
	"errors"
	"fmt"
	"net/http"
)

// Errors returned by New, Run and Events, and carried by error events.
var (
	// ErrInvalidURL is returned by New for a URL that does not parse or
	// is not an absolute http or https URL.
	ErrInvalidURL = errors.New("eventsource: invalid url")

	// ErrInvalidHeader is returned by New when Options.Header or
	// Options.LastEventID holds a value that cannot be sent in an HTTP
	// request header. Run fails the connection with it when the stream
	// sets a last event ID that cannot be sent (one with a control
	// character), since no later attempt could send it either.
	ErrInvalidHeader = errors.New("eventsource: invalid request header")

	// ErrAlreadyStarted is returned by Run when Run, or a range over
	// Events, has already been called on the EventSource.
	ErrAlreadyStarted = errors.New("eventsource: already started")

	// ErrStatus is the error a *ResponseError unwraps to when the server
	// answered with a status other than 200 OK.
	ErrStatus = errors.New("eventsource: response status is not 200")

	// ErrContentType is the error a *ResponseError unwraps to when the
	// server answered 200 OK with a Content-Type other than
	// text/event-stream.
	ErrContentType = errors.New("eventsource: response content type is not text/event-stream")
)

// A ResponseError reports a response that failed the connection: a status
// other than 200 OK (204 included), or a Content-Type whose essence is not
// text/event-stream. The EventSource does not reconnect after it. Match it
// with errors.As to read the fields, or with errors.Is against ErrStatus
// or ErrContentType.
type ResponseError struct {
	// StatusCode is the response's status code.
	StatusCode int
	// ContentType is the response's Content-Type header as sent, or ""
	// if it had none.
	ContentType string
	// Header is the response header, for fields such as Retry-After or
	// WWW-Authenticate. The response body is not read.
	Header http.Header
}

// Error returns one line naming the status, or the content type when the
// status was 200.
func (e *ResponseError) Error() string {
	if e.StatusCode != http.StatusOK {
		return fmt.Sprintf("eventsource: status %d", e.StatusCode)
	}
	return fmt.Sprintf("eventsource: content type %q is not text/event-stream", e.ContentType)
}

// Unwrap returns ErrStatus when the status was not 200, and ErrContentType
// otherwise.
func (e *ResponseError) Unwrap() error {
	if e.StatusCode != http.StatusOK {
		return ErrStatus
	}
	return ErrContentType
}
