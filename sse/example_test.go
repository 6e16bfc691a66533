package sse_test

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/ssehub/ssehub/sse"
)

// The Encoder writes each event in one Write. A line break in Data starts a
// new "data:" line, and a comment alone is a keep-alive that dispatches
// nothing.
func ExampleEncoder() {
	enc := sse.NewEncoder(os.Stdout)
	events := []sse.Event{
		{Retry: 5 * time.Second},
		{ID: "1", Type: "greeting", Data: "hello\nworld"},
		{ID: "2", Data: `{"price":42}`},
		{Comment: "keep-alive"},
	}
	for _, ev := range events {
		if err := enc.Encode(ev); err != nil {
			fmt.Println(err)
		}
	}
	// An ID with a line break would inject fields, so it is refused.
	fmt.Println(enc.Encode(sse.Event{ID: "3\ndata: injected", Data: "x"}))
	// Output:
	// retry: 5000
	//
	// id: 1
	// event: greeting
	// data: hello
	// data: world
	//
	// id: 2
	// data: {"price":42}
	//
	// : keep-alive
	// sse: event id contains CR, LF or NUL
}

// AppendEvent builds events in a caller's buffer, for example to encode an
// event once and send the same bytes to many subscribers.
func ExampleAppendEvent() {
	var buf []byte
	buf, err := sse.AppendEvent(buf, &sse.Event{Type: "tick", Data: "1"})
	if err != nil {
		panic(err)
	}
	buf, _ = sse.AppendEvent(buf, &sse.Event{Type: "tick", Data: "2"})
	fmt.Printf("%q\n", buf)
	// Output:
	// "event: tick\ndata: 1\n\nevent: tick\ndata: 2\n\n"
}

// The Decoder turns a stream into the events a browser would dispatch. ID
// holds the last event ID, which persists from one event to the next; an
// empty Type means the default type, "message".
func ExampleDecoder() {
	stream := ": welcome\n" +
		"\n" +
		"retry: 3000\n" +
		"id: 1\n" +
		"event: join\n" +
		"data: alice\n" +
		"\n" +
		"data: first line\r\n" +
		"data: second line\r\n" +
		"\r\n" +
		"id: 2\n" +
		"event: leave\n" +
		"data: alice\n" +
		"\n" +
		"data: never dispatched: no blank line follows"

	dec := sse.NewDecoder(strings.NewReader(stream))
	for {
		var ev sse.Event
		err := dec.Decode(&ev)
		if err == io.EOF {
			break
		}
		if err != nil {
			fmt.Println("error:", err)
			return
		}
		fmt.Printf("ID=%q Type=%q Data=%q Retry=%v\n", ev.ID, ev.Type, ev.Data, ev.Retry)
	}
	retry, _ := dec.Retry()
	fmt.Printf("reconnect after %v with Last-Event-ID %q\n", retry, dec.LastEventID())
	// Output:
	// ID="1" Type="join" Data="alice" Retry=3s
	// ID="1" Type="" Data="first line\nsecond line" Retry=0s
	// ID="2" Type="leave" Data="alice" Retry=0s
	// reconnect after 3s with Last-Event-ID "2"
}

// Reset reads the stream of a new connection, as after a reconnection: the
// last event ID and retry delay carry over.
func ExampleDecoder_Reset() {
	dec := sse.NewDecoder(strings.NewReader("id: 7\ndata: a\n\ndata: cut off"))
	var ev sse.Event
	for dec.Decode(&ev) == nil {
		fmt.Printf("ID=%q Data=%q\n", ev.ID, ev.Data)
	}

	// Send dec.LastEventID() in the Last-Event-ID header of the new
	// request, then decode its body.
	fmt.Println("Last-Event-ID:", dec.LastEventID())
	dec.Reset(strings.NewReader("data: b\n\n"))
	for dec.Decode(&ev) == nil {
		fmt.Printf("ID=%q Data=%q\n", ev.ID, ev.Data)
	}
	// Output:
	// ID="7" Data="a"
	// Last-Event-ID: 7
	// ID="7" Data="b"
}
