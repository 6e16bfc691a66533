package ssehttp_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"time"

	"github.com/ssehub/ssehub/sse"
	"github.com/ssehub/ssehub/ssehttp"
)

// A server resumes a reconnecting client after the last event it saw, and
// the client reads the stream with an sse.Decoder.
func Example() {
	prices := []string{"42", "43", "41"}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := ssehttp.NewStream(w, r, nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer s.Close()
		next, _ := strconv.Atoi(s.LastEventID()) // "" for a first connection: 0
		for i := next; i < len(prices); i++ {
			if err := s.Send(sse.Event{ID: strconv.Itoa(i + 1), Type: "price", Data: prices[i]}); err != nil {
				return
			}
		}
	}))
	defer srv.Close()

	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	req.Header.Set("Last-Event-ID", "1")
	resp, err := srv.Client().Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	dec := sse.NewDecoder(resp.Body)
	for {
		var ev sse.Event
		if err := dec.Decode(&ev); err != nil {
			break
		}
		fmt.Println(ev.ID, ev.Type, ev.Data)
	}
	// Output:
	// 2 price 43
	// 3 price 41
}

func ExampleNewStream() {
	handler := func(w http.ResponseWriter, r *http.Request) {
		s, err := ssehttp.NewStream(w, r, &ssehttp.Options{Retry: 3 * time.Second})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer s.Close()
		s.Send(sse.Event{ID: "1", Data: "hello"})
		s.Send(sse.Event{ID: "2", Type: "greeting", Data: "hi\nthere"})
	}

	rec := httptest.NewRecorder()
	handler(rec, httptest.NewRequest(http.MethodGet, "/events", nil))
	for _, k := range []string{"Content-Type", "Cache-Control", "X-Accel-Buffering", "Connection"} {
		fmt.Printf("%s: %s\n", k, rec.Result().Header.Get(k))
	}
	fmt.Printf("\n%s", rec.Body)
	// Output:
	// Content-Type: text/event-stream
	// Cache-Control: no-cache
	// X-Accel-Buffering: no
	// Connection: keep-alive
	//
	// : open
	// retry: 3000
	//
	// id: 1
	// data: hello
	//
	// id: 2
	// event: greeting
	// data: hi
	// data: there
}

// A handler forwards updates until the client goes away.
func ExampleStream_Done() {
	updates := make(chan sse.Event)
	ended := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := ssehttp.NewStream(w, r, nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer s.Close()
		for {
			select {
			case ev := <-updates:
				if s.Send(ev) != nil {
					ended <- s.Err()
					return
				}
			case <-s.Done(): // the client left, a write failed, or Close
				ended <- s.Err()
				return
			}
		}
	}))
	defer srv.Close()

	// The client reads two events, then leaves.
	ctx, leave := context.WithCancel(context.Background())
	defer leave()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	resp, err := srv.Client().Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	dec := sse.NewDecoder(resp.Body)
	for _, data := range []string{"one", "two"} {
		updates <- sse.Event{Data: data}
		var ev sse.Event
		if err := dec.Decode(&ev); err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println("client got", ev.Data)
	}
	leave()
	fmt.Println("handler saw:", <-ended)
	// Output:
	// client got one
	// client got two
	// handler saw: context canceled
}

// An event encoded once is written to every stream as it is.
func ExampleStream_WriteRaw() {
	wire, err := sse.AppendEvent(nil, &sse.Event{ID: "9", Data: "to everyone"})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, name := range []string{"alice", "bob"} {
		rec := httptest.NewRecorder()
		s, err := ssehttp.NewStream(rec, httptest.NewRequest(http.MethodGet, "/events", nil), nil)
		if err != nil {
			fmt.Println(err)
			return
		}
		s.WriteRaw(wire)
		s.Close()
		fmt.Printf("%s: %q\n", name, rec.Body)
	}
	// Output:
	// alice: ": open\nid: 9\ndata: to everyone\n\n"
	// bob: ": open\nid: 9\ndata: to everyone\n\n"
}

func ExampleLastEventID() {
	r := httptest.NewRequest(http.MethodGet, "/events?lastEventID=41", nil)
	fmt.Printf("%q\n", ssehttp.LastEventID(r)) // from the query
	r.Header.Set("Last-Event-ID", "42")
	fmt.Printf("%q\n", ssehttp.LastEventID(r)) // the header wins
	fmt.Printf("%q\n", ssehttp.LastEventID(httptest.NewRequest(http.MethodGet, "/events", nil)))
	// Output:
	// "41"
	// "42"
	// ""
}

// An event deflated once and written to every stream that GzipFrames
// compresses; a client decodes each stream as an ordinary gzip body.
func ExampleAppendGzipFrame() {
	ev, _ := sse.AppendEvent(nil, &sse.Event{ID: "7", Data: `{"price":42}`})
	frame := ssehttp.AppendGzipFrame(nil, ev) // once, for all streams

	// What one stream carries: the gzip header, then its frames.
	body := ssehttp.AppendGzipHeader(nil)
	body = ssehttp.AppendGzipFrame(body, []byte(": open\n\n"))
	body = append(body, frame...)

	zr, _ := gzip.NewReader(bytes.NewReader(body))
	dec := sse.NewDecoder(zr)
	var got sse.Event
	if err := dec.Decode(&got); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("id %s, data %s\n", got.ID, got.Data)
	// Output: id 7, data {"price":42}
}
