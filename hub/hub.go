package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ssehub/ssehub/ssehttp"
)

// ErrRunning is returned by Run when another call to Run on the same Hub
// is already tailing the Log.
var ErrRunning = errors.New("hub: already running")

// Defaults used when the matching Options field is zero.
const (
	// DefaultRetry is the reconnection delay sent to subscribers.
	DefaultRetry = 2 * time.Second
	// DefaultHeartbeat is the idle time after which a subscriber gets a
	// heartbeat comment.
	DefaultHeartbeat = ssehttp.DefaultHeartbeat
	// DefaultQueueSize is the number of events a subscriber may have
	// waiting to be written before it is disconnected as too slow.
	DefaultQueueSize = 1024
	// DefaultWriteTimeout bounds each write to a subscriber.
	DefaultWriteTimeout = ssehttp.DefaultWriteTimeout
	// DefaultMaxBodyBytes is the largest publish request body.
	DefaultMaxBodyBytes = 1 << 20
	// DefaultCORSMaxAge is how long a browser may cache a preflight.
	DefaultCORSMaxAge = 10 * time.Minute
	// DefaultRetryBackoff is the longest wait between Run's tries to
	// reach a failing Log.
	DefaultRetryBackoff = 2 * time.Second
	// DefaultStoreTimeout bounds the Append of a publish request.
	DefaultStoreTimeout = 10 * time.Second
)

// Limits on requests that the Options do not change.
const (
	// maxFieldLen is the longest event ID or event type a publisher may
	// give, in bytes.
	maxFieldLen = 256
	// maxRetryMS is the largest retry a publisher may give, one day in
	// milliseconds.
	maxRetryMS = 24 * 60 * 60 * 1000
	// readyTimeout bounds the Log check of GET /readyz.
	readyTimeout = 2 * time.Second
)

// Options configures a Hub. The zero value, like a nil *Options, gives the
// defaults documented on each field. New copies the Options; changing them
// afterwards has no effect.
type Options struct {
	// Retry is sent in a retry field when a subscriber connects: how long
	// its EventSource waits before reconnecting after the stream ends. If
	// zero, DefaultRetry (2s) is used; if negative, no retry field is sent
	// and clients use their own default (3s in browsers).
	Retry time.Duration

	// Heartbeat is how long a subscriber's stream may stay idle before a
	// comment is sent, so that proxies and clients do not time it out. If
	// zero, DefaultHeartbeat (15s) is used; if negative, none is sent.
	Heartbeat time.Duration

	// QueueSize is how many events each subscriber may have waiting to
	// be written. A subscriber whose queue is full when an event arrives
	// is disconnected (and counted in ssehub_slow_disconnects_total): it
	// reconnects with its Last-Event-ID and loses nothing, and it never
	// delays the publisher or other subscribers. The queue holds pointers
	// to encoded events shared by all subscribers, so a long queue costs
	// 8 bytes a slot only while it is full. If zero or negative,
	// DefaultQueueSize (1024) is used.
	QueueSize int

	// WriteTimeout bounds each write to a subscriber, so a peer that stops
	// reading is disconnected after at most this long. If zero,
	// DefaultWriteTimeout (10s) is used; if negative, writes have no
	// deadline.
	WriteTimeout time.Duration

	// RetryBackoff is the longest wait between Run's tries to reach a Log
	// that fails; the first wait is a twentieth of it, and each next one
	// doubles. If zero or negative, DefaultRetryBackoff (2s) is used.
	RetryBackoff time.Duration

	// StoreTimeout bounds the Log's Append of a publish request, so that
	// a publisher whose backend is unreachable gets 503 with Retry-After
	// rather than a request that hangs. If zero or negative,
	// DefaultStoreTimeout (10s) is used.
	StoreTimeout time.Duration

	// MaxBodyBytes is the largest publish request body accepted; a larger
	// one is refused with 413. If zero or negative, DefaultMaxBodyBytes
	// (1 MiB) is used.
	MaxBodyBytes int64

	// Tokens verifies bearer tokens. If nil, the hub is open: anyone may
	// publish, and private events go to no one. If set, publishing needs
	// a token whose Grant.Publish covers every topic of the event (401
	// without a valid token, 403 when it does not cover them), and
	// private events go only to subscribers whose Grant.Subscribe matches
	// one of the topics they received them on.
	//
	// A token is taken from the Authorization header ("Bearer ..."), else
	// from the TokenCookie cookie (subscriptions only: a cookie rides
	// along on any request a page makes, so a publish must prove intent
	// with a header), else, when TokenQuery is set, from the access_token
	// query parameter (subscriptions only).
	Tokens TokenVerifier

	// PublisherTokens, if set, verifies the tokens of publishers on
	// /events in place of Tokens, and SubscriberTokens those of
	// subscribers: with verifiers of different keys, a token signed with
	// the subscriber key can never publish. Setting either one turns
	// tokens on, as Tokens does; a role without its own verifier uses
	// Tokens, and with neither is refused every token.
	PublisherTokens  TokenVerifier
	SubscriberTokens TokenVerifier

	// TokenCookie is the name of the cookie a subscriber's token may be
	// in. If empty, DefaultTokenCookie ("ssehub_token") is used.
	TokenCookie string

	// TokenQuery lets a subscriber give its token in the access_token
	// query parameter. Off by default: URLs end up in logs and histories.
	// The hub never logs the query.
	TokenQuery bool

	// NoAnonymous refuses subscribers without a token (401), when Tokens
	// is set. By default they are served public events only.
	NoAnonymous bool

	// CORSOrigins lists the origins ("https://app.example.com") whose
	// pages may use the hub from the browser. A request from one of them
	// is answered with that origin in Access-Control-Allow-Origin and
	// with Access-Control-Allow-Credentials: true; a request with an
	// Origin that is neither listed nor the hub's own is refused with
	// 403, so a page elsewhere can neither read a stream nor publish
	// with a visitor's cookie. "*" is not accepted.
	CORSOrigins []string

	// CORSMaxAge is how long a browser may cache a preflight answer. If
	// zero, DefaultCORSMaxAge (10 minutes) is used.
	CORSMaxAge time.Duration

	// Gzip compresses the stream of each subscriber whose request
	// accepts gzip (Accept-Encoding), on HTTP/1.x and HTTP/2 alike: the
	// response carries Content-Encoding: gzip, and every response of a
	// subscription carries Vary: Accept-Encoding. Each event is deflated
	// once, on its own, and the same compressed bytes are written to
	// every compressed subscriber it goes to (see
	// ssehttp.AppendGzipFrame): a compressed subscriber holds no
	// compressor, and every event is flushed at once. Heartbeats and
	// replays are compressed the same way. The stream is never ended
	// with a gzip trailer: it ends when its connection does, and an
	// EventSource reconnects either way. If false, no stream is
	// compressed.
	Gzip bool

	// Limits is what the hub accepts from one request or one client.
	Limits Limits

	// Mercure configures the Mercure endpoint (MercureHandler).
	Mercure MercureOptions

	// TrustedProxies are the peers whose X-Forwarded-For header gives the
	// client's address, for logs and the per-client stream limit. The
	// client is the rightmost address in the header that is not itself
	// a trusted proxy. Requests from other peers are taken at their
	// word: their own address.
	TrustedProxies []netip.Prefix

	// Logger receives the Hub's structured logs. Event data is never
	// logged. If nil, logs are discarded.
	Logger *slog.Logger

	// Registerer, if not nil, is where the Hub registers its metrics
	// (see the package documentation for their names). If nil, the
	// metrics are kept but not registered anywhere.
	Registerer prometheus.Registerer
}

// MercureOptions configure the Mercure endpoint, which ServeHTTP serves
// at /.well-known/mercure (see MercureHandler). The zero value serves it
// open when Options.Tokens is nil, and otherwise refuses every Mercure
// publish and serves Mercure subscribers public events only, until
// verifiers are given here: Options.Tokens reads ssehub's claim, not
// Mercure's.
type MercureOptions struct {
	// PublisherTokens verifies the tokens of Mercure publishers, whose
	// grants come from the token's mercure claim (mercure.publish). If
	// nil, SubscriberTokens is used; if both are nil, the rule above.
	PublisherTokens TokenVerifier

	// SubscriberTokens verifies the tokens of Mercure subscribers and of
	// the subscriptions API (mercure.subscribe, mercure.payload). If nil,
	// PublisherTokens is used. Give the two roles verifiers of different
	// keys, and a token signed with the subscriber key can never publish.
	SubscriberTokens TokenVerifier

	// Cookie is the name of the cookie a token may be in. If empty,
	// DefaultMercureCookie ("mercureAuthorization") is used.
	Cookie string

	// Subscriptions turns on the active subscriptions of Mercure: a
	// private update on every subscription's start and end, and the
	// subscriptions API under /.well-known/mercure/subscriptions (see
	// MercureSubscriptionsHandler).
	Subscriptions bool

	// NodeHeartbeat is how often a node says, in the Log, that it is
	// alive, while Subscriptions is on: a node not heard from for three
	// heartbeats is taken for dead, and its subscriptions end. If zero,
	// DefaultNodeHeartbeat (10s) is used.
	NodeHeartbeat time.Duration
}

// DefaultNodeHeartbeat is the default MercureOptions.NodeHeartbeat.
const DefaultNodeHeartbeat = 10 * time.Second

// heartbeatComment is the comment a shard sends on an idle stream.
const heartbeatComment = ": ping\n"

// DefaultMercureCookie is the cookie Mercure clients carry their token in.
const DefaultMercureCookie = "mercureAuthorization"

// Limits bound what the hub accepts. A zero field gives the default
// documented on it; a negative one, where allowed, removes the bound.
type Limits struct {
	// MaxTopics is the most topics one event may be published to (400).
	// If zero, 64. This and the next two bound a single request and
	// cannot be removed: a negative value means 1.
	MaxTopics int

	// MaxSelectors is the most topic parameters one subscription may
	// have (400). If zero, 64.
	MaxSelectors int

	// MaxSelectorBytes is the longest topic or selector, in bytes (400),
	// in a subscription, an event or a token. If zero, 256.
	MaxSelectorBytes int

	// MaxEventBytes is the largest event data, in bytes (413). If zero,
	// 256 KiB; if negative, only Options.MaxBodyBytes bounds it.
	MaxEventBytes int

	// MaxBinaryBytes is the largest payload of a binary event, in bytes,
	// decoded (413). If zero, 1 MiB; if negative, only MaxEventBytes and
	// Options.MaxBodyBytes bound it. A binary event's data, its payload
	// encoded (base64, after gzip when that is smaller), is bounded by
	// MaxEventBytes too: with the defaults, an incompressible payload
	// may be about 190 KiB, a compressible one up to 1 MiB. Raise
	// MaxEventBytes to about 4/3 of MaxBinaryBytes, and MaxBodyBytes to
	// more than that for data_base64, to take any payload up to
	// MaxBinaryBytes. Readers decode at most sse.MaxBinaryBytes.
	MaxBinaryBytes int

	// MaxStreams is the most event streams the hub serves at once (429
	// with Retry-After). If zero, 100,000; if negative, no bound.
	MaxStreams int

	// MaxStreamsPerClient is the most event streams one client address
	// may hold at once (429 with Retry-After). If zero, 1,000; if
	// negative, no bound.
	MaxStreamsPerClient int

	// PublishRate is how many events a second one token may publish,
	// sustained (429 with Retry-After beyond it). A token may publish
	// PublishBurst events at once. If zero, 10,000 a second; if
	// negative, no bound. Anonymous publishing (open mode) is not
	// limited.
	PublishRate float64

	// PublishBurst is the most events one token may publish at once; a
	// larger batch is refused with 413. If zero, one second of
	// PublishRate (at least 1).
	PublishBurst int

	// BodyTimeout bounds the reading of a publish request's body, so a
	// client that sends it slowly cannot hold a handler forever (408).
	// If zero, 30s; if negative, no bound.
	BodyTimeout time.Duration

	// MaxReplay is the most events one subscription request replays
	// from history. A resumption that has more to catch up gets that
	// many, and then its stream ends, right after an event it has
	// received, so that its reconnection (after the retry delay) goes
	// on from there: nothing is skipped, and each request costs at most
	// this much. If zero, 50,000; if negative, no bound.
	MaxReplay int
}

// A Hub serves the ssehub HTTP API over a Log: publishers POST events,
// which the Hub appends to the Log, and subscribers GET event streams,
// which the Hub feeds from the Log, replaying history first when they
// resume. Run must be running for subscriptions to receive live events.
//
// A Hub is safe for concurrent use. The zero value is not usable; call
// New. The Hub does not close its Log: the caller does, after Shutdown.
type Hub struct {
	// Set by New and not changed after.
	log        Log
	opts       Options // with defaults applied
	lim        limits  // opts.Limits with defaults applied
	cors       corsPolicy
	limiters   publishLimiters
	logger     *slog.Logger
	m          *metrics
	streamOpts ssehttp.Options
	active     *activeSubs    // Mercure's active subscriptions; nil when off
	gzPing     []byte         // the heartbeat comment deflated on its own (Options.Gzip); nil when off
	subsMux    *http.ServeMux // routes the subscriptions API for ServeHTTP

	// ctx is cancelled by Close: it ends every subscription and Run.
	ctx    context.Context
	cancel context.CancelFunc

	epoch time.Time // the origin of the shards' clock (see Hub.now)

	tailing atomic.Bool // Run is in a Tail call, not waiting to retry one

	// pending holds, for each shard, the subscribers a fan-out batch has
	// made ready, to be put on the shard's list at once at the end of the
	// batch. It is owned by the fan-out, which runs on Run's goroutine.
	pending []pendingShard
	// memo holds, for the record being fanned out, whether each URI
	// template matches it (see matchPatterns). Owned by the fan-out.
	memo map[*regexp.Regexp]bool

	// mu guards the fields below. Fan-out holds it for reading while it
	// pushes one event to the matching subscribers; registering and
	// unregistering subscribers hold it for writing.
	mu        sync.RWMutex
	closed    bool                     // Close or Shutdown was called
	runCalled bool                     // a Run is in progress, waiting for the Log or tailing it
	running   bool                     // a Run is serving subscribers (the Log answered it)
	exact     map[string][]*subscriber // topic → subscribers with that exact selector
	patterns  []*subscriber            // subscribers with at least one wildcard selector
	streams   int                      // registered subscribers, whose streams have not ended
	perClient map[netip.Addr]int       // registered subscribers by client address
	drained   chan struct{}            // closed when streams drops to 0 after Close; nil until Shutdown waits
	shards    []*shard                 // the running Run's shards; nil when not running
	nextShard int                      // the shard to give the next subscriber
}

// A pendingShard is the part of a fan-out batch for one shard.
type pendingShard struct {
	subs   []*subscriber // to put on the shard's ready list
	urgent bool          // one of them has a queue half full
}

// New returns a Hub that serves events from log, configured by opts (nil
// means the defaults). Call Run to start delivering live events. New
// panics if log is nil or if registering the metrics with
// opts.Registerer fails (for example because another Hub registered them
// there already).
func New(log Log, opts *Options) *Hub {
	if log == nil {
		panic("hub: New with a nil Log")
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Retry == 0 {
		o.Retry = DefaultRetry
	}
	if o.Heartbeat == 0 {
		o.Heartbeat = DefaultHeartbeat
	}
	if o.QueueSize <= 0 {
		o.QueueSize = DefaultQueueSize
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.RetryBackoff <= 0 {
		o.RetryBackoff = DefaultRetryBackoff
	}
	if o.StoreTimeout <= 0 {
		o.StoreTimeout = DefaultStoreTimeout
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.TokenCookie == "" {
		o.TokenCookie = DefaultTokenCookie
	}
	if o.Tokens != nil || o.PublisherTokens != nil || o.SubscriberTokens != nil {
		var dflt TokenVerifier = refuseAll{fmt.Errorf("%w: no key is configured for this role", ErrInvalidToken)}
		if o.Tokens != nil {
			dflt = o.Tokens
		}
		if o.PublisherTokens == nil {
			o.PublisherTokens = dflt
		}
		if o.SubscriberTokens == nil {
			o.SubscriberTokens = dflt
		}
	}
	if o.Mercure.NodeHeartbeat <= 0 {
		o.Mercure.NodeHeartbeat = DefaultNodeHeartbeat
	}
	if o.Mercure.Cookie == "" {
		o.Mercure.Cookie = DefaultMercureCookie
	}
	if o.Mercure.PublisherTokens == nil {
		o.Mercure.PublisherTokens = o.Mercure.SubscriberTokens
	}
	if o.Mercure.SubscriberTokens == nil {
		o.Mercure.SubscriberTokens = o.Mercure.PublisherTokens
	}
	if o.CORSMaxAge <= 0 {
		o.CORSMaxAge = DefaultCORSMaxAge
	}
	o.CORSOrigins = slices.Clone(o.CORSOrigins)
	o.TrustedProxies = slices.Clone(o.TrustedProxies)
	lim := o.Limits.resolve()
	h := &Hub{
		log:    log,
		opts:   o,
		logger: o.Logger,
		m:      newMetrics(o.Registerer),
		streamOpts: ssehttp.Options{
			Heartbeat:    o.Heartbeat,
			WriteTimeout: o.WriteTimeout,
			Retry:        max(o.Retry, 0),
			GzipFrames:   o.Gzip,
		},
		lim:       lim,
		cors:      newCORSPolicy(o.CORSOrigins, o.CORSMaxAge),
		limiters:  publishLimiters{rate: lim.rate, burst: lim.burst},
		exact:     make(map[string][]*subscriber),
		perClient: make(map[netip.Addr]int),
		epoch:     time.Now(),
	}
	if o.Mercure.Subscriptions {
		h.active = newActiveSubs(h)
	}
	if o.Gzip {
		// Here, not when Run starts its shards: deflating allocates a
		// compressor, which would delay the moment Run serves.
		h.gzPing = ssehttp.AppendGzipFrame(nil, []byte(heartbeatComment))
	}
	hs := h.MercureSubscriptionsHandler()
	h.subsMux = http.NewServeMux()
	h.subsMux.Handle(subscriptionsPath, hs)
	h.subsMux.Handle(subscriptionsPath+"/{topic}", hs)
	h.subsMux.Handle(subscriptionsPath+"/{topic}/{subscriber}", hs)
	h.ctx, h.cancel = context.WithCancel(context.Background())
	return h
}

// Run tails the Log from its current end and delivers every new event to
// the subscribers whose selectors match it. It blocks until ctx is done or
// the Hub is closed (by Close or Shutdown), and then returns nil; or until
// the Log is closed (ErrLogClosed), and then returns that error. Run
// returns nil at once on a closed Hub, and ErrRunning if another Run is in
// progress.
//
// Run outlives failures of the Log, as a backend on another machine
// fails: until the Log first answers it retries with backoff (see
// RetryBackoff), and when Tail fails it retries with backoff from the
// last record it delivered, so that subscribers receive every record once
// the Log is back, none skipped and none twice. Meanwhile subscribers keep
// their streams and heartbeats, and GET /readyz answers 503.
//
// Run also writes the live events of the subscribers whose connections
// the Hub has taken over (see ServeHTTP), with one goroutine per
// processor (GOMAXPROCS), and a goroutine for each subscriber that
// cannot take its events as fast as they come, for as long as that
// lasts. It waits for all of them before it returns.
//
// Subscriptions are accepted only while Run runs: before, a subscriber's
// stream is opened and ended at once, so that its EventSource retries.
// When Run returns, it has ended every subscriber's stream, since none
// would receive live events any more; their clients reconnect.
func (h *Hub) Run(ctx context.Context) error {
	h.mu.Lock()
	switch {
	case h.closed:
		h.mu.Unlock()
		return nil
	case h.runCalled:
		h.mu.Unlock()
		return ErrRunning
	}
	h.runCalled = true
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		h.runCalled = false
		h.mu.Unlock()
	}()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(h.ctx, cancel)
	defer stop()

	last, err := h.waitForLog(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("hub: run: %w", err)
	}

	shards := make([]*shard, numShards())
	for i := range shards {
		shards[i] = newShard(h, i)
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.running = true
	h.shards = shards
	h.mu.Unlock()
	h.pending = make([]pendingShard, len(shards))
	var wg sync.WaitGroup
	for _, sh := range shards {
		wg.Go(sh.run)
	}
	var fanned atomic.Uint64 // the last position handed to the fan-out
	fanned.Store(last)
	var (
		tailMu     sync.Mutex
		stopTail   context.CancelFunc // cancels the Tail in progress
		wentBackTo atomic.Int64       // the Log's last when it went back, else -1
	)
	wentBackTo.Store(-1)
	wentBack := func(last uint64) {
		wentBackTo.Store(int64(last))
		tailMu.Lock()
		if stopTail != nil {
			stopTail()
		}
		tailMu.Unlock()
	}
	wg.Go(func() { h.sampleLag(ctx, &fanned, wentBack) })
	if h.active != nil {
		wg.Go(func() { h.active.run(ctx) })
	}
	defer func() {
		h.setTailing(false)
		h.stopRunning()
		cancel() // ends sampleLag
		for _, sh := range shards {
			sh.stop()
		}
		wg.Wait()
	}()

	h.logger.Info("hub running", "from", last, "shards", len(shards))
	fanout := func(recs []Record) error {
		err := h.fanout(recs)
		fanned.Store(recs[len(recs)-1].Pos)
		return err
	}
	b := backoff{min: h.opts.RetryBackoff / 20, max: h.opts.RetryBackoff}
	for {
		from := fanned.Load()
		tctx, cancelTail := context.WithCancel(ctx)
		tailMu.Lock()
		stopTail = cancelTail
		tailMu.Unlock()
		h.setTailing(true)
		t0 := time.Now()
		err := h.log.Tail(tctx, from, fanout)
		h.setTailing(false)
		cancelTail()
		if ctx.Err() != nil {
			h.logger.Info("hub stopped")
			return nil
		}
		if to := wentBackTo.Swap(-1); to >= 0 {
			// The backend lost records (a Redis restarted without
			// persistence, a stream deleted): its positions start over
			// below the fan-out's. Tailing on from the old position
			// would wait for positions the new history reaches only
			// much later, and every subscriber's queue floor and
			// cursor is of the old history: end every stream, so that
			// clients resubscribe, and tail on from the new end.
			h.logger.Error("the log went back: its backend lost records; ending every stream and tailing from its new end",
				"delivered", fanned.Load(), "log_last", to)
			h.m.storeErrors.WithLabelValues(opTail).Inc()
			h.mu.Lock()
			h.forEachLocked(func(s *subscriber) { s.stop(errLogBack) })
			h.mu.Unlock()
			fanned.Store(uint64(to))
			continue
		}
		if errors.Is(err, ErrLogClosed) {
			h.logger.Error("hub stopped: the log is closed", "err", err)
			return fmt.Errorf("hub: tail log: %w", err)
		}
		h.m.storeErrors.WithLabelValues(opTail).Inc()
		if time.Since(t0) > h.opts.RetryBackoff {
			b.reset() // it had been working: retry soon
		}
		wait := b.next()
		h.logger.Warn("tail failed; retrying", "from", fanned.Load(), "in", wait, "err", err)
		if !sleep(ctx, wait) {
			h.logger.Info("hub stopped")
			return nil
		}
	}
}

// setTailing records whether Run is tailing the Log, for /readyz and the
// ssehub_tailing gauge.
func (h *Hub) setTailing(on bool) {
	h.tailing.Store(on)
	if on {
		h.m.tailing.Set(1)
	} else {
		h.m.tailing.Set(0)
	}
}

// waitForLog asks the Log for its end until it answers, waiting longer
// after each failure, and returns that end; or ctx's error once ctx is
// done, or ErrLogClosed when the Log is closed.
func (h *Hub) waitForLog(ctx context.Context) (uint64, error) {
	b := backoff{min: h.opts.RetryBackoff / 20, max: h.opts.RetryBackoff}
	for tries := 1; ; tries++ {
		t0 := time.Now()
		bctx, cancel := context.WithTimeout(ctx, h.opts.StoreTimeout)
		_, last, err := h.log.Bounds(bctx)
		cancel()
		h.m.observeStore(opBounds, t0, err)
		switch {
		case err == nil:
			if tries > 1 {
				h.logger.Info("the log answers", "tries", tries)
			}
			return last, nil
		case ctx.Err() != nil:
			return 0, ctx.Err()
		case errors.Is(err, ErrLogClosed):
			return 0, err
		}
		wait := b.next()
		// Once a minute at most after the first few, not at every try.
		if tries <= 3 || tries%max(1, int(time.Minute/h.opts.RetryBackoff)) == 0 {
			h.logger.Warn("the log does not answer; not ready, retrying", "tries", tries, "in", wait, "err", err)
		}
		if !sleep(ctx, wait) {
			return 0, ctx.Err()
		}
	}
}

// lagInterval is how often Run samples the tail lag.
const lagInterval = time.Second

// sampleLag sets the tail lag gauge every lagInterval until ctx is done:
// the newest position the Log reports less the newest the fan-out has
// been handed. When the Log reports a newest position below the
// fan-out's, which a Log never does unless its backend lost records, it
// calls wentBack with it.
func (h *Hub) sampleLag(ctx context.Context, fanned *atomic.Uint64, wentBack func(last uint64)) {
	t := time.NewTicker(lagInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// Read before Bounds begins: a Bounds that begins after the
		// fan-out was handed f reports a last of f or more (see Log).
		f := fanned.Load()
		bctx, cancel := context.WithTimeout(ctx, lagInterval)
		t0 := time.Now()
		_, last, err := h.log.Bounds(bctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		h.m.observeStore(opBounds, t0, err)
		if err != nil {
			continue
		}
		var lag uint64
		switch {
		case last > f:
			lag = last - f
		case last < f:
			wentBack(last)
		}
		h.m.tailLag.Set(float64(lag))
	}
}

// A backoff gives the waits between retries: from min, doubling up to
// max, each with up to a quarter more at random so that the nodes of a
// cluster do not retry in step.
type backoff struct {
	min, max time.Duration
	cur      time.Duration
}

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(2*b.cur, b.max)
	}
	return b.cur + rand.N(b.cur/4+1)
}

func (b *backoff) reset() { b.cur = 0 }

// sleep waits for d and reports true, or reports false as soon as ctx is
// done.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// stopRunning marks the Hub as not running and ends every subscription,
// whose subscribers would otherwise wait for live events that no longer
// come.
func (h *Hub) stopRunning() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.running = false
	h.shards = nil
	h.forEachLocked(func(s *subscriber) { s.stop(errStopped) })
}

// Close stops the Hub without waiting: new subscriptions are refused with
// 503, every subscriber's stream ends (clients reconnect, to another node
// if there is one), and Run returns. Publishing still works while the Log
// is open. Close returns nil; calls after the first do nothing.
func (h *Hub) Close() error {
	h.mu.Lock()
	h.closed = true
	h.forEachLocked(func(s *subscriber) { s.stop(errClosed) })
	h.mu.Unlock()
	h.cancel()
	return nil
}

// Shutdown closes the Hub as Close does and then waits until every
// subscriber's stream has ended (its connection closed, or its handler
// returned), or until ctx is done, when it returns ctx's error. Call it
// before http.Server.Shutdown, which would otherwise wait forever for
// event streams over HTTP/2, and does not wait for the HTTP/1.x
// connections the Hub has taken over; or call it from
// http.Server.RegisterOnShutdown.
func (h *Hub) Shutdown(ctx context.Context) error {
	h.Close()
	h.mu.Lock()
	if h.streams == 0 {
		h.mu.Unlock()
		return nil
	}
	if h.drained == nil {
		h.drained = make(chan struct{})
	}
	drained := h.drained
	h.mu.Unlock()
	select {
	case <-drained:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ServeHTTP serves the hub's API:
//
//	GET  /events   subscribe (an event stream)
//	POST /events   publish (form, JSON or NDJSON)
//	GET  /healthz  liveness: 200 "ok" while the process serves
//	GET  /readyz   readiness: 200 "ready" when Run is running and the Log answers, else 503
//	GET  /.well-known/mercure  subscribe, in the Mercure protocol (see MercureHandler)
//	POST /.well-known/mercure  publish, in the Mercure protocol
//	GET  /.well-known/mercure/subscriptions[/{topic}[/{subscriber}]]  Mercure's subscriptions API (see MercureSubscriptionsHandler)
//
// Any other path is answered with 404, and any other method with 405,
// both as application/problem+json.
//
// Every request first passes the CORS policy (Options.CORSOrigins): one
// from a browser page on an origin that is neither allowed nor the hub's
// own is refused with 403, and a preflight from an allowed origin is
// answered. Then publishing and subscribing pass authentication
// (Options.Tokens) and the Limits.
//
// A subscription over HTTP/1.x without TLS takes over its connection
// from net/http (http.ResponseController.Hijack, which middleware allows
// through Unwrap): the Hub writes a close-delimited response itself, with
// the header fields already set on w and those of an event stream, and
// ServeHTTP returns once the stream is under way, leaving it to the Hub
// until it ends. That is what lets an idle subscriber cost about a
// kilobyte of memory rather than the tens net/http holds for a
// connection. Over HTTP/2 and TLS, or when w cannot be taken over,
// ServeHTTP streams through ssehttp and returns when the stream ends.
//
// To mount the endpoints elsewhere (under a prefix, in another router),
// use EventsHandler, HealthHandler and ReadyHandler, which route on the
// method alone.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/events":
		h.serveEvents(w, r)
	case MercurePath:
		h.serveMercure(w, r)
	case "/healthz":
		h.serveHealth(w, r)
	case "/readyz":
		h.serveReadyz(w, r)
	default:
		if _, pattern := h.subsMux.Handler(r); pattern != "" {
			h.subsMux.ServeHTTP(w, r)
			return
		}
		if !h.checkOrigin(w, r) {
			return
		}
		writeProblem(w, http.StatusNotFound, "no such resource: "+strconv.Quote(r.URL.Path), nil)
	}
}

// EventsHandler returns the handler of the events endpoint, which
// ServeHTTP serves at /events: GET subscribes, POST publishes, OPTIONS
// answers a CORS preflight, and any other method is answered with 405.
// It routes on the method alone and never looks at the request's path,
// so it serves the same wherever it is mounted, under any prefix of any
// router (mux.Handle("/api/v1/stream", h.EventsHandler())).
func (h *Hub) EventsHandler() http.Handler { return http.HandlerFunc(h.serveEvents) }

// HealthHandler returns the liveness handler, which ServeHTTP serves at
// /healthz: GET and HEAD answer 200 "ok" while the process serves.
func (h *Hub) HealthHandler() http.Handler { return http.HandlerFunc(h.serveHealth) }

// ReadyHandler returns the readiness handler, which ServeHTTP serves at
// /readyz: GET and HEAD answer 200 "ready" while Run tails the Log and
// the Log answers, and 503 otherwise.
func (h *Hub) ReadyHandler() http.Handler { return http.HandlerFunc(h.serveReadyz) }

func (h *Hub) serveEvents(w http.ResponseWriter, r *http.Request) {
	h.serveEndpoint(w, r, h.serveSubscribe, h.servePublish)
}

// serveEndpoint serves an endpoint of the hub, /events or Mercure's,
// routing on the method: GET subscribes, POST publishes, OPTIONS answers
// a CORS preflight (checkOrigin answers one from an allowed origin).
func (h *Hub) serveEndpoint(w http.ResponseWriter, r *http.Request, subscribe, publish http.HandlerFunc) {
	if !h.checkOrigin(w, r) {
		return
	}
	switch r.Method {
	case http.MethodGet:
		subscribe(w, r)
	case http.MethodPost:
		publish(w, r)
	case http.MethodOptions:
		w.Header().Set("Allow", "GET, POST, OPTIONS")
		w.WriteHeader(http.StatusNoContent)
	default:
		w.Header().Set("Allow", "GET, POST, OPTIONS")
		writeProblem(w, http.StatusMethodNotAllowed, "use GET to subscribe or POST to publish", nil)
	}
}

func (h *Hub) serveHealth(w http.ResponseWriter, r *http.Request) {
	if !h.checkOrigin(w, r) || !getOrHead(w, r) {
		return
	}
	writeText(w, http.StatusOK, "ok\n")
}

func (h *Hub) serveReadyz(w http.ResponseWriter, r *http.Request) {
	if !h.checkOrigin(w, r) || !getOrHead(w, r) {
		return
	}
	h.serveReady(w, r)
}

// getOrHead answers 405 and reports false unless r is a GET or HEAD.
func getOrHead(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	writeProblem(w, http.StatusMethodNotAllowed, "use GET", nil)
	return false
}

// serveReady answers GET /readyz.
func (h *Hub) serveReady(w http.ResponseWriter, r *http.Request) {
	h.mu.RLock()
	closed, running := h.closed, h.running
	h.mu.RUnlock()
	switch {
	case closed:
		writeProblem(w, http.StatusServiceUnavailable, "the hub is shutting down", nil)
		return
	case !running:
		writeProblem(w, http.StatusServiceUnavailable, "the hub is not running, or has not reached the log yet", nil)
		return
	case !h.tailing.Load():
		writeProblem(w, http.StatusServiceUnavailable, "the hub lost the log's tail and is retrying", nil)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	start := time.Now()
	_, _, err := h.log.Bounds(ctx)
	h.m.observeStore(opBounds, start, err)
	if err != nil {
		h.logger.Warn("readiness check: log unavailable", "err", err)
		writeProblem(w, http.StatusServiceUnavailable, "the log is unavailable", nil)
		return
	}
	writeText(w, http.StatusOK, "ready\n")
}

// writeText writes a text/plain response.
func writeText(w http.ResponseWriter, status int, body string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}
