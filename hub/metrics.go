package hub

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Outcomes of a publish request, the outcome label of
// ssehub_publishes_total.
const (
	outcomeOK          = "ok"          // 200: appended
	outcomeInvalid     = "invalid"     // 400: bad input
	outcomeDuplicate   = "duplicate"   // 409: an event ID is taken
	outcomeTooLarge    = "too_large"   // 413
	outcomeUnsupported = "unsupported" // 415: wrong content type
	outcomeUnavailable = "unavailable" // 503: the Log failed
	outcomeDenied      = "denied"      // 401 or 403: no valid token, or one that does not cover the topics
	outcomeLimited     = "limited"     // 429: the token's publish rate
	outcomeTimeout     = "timeout"     // 408: the body came too slowly
)

// Why a request was refused before it was served, the reason label of
// ssehub_refused_total.
const (
	refusedOrigin    = "origin"     // 403: an Origin not allowed
	refusedToken     = "token"      // 401: a missing or invalid token
	refusedStreams   = "streams"    // 429: the hub's stream limit
	refusedPerClient = "per_client" // 429: the client address's stream limit
)

// Store operations, the op label of ssehub_store_duration_seconds.
const (
	opAppend = "append"
	opRead   = "read"
	opLookup = "lookup"
	opBounds = "bounds"
	opTail   = "tail"
)

// metrics are the Hub's Prometheus collectors. Every field is safe for
// concurrent use.
type metrics struct {
	connections   prometheus.Gauge
	subscriptions prometheus.Gauge
	publishes     *prometheus.CounterVec
	appended      prometheus.Counter
	tailed        prometheus.Counter
	deliveries    prometheus.Counter
	slow          prometheus.Counter
	replays       prometheus.Counter
	replayed      prometheus.Counter
	replayCuts    prometheus.Counter
	gaps          *prometheus.CounterVec
	store         *prometheus.HistogramVec
	storeErrors   *prometheus.CounterVec
	tailLag       prometheus.Gauge
	tailing       prometheus.Gauge
	refused       *prometheus.CounterVec
	expired       prometheus.Counter
	gzipped       prometheus.Counter
}

// newMetrics makes the collectors and registers them with reg unless reg
// is nil. It panics if registration fails. Every label value a counter
// can have appears from the start, so that dashboards and alerts see
// zeros rather than missing series.
func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		connections:   gauge("ssehub_connections", "Open subscriber event streams."),
		subscriptions: gauge("ssehub_subscriptions", "Topic selectors of the open subscriber streams."),
		publishes: counterVec("ssehub_publishes_total", "Publish requests, by outcome.", "outcome",
			outcomeOK, outcomeInvalid, outcomeDuplicate, outcomeTooLarge, outcomeUnsupported, outcomeUnavailable,
			outcomeDenied, outcomeLimited, outcomeTimeout),
		appended:   counter("ssehub_events_appended_total", "Events appended to the log by publish requests to this hub."),
		tailed:     counter("ssehub_events_tailed_total", "Events read from the log's tail for fan-out, from any publisher."),
		deliveries: counter("ssehub_deliveries_total", "Live events queued to subscribers, one per event and subscriber."),
		slow:       counter("ssehub_slow_disconnects_total", "Subscribers disconnected because their queue was full."),
		replays:    counter("ssehub_replays_total", "Subscriptions that resumed from a Last-Event-ID and replayed history."),
		replayed:   counter("ssehub_replayed_events_total", "Events sent to subscribers from history."),
		replayCuts: counter("ssehub_replay_budget_reached_total", "Replays that reached the replay budget (Limits.MaxReplay): the stream ended, and its client resumes after the last event sent."),
		gaps: counterVec("ssehub_gaps_total", "Resumptions that could not be lossless, by reason (unknown, expired).", "reason",
			gapUnknown, gapExpired),
		store: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ssehub_store_duration_seconds",
			Help:    "Latency of log operations, by op (append, read, lookup, bounds); a read's time excludes the time spent writing to its subscriber.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"op"}),
		storeErrors: counterVec("ssehub_store_errors_total", "Log operations that failed, by op (append, read, lookup, bounds, tail); a tail error is one ended Tail call, which Run retries.", "op",
			opAppend, opRead, opLookup, opBounds, opTail),
		tailLag: gauge("ssehub_tail_lag_positions", "Positions between the newest the log reports and the newest this hub has fanned out, sampled every second while Run runs."),
		tailing: gauge("ssehub_tailing", "1 while Run tails the log, 0 while it waits for the log (at start, or after the log failed)."),
		refused: counterVec("ssehub_refused_total", "Requests refused before they were served, by reason (origin, token, streams, per_client).", "reason",
			refusedOrigin, refusedToken, refusedStreams, refusedPerClient),
		expired: counter("ssehub_token_expiries_total", "Subscriber streams ended because their token expired."),
		gzipped: counter("ssehub_gzip_streams_total", "Subscriber streams opened with Content-Encoding: gzip."),
	}
	for _, op := range []string{opAppend, opRead, opLookup, opBounds} {
		m.store.WithLabelValues(op)
	}
	if reg != nil {
		reg.MustRegister(m.connections, m.subscriptions, m.publishes, m.appended, m.tailed,
			m.deliveries, m.slow, m.replays, m.replayed, m.replayCuts, m.gaps, m.store, m.storeErrors,
			m.tailLag, m.tailing, m.refused, m.expired, m.gzipped)
	}
	return m
}

func gauge(name, help string) prometheus.Gauge {
	return prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
}

func counter(name, help string) prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
}

// counterVec returns a counter with one label, whose series for values
// exist from the start.
func counterVec(name, help, label string, values ...string) *prometheus.CounterVec {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{label})
	for _, x := range values {
		v.WithLabelValues(x)
	}
	return v
}

// observeStore records the latency of a Log operation that began at
// start, and counts it as failed when err is not nil. An operation ended
// because its caller left (context.Canceled) is not a failure of the Log.
func (m *metrics) observeStore(op string, start time.Time, err error) {
	m.store.WithLabelValues(op).Observe(time.Since(start).Seconds())
	if err != nil && !errors.Is(err, context.Canceled) {
		m.storeErrors.WithLabelValues(op).Inc()
	}
}
