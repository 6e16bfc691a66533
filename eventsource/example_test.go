package eventsource_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/ssehub/ssehub/eventsource"
	"github.com/ssehub/ssehub/sse"
)

// newStreamServer returns a test server that answers every request with
// body as an event stream and then keeps the stream open, so that the
// EventSource does not reconnect. The caller closes the server.
func newStreamServer(body string) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, body)
		http.NewResponseController(w).Flush()
		<-r.Context().Done()
	}))
}

const fixedStream = "retry: 1000\n\n" +
	"id: 1\ndata: hello\n\n" +
	"event: price\ndata: {\"usd\":42}\n\n" +
	"id: 2\ndata: multi\ndata: line\n\n" +
	"event: bye\ndata: that is all\n\n"

func ExampleEventSource_Run() {
	srv := newStreamServer(fixedStream)
	defer srv.Close()

	es, err := eventsource.New(srv.URL, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	es.OnOpen(func(ev eventsource.Event) {
		fmt.Println("open, readyState", ev.ReadyState)
	})
	es.OnMessage(func(ev eventsource.Event) {
		fmt.Printf("message %q (last event ID %q)\n", ev.Data, ev.LastEventID)
	})
	es.AddEventListener("price", func(ev eventsource.Event) {
		fmt.Println("price", ev.Data)
	})
	es.AddEventListener("bye", func(ev eventsource.Event) {
		fmt.Println("bye:", ev.Data)
		es.Close()
	})

	err = es.Run(context.Background()) // returns once a handler calls Close
	fmt.Println("Run returned", err, "with readyState", es.ReadyState())
	// Output:
	// open, readyState OPEN
	// message "hello" (last event ID "1")
	// price {"usd":42}
	// message "multi\nline" (last event ID "2")
	// bye: that is all
	// Run returned <nil> with readyState CLOSED
}

func ExampleEventSource_Events() {
	srv := newStreamServer(fixedStream)
	defer srv.Close()

	es, err := eventsource.New(srv.URL, &eventsource.Options{LastEventID: "0"})
	if err != nil {
		fmt.Println(err)
		return
	}
	for ev := range es.Events(context.Background()) {
		fmt.Printf("%s %q id=%q\n", ev.Type, ev.Data, ev.LastEventID)
		if ev.Type == "bye" {
			break // closes the EventSource
		}
	}
	fmt.Println("err:", es.Err(), "readyState:", es.ReadyState())
	// Output:
	// open "" id=""
	// message "hello" id="1"
	// price "{\"usd\":42}" id="1"
	// message "multi\nline" id="2"
	// bye "that is all" id="2"
	// err: <nil> readyState: CLOSED
}

func ExampleResponseError() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
	}))
	defer srv.Close()

	es, err := eventsource.New(srv.URL, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	es.OnError(func(ev eventsource.Event) {
		fmt.Println("error event, readyState", ev.ReadyState)
	})
	err = es.Run(context.Background())
	var re *eventsource.ResponseError
	if errors.As(err, &re) {
		fmt.Println(re.StatusCode, re.ContentType)
	}
	fmt.Println(err)
	// Output:
	// error event, readyState CLOSED
	// 503 text/plain; charset=utf-8
	// eventsource: status 503
}

func ExampleEvent_Bytes() {
	data, err := sse.BinaryData([]byte{0x89, 'P', 'N', 'G'}, "image/png")
	if err != nil {
		fmt.Println(err)
		return
	}
	srv := newStreamServer("id: 7\ndata: " + strings.ReplaceAll(data, "\n", "\ndata: ") + "\n\ndata: plain text\n\n")
	defer srv.Close()

	es, err := eventsource.New(srv.URL, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	n := 0
	es.OnMessage(func(ev eventsource.Event) {
		if n++; n == 2 {
			es.Close()
		}
		if !ev.IsBinary() {
			fmt.Printf("text %q\n", ev.Data)
			return
		}
		h, _, err := sse.ParseBinaryHeader(ev.Data)
		if err != nil {
			fmt.Println(err)
			return
		}
		b, err := ev.Bytes()
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("%s, %d bytes: % x\n", h.MediaType, len(b), b)
	})
	es.Run(context.Background())
	// Output:
	// image/png, 4 bytes: 89 50 4e 47
	// text "plain text"
}
