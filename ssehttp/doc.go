// Package ssehttp streams Server-Sent Events from net/http handlers, over
// HTTP/1.1 and HTTP/2.
//
// NewStream turns a handler's response into an event stream: it sets the
// headers an EventSource and the proxies in front of it need, flushes an
// opening comment at once so the client's open event fires without waiting
// for the first event, and then writes and flushes each event as it is
// sent. While the stream is open it sends comment heartbeats when idle, puts
// a deadline on every write so that a peer which stops reading cannot pin
// the handler, compresses with gzip when both the client and the caller want
// it, and stops when the request's context ends.
//
//	func handler(w http.ResponseWriter, r *http.Request) {
//		s, err := ssehttp.NewStream(w, r, nil)
//		if err != nil {
//			http.Error(w, err.Error(), http.StatusInternalServerError)
//			return
//		}
//		defer s.Close()
//		for {
//			select {
//			case ev := <-updates:
//				if s.Send(ev) != nil {
//					return
//				}
//			case <-s.Done():
//				return // client gone, dead peer, or Close
//			}
//		}
//	}
//
// To send one event to many compressed streams without compressing it for
// each, open them with Options.GzipFrames, deflate the event once with
// AppendGzipFrame, and write the frame to each stream with WriteDeflated.
//
// A client that reconnects tells the handler where it stopped with the
// Last-Event-ID header, or the lastEventID query parameter when it cannot set
// headers; LastEventID reads either.
//
// The wire format itself (events, encoding, decoding) lives in package sse.
package ssehttp
