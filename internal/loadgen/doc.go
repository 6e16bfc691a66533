// Package loadgen is the engine of "ssehub bench": it opens many SSE
// subscriptions to a hub, publishes events at a steady rate through the
// hub's publish API, and measures connection time, deliveries, latency,
// loss and duplication, and the memory and CPU of the hub and of itself.
//
//	rep, err := loadgen.Run(ctx, &loadgen.Options{
//		URL:         "http://127.0.0.1:8080/events",
//		Topic:       "bench/1",
//		Subscribers: 1000,
//		Rate:        500,
//		Duration:    10 * time.Second,
//	})
//
// # Payloads
//
// Every event's data is one line of JSON that starts with the time it was
// published and its sequence number:
//
//	{"t":1767225600123456789,"seq":42,"pad":"xxxxxxxx"}
//
// t is the publish time in Unix nanoseconds, taken just before the publish
// request is sent; seq numbers the events of a run from 0, one by one. pad
// fills the data to the requested size. The receive time is when the data
// arrived in the subscriber's socket, as the kernel recorded it (with epoll
// I/O on Linux 5.1 and later), else when the subscriber read it; latency
// is measured on one clock, so run the publisher on the same machine as
// the subscribers. Timing arrivals keeps the tool's own delays out of the
// hub's latency; the report gives those delays separately. With Options.NoPublish,
// other publishers must send such payloads, seq increasing by one per event
// from any start; "t" and "seq" must come first for the fast path, and any
// other JSON object with both members is read more slowly. A data line that
// is not such an object is counted as foreign and otherwise ignored.
//
// # Connections
//
// The subscribers do not use net/http. Each writes its GET by hand and
// parses the response incrementally (status line, headers, chunked
// framing, and only the data, id and retry lines of the stream), with no
// allocation per event. On Linux, for http URLs, a few goroutines each
// wait on an epoll set of thousands of non-blocking sockets and read them
// into one shared buffer, so ten thousand idle subscribers cost a few
// hundred bytes each; elsewhere, and for https, each subscriber has a
// goroutine and a 4 KiB buffer. Client addresses are spread over source
// IPs (127.0.0.2–127.0.0.254 for a loopback IPv4 hub) so that tens of
// thousands of connections do not run out of local ports.
//
// Options.URLs adds further nodes of one hub, nodes that share a Log (a
// cluster): the subscribers are spread over the nodes round-robin, each
// staying with its node, and the events are published to the first node
// or, with Options.PublishRoundRobin, to each in turn. Latency is then
// from the publish on one node to the arrival from any node.
//
// A subscriber whose stream ends reconnects after the stream's retry
// delay with its Last-Event-ID, as an EventSource does, and so receives
// what it missed by replay; a response other than 200 text/event-stream
// to a reconnection ends that subscriber for the run.
//
// Latency and connection times are counted in log-linear histograms (1/128
// precision), one per I/O worker, merged for progress and for the report.
package loadgen
