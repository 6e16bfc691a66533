// Package eventsource is a Go client for server-sent event streams that
// behaves exactly as the browser's EventSource of the WHATWG HTML Living
// Standard ("Server-sent events"): the same requests, the same readyState
// transitions, the same open, message, named and error events, the same
// reconnection with Last-Event-ID after a network error or the end of a
// stream, and the same refusal to reconnect after a response that is not
// a 200 text/event-stream. Parsing is package sse's Decoder.
//
// The API is blocking: Run does the work on the caller's goroutine and
// calls the listeners there, in order; the package starts no goroutine of
// its own. With listeners:
//
//	es, err := eventsource.New("https://example.com/events", nil)
//	if err != nil {
//		return err
//	}
//	es.OnMessage(func(ev eventsource.Event) { fmt.Println(ev.Data) })
//	es.AddEventListener("price", func(ev eventsource.Event) { fmt.Println("price", ev.Data) })
//	err = es.Run(ctx) // nil after Close or ctx done; a *ResponseError if the server refused
//
// Or pulling every event with an iterator:
//
//	for ev := range es.Events(ctx) {
//		switch ev.Type {
//		case "error":
//			log.Printf("%v (readyState %v)", ev.Err, ev.ReadyState)
//		case "message":
//			fmt.Println(ev.Data)
//		}
//	}
//	err = es.Err()
//
// Close stops the EventSource from any goroutine, including a handler.
//
// A binary event (see package sse, "Binary events": data that begins
// with sse.BinaryPrefix) is an ordinary message; Event.IsBinary tells it
// apart and Event.Bytes decodes its payload. Base64 makes a payload a
// third larger: raise Options.MaxEventSize for payloads over about
// 750 KiB.
//
// # Differences from a browser
//
// Where Go has no browser to lean on, the package decides: credentials are
// whatever the Options.Client sends (a cookie jar on it plays the part of
// withCredentials; there is no CORS); Options.Header adds request headers;
// Options.LastEventID resumes a stream from a known ID; an event larger than
// Options.MaxEventSize ends the connection as a network error would; and
// consecutive attempts that fail to connect back off exponentially up to
// Options.MaxRetry, with jitter, as the standard allows.
package eventsource
