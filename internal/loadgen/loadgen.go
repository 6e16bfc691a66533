package loadgen

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Errors of Run.
var (
	// ErrNoSubscriber is wrapped by Run's error when no subscriber
	// connected, so nothing could be measured.
	ErrNoSubscriber = errors.New("loadgen: no subscriber connected")
	// ErrNothingPublished is wrapped by Run's error when every publish
	// request failed.
	ErrNothingPublished = errors.New("loadgen: no event was published")
)

// I/O models of the subscribers.
const (
	IOEpoll     = "epoll"     // Linux, http only: a few goroutines wait on epoll sets
	IOGoroutine = "goroutine" // a goroutine and a 4 KiB buffer per subscriber
)

// Options configure a Run. The zero value of every field but URL and
// Topic is usable.
type Options struct {
	// URL is the hub's events endpoint, such as
	// http://127.0.0.1:8080/events: subscribers GET it with a topic
	// parameter added, and events are POSTed to it. Required.
	URL string

	// URLs are the events endpoints of further nodes of the same hub,
	// nodes that share one Log (a cluster). Subscriber i connects to the
	// (i mod n)th of URL followed by URLs, and reconnects there; events
	// are published to URL, or round-robin to all of them with
	// PublishRoundRobin. Every URL must be of the scheme and address
	// family of URL. It may be nil.
	URLs []string

	// PublishRoundRobin sends each publish request to the next of URL
	// and URLs in turn, instead of always to URL.
	PublishRoundRobin bool

	// Topic is the topic subscribed and published to. Required.
	Topic string

	// Header is added to every subscribe and publish request, such as an
	// Authorization header. It may be nil.
	Header http.Header

	// TLSConfig configures the https connections of the subscribers and
	// of the publisher: which certificates verify the hub. Run does not
	// modify it. If nil, the system's roots do.
	TLSConfig *tls.Config

	// Subscribers is how many subscriptions to open. If zero, 100.
	Subscribers int

	// ConnectRate is how many subscriptions to open per second. If zero,
	// 1000.
	ConnectRate float64

	// ConnectTimeout bounds each connection attempt, from the socket's
	// connect to the end of the response head. If zero, 10s.
	ConnectTimeout time.Duration

	// Rate is how many events to publish per second. If zero, 10.
	Rate float64

	// Duration is how long to publish, or to measure with NoPublish. If
	// zero, 10s.
	Duration time.Duration

	// Gzip makes the subscribers ask for gzip (Accept-Encoding: gzip),
	// and decode the bodies that come compressed. Each compressed
	// stream keeps up to 32 KiB of what it decoded, the window its later
	// bytes may refer to.
	Gzip bool

	// Size is the length of each event's data in bytes (see the package
	// documentation); data is never shorter than its time and sequence
	// number need. If zero, 100.
	Size int

	// Publishers is how many publish requests may be in flight at once.
	// Events due while all are busy go in the next request, an NDJSON
	// batch. If zero, 1.
	Publishers int

	// BatchEvery is how often the publisher sends the events that have
	// become due, as one request. If zero, 10ms.
	BatchEvery time.Duration

	// NoPublish measures events that others publish instead of
	// publishing (see the package documentation for their payloads).
	NoPublish bool

	// Warmup is the start of the publishing that the steady-state
	// delivery rate leaves out. If zero, the lesser of 1s and a tenth of
	// Duration; if negative, none.
	Warmup time.Duration

	// Drain is how long to wait after publishing for events still in
	// flight to arrive. If zero, 5s; if negative, no wait.
	Drain time.Duration

	// SourceIPs are the local addresses subscriptions connect from,
	// round-robin. If empty and the hub is at a loopback IPv4 address,
	// 127.0.0.2 to 127.0.0.254 are used; otherwise the system chooses.
	SourceIPs []netip.Addr

	// ServerPID, if not zero, is the hub's process, whose memory and CPU
	// use are read from /proc and reported. Run checks, through /proc,
	// that the process holds the socket that listens at the URL's
	// address, and says so in ServerReport.Warning when it cannot tell or
	// when another process does.
	ServerPID int

	// Warn, if not nil, is called with each warning found before the
	// run starts (such as ServerReport.Warning), from the goroutine that
	// called Run, so that a person can stop a run that would measure the
	// wrong thing. The report holds the warnings too.
	Warn func(string)

	// IO is IOEpoll or IOGoroutine. If empty, IOEpoll where it is
	// available (Linux, an http URL), else IOGoroutine.
	IO string

	// Workers is how many epoll loops share the subscriptions with
	// IOEpoll. If zero, half of GOMAXPROCS (at least 1), leaving the rest
	// to a hub on the same machine: fewer loops wake less often and read
	// more sockets per wakeup, which costs less CPU.
	Workers int

	// PollEvery, if positive, makes each epoll loop poll its sockets
	// this often instead of sleeping in epoll_wait until one is ready:
	// it takes what is ready without waiting, reads it, and sleeps until
	// the next poll is due (at once again if a full batch was ready). A
	// reader asleep in epoll_wait is woken by the write that readies a
	// socket, and on one machine the hub pays for that wake-up inside
	// its write(2), which it does not for subscribers on other machines;
	// a polling reader is never waiting, so the hub does not pay it.
	// Events are timed by their arrival in the socket either way, so the
	// data waits up to PollEvery longer for this tool (see
	// ToolReport.ReadDelay) without adding to the latency. If zero, the
	// loops sleep in epoll_wait. Only IOEpoll polls.
	PollEvery time.Duration

	// Progress, if not nil, is called every ProgressEvery while the run
	// goes on, from the goroutine that called Run.
	Progress func(Progress)

	// ProgressEvery is how often Progress is called. If zero, 1s.
	ProgressEvery time.Duration
}

// withDefaults returns a copy of o with its defaults applied.
func (o Options) withDefaults() Options {
	def := func(v *float64, d float64) {
		if *v == 0 {
			*v = d
		}
	}
	if o.Subscribers == 0 {
		o.Subscribers = 100
	}
	def(&o.ConnectRate, 1000)
	def(&o.Rate, 10)
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = 10 * time.Second
	}
	if o.Duration == 0 {
		o.Duration = 10 * time.Second
	}
	if o.Size == 0 {
		o.Size = 100
	}
	if o.Publishers == 0 {
		o.Publishers = 1
	}
	if o.BatchEvery == 0 {
		o.BatchEvery = 10 * time.Millisecond
	}
	switch {
	case o.Warmup == 0:
		o.Warmup = min(time.Second, o.Duration/10)
	case o.Warmup < 0:
		o.Warmup = 0
	}
	switch {
	case o.Drain == 0:
		o.Drain = 5 * time.Second
	case o.Drain < 0:
		o.Drain = 0
	}
	if o.IO == "" {
		o.IO = IOGoroutine
		if epollAvailable && !strings.HasPrefix(strings.ToLower(o.URL), "https:") {
			o.IO = IOEpoll
		}
		for _, u := range o.URLs {
			if strings.HasPrefix(strings.ToLower(u), "https:") {
				o.IO = IOGoroutine
			}
		}
	}
	if o.Workers == 0 {
		o.Workers = max(1, runtime.GOMAXPROCS(0)/2)
	}
	if o.ProgressEvery == 0 {
		o.ProgressEvery = time.Second
	}
	return o
}

func (o *Options) validate() error {
	switch {
	case o.URL == "":
		return errors.New("loadgen: no URL")
	case slices.Contains(o.URLs, ""):
		return errors.New("loadgen: an empty URL in URLs")
	case o.Topic == "":
		return errors.New("loadgen: no topic")
	case o.Subscribers < 0:
		return errors.New("loadgen: negative subscribers")
	case o.ConnectRate < 0 || math.IsNaN(o.ConnectRate) || math.IsInf(o.ConnectRate, 0):
		return errors.New("loadgen: connect rate must be a positive number")
	case o.Rate < 0 || math.IsNaN(o.Rate) || math.IsInf(o.Rate, 0):
		return errors.New("loadgen: rate must be a positive number")
	case o.Duration < 0 || o.ConnectTimeout < 0 || o.BatchEvery < 0 || o.ProgressEvery < 0 || o.PollEvery < 0:
		return errors.New("loadgen: negative duration")
	case o.Size < 0 || o.Size > maxSize:
		return fmt.Errorf("loadgen: size must be between 0 and %d", maxSize)
	case o.Publishers < 0 || o.Workers < 0:
		return errors.New("loadgen: negative publishers or workers")
	case o.IO != IOEpoll && o.IO != IOGoroutine:
		return fmt.Errorf("loadgen: unknown I/O model %q", o.IO)
	case o.IO == IOEpoll && !epollAvailable:
		return errors.New("loadgen: epoll I/O needs Linux")
	}
	return nil
}

// Progress is what a run has measured so far.
type Progress struct {
	// Phase is "connecting", "publishing" (or "measuring" with
	// NoPublish) or "draining".
	Phase string
	// Elapsed is the time since the phase began, and Total how long it is
	// meant to take (zero when unknown).
	Elapsed, Total time.Duration
	// Connected is how many streams are open, out of Subscribers.
	Connected, Subscribers int
	// Delivered counts the events received by all subscribers, and
	// PerSecond the rate since the previous Progress.
	Delivered uint64
	PerSecond float64
	// P99 is the 99th percentile latency so far.
	P99 time.Duration
}

// Percentiles summarise a distribution of durations, in milliseconds.
type Percentiles struct {
	Count uint64  `json:"count"`
	Min   float64 `json:"min"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p99_9"`
	Max   float64 `json:"max"`
}

// A Tally counts per-subscriber events: their sum, the largest count of
// one subscriber, and how many subscribers had any.
type Tally struct {
	Total       uint64 `json:"total"`
	Max         uint64 `json:"max_per_subscriber"`
	Subscribers int    `json:"subscribers"`
}

func (t *Tally) add(n uint64) {
	if n == 0 {
		return
	}
	t.Total += n
	t.Max = max(t.Max, n)
	t.Subscribers++
}

// A PublishReport describes the publishing side of a run.
type PublishReport struct {
	// External is set with NoPublish: Events were published by others,
	// and counted from the sequence numbers received.
	External bool `json:"external"`
	// TargetRate is the events per second asked for (zero if External).
	TargetRate float64 `json:"target_per_s"`
	// Events is how many events were acknowledged by the hub (or seen,
	// if External), and Rate how many per second of the publishing time.
	Events uint64  `json:"events"`
	Rate   float64 `json:"per_s"`
	// Requests is the number of publish requests; Batched is how many of
	// them were NDJSON batches of several events.
	Requests uint64 `json:"requests"`
	Batched  uint64 `json:"batched"`
	// Failed counts the events whose request failed, and Error says why
	// the first one did.
	Failed uint64 `json:"failed"`
	Error  string `json:"error,omitempty"`
	// Behind is set when the publisher could not keep the target rate:
	// it sent fewer than 99% of the events due, or the hub acknowledged
	// fewer than 95% of the target rate.
	Behind bool `json:"behind"`
	// Unsent is how many events were due but never sent.
	Unsent uint64 `json:"unsent"`
}

// A ServerReport holds the hub process's resource use, from /proc.
type ServerReport struct {
	PID int `json:"pid"`
	// RSS before the subscribers connected, once they had, and at the end.
	RSSBeforeKiB    int64 `json:"rss_before_kib"`
	RSSConnectedKiB int64 `json:"rss_connected_kib"`
	RSSAfterKiB     int64 `json:"rss_after_kib"`
	// KiBPerConnection is the RSS growth while connecting divided by the
	// subscribers connected.
	KiBPerConnection float64 `json:"kib_per_connection"`
	// CPU use in percent of one core while connecting, and while
	// publishing and draining.
	ConnectCPUPercent float64 `json:"connect_cpu_percent"`
	CPUPercent        float64 `json:"cpu_percent"`
	// Error says why the process could not be read, when it could not.
	Error string `json:"error,omitempty"`
	// Warning says why these figures may not be the hub's: the process
	// does not hold the socket listening at the hub's address, or that
	// could not be checked.
	Warning string `json:"warning,omitempty"`
}

// A ToolReport holds this process's own resource use, so that a reader
// can tell when the load generator, not the hub, was the bottleneck.
type ToolReport struct {
	IO      string `json:"io"`
	Workers int    `json:"workers,omitempty"`
	// PollEvery is Options.PollEvery in milliseconds, when the epoll
	// loops polled; zero when they slept in epoll_wait.
	PollEvery float64 `json:"poll_every_ms,omitempty"`
	// CPU use in percent of one core while connecting, and while
	// publishing and draining.
	ConnectCPUPercent float64 `json:"connect_cpu_percent"`
	CPUPercent        float64 `json:"cpu_percent"`
	// RSSConnectedKiB is the RSS once the subscribers had connected, and
	// MaxRSSKiB the peak.
	RSSConnectedKiB int64 `json:"rss_connected_kib"`
	MaxRSSKiB       int64 `json:"max_rss_kib"`
	// CPUs is how many CPUs this machine has, and MachineBusyPercent how
	// busy they were, all processes together, while publishing and
	// draining: 100 means that every CPU was busy all the time (Linux
	// /proc/stat; -1 where unknown).
	CPUs               int     `json:"cpus"`
	MachineBusyPercent float64 `json:"machine_busy_percent"`
	// Warning, when not empty, says why this tool may be what limits
	// the figures: see toolWarning.
	Warning string `json:"warning,omitempty"`
	// ArrivalTimes is set when events were timed by their arrival in the
	// socket, as the kernel recorded it (IOEpoll on Linux 5.1+), rather
	// than when this tool read them. ReadDelay is then how long data
	// waited in the socket before this tool read it: when it is large,
	// the tool is the bottleneck, although the latency does not include
	// the wait.
	ArrivalTimes bool        `json:"arrival_times"`
	ReadDelay    Percentiles `json:"read_delay_ms"`
}

// A Report is what a run measured. Durations are in seconds (_s) or
// milliseconds (_ms), as their JSON names say.
type Report struct {
	URL string `json:"url"`
	// URLs are the further nodes of Options.URLs, and PublishRoundRobin
	// says whether events were published to all the nodes in turn.
	URLs              []string `json:"urls,omitempty"`
	PublishRoundRobin bool     `json:"publish_round_robin,omitempty"`
	Topic             string   `json:"topic"`
	// Interrupted is set when the run was cancelled before its end; events
	// still in flight then may count as lost.
	Interrupted bool    `json:"interrupted"`
	Elapsed     float64 `json:"elapsed_s"`
	Duration    float64 `json:"duration_s"`
	Size        int     `json:"size"`

	// Subscribers is how many were asked for; Connected how many opened
	// their first stream; ConnectFailed how many could not (ConnectError
	// says why the first of them could not); ConnectSeconds is how long
	// connecting them all took.
	Subscribers    int         `json:"subscribers"`
	Connected      int         `json:"connected"`
	ConnectFailed  int         `json:"connect_failed"`
	ConnectError   string      `json:"connect_error,omitempty"`
	ConnectSeconds float64     `json:"connect_s"`
	ConnectTime    Percentiles `json:"connect_ms"`
	// Disconnects counts open streams that ended before the run did;
	// Reconnects the reconnections that opened again; Abandoned the
	// subscribers that gave up, refused on reconnection.
	Disconnects int64 `json:"disconnects"`
	Reconnects  int64 `json:"reconnects"`
	Abandoned   int64 `json:"abandoned"`

	Publish PublishReport `json:"publish"`

	// Delivered counts every payload received by every subscriber,
	// duplicates included; Expected is what a lossless run delivers
	// (Connected × Publish.Events). PerSecond is the delivery rate over
	// the steady state, SteadyFrom to SteadyTo seconds after publishing
	// began.
	Delivered  uint64  `json:"delivered"`
	Expected   uint64  `json:"expected"`
	PerSecond  float64 `json:"delivered_per_s"`
	SteadyFrom float64 `json:"steady_from_s"`
	SteadyTo   float64 `json:"steady_to_s"`
	// Latency is from publish to receive: to the event's arrival in the
	// subscriber's socket, or to its read by this tool when the arrival
	// time is unknown (see ToolReport.ArrivalTimes).
	Latency Percentiles `json:"latency_ms"`
	// Lost counts expected events that a subscriber did not receive
	// although it received later ones: gaps, which a hub that delivers
	// in order never fills. Undelivered counts those after the last event
	// a subscriber received, when the run ended: late (still queued or in
	// flight after Drain) or lost at the end; a longer Drain tells which.
	// Duplicated counts the receptions of an event already received.
	Lost        Tally `json:"lost"`
	Undelivered Tally `json:"undelivered"`
	Duplicated  Tally `json:"duplicated"`
	// Foreign counts data lines that were not payloads of this run.
	Foreign uint64 `json:"foreign"`
	// BodyBytes counts the response body bytes the subscribers
	// received, as sent: compressed, for a gzip stream. Gzipped counts
	// the streams that opened with Content-Encoding: gzip.
	BodyBytes uint64 `json:"body_bytes"`
	Gzipped   uint64 `json:"gzipped_streams"`

	Server *ServerReport `json:"server,omitempty"`
	Tool   ToolReport    `json:"tool"`
}

// A recorder counts what the subscriptions of one I/O worker deliver.
type recorder struct {
	// mu guards the fields below. An epoll loop also lets it guard its
	// table of connections and the state of their subs, and holds it
	// while it handles a batch of ready sockets: one lock per batch, not
	// per event.
	mu        sync.Mutex
	latency   histogram
	connect   histogram
	readDelay histogram // from arrival in the socket to the read, where known
	delivered uint64
	unique    uint64
	dups      uint64
	foreign   uint64
	bodyBytes uint64 // response body bytes received, as sent (compressed or not)
	gzipped   uint64 // responses that opened with Content-Encoding: gzip
}

// A sub is one subscriber. Its fields are owned by the I/O model that
// serves it, and read by Run once the model has closed.
type sub struct {
	id       int
	tgt      *target // the node it connects to, tgts[node]
	node     int
	s        stream
	src      netip.Addr // the local address, if chosen
	start    int64      // when the current attempt began, Unix nanoseconds
	open     bool       // a stream is open
	everOpen bool       // the first stream opened
	// For IOEpoll, owned by its worker.
	fd  int
	gen uint32 // tells a socket's events from those of its file descriptor's earlier use
	out []byte // the request bytes not yet written
}

// An ioModel serves the subscribers' connections.
type ioModel interface {
	// connect starts sb's first connection. It does not block.
	connect(sb *sub)
	// recorders returns where deliveries are counted.
	recorders() []*recorder
	// close closes every connection and returns once none is served.
	close()
}

// A run is the state shared by Run and its I/O model.
type run struct {
	o    Options
	tgt  *target   // URL's node, the first of tgts
	tgts []*target // URL's and URLs' nodes
	subs []*sub

	opened    atomic.Int64 // first connections opened
	failed    atomic.Int64 // first connections that failed
	open      atomic.Int64 // streams open now
	drops     atomic.Int64 // open streams that ended
	reopened  atomic.Int64 // reconnections that opened
	abandoned atomic.Int64
	stopping  atomic.Bool // no more reconnections
	settled   chan struct{}
	settle    sync.Once
	abort     chan struct{} // closed when the first connections all fail
	abortOnce sync.Once

	errMu    sync.Mutex // guards firstErr
	firstErr error
}

// abortAfter is how many first connections must fail, with none opened,
// for the run to give up connecting.
const abortAfter = 16

// noteOpen notes that sb's stream opened at now; rec is locked.
func (r *run) noteOpen(sb *sub, now int64, rec *recorder) {
	sb.open = true
	r.open.Add(1)
	if sb.everOpen {
		r.reopened.Add(1)
		return
	}
	sb.everOpen = true
	rec.connect.record(time.Duration(now - sb.start))
	r.doneConnecting(r.opened.Add(1) + r.failed.Load())
}

// ended notes that sb's connection ended with err, and says whether and
// when to reconnect.
func (r *run) ended(sb *sub, err error) (delay time.Duration, again bool) {
	switch {
	case sb.open:
		sb.open = false
		r.open.Add(-1)
		if r.stopping.Load() {
			return 0, false // closed by the run itself
		}
		r.drops.Add(1)
	case !sb.everOpen:
		r.noteErr(err)
		n := r.failed.Add(1)
		if n >= abortAfter && r.opened.Load() == 0 {
			r.abortOnce.Do(func() { close(r.abort) })
		}
		r.doneConnecting(n + r.opened.Load())
		return 0, false
	}
	if r.stopping.Load() {
		return 0, false
	}
	if _, ok := errors.AsType[*statusError](err); ok {
		r.abandoned.Add(1)
		return 0, false
	}
	if sb.s.retry > 0 {
		return sb.s.retry, true
	}
	return time.Second, true
}

func (r *run) doneConnecting(n int64) {
	if n >= int64(len(r.subs)) {
		r.settle.Do(func() { close(r.settled) })
	}
}

func (r *run) noteErr(err error) {
	r.errMu.Lock()
	defer r.errMu.Unlock()
	if r.firstErr == nil {
		r.firstErr = err
	}
}

// Run opens the subscriptions, publishes (unless o.NoPublish) for
// o.Duration, waits for what is in flight, and reports what it measured.
// When ctx is cancelled it stops early and reports what it measured so
// far, with Interrupted set. It returns an error, and no report, when the
// run could not start (bad options, an unreachable or unusable hub, too
// few file descriptors or ports), and a report and an error wrapping
// ErrNoSubscriber or ErrNothingPublished when nothing could be measured.
func Run(ctx context.Context, o *Options) (*Report, error) {
	opts := o.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	tgts, err := resolveTargets(ctx, &opts)
	if err != nil {
		return nil, err
	}
	tgt := tgts[0]
	if err := checkCapacity(&opts, tgt); err != nil {
		return nil, err
	}
	var srv *procWatch
	if opts.ServerPID != 0 {
		if srv, err = watchProc(opts.ServerPID); err != nil {
			return nil, err
		}
		srv.warning = checkListener(opts.ServerPID, tgt.addr)
		if srv.warning != "" && opts.Warn != nil {
			opts.Warn(srv.warning)
		}
	}
	r := &run{o: opts, tgt: tgt, tgts: tgts, settled: make(chan struct{}), abort: make(chan struct{})}
	r.subs = make([]*sub, opts.Subscribers)
	for i := range r.subs {
		sb := &sub{id: i, node: i % len(tgts), tgt: tgts[i%len(tgts)], fd: -1}
		sb.s.reset()
		sb.s.seq.fixed = !opts.NoPublish
		// Subscribers of one node take every source address in turn.
		if srcs := sb.tgt.sources; len(srcs) > 0 {
			sb.src = srcs[(i/len(tgts))%len(srcs)]
		}
		r.subs[i] = sb
	}
	if len(r.subs) == 0 {
		close(r.settled)
	}
	model, err := newModel(r)
	if err != nil {
		return nil, err
	}
	rep := &Report{
		URL: opts.URL, URLs: opts.URLs, PublishRoundRobin: opts.PublishRoundRobin,
		Topic: opts.Topic, Subscribers: opts.Subscribers,
		Duration: opts.Duration.Seconds(), Size: opts.Size,
		Tool: ToolReport{IO: opts.IO},
	}
	if opts.IO == IOEpoll {
		rep.Tool.Workers = opts.Workers
		rep.Tool.PollEvery = ms(opts.PollEvery)
	}
	m := &meter{r: r, model: model, progress: opts.Progress, every: opts.ProgressEvery}
	t0 := time.Now()
	cpu0 := selfCPU()
	srv.sample()

	// Connect.
	interrupted := r.connectAll(ctx, model, m)
	t1 := time.Now()
	cpu1 := selfCPU()
	mBusy1, mTotal1, mOK1 := machineCPU()
	srv.sample()
	rep.ConnectSeconds = t1.Sub(t0).Seconds()
	rep.Tool.ConnectCPUPercent = cpuPercent(cpu1-cpu0, t1.Sub(t0))
	rep.Tool.RSSConnectedKiB, _ = readRSS("self")

	// Publish, or measure what others publish, then drain.
	var pub *publisher
	var steady steadyWindow
	if r.opened.Load() > 0 && !interrupted {
		if !opts.NoPublish {
			pub = newPublisher(&opts, tgts)
		}
		interrupted = r.measure(ctx, pub, m, &steady)
	}
	t2 := time.Now()
	cpu2 := selfCPU()
	mBusy2, mTotal2, mOK2 := machineCPU()
	srv.sample()
	r.stopping.Store(true)
	model.close()

	// Report.
	rep.Interrupted = interrupted
	rep.Elapsed = time.Since(t0).Seconds()
	rep.Tool.CPUPercent = cpuPercent(cpu2-cpu1, t2.Sub(t1))
	rep.Tool.CPUs = runtime.NumCPU()
	rep.Tool.MachineBusyPercent = -1
	if mOK1 && mOK2 && mTotal2 > mTotal1 {
		rep.Tool.MachineBusyPercent = 100 * float64(mBusy2-mBusy1) / float64(mTotal2-mTotal1)
	}
	rep.Tool.MaxRSSKiB = maxRSS()
	if srv != nil {
		rep.Server = srv.report(t1.Sub(t0), t2.Sub(t1), r.opened.Load())
	}
	r.fill(rep, model, pub, &steady)
	rep.Tool.Warning = toolWarning(&rep.Tool, rep.Server)
	if rep.Connected == 0 {
		err := ErrNoSubscriber
		if r.firstErr != nil {
			err = fmt.Errorf("%w: %w", ErrNoSubscriber, r.firstErr)
		}
		if interrupted {
			return rep, nil
		}
		return rep, err
	}
	if pub != nil && rep.Publish.Events == 0 && rep.Publish.Failed > 0 && !interrupted {
		return rep, fmt.Errorf("%w: %s", ErrNothingPublished, rep.Publish.Error)
	}
	return rep, nil
}

// connectAll opens the subscriptions at the connect rate and waits until
// each has opened or failed. It reports whether ctx was cancelled.
func (r *run) connectAll(ctx context.Context, model ioModel, m *meter) (interrupted bool) {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(stop)
	wg.Go(func() { r.pace(model, stop) })
	n := len(r.subs)
	// Each attempt ends within ConnectTimeout; the deadline is a backstop.
	deadline := time.Duration(float64(n)/r.o.ConnectRate*float64(time.Second)) + r.o.ConnectTimeout + 5*time.Second
	m.shown = time.Duration(float64(n) / r.o.ConnectRate * float64(time.Second))
	defer func() { m.shown = 0 }()
	return m.wait(ctx, "connecting", deadline, 0, func() bool {
		select {
		case <-r.settled:
			return true
		case <-r.abort:
			return true
		default:
			return false
		}
	})
}

// pace starts the subscribers' first connections at the connect rate,
// until all are started or stop is closed.
func (r *run) pace(model ioModel, stop <-chan struct{}) {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	i := 0
	for i < len(r.subs) {
		due := min(len(r.subs), int(r.o.ConnectRate*time.Since(start).Seconds())+1)
		for ; i < due; i++ {
			select {
			case <-stop:
				return
			case <-r.abort:
				return
			default:
			}
			r.subs[i].start = time.Now().UnixNano()
			model.connect(r.subs[i])
		}
		if i == len(r.subs) {
			return
		}
		select {
		case <-stop:
			return
		case <-r.abort:
			return
		case <-tick.C:
		}
	}
}

// A steadyWindow holds the deliveries counted at the start and end of
// the steady state.
type steadyWindow struct {
	from, to         time.Duration // since publishing began
	atFrom, atTo     uint64
	haveFrom, haveTo bool
}

// measure publishes with pub (nil: others publish) for the run's
// duration, then waits for events in flight. It reports whether ctx was
// cancelled.
func (r *run) measure(ctx context.Context, pub *publisher, m *meter, steady *steadyWindow) (interrupted bool) {
	phase := "publishing"
	if pub == nil {
		phase = "measuring"
	}
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	pubDone := make(chan struct{})
	start := time.Now()
	if pub != nil {
		wg.Go(func() {
			defer close(pubDone)
			pub.run(pctx, r.o.Duration)
		})
	} else {
		close(pubDone)
	}
	snap := func(at *uint64, when *time.Duration, have *bool) {
		*at, *when, *have = m.delivered(), time.Since(start), true
	}
	if r.o.Warmup == 0 {
		snap(&steady.atFrom, &steady.from, &steady.haveFrom)
	}
	interrupted = m.wait(ctx, phase, r.o.Duration, r.o.Warmup, func() bool {
		if !steady.haveFrom && time.Since(start) >= r.o.Warmup {
			snap(&steady.atFrom, &steady.from, &steady.haveFrom)
		}
		return false
	})
	if !steady.haveFrom {
		steady.atFrom, steady.from, steady.haveFrom = 0, 0, true
	}
	snap(&steady.atTo, &steady.to, &steady.haveTo)
	if interrupted || pub == nil {
		cancel()
		return interrupted
	}
	// Drain: wait for the requests in flight, then for every open
	// subscriber to have every acknowledged event.
	if r.o.Drain == 0 {
		cancel()
		return false
	}
	interrupted = m.wait(ctx, "draining", r.o.Drain, 0, func() bool {
		select {
		case <-pubDone:
		default:
			return false
		}
		acked := pub.stats().acked
		return m.unique() >= uint64(r.opened.Load())*acked
	})
	cancel()
	return interrupted
}

// fill completes rep with the counts of the run, once model is closed.
func (r *run) fill(rep *Report, model ioModel, pub *publisher, steady *steadyWindow) {
	var lat, conn, delay histogram
	for _, rec := range model.recorders() {
		rec.mu.Lock()
		lat.merge(&rec.latency)
		conn.merge(&rec.connect)
		delay.merge(&rec.readDelay)
		rep.Delivered += rec.delivered
		rep.BodyBytes += rec.bodyBytes
		rep.Gzipped += rec.gzipped
		rep.Foreign += rec.foreign
		rec.mu.Unlock()
	}
	rep.Latency = lat.summary()
	rep.ConnectTime = conn.summary()
	rep.Tool.ReadDelay = delay.summary()
	rep.Tool.ArrivalTimes = delay.n > 0
	rep.Connected = int(r.opened.Load())
	rep.ConnectFailed = int(r.failed.Load())
	if r.firstErr != nil {
		rep.ConnectError = r.firstErr.Error()
	}
	rep.Disconnects = r.drops.Load()
	rep.Reconnects = r.reopened.Load()
	rep.Abandoned = r.abandoned.Load()
	if steady.haveTo && steady.to > steady.from {
		rep.SteadyFrom, rep.SteadyTo = steady.from.Seconds(), steady.to.Seconds()
		rep.PerSecond = float64(steady.atTo-steady.atFrom) / (steady.to - steady.from).Seconds()
	}

	if pub != nil {
		st := pub.stats()
		rep.Publish = PublishReport{
			TargetRate: r.o.Rate, Events: st.acked, Requests: st.requests, Batched: st.batched,
			Failed: st.failed, Unsent: st.unsent,
		}
		if st.err != nil {
			rep.Publish.Error = st.err.Error()
		}
		// Publishing lasted steady.to (Duration, unless interrupted), and
		// the last acknowledgement may come later.
		if span := max(steady.to, st.lastAck); span > 0 {
			rep.Publish.Rate = float64(st.acked) / span.Seconds()
		}
		due := uint64(math.Round(r.o.Rate * r.o.Duration.Seconds()))
		rep.Publish.Behind = !rep.Interrupted && due > 0 &&
			(float64(st.sent) < 0.99*float64(due) || rep.Publish.Rate < 0.95*r.o.Rate)
		rep.Expected = uint64(rep.Connected) * st.acked
		for _, sb := range r.subs {
			if !sb.everOpen {
				continue
			}
			if st.sent > 0 {
				lost, late := missingSplit(&sb.s.seq, 0, st.sent-1, st.failedRanges)
				rep.Lost.add(lost)
				rep.Undelivered.add(late)
			}
			rep.Duplicated.add(sb.s.seq.dups)
		}
		return
	}

	// Others published: the events are those from the lowest sequence
	// number any subscriber received to the highest.
	rep.Publish.External = true
	var lo, hi uint64
	any := false
	for _, sb := range r.subs {
		if sb.s.seq.unique == 0 {
			continue
		}
		if !any {
			lo, hi, any = sb.s.seq.lo, sb.s.seq.hi, true
		}
		lo, hi = min(lo, sb.s.seq.lo), max(hi, sb.s.seq.hi)
	}
	if !any {
		return
	}
	rep.Publish.Events = hi - lo + 1
	if steady.to > 0 {
		rep.Publish.Rate = float64(rep.Publish.Events) / steady.to.Seconds()
	}
	rep.Expected = uint64(rep.Connected) * rep.Publish.Events
	for _, sb := range r.subs {
		if !sb.everOpen {
			continue
		}
		from := lo
		if sb.s.seq.unique > 0 {
			from = sb.s.seq.lo
		}
		lost, late := missingSplit(&sb.s.seq, from, hi, nil)
		rep.Lost.add(lost)
		rep.Undelivered.add(late)
		rep.Duplicated.add(sb.s.seq.dups)
	}
}

// missingSplit counts the numbers from..to that s has not received,
// leaving out those in except: as lost when s received a later number,
// and as undelivered when it did not (they may yet arrive).
func missingSplit(s *seqSet, from, to uint64, except []seqRange) (lost, undelivered uint64) {
	count := func(a, b uint64) uint64 {
		if b < a {
			return 0
		}
		n := s.missing(a, b)
		for _, e := range except {
			if lo, hi := max(a, e.first), min(b, e.last); lo <= hi {
				n -= s.missing(lo, hi)
			}
		}
		return n
	}
	if s.unique == 0 {
		return 0, count(from, to)
	}
	if s.hi >= to {
		return count(from, to), 0
	}
	return count(from, s.hi), count(s.hi+1, to)
}

// A meter reads the recorders while the run goes on, and reports
// progress.
type meter struct {
	r        *run
	model    ioModel
	progress func(Progress)
	every    time.Duration
	last     uint64        // deliveries at the previous progress
	lastAt   time.Time     // time of the previous progress
	shown    time.Duration // if not zero, the Total to report instead of the wait's bound
	scratch  histogram
}

// delivered returns the deliveries so far.
func (m *meter) delivered() uint64 {
	var n uint64
	for _, rec := range m.model.recorders() {
		rec.mu.Lock()
		n += rec.delivered
		rec.mu.Unlock()
	}
	return n
}

// unique returns how many distinct payloads the subscribers have
// received, summed over subscribers.
func (m *meter) unique() uint64 {
	var n uint64
	for _, rec := range m.model.recorders() {
		rec.mu.Lock()
		n += rec.unique
		rec.mu.Unlock()
	}
	return n
}

// wait returns when done reports true, d has passed (if not zero: done
// alone ends the wait otherwise), or ctx is done, reporting progress on
// the way; it reports whether ctx ended it. done is polled every 10ms, and
// also at the moment after (if not zero) has passed.
func (m *meter) wait(ctx context.Context, phase string, d, after time.Duration, done func() bool) (interrupted bool) {
	start := time.Now()
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	var at <-chan time.Time
	if after > 0 {
		t := time.NewTimer(after)
		defer t.Stop()
		at = t.C
	}
	var end <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		end = t.C
	}
	var report <-chan time.Time
	if m.progress != nil {
		t := time.NewTicker(m.every)
		defer t.Stop()
		report = t.C
		m.report(phase, start, d)
	}
	for {
		if done() {
			return false
		}
		select {
		case <-ctx.Done():
			return true
		case <-end:
			return false
		case <-at:
		case <-poll.C:
		case <-report:
			m.report(phase, start, d)
		}
	}
}

// report calls the progress function.
func (m *meter) report(phase string, start time.Time, total time.Duration) {
	now := time.Now()
	m.scratch = histogram{}
	var n uint64
	for _, rec := range m.model.recorders() {
		rec.mu.Lock()
		n += rec.delivered
		m.scratch.merge(&rec.latency)
		rec.mu.Unlock()
	}
	if m.shown != 0 {
		total = m.shown
	}
	var rate float64
	if !m.lastAt.IsZero() && now.After(m.lastAt) {
		rate = float64(n-m.last) / now.Sub(m.lastAt).Seconds()
	}
	m.last, m.lastAt = n, now
	m.progress(Progress{
		Phase: phase, Elapsed: now.Sub(start), Total: total,
		Connected: int(m.r.open.Load()), Subscribers: len(m.r.subs),
		Delivered: n, PerSecond: rate, P99: m.scratch.quantile(0.99),
	})
}

// Thresholds of toolWarning, calibrated on runs of this tool and a hub
// (memory store) on one 2-CPU machine: at 100 subscribers and 10
// events/s the tool used 4% of a core and the hub 2%, and the old rule
// (the tool used more than the hub) warned about nothing that mattered;
// from 1,000 subscribers and 100 events/s up the machine was 98-100%
// busy, the tool used 40-60% of a core and the hub 40-85%, and every CPU
// second the tool took was one the hub could not have.
const (
	// busyMachine is how busy, in percent of all CPUs, a machine is
	// saturated: runnable threads, the hub's among them, wait for a CPU.
	busyMachine = 90
	// toolShare is the least CPU, in percent of one core, that the tool
	// must use on a saturated machine to be worth a warning: running it
	// elsewhere would give the hub less than a fifth of a core.
	toolShare = 20
	// loopBusy is how busy, in percent of a core, each I/O loop (or, with
	// goroutine I/O, each CPU) must be for the tool to be falling behind
	// on its own.
	loopBusy = 80
)

// toolWarning says, from the CPU that this tool and the machine used
// while publishing, whether the tool may have limited the figures: when
// its own loops were nearly always busy, or when the machine was
// saturated and the tool took a material share of it. Where the machine's
// use is unknown, it warns when the tool used half of all CPUs.
func toolWarning(t *ToolReport, srv *ServerReport) string {
	loops := t.CPUs
	if t.IO == IOEpoll && t.Workers > 0 {
		loops = min(t.Workers, max(t.CPUs, 1))
	}
	hub := ""
	if srv != nil && srv.Error == "" && srv.Warning == "" {
		hub = fmt.Sprintf(", the hub %.0f%%", srv.CPUPercent)
	}
	switch {
	case loops > 0 && t.CPUPercent >= loopBusy*float64(loops):
		what := fmt.Sprintf("%d epoll loop", loops)
		if loops > 1 {
			what += "s"
		}
		advice := "give --workers more"
		if t.IO != IOEpoll {
			what, advice = fmt.Sprintf("%d CPUs", loops), "run it on another machine"
		}
		return fmt.Sprintf("this tool used %.0f%% of a core with %s: it may not have kept up, and be what limits the figures (%s)", t.CPUPercent, what, advice)
	case t.MachineBusyPercent >= busyMachine && t.CPUPercent >= toolShare:
		return fmt.Sprintf("the machine's %d CPUs were %.0f%% busy while publishing (this tool %.0f%% of a core%s): the hub had less CPU than it could have used, so the figures may understate it (run the tool on another machine)",
			t.CPUs, t.MachineBusyPercent, t.CPUPercent, hub)
	case t.MachineBusyPercent < 0 && t.CPUs > 0 && t.CPUPercent >= 50*float64(t.CPUs):
		return fmt.Sprintf("this tool used %.0f%% of a core, half of this machine's %d CPUs: it may be what limits the figures", t.CPUPercent, t.CPUs)
	}
	return ""
}

func cpuPercent(cpu, wall time.Duration) float64 {
	if wall <= 0 {
		return 0
	}
	return 100 * float64(cpu) / float64(wall)
}
