package hub

import (
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
	gaps          *prometheus.CounterVec
	store         *prometheus.HistogramVec
	refused       *prometheus.CounterVec
	expired       prometheus.Counter
}

// newMetrics makes the collectors and registers them with reg unless reg
// is nil. It panics if registration fails.
func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ssehub_connections",
			Help: "Open subscriber event streams.",
		}),
		subscriptions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ssehub_subscriptions",
			Help: "Topic selectors of the open subscriber streams.",
		}),
		publishes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ssehub_publishes_total",
			Help: "Publish requests, by outcome.",
		}, []string{"outcome"}),
		appended: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ssehub_events_appended_total",
			Help: "Events appended to the log by publish requests to this hub.",
		}),
		tailed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ssehub_events_tailed_total",
			Help: "Events read from the log's tail for fan-out, from any publisher.",
		}),
		deliveries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ssehub_deliveries_total",
			Help: "Live events queued to subscribers, one per event and subscriber.",
		}),
		slow: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ssehub_slow_disconnects_total",
			Help: "Subscribers disconnected because their queue was full.",
		}),
		replays: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ssehub_replays_total",
			Help: "Subscriptions that resumed from a Last-Event-ID and replayed history.",
		}),
		replayed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ssehub_replayed_events_total",
			Help: "Events sent to subscribers from history.",
		}),
		gaps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ssehub_gaps_total",
			Help: "Resumptions that could not be lossless, by reason (unknown, expired).",
		}, []string{"reason"}),
		store: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ssehub_store_duration_seconds",
			Help:    "Latency of log operations, by op (append, read, lookup, bounds).",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"op"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ssehub_refused_total",
			Help: "Requests refused before they were served, by reason (origin, token, streams, per_client).",
		}, []string{"reason"}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ssehub_token_expiries_total",
			Help: "Subscriber streams ended because their token expired.",
		}),
	}
	// Make every label value appear from the start, so dashboards and
	// alerts see zeros rather than missing series.
	for _, o := range []string{outcomeOK, outcomeInvalid, outcomeDuplicate, outcomeTooLarge, outcomeUnsupported, outcomeUnavailable, outcomeDenied, outcomeLimited, outcomeTimeout} {
		m.publishes.WithLabelValues(o)
	}
	for _, r := range []string{gapUnknown, gapExpired} {
		m.gaps.WithLabelValues(r)
	}
	for _, r := range []string{refusedOrigin, refusedToken, refusedStreams, refusedPerClient} {
		m.refused.WithLabelValues(r)
	}
	for _, op := range []string{opAppend, opRead, opLookup, opBounds} {
		m.store.WithLabelValues(op)
	}
	if reg != nil {
		reg.MustRegister(m.connections, m.subscriptions, m.publishes, m.appended, m.tailed,
			m.deliveries, m.slow, m.replays, m.replayed, m.gaps, m.store, m.refused, m.expired)
	}
	return m
}

// observeStore records the latency of a Log operation that began at start.
func (m *metrics) observeStore(op string, start time.Time) {
	m.store.WithLabelValues(op).Observe(time.Since(start).Seconds())
}
