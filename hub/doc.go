// Package hub is the ssehub hub: topics, subscriptions, fan-out and replay
// over a Log, served as an http.Handler.
//
// The Log interface is defined here, where it is consumed; its backends
// live in store/ (memstore, boltstore) and pass the contract suite in
// hub/logtest. The hub never imports a backend: its caller passes one in.
//
//	h := hub.New(log, &hub.Options{Logger: logger, Registerer: prometheus.DefaultRegisterer})
//	go func() { errc <- h.Run(ctx) }()    // tails the Log and fans out; nil once ctx is done
//	mux.Handle("/events", h)                // also /healthz and /readyz; or, at paths of your own:
//	mux.Handle("/api/stream", h.EventsHandler()) // routes on the method only (HealthHandler, ReadyHandler)
//	...
//	h.Shutdown(shutdownCtx)                 // ends the streams: clients reconnect elsewhere
//	srv.Shutdown(shutdownCtx)
//	log.Close()
//
// # API
//
// GET /events?topic=SEL&topic=SEL… subscribes. Each SEL is a topic or a
// pattern (see Selector); at most 64 are allowed (Limits). The response
// is an event stream that begins with a retry field and a comment,
// flushed at once.
//
//   - Without a Last-Event-ID (the header, or the lastEventID query
//     parameter) the subscription is live only: it starts with an event
//     holding only an id field, the Log's newest position, which sets the
//     client's last event ID without dispatching anything, so that if it
//     reconnects before any event arrives it resumes from the moment it
//     first connected.
//   - With a Last-Event-ID that the Log knows, the matching events after
//     it are replayed, then live events follow with none missing and none
//     repeated. An ID of digits is a position: "0" replays all history.
//   - With a position older than what the Log still holds, a GapEventType
//     event comes first (see Gap), then every matching event still held.
//     If retention removes events while the replay is under way, before
//     it reaches them, a GapEventType event says so where they are
//     missing, and the replay goes on from the oldest event held: events
//     never go missing in silence.
//   - With an ID the Log does not hold (garbage, a publisher's ID that
//     retention removed, a position beyond the newest), a GapEventType
//     event, then live events only: the Hub cannot place such an ID, and
//     replaying all it holds would let any request cost that much.
//   - One request replays at most Limits.MaxReplay events: past it, the
//     stream ends right after an event, and the client's reconnection
//     goes on from there.
//
// A comment heartbeat is sent when the stream is idle. A subscriber whose
// queue fills up is disconnected; it reconnects and replays. While the Hub
// is not running (Run has not started, or has returned), a subscription
// stream is opened and ended at once, so that its EventSource retries;
// after Close or Shutdown, subscriptions are refused with 503.
//
// # Connections
//
// Over HTTP/1.x without TLS, a subscription takes over its connection
// once it is accepted, and ServeHTTP returns: the Hub writes the
// response itself, close-delimited (Connection: close, neither
// Content-Length nor chunked framing, which HTTP/1.0 clients understand
// too), and its live events are written straight to the socket, with
// writes that never block, by a few goroutines that Run starts, one per
// processor, each serving its share of the subscribers. An idle
// subscription holds no goroutine and no buffer: only its socket and its
// queue, about a kilobyte. When events come faster than every
// subscriber can be written, each write carries all the events queued
// for its subscriber, and a shard waits up to 2ms between its passes so
// that it does; a subscriber whose socket is full is written by a
// goroutine of its own until it catches up, under the write timeout, so
// it delays no one.
//
// Nothing reads a taken-over connection, so a client that goes away is
// found by writing to it: a write that fails, or that does not finish
// within WriteTimeout (the connection is then reset), ends the stream.
// Idle connections are also looked at about once a second, without
// blocking, for a peer that closed them. Over HTTP/2 and TLS, streams are
// ssehttp's, each written by its own handler.
//
// POST /events publishes, with a body in one of three forms:
//
//   - application/x-www-form-urlencoded: topic (one or more), data, type,
//     id, retry (milliseconds) and private;
//   - application/json: an object with the same names, where topic is a
//     string or a list of strings, retry a number, private a boolean
//     (true or false), and data a string or any other JSON value, which
//     is sent as its compact JSON text; null is the same as leaving out
//     data, type, id or retry;
//   - application/x-ndjson: such objects, one per line, appended as one
//     batch: all or none. A refusal names the line;
//   - application/octet-stream: one binary event, whose payload is the
//     body, with its other fields in the query string (topic, type, id,
//     retry, private, as in the form) and the payload's media type in
//     media (application/octet-stream when absent).
//
// A JSON or NDJSON event carries a binary payload in data_base64
// (standard base64, padded or not) instead of data, with its media type
// in media. A binary event's data is sse.BinaryData's: a first line
// beginning with sse.BinaryPrefix, then base64, of the payload gzipped
// when that is smaller; a subscriber's sse.Event.Bytes gives the
// payload back. Text data beginning with sse.BinaryPrefix is refused on
// every path, the Mercure endpoint's too, so that no text event passes
// for a binary one. The payload is at most Limits.MaxBinaryBytes, and
// its data, encoded, at most Limits.MaxEventBytes (413).
//
// Nothing a publisher sends is ignored or taken for something else:
//
//   - Any other field name is refused with 400, naming it. JSON names
//     count only as written ("Private" is unknown), and each may appear
//     once; a form field other than topic may appear once. Fields go in
//     the body: a publish whose URL has a query is refused, except a
//     binary one, whose unknown query parameters are refused, named.
//   - The form's private is on, true or 1 (private) or off, false or 0
//     (public), in any letter case; absent means public, and an empty
//     or any other value is refused.
//   - The types open and error (the EventSource's own events, which a
//     page cannot tell from a published one) and every type beginning
//     with "ssehub-" (the hub's own, GapEventType and AuthEventType) are
//     reserved, in any letter case, and refused. Event types are
//     case-sensitive in a browser, so "Open" would not fire an open
//     listener; it is refused all the same, because a person or a
//     program that folds case would take it for one.
//   - A JSON body must be valid UTF-8 (it is not patched with U+FFFD).
//
// An event with empty data (no data, an empty one, or JSON null) is
// accepted and delivered: its wire form has a data line with nothing
// after the colon, so an EventSource dispatches it with data "". The
// hub's encoding of an event always has a data line.
//
// The answer is 200 once the Log's Append has returned (the events are
// durable), with the ID of each event, in order: by default as
// text/plain, each on a line of its own; as application/json,
// {"ids": [...]}, when the request's Accept prefers application/json to
// text/plain. Each of the two gets the quality value of the most
// specific media range that matches it (type/subtype, then type/*, then
// */*); JSON is chosen only if its value is higher, so no Accept, */*,
// a tie, or an Accept that allows neither gives text/plain, while
// application/json or application/* gives JSON. Every answer to a
// publish carries Vary: Accept.
//
// An event needs at least one topic (at most 64 by default, see Limits),
// none with a wildcard. An id or type may not hold CR, LF or NUL and is
// at most 256 bytes; an id made only of digits is reserved for the IDs
// the Log assigns; text must be valid UTF-8; retry is at most one day.
// Errors are RFC 9457 application/problem+json with type "about:blank"
// and a detail saying what is wrong: 400 bad input (with a "line" member
// for NDJSON), 401 no valid token, 403 a token that does not cover a
// topic, 405, 408 a body too slow, 409 an id already used, 413 body,
// event or batch too large, 415 wrong content type, 429 beyond the
// token's rate, 503 the Log failed. A refused request appends nothing.
//
// # Logs
//
// With Options.Logger set, the Hub logs each publish at debug level
// ("published": the number of events and distinct topics, the first
// topic, the IDs, or the first and last of a batch of more than 8, and
// the client's address), and at info level each request refused
// because of its token (401), a topic its token does not cover (403) or
// a limit (429): "publish refused" or "subscription refused", with the
// reason and the client's address, and the token's subject
// where known. It never logs event data, nor a token.
//
// # Authorisation
//
// With Options.Tokens set, a publish needs a bearer token in the
// Authorization header whose Grant.Publish covers every topic of every
// event (401 without a valid token, 403 when it does not cover them, 429
// beyond the token's rate, see Limits). A subscription may be anonymous
// (unless Options.NoAnonymous) or carry a token, in the header, the
// ssehub_token cookie (what a browser's EventSource sends with
// withCredentials) or, when Options.TokenQuery allows it, the
// access_token query parameter. An invalid token is refused with 401.
//
// Private events go only to the subscribers whose Grant.Subscribe
// matches a topic of the event that their subscription also selects,
// live and in a replay alike; without Options.Tokens, to no one. When a
// subscriber's grant expires, the hub sends it an AuthEventType event
// (without an id) and ends the stream; its client reconnects with fresh
// credentials and resumes from its last event.
//
// # Browsers on other origins
//
// A request with an Origin header that is neither in
// Options.CORSOrigins nor the hub's own host is refused with 403: a page
// elsewhere can neither read a stream nor publish with its visitor's
// cookie. An allowed origin gets Access-Control-Allow-Origin (that
// origin, never "*") with Access-Control-Allow-Credentials, and its
// preflights are answered.
//
// # Limits
//
// Limits bound each request (topics, selectors, their length, event
// size, the body and how long it may take to arrive) and each client
// (concurrent streams in all and per client address, answered with 429
// and Retry-After; publish rate per token). The client address is the
// peer's, or, for a peer in Options.TrustedProxies, the one
// X-Forwarded-For gives.
//
// GET /healthz answers 200 while the process serves; GET /readyz answers
// 200 when Run is tailing the Log and the Log answers Bounds, and 503
// otherwise.
//
// # When the Log fails
//
// A Log on another machine (Redis, NATS) can be unreachable for a while.
// The Hub rides it out rather than ending: Run waits for the Log at start
// and retries a failed Tail from the last record it delivered, with
// backoff up to Options.RetryBackoff, so subscribers get every record
// once the Log is back, none twice. Meanwhile open streams stay open and
// get their heartbeats; /readyz answers 503, so a load balancer sends new
// clients elsewhere; a publish gets 503 with Retry-After (after at most
// Options.StoreTimeout), never 200, and works again as soon as Append
// does. A publisher that retries after a 503 with its own event ID learns
// from a 409 that the first try was stored after all.
//
// A backend that loses its records (a Redis restarted without
// persistence) breaks the Log's contract: its positions start over,
// below those the hub has delivered. Run notices within a second or two
// (it compares the Log's end with the fan-out's every second), logs an
// error, ends every stream, whose cursors belong to the lost history, and
// tails on from the Log's new end, so that live events flow again.
// Clients that resume with a cursor the new history does not hold get
// the gap event of an unknown cursor.
//
// # Metrics
//
// With Options.Registerer set, the Hub registers: ssehub_connections and
// ssehub_subscriptions (gauges: open streams, and their selectors);
// ssehub_publishes_total{outcome}; ssehub_events_appended_total;
// ssehub_events_tailed_total; ssehub_deliveries_total;
// ssehub_slow_disconnects_total; ssehub_replays_total;
// ssehub_replayed_events_total; ssehub_replay_budget_reached_total;
// ssehub_gaps_total{reason};
// ssehub_store_duration_seconds{op} (append, read, lookup, bounds);
// ssehub_store_errors_total{op} (the same and tail); ssehub_tailing (1
// while Run tails the Log); ssehub_tail_lag_positions (how far the
// fan-out is behind the Log's newest record, sampled every second);
// ssehub_refused_total{reason} (origin, token, streams, per_client);
// ssehub_token_expiries_total; and ssehub_gzip_streams_total, the streams
// opened with Content-Encoding: gzip (Options.Gzip).
package hub
