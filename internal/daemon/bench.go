package daemon

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ssehub/ssehub/internal/loadgen"
)

const benchUsage = `Usage: ssehub bench [flags] URL [URL...]

Measures an SSE hub: opens --subscribers connections to it, publishes
--rate events a second for --duration through its publish API, and reports
connection times, deliveries per second, publish-to-receive latency, lost
and duplicated events, and the CPU and memory of the hub (with --server-pid)
and of this tool, so you can tell when the tool is the bottleneck.

URL is the hub's base URL (http://127.0.0.1:8080), its /events endpoint, or
a subscription URL (http://127.0.0.1:8080/events?topic=T). Subscribers GET
/events?topic=T and events are POSTed to /events. The topic is --topic, else
the URL's, else a new bench/<random> one, so runs do not mix.

Several URLs are the nodes of one cluster, nodes that share a Redis or
NATS Log: subscriber i connects to the (i mod n)th URL and reconnects
there, and events are published to the first URL, or to each in turn with
--publish-round-robin. Latency is then from a publish on one node to the
arrival from any node. With one URL, nothing changes.

Every event's data is one line of JSON, its publish time and number first:
  {"t":<Unix nanoseconds>,"seq":<0, 1, 2, ...>,"pad":"xxx..."}
With --no-publish the tool only subscribes and measures events that you
publish in this form (on this machine, so that clocks agree), seq going up
by one per event; loss counts from each subscriber's first event.

With --server-pid, the tool checks through /proc that the process holds
the socket listening at the URL's address, and warns (on stderr at the
start, and in the report) when it does not, naming the process that does,
or when it cannot tell: the hub's figures would be another process's.

For an https hub with a self-signed certificate, give that certificate
with --cacert. The only variable read is SSEHUB_CACERT, shared with the
other client commands.

Examples:
  ssehub serve --store memory & hub=$!
  ssehub bench --subscribers 1000 --rate 500 --server-pid $hub http://127.0.0.1:8080
  ssehub bench --subscribers 10000 --rate 20 --duration 30s --json http://127.0.0.1:8080 > run.json
  ssehub bench --subscribers 1000 --rate 100 http://127.0.0.1:8081 http://127.0.0.1:8082 http://127.0.0.1:8083

Exit status: 0 when the run completed or was stopped with Ctrl-C (the report
shows what was measured, loss included); 1 when it could not run (the hub
unreachable, no subscriber connected, nothing published); 2 for bad flags.

Flags:
`

// benchConfig is the validated configuration of "ssehub bench".
type benchConfig struct {
	opts loadgen.Options
	json bool
	tls  tlsFlags
}

// parseBench parses the flags of "ssehub bench".
func parseBench(args []string, stdout, stderr io.Writer) (benchConfig, int, bool) {
	var c benchConfig
	o := &c.opts
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.IntVar(&o.Subscribers, "subscribers", 100, "open this many subscriber `connections`")
	fs.Float64Var(&o.ConnectRate, "connect-rate", 1000, "open this many connections a second")
	fs.DurationVar(&o.ConnectTimeout, "connect-timeout", 10*time.Second, "give up on a connection whose response has not begun after this long")
	fs.Float64Var(&o.Rate, "rate", 10, "publish this many `events` a second")
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "publish (or, with --no-publish, measure) for this long")
	fs.IntVar(&o.Size, "size", 100, "each event's data is this many `bytes`")
	fs.BoolVar(&o.Gzip, "gzip", false, "subscribe with Accept-Encoding: gzip, and decode compressed streams")
	fs.IntVar(&o.Publishers, "publishers", 1, "at most this many publish requests in flight; events due meanwhile go in NDJSON batches")
	fs.DurationVar(&o.BatchEvery, "batch-every", 10*time.Millisecond, "send the events due this often, several as one NDJSON batch")
	fs.StringVar(&o.Topic, "topic", "", "subscribe and publish to this `topic` (default: the URL's, else bench/<random>)")
	fs.BoolVar(&o.NoPublish, "no-publish", false, "do not publish: measure the events others publish (see above)")
	fs.BoolVar(&o.PublishRoundRobin, "publish-round-robin", false, "with several URLs, publish to each in turn, not only to the first")
	warmup, drain := durationFlag{d: -1}, durationFlag{d: -1}
	fs.Var(&warmup, "warmup", "leave the first `duration` of publishing out of the steady-state rate (default: 1s or a tenth of --duration, if less)")
	fs.Var(&drain, "drain", "after publishing, wait up to this `duration` for events in flight (default 5s)")
	var sources string
	fs.StringVar(&sources, "source-ips", "", "connect from these local `addresses`, round-robin: a comma-separated list of IPs and CIDR prefixes (default: 127.0.0.2-127.0.0.254 for a loopback IPv4 hub)")
	fs.IntVar(&o.ServerPID, "server-pid", 0, "report the memory and CPU of the hub's process `pid` (Linux /proc)")
	fs.BoolVar(&c.json, "json", false, "print the report as JSON, and no progress on stdout")
	header := http.Header{}
	fs.Func("header", "add a request header `'Key: Value'` to every request (repeatable)", func(s string) error {
		return addHeader(header, s)
	})
	fs.StringVar(&o.IO, "io", "", "subscriber I/O: epoll (Linux, http) or goroutine (default: epoll where possible)")
	fs.IntVar(&o.Workers, "workers", 0, "epoll loops reading the subscribers (default: half the CPUs, at least 1)")
	fs.DurationVar(&o.PollEvery, "poll-every", 0, "with epoll I/O, poll the subscribers' sockets this often instead of sleeping in epoll_wait, so that the hub's writes wake no reader on this machine (0: sleep in epoll_wait)")
	c.tls.register(fs)
	withEnvHelp(fs)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), benchUsage)
		fs.PrintDefaults()
	}
	pos, code, ok := parseFlags(fs, args, stdout, stderr)
	if !ok {
		return c, code, false
	}
	fail := func(format string, a ...any) (benchConfig, int, bool) {
		fmt.Fprintf(stderr, "ssehub bench: "+format+"\n", a...)
		return c, exitUsage, false
	}
	if err := applyEnv(fs); err != nil {
		return fail("%v", err)
	}
	switch {
	case len(pos) == 0:
		return fail("want a URL, or several of one cluster's nodes (run 'ssehub bench -h')")
	case o.Subscribers < 1:
		return fail("--subscribers must be at least 1")
	case !(o.ConnectRate > 0) || o.ConnectRate > 1e9:
		return fail("--connect-rate must be a positive number")
	case o.ConnectTimeout <= 0:
		return fail("--connect-timeout must be positive")
	case !(o.Rate > 0) || o.Rate > 1e9:
		return fail("--rate must be a positive number")
	case o.Duration <= 0:
		return fail("--duration must be positive")
	case o.Size < minPayload || o.Size > 256<<10:
		return fail("--size must be between %d (what the time and number need) and %d", minPayload, 256<<10)
	case o.Publishers < 1:
		return fail("--publishers must be at least 1")
	case o.BatchEvery <= 0:
		return fail("--batch-every must be positive")
	case warmup.set && warmup.d < 0 || drain.set && drain.d < 0:
		return fail("--warmup and --drain must not be negative")
	case warmup.set && warmup.d >= o.Duration:
		return fail("--warmup must be shorter than --duration")
	case o.ServerPID < 0:
		return fail("--server-pid must be a process ID")
	case o.IO != "" && o.IO != loadgen.IOEpoll && o.IO != loadgen.IOGoroutine:
		return fail("--io must be epoll or goroutine, not %q", o.IO)
	case o.Workers < 0:
		return fail("--workers must not be negative")
	case o.PollEvery < 0 || o.PollEvery > time.Second:
		return fail("--poll-every must be between 0 and 1s")
	}
	// Zero means "none" on the command line, "default" in Options.
	if warmup.set {
		o.Warmup = cmpOr(warmup.d, -1)
	}
	if drain.set {
		o.Drain = cmpOr(drain.d, -1)
	}
	var topic string
	for i, raw := range pos {
		endpoint, t, err := benchURL(raw)
		if err != nil {
			return fail("%v", err)
		}
		if t != "" && topic != "" && t != topic {
			return fail("the URLs name different topics, %q and %q", topic, t)
		}
		topic = cmp.Or(topic, t)
		if i == 0 {
			o.URL = endpoint
		} else {
			o.URLs = append(o.URLs, endpoint)
		}
	}
	if o.Topic == "" {
		o.Topic = topic
	}
	if o.Topic == "" {
		if o.NoPublish {
			return fail("--no-publish needs the topic to measure: give --topic or a URL with ?topic=")
		}
		var b [4]byte
		rand.Read(b[:])
		o.Topic = "bench/" + hex.EncodeToString(b[:])
	}
	var err error
	if sources != "" {
		if o.SourceIPs, err = parseSources(sources); err != nil {
			return fail("--source-ips: %v", err)
		}
	}
	if len(header) > 0 {
		o.Header = header
	}
	if o.TLSConfig, err = c.tls.config("bench", stderr); err != nil {
		return fail("%v", err)
	}
	return c, 0, true
}

// minPayload is about the shortest data a payload can have: its time,
// number and padding take 42 bytes and the number's digits.
const minPayload = 50

func cmpOr(d, zero time.Duration) time.Duration {
	if d == 0 {
		return zero
	}
	return d
}

// A durationFlag is a duration flag that knows whether it was given.
type durationFlag struct {
	d   time.Duration
	set bool
}

func (f *durationFlag) String() string {
	if f == nil || !f.set {
		return ""
	}
	return f.d.String()
}

func (f *durationFlag) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return errors.New("parse error")
	}
	f.d, f.set = d, true
	return nil
}

// benchURL returns the events endpoint of the hub at raw, and the topic
// raw names, if it names one.
func benchURL(raw string) (endpoint, topic string, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", fmt.Errorf("URL %q: %v", raw, err)
	}
	q := u.Query()
	switch topics := q["topic"]; len(topics) {
	case 0:
	case 1:
		topic = topics[0]
	default:
		return "", "", fmt.Errorf("URL %q names %d topics; bench uses one", raw, len(topics))
	}
	q.Del("topic")
	u.RawQuery = q.Encode()
	endpoint, err = eventsURL(u.String())
	if err != nil {
		return "", "", fmt.Errorf("URL: %v", err)
	}
	return endpoint, topic, nil
}

// maxSources bounds the addresses --source-ips may expand to.
const maxSources = 1 << 16

// parseSources parses a comma-separated list of IP addresses and CIDR
// prefixes into addresses. An IPv4 prefix of /30 or wider leaves out its
// network and broadcast addresses.
func parseSources(s string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("%q is not an IP address", f)
			}
			out = append(out, a)
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR prefix", f)
		}
		p = p.Masked()
		hostBits := p.Addr().BitLen() - p.Bits()
		if hostBits > 16 {
			return nil, fmt.Errorf("%s holds more than %d addresses", p, maxSources)
		}
		a := p.Addr()
		for ; p.Contains(a); a = a.Next() {
			if p.Addr().Is4() && hostBits >= 2 && (a == p.Addr() || !p.Contains(a.Next())) {
				continue // network and broadcast addresses
			}
			out = append(out, a)
			if len(out) > maxSources {
				return nil, fmt.Errorf("more than %d addresses", maxSources)
			}
			if !a.Next().IsValid() {
				break
			}
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no address")
	}
	return out, nil
}

func runBench(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	c, code, ok := parseBench(args, stdout, stderr)
	if !ok {
		return code
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "ssehub bench: %s\n", strings.TrimPrefix(tlsHint(err).Error(), "loadgen: "))
		return exitFail
	}
	c.opts.Warn = func(s string) { fmt.Fprintf(stderr, "ssehub bench: WARNING: %s\n", s) }
	// Each subscriber is an open file: use all the process may have.
	if limit, err := loadgen.RaiseOpenFiles(); err == nil && limit > 0 && uint64(c.opts.Subscribers)+64 > limit {
		return fail(fmt.Errorf("%d subscribers need more open files than the limit of %d: raise the hard limit (ulimit -Hn) or lower --subscribers", c.opts.Subscribers, limit))
	}

	// Progress: a line redrawn in place on a terminal, a line a second
	// otherwise; with --json, only on a terminal's stderr.
	progressTo, tty := stdout, isTerminal(stdout)
	if c.json {
		progressTo, tty = stderr, isTerminal(stderr)
	}
	pp := &progressPrinter{w: progressTo, tty: tty}
	if !c.json || tty {
		c.opts.Progress = pp.print
		if tty {
			c.opts.ProgressEvery = 250 * time.Millisecond
		}
	}
	rep, err := loadgen.Run(ctx, &c.opts)
	pp.done()
	if rep == nil {
		return fail(err)
	}
	if err == nil || rep.Connected > 0 {
		if c.json {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			if werr := enc.Encode(rep); werr != nil {
				return fail(werr)
			}
		} else {
			writeReport(stdout, rep)
		}
	}
	if err != nil {
		return fail(err)
	}
	return exitOK
}

// A progressPrinter shows Progress as a line redrawn in place (tty) or
// as plain lines.
type progressPrinter struct {
	w     io.Writer
	tty   bool
	width int // of the line drawn last, on a tty
}

func (p *progressPrinter) print(pr loadgen.Progress) {
	var b strings.Builder
	fmt.Fprintf(&b, "%-10s %5.1fs", pr.Phase, pr.Elapsed.Seconds())
	if pr.Total > 0 {
		fmt.Fprintf(&b, "/%s", pr.Total)
	}
	fmt.Fprintf(&b, "  %s/%s connected", groupDigits(uint64(pr.Connected)), groupDigits(uint64(pr.Subscribers)))
	if pr.Phase != "connecting" {
		p99 := "-"
		if pr.Delivered > 0 {
			p99 = fmtMs(ms(pr.P99))
		}
		fmt.Fprintf(&b, "  %s events/s  p99 %s", groupDigits(uint64(pr.PerSecond+0.5)), p99)
	}
	line := b.String()
	if !p.tty {
		fmt.Fprintln(p.w, line)
		return
	}
	pad := max(0, p.width-len(line))
	p.width = len(line)
	fmt.Fprint(p.w, "\r"+line+strings.Repeat(" ", pad))
}

// done ends the line redrawn in place.
func (p *progressPrinter) done() {
	if p.tty && p.width > 0 {
		fmt.Fprint(p.w, "\r"+strings.Repeat(" ", p.width)+"\r")
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// writeReport writes rep for people.
func writeReport(w io.Writer, r *loadgen.Report) {
	p := func(label, format string, a ...any) {
		fmt.Fprintf(w, "  %-12s "+format+"\n", append([]any{label}, a...)...)
	}
	fmt.Fprintf(w, "ssehub bench: %s, topic %s\n", r.URL, r.Topic)
	if len(r.URLs) > 0 {
		to := "the first"
		if r.PublishRoundRobin {
			to = "each in turn"
		}
		fmt.Fprintf(w, "  and %s: subscribers spread over %d nodes, events published to %s\n", strings.Join(r.URLs, ", "), len(r.URLs)+1, to)
	}
	if r.Interrupted {
		fmt.Fprintf(w, "  interrupted after %.1fs: these figures cover what was measured; events in flight may count as lost\n", r.Elapsed)
	}
	p("subscribers", "%s of %s connected in %.1fs; connect time p50 %s, p99 %s, max %s",
		groupDigits(uint64(r.Connected)), groupDigits(uint64(r.Subscribers)), r.ConnectSeconds,
		fmtMs(r.ConnectTime.P50), fmtMs(r.ConnectTime.P99), fmtMs(r.ConnectTime.Max))
	if r.ConnectFailed > 0 {
		p("", "%s could not connect: %s", groupDigits(uint64(r.ConnectFailed)), r.ConnectError)
	}
	if r.Disconnects > 0 || r.Abandoned > 0 {
		p("", "%d streams ended early; %d reconnected with Last-Event-ID, %d refused", r.Disconnects, r.Reconnects, r.Abandoned)
	}
	pub := r.Publish
	if pub.External {
		p("published", "by others: %s events seen in %.1fs, %s/s", groupDigits(pub.Events), r.Duration, fmtRate(pub.Rate))
	} else {
		kind := "one event each"
		if pub.Batched > 0 {
			kind = fmt.Sprintf("%s NDJSON batches", groupDigits(pub.Batched))
		}
		p("published", "%s events of %d bytes: %s/s of %s/s asked; %s requests, %s",
			groupDigits(pub.Events), r.Size, fmtRate(pub.Rate), fmtRate(pub.TargetRate), groupDigits(pub.Requests), kind)
		if pub.Behind {
			p("", "THE PUBLISHER FELL BEHIND: %.0f%% of the asked rate, %s events never sent; the hub acknowledged too slowly (try --publishers)",
				100*pub.Rate/pub.TargetRate, groupDigits(pub.Unsent))
		}
		if pub.Failed > 0 {
			p("", "%s events failed to publish: %s", groupDigits(pub.Failed), pub.Error)
		}
	}
	p("delivered", "%s of %s expected; %s/s over the steady state (%.1fs-%.1fs)",
		groupDigits(r.Delivered), groupDigits(r.Expected), fmtRate(r.PerSecond), r.SteadyFrom, r.SteadyTo)
	l := r.Latency
	p("latency", "p50 %s  p90 %s  p99 %s  p99.9 %s  max %s", fmtMs(l.P50), fmtMs(l.P90), fmtMs(l.P99), fmtMs(l.P999), fmtMs(l.Max))
	p("lost", "%s", tally(r.Lost))
	if r.Undelivered.Total > 0 {
		p("undelivered", "%s when the run ended: late (still in flight after the drain) or lost at the end", tally(r.Undelivered))
	}
	p("duplicated", "%s", tally(r.Duplicated))
	if r.Foreign > 0 {
		p("foreign", "%s data lines were not payloads of this run", groupDigits(r.Foreign))
	}
	if r.Delivered > 0 {
		p("body bytes", "%s received, %.1f per delivery, all included (opening, replay, heartbeats); %s of %s streams gzip",
			groupDigits(r.BodyBytes), float64(r.BodyBytes)/float64(r.Delivered), groupDigits(r.Gzipped), groupDigits(uint64(r.Connected)+uint64(r.Reconnects)))
	}
	if s := r.Server; s != nil {
		if s.Warning != "" {
			p("server", "WARNING: %s", s.Warning)
		}
		if s.Error != "" {
			p("server", "pid %d: %s", s.PID, s.Error)
		} else {
			p("server", "pid %d: RSS %s before, %s connected (%.1f KiB per connection), %s at the end",
				s.PID, fmtKiB(s.RSSBeforeKiB), fmtKiB(s.RSSConnectedKiB), s.KiBPerConnection, fmtKiB(s.RSSAfterKiB))
			p("", "CPU %.0f%% of a core connecting, %.0f%% publishing", s.ConnectCPUPercent, s.CPUPercent)
		}
	}
	t := r.Tool
	model := t.IO + " I/O"
	if t.Workers > 0 {
		model += fmt.Sprintf(", %d loop", t.Workers)
		if t.Workers > 1 {
			model += "s"
		}
	}
	if t.PollEvery > 0 {
		model += ", polling every " + fmtMs(t.PollEvery)
	}
	p("this tool", "CPU %.0f%% of a core connecting, %.0f%% publishing; RSS %s connected, peak %s; %s",
		t.ConnectCPUPercent, t.CPUPercent, fmtKiB(t.RSSConnectedKiB), fmtKiB(t.MaxRSSKiB), model)
	if t.ArrivalTimes {
		p("", "data waited for this tool p50 %s, p99 %s, max %s (latency is to the arrival in the socket, without this wait)",
			fmtMs(t.ReadDelay.P50), fmtMs(t.ReadDelay.P99), fmtMs(t.ReadDelay.Max))
	}
	switch {
	case t.Warning != "":
		p("", "WARNING: %s", t.Warning)
	case t.MachineBusyPercent >= 0:
		p("", "the machine's %d CPUs were %.0f%% busy while publishing, all processes together", t.CPUs, t.MachineBusyPercent)
	}
}

func tally(t loadgen.Tally) string {
	if t.Total == 0 {
		return "0"
	}
	return fmt.Sprintf("%s, at %s subscribers (at most %s for one)", groupDigits(t.Total), groupDigits(uint64(t.Subscribers)), groupDigits(t.Max))
}

// groupDigits writes n with thousands separators: 1,234,567.
func groupDigits(n uint64) string {
	s := strconv.FormatUint(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func fmtRate(r float64) string {
	if r >= 100 {
		return groupDigits(uint64(r + 0.5))
	}
	return strconv.FormatFloat(r, 'f', 1, 64)
}

// fmtMs writes milliseconds with a sensible unit.
func fmtMs(v float64) string {
	switch {
	case v >= 1000:
		return fmt.Sprintf("%.2fs", v/1000)
	case v >= 10:
		return fmt.Sprintf("%.0fms", v)
	case v >= 1:
		return fmt.Sprintf("%.1fms", v)
	default:
		return fmt.Sprintf("%.0fµs", v*1000)
	}
}

func fmtKiB(k int64) string {
	if k >= 10<<10 {
		return fmt.Sprintf("%.0f MiB", float64(k)/1024)
	}
	return fmt.Sprintf("%.1f MiB", float64(k)/1024)
}
