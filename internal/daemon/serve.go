package daemon

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/ssehub/ssehub/hub"
	"github.com/ssehub/ssehub/internal/web"
	"github.com/ssehub/ssehub/store/boltstore"
	"github.com/ssehub/ssehub/store/memstore"
)

const serveUsage = `Usage: ssehub serve [flags]

Runs the hub: publishers POST events to topics at /events, browsers
subscribe there with EventSource, and the console page is at /. Every flag
can also be set with the SSEHUB_* variable named after it.

Examples:
  ssehub serve --addr 127.0.0.1:8080 --data-dir /var/lib/ssehub

  ssehub serve --addr :443 --jwt-secret-file /etc/ssehub/jwt-secret \
    --tls-cert /etc/ssehub/cert.pem --tls-key /etc/ssehub/key.pem \
    --cors-origins https://app.example.com --data-dir /var/lib/ssehub

With no signing key the hub runs open: anyone who can reach it may
publish and subscribe. So it listens only on a loopback address, unless
--insecure-open says otherwise. With a key (--jwt-secret-file,
--jwt-public-key, --jwks-url), publishing needs a token, and private
events need one to be received. Publishers and subscribers may have keys
apart (--jwt-publisher-secret-file and --jwt-subscriber-secret-file, and
the same split for public keys and JWKS): a role's own keys replace the
shared ones for that role, so a token signed with a subscriber's key can
never publish.

The Mercure endpoint, /.well-known/mercure, serves Mercure's clients
(draft-dunglas-mercure-07: Symfony, API Platform) on the same hub, and
an event published on either endpoint reaches the subscribers of both.
It reads the mercure claim of tokens signed with the same keys. Mercure
clients often hold static tokens without exp, which are refused unless
--mercure-allow-no-exp; but such a token never expires, so a leaked one
grants its topics until its key is changed.

  ssehub serve --addr :443 --tls-cert cert.pem --tls-key key.pem \
    --jwt-publisher-secret-file /etc/ssehub/publisher-secret \
    --jwt-subscriber-secret-file /etc/ssehub/subscriber-secret

With --store redis (--redis-url) or --store nats (--nats-url), several
nodes share one history: run them behind any load balancer, without
sticky sessions; any node takes any publish and any subscriber, and a
client that reconnects to another node resumes from its Last-Event-ID
(docs/CLUSTER.md). --data-dir is not used by these stores. A node starts
even while its Redis or NATS is down: /readyz answers 503, and publishing
503 with Retry-After, until the server answers.

  ssehub serve --addr :8081 --store redis --redis-url redis://10.0.0.5:6379 --node-name a

With --tls-cert and --tls-key the hub serves HTTPS, and browsers get
HTTP/2, which carries all of a page's streams on one connection. Behind a
proxy that terminates TLS, --h2c serves HTTP/2 without TLS to a proxy that
speaks it with prior knowledge; HTTP/1.1 is still served.

A limit of 0 means the hub's default, given in parentheses.

Flags:
`

// sharedKeyFlags are the flags that configure a signing key of both
// roles, and keyFlags all those that configure a signing key.
const (
	sharedKeyFlags = "--jwt-secret, --jwt-secret-file, --jwt-public-key or --jwks-url"
	keyFlags       = sharedKeyFlags + ", or keys per role: --jwt-publisher-*, --jwt-subscriber-*, --jwks-publisher-url, --jwks-subscriber-url"
)

// serveConfig is the validated configuration of "ssehub serve".
type serveConfig struct {
	addr      string
	store     string // one of stores
	dataDir   string
	backend   backendFlags // --store redis and nats
	nodeName  string       // shown by the console; empty: host name and port
	retention hub.Retention
	heartbeat time.Duration
	retry     time.Duration
	queueSize int
	gzip      bool          // compress the streams of subscribers that accept gzip
	trimEvery time.Duration // how often retention runs
	log       logFlags

	jwt          jwtFlags
	tokenCookie  string // empty means hub.DefaultTokenCookie
	tokenQuery   bool
	noAnonymous  bool
	insecureOpen bool // listen beyond loopback with no key

	mercureCookie        string // empty means hub.DefaultMercureCookie
	mercureSubscriptions bool
	mercureHeartbeat     time.Duration

	corsOrigins []string // serialized as browsers send them, no duplicates
	corsMaxAge  time.Duration

	maxBody        int64
	limits         hub.Limits
	trustedProxies []netip.Prefix // masked and unmapped

	tlsCertFile, tlsKeyFile string
	tlsCert                 *tls.Certificate // loaded from the two files; nil serves plain HTTP
	h2c                     bool
	readHeaderTimeout       time.Duration // if zero, defaultReadHeaderTimeout

	metricsAddr string // serve /metrics here rather than on addr; empty: on addr
}

// Timeouts and sizes of the http.Server. There is deliberately no
// ReadTimeout or WriteTimeout: they would end every event stream. The hub
// bounds publish bodies and each write to a stream itself.
const (
	defaultReadHeaderTimeout = 10 * time.Second
	serverIdleTimeout        = 2 * time.Minute
	serverMaxHeaderBytes     = 64 << 10
)

// parseServe parses the flags and SSEHUB_* variables of "ssehub serve".
func parseServe(args []string, stdout, stderr io.Writer) (serveConfig, int, bool) {
	var c serveConfig
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.StringVar(&c.addr, "addr", "127.0.0.1:8080", "listen on this `host:port`")
	fs.StringVar(&c.store, "store", "bolt", "event store: bolt (durable, in --data-dir), memory (lost on restart), or, for a cluster of nodes sharing one history, redis (--redis-url) or nats (--nats-url)")
	fs.StringVar(&c.dataDir, "data-dir", "ssehub-data", "directory of the bolt store (not used by --store memory, redis or nats)")
	c.backend.register(fs)
	fs.StringVar(&c.nodeName, "node-name", "", "this node's `name`, shown by the console page (default: the host name and the port of --addr)")
	fs.IntVar(&c.retention.MaxCount, "retention-count", 1_000_000, "keep at most this many events (0: no count bound)")
	fs.DurationVar(&c.retention.MaxAge, "retention-age", 7*24*time.Hour, "drop events older than this (0: no age bound)")
	fs.DurationVar(&c.heartbeat, "heartbeat", 15*time.Second, "send a comment to idle subscribers this often")
	fs.DurationVar(&c.retry, "retry", 2*time.Second, "reconnection delay sent to subscribers (retry:)")
	fs.IntVar(&c.queueSize, "queue-size", 1024, "events queued per subscriber before a slow one is disconnected")
	fs.BoolVar(&c.gzip, "gzip", true, "gzip the streams of subscribers that accept it, each event compressed once and shared (--gzip=false: never)")
	fs.DurationVar(&c.trimEvery, "retention-interval", time.Minute, "apply --retention-count and --retention-age this often (and once at start)")
	c.log.register(fs)

	c.jwt.register(fs)
	fs.StringVar(&c.tokenCookie, "token-cookie", hub.DefaultTokenCookie, "cookie `name` a subscriber's token may be in (for EventSource withCredentials)")
	fs.BoolVar(&c.tokenQuery, "token-query", false, "accept a subscriber's token in the access_token query parameter (it leaks into proxy logs)")
	fs.BoolVar(&c.noAnonymous, "no-anonymous", false, "refuse subscribers without a token (needs a key)")
	fs.BoolVar(&c.insecureOpen, "insecure-open", false, "with no key, listen on a non-loopback address anyway: anyone who can reach the hub may publish")
	fs.StringVar(&c.mercureCookie, "mercure-cookie", hub.DefaultMercureCookie, "cookie `name` a Mercure client's token may be in")
	fs.BoolVar(&c.mercureSubscriptions, "mercure-subscriptions", false, "serve Mercure's active subscriptions: a private update on every subscription's start and end, and the API under /.well-known/mercure/subscriptions")
	fs.DurationVar(&c.mercureHeartbeat, "mercure-node-heartbeat", hub.DefaultNodeHeartbeat, "with --mercure-subscriptions, how often this node says in the store that it is alive; a node silent for three heartbeats is taken for dead and its subscriptions end")
	fs.Func("cors-origins", "comma-separated `origins` (https://app.example.com) whose pages may subscribe and publish with credentials; no *", func(s string) error {
		return addOrigins(&c.corsOrigins, s)
	})
	fs.DurationVar(&c.corsMaxAge, "cors-max-age", 0, "how long browsers may cache a preflight answer (0: 10m)")

	fs.Int64Var(&c.maxBody, "max-body", 0, "largest publish request body in `bytes` (0: 1 MiB)")
	fs.IntVar(&c.limits.MaxTopics, "max-topics", 0, "most topics one event may have (0: 64)")
	fs.IntVar(&c.limits.MaxSelectors, "max-selectors", 0, "most topic selectors one subscription may have (0: 64)")
	fs.IntVar(&c.limits.MaxSelectorBytes, "max-selector-bytes", 0, "longest topic or selector in bytes (0: 256)")
	fs.IntVar(&c.limits.MaxEventBytes, "max-event-bytes", 0, "largest event data in bytes (0: 256 KiB); a binary event's data is its payload in base64, a third larger, unless gzip made it smaller")
	fs.IntVar(&c.limits.MaxBinaryBytes, "max-binary-bytes", 0, "largest payload of a binary event in `bytes`, decoded (0: 1 MiB); its data, encoded, is bounded by --max-event-bytes too")
	fs.IntVar(&c.limits.MaxStreams, "max-streams", 0, "most event streams at once (0: 100000; -1: no bound)")
	fs.IntVar(&c.limits.MaxStreamsPerClient, "max-streams-per-client", 0, "most event streams one client address may hold (0: 1000; -1: no bound)")
	fs.Float64Var(&c.limits.PublishRate, "publish-rate", 0, "events a second one token may publish, sustained (0: 10000; -1: no bound)")
	fs.IntVar(&c.limits.PublishBurst, "publish-burst", 0, "most events one token may publish at once (0: one second of --publish-rate)")
	fs.DurationVar(&c.limits.BodyTimeout, "body-timeout", 0, "time allowed to read a publish body (0: 30s; -1s: no bound)")
	fs.IntVar(&c.limits.MaxReplay, "max-replay", 0, "most `events` one subscription request replays from history; a client further behind gets them, its stream ends, and its reconnection goes on from there (0: 50000; -1: no bound)")
	fs.Func("trusted-proxies", "comma-separated `IPs or CIDRs` of proxies whose X-Forwarded-For names the client", func(s string) error {
		return addPrefixes(&c.trustedProxies, s)
	})

	fs.StringVar(&c.tlsCertFile, "tls-cert", "", "serve HTTPS (and HTTP/2) with the certificate chain in this PEM `file` (needs --tls-key)")
	fs.StringVar(&c.tlsKeyFile, "tls-key", "", "private key of --tls-cert, a PEM `file`")
	fs.BoolVar(&c.h2c, "h2c", false, "serve HTTP/2 without TLS (prior knowledge), for a proxy that terminates TLS")
	fs.DurationVar(&c.readHeaderTimeout, "read-header-timeout", defaultReadHeaderTimeout, "close a connection whose request headers (or TLS handshake) take longer")
	fs.StringVar(&c.metricsAddr, "metrics-addr", "", "serve /metrics on this `host:port` (plain HTTP) instead of on --addr, to keep it off a public listener")
	withEnvHelp(fs)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), serveUsage)
		fs.PrintDefaults()
	}
	pos, code, ok := parseFlags(fs, args, stdout, stderr)
	if !ok {
		return c, code, false
	}
	fail := func(format string, a ...any) (serveConfig, int, bool) {
		fmt.Fprintf(stderr, "ssehub serve: "+format+"\n", a...)
		return c, exitUsage, false
	}
	if err := applyEnv(fs); err != nil {
		return fail("%v", err)
	}
	switch {
	case len(pos) > 0:
		return fail("unexpected argument %q (run 'ssehub serve -h')", pos[0])
	case !slices.Contains(stores, c.store):
		return fail("--store must be bolt, memory, redis or nats, not %q", c.store)
	case c.store == "bolt" && c.dataDir == "":
		return fail("--data-dir must not be empty with --store bolt")
	case c.retention.MaxCount < 0:
		return fail("--retention-count must not be negative")
	case c.retention.MaxAge < 0:
		return fail("--retention-age must not be negative")
	case c.heartbeat <= 0:
		return fail("--heartbeat must be positive")
	case c.retry <= 0:
		return fail("--retry must be positive")
	case c.queueSize <= 0:
		return fail("--queue-size must be positive")
	case c.trimEvery <= 0:
		return fail("--retention-interval must be positive")
	case c.tokenCookie != "" && (&http.Cookie{Name: c.tokenCookie, Value: "v"}).Valid() != nil:
		return fail("--token-cookie %q is not a cookie name (letters, digits and !#$%%&'*+-.^_`|~ only)", c.tokenCookie)
	case c.noAnonymous && !c.jwt.configured():
		return fail("--no-anonymous needs a key (%s): without one there are no tokens", keyFlags)
	case c.jwt.mercureAllowNoExp && !c.jwt.configured():
		return fail("--mercure-allow-no-exp needs a key (%s): without one no token is checked, with or without exp", keyFlags)
	case c.mercureHeartbeat < 100*time.Millisecond:
		return fail("--mercure-node-heartbeat %v: at least 100ms", c.mercureHeartbeat)
	case c.mercureCookie != "" && (&http.Cookie{Name: c.mercureCookie, Value: "v"}).Valid() != nil:
		return fail("--mercure-cookie %q is not a cookie name (letters, digits and !#$%%&'*+-.^_`|~ only)", c.mercureCookie)
	case c.corsMaxAge < 0:
		return fail("--cors-max-age must not be negative")
	case c.maxBody < 0:
		return fail("--max-body must not be negative")
	case c.limits.MaxTopics < 0:
		return fail("--max-topics must not be negative")
	case c.limits.MaxSelectors < 0:
		return fail("--max-selectors must not be negative")
	case c.limits.MaxSelectorBytes < 0:
		return fail("--max-selector-bytes must not be negative")
	case c.limits.MaxEventBytes < 0:
		return fail("--max-event-bytes must not be negative")
	case c.maxBody > 0 && int64(c.limits.MaxEventBytes) > c.maxBody:
		return fail("--max-event-bytes %d is more than --max-body %d allows", c.limits.MaxEventBytes, c.maxBody)
	case c.limits.MaxBinaryBytes < 0:
		return fail("--max-binary-bytes must not be negative")
	case int64(c.limits.MaxBinaryBytes) > cmp.Or(c.maxBody, hub.DefaultMaxBodyBytes):
		return fail("--max-binary-bytes %d is more than --max-body %d allows (a binary body is the payload itself)", c.limits.MaxBinaryBytes, cmp.Or(c.maxBody, hub.DefaultMaxBodyBytes))
	case c.limits.MaxStreams < -1:
		return fail("--max-streams must be -1 (no bound), 0 (the default) or positive")
	case c.limits.MaxStreamsPerClient < -1:
		return fail("--max-streams-per-client must be -1 (no bound), 0 (the default) or positive")
	case c.limits.MaxReplay < -1:
		return fail("--max-replay must be -1 (no bound), 0 (the default) or positive")
	case math.IsNaN(c.limits.PublishRate) || math.IsInf(c.limits.PublishRate, 0):
		return fail("--publish-rate must be a number of events a second")
	case c.limits.PublishRate < 0 && c.limits.PublishRate != -1:
		return fail("--publish-rate must be -1 (no bound), 0 (the default) or positive")
	case c.limits.PublishBurst < 0:
		return fail("--publish-burst must not be negative")
	case c.limits.BodyTimeout < 0 && c.limits.BodyTimeout != -time.Second:
		return fail("--body-timeout must be -1s (no bound), 0 (the default) or positive")
	case (c.tlsCertFile == "") != (c.tlsKeyFile == ""):
		return fail("--tls-cert and --tls-key go together: give both or neither")
	case c.h2c && c.tlsCertFile != "":
		return fail("--h2c is HTTP/2 without TLS; with --tls-cert HTTP/2 is negotiated already")
	case c.readHeaderTimeout <= 0:
		return fail("--read-header-timeout must be positive")
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if err := c.backend.check(c.store, set); err != nil {
		return fail("%v", err)
	}
	if err := checkAddr("addr", c.addr); err != nil {
		return fail("%v", err)
	}
	if c.metricsAddr != "" {
		if err := checkAddr("metrics-addr", c.metricsAddr); err != nil {
			return fail("%v", err)
		}
		if c.metricsAddr == c.addr {
			return fail("--metrics-addr is --addr: leave it empty to serve /metrics there")
		}
	}
	if err := c.jwt.check(); err != nil {
		return fail("%v", oneLine(err))
	}
	loopback, err := isLoopbackAddr(c.addr)
	if err != nil {
		return fail("%v", err)
	}
	if !loopback && !c.jwt.configured() && !c.insecureOpen {
		return fail("%v", errOpenAddr(c.addr))
	}
	if c.tlsCertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.tlsCertFile, c.tlsKeyFile)
		if err != nil {
			return fail("--tls-cert %s, --tls-key %s: %v", c.tlsCertFile, c.tlsKeyFile, oneLine(err))
		}
		c.tlsCert = &cert
	}
	return c, 0, true
}

// checkAddr checks that addr, the value of the flag --name, is host:port
// with a port from 0 to 65535, so that a typing mistake is reported as
// one, before anything is opened.
func checkAddr(name, addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--%s %q: %v; want host:port, like 127.0.0.1:8080", name, addr, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("--%s %q: the port must be a number from 0 to 65535", name, addr)
	}
	return nil
}

// isLoopbackAddr reports whether addr (host:port) is on a loopback
// interface only.
func isLoopbackAddr(addr string) (bool, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false, fmt.Errorf("--addr %q: %v", addr, err)
	}
	if host == "localhost" {
		return true, nil
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback(), nil
}

// errOpenAddr says why the hub will not listen on addr with no key, and
// the two ways out.
func errOpenAddr(addr string) error {
	return fmt.Errorf("refusing to listen on %q: with no signing key the hub is open to anyone, so it listens only on loopback (127.0.0.1, ::1, localhost); "+
		"configure a key (%s), or pass --insecure-open to accept an open hub", addr, keyFlags)
}

// addOrigins adds the comma-separated origins of s to *list, each as a
// browser serializes it in the Origin header, without duplicates.
func addOrigins(list *[]string, s string) error {
	for o := range strings.SplitSeq(s, ",") {
		o = strings.TrimSpace(o)
		if o == "" {
			continue
		}
		origin, err := parseOrigin(o)
		if err != nil {
			return err
		}
		if !slices.Contains(*list, origin) {
			*list = append(*list, origin)
		}
	}
	return nil
}

// parseOrigin checks that s is an origin, scheme://host[:port], and
// returns it the way a browser sends it: lower case, without the
// scheme's default port.
func parseOrigin(s string) (string, error) {
	const want = "want scheme://host[:port], like https://app.example.com"
	switch {
	case s == "*":
		return "", errors.New(`"*" is not allowed: the hub answers with credentials (cookies), which browsers never send to "*", and allowing every origin would let any page use a visitor's token; list the origins`)
	case s == "null":
		return "", errors.New(`"null" is not allowed: every sandboxed page and local file sends it`)
	case strings.Contains(s, "*"):
		return "", fmt.Errorf("%q: wildcards are not supported; list each origin", s)
	case strings.ContainsAny(s, "?#"):
		return "", fmt.Errorf("%q has a query or fragment; %s", s, want)
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("%q: %v; %s", s, err, want)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("%q: scheme must be http or https; %s", s, want)
	case u.Opaque != "" || u.Host == "" || u.Hostname() == "":
		return "", fmt.Errorf("%q has no host; %s", s, want)
	case u.User != nil:
		return "", fmt.Errorf("%q has a user name; %s", s, want)
	case u.Path != "":
		return "", fmt.Errorf("%q has a path (even a trailing / is one); %s", s, want)
	case strings.HasSuffix(u.Host, ":"):
		return "", fmt.Errorf("%q has an empty port; %s", s, want)
	}
	host := u.Hostname()
	for _, r := range host {
		if r >= utf8.RuneSelf {
			return "", fmt.Errorf("%q: write the host in the ASCII (xn--) form browsers send", s)
		}
	}
	host = strings.ToLower(host)
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	port := u.Port()
	if n, err := strconv.Atoi(port); port != "" && (err != nil || n < 1 || n > 65535) {
		return "", fmt.Errorf("%q: bad port; %s", s, want)
	}
	if (u.Scheme == "https" && port == "443") || (u.Scheme == "http" && port == "80") {
		port = ""
	}
	if port != "" {
		host += ":" + port
	}
	return u.Scheme + "://" + host, nil
}

// addPrefixes adds the comma-separated IP addresses and CIDR prefixes of s
// to *list. An address is a prefix of its full length. Prefixes are
// masked, and IPv4-mapped IPv6 ones are made IPv4, as the hub compares
// them with unmapped peer addresses.
func addPrefixes(list *[]netip.Prefix, s string) error {
	for v := range strings.SplitSeq(s, ",") {
		v = strings.TrimSpace(v)
		if v == "" {
			continue
		}
		var p netip.Prefix
		if strings.Contains(v, "/") {
			var err error
			if p, err = netip.ParsePrefix(v); err != nil {
				return fmt.Errorf("%q is not an IP address or CIDR prefix (like 10.0.0.0/8)", v)
			}
		} else {
			a, err := netip.ParseAddr(v)
			if err != nil || a.Zone() != "" {
				return fmt.Errorf("%q is not an IP address or CIDR prefix (like 10.0.0.0/8)", v)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if a := p.Addr(); a.Is4In6() {
			if p.Bits() < 96 {
				return fmt.Errorf("%q: an IPv4-mapped prefix must be /96 or longer", v)
			}
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		p = p.Masked()
		if !slices.Contains(*list, p) {
			*list = append(*list, p)
		}
	}
	return nil
}

// oneLine joins the lines of err's message, so that a usage error stays
// one line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

func runServe(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	c, code, ok := parseServe(args, stdout, stderr)
	if !ok {
		return code
	}
	if err := serve(ctx, c, c.log.logger(stderr), nil); err != nil {
		fmt.Fprintf(stderr, "ssehub serve: %v\n", err)
		return exitFail
	}
	return exitOK
}

// serve runs the hub until ctx is done, then shuts down gracefully: it
// stops accepting, ends every stream so clients reconnect elsewhere, and
// closes the store. When ready is not nil, it receives the listening
// address once the hub accepts connections.
//
// It takes what it needs in the order that reports a mistake soonest and
// touches the least: the ports first (a port in use fails before the
// store is opened), then the store, then the signing key (which may be
// fetched over the network).
func serve(ctx context.Context, c serveConfig, logger *slog.Logger, ready chan<- net.Addr) error {
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return fmt.Errorf("--addr %s: %w", c.addr, listenErr(err))
	}
	var mln net.Listener // the metrics listener, if apart
	if c.metricsAddr != "" {
		if mln, err = net.Listen("tcp", c.metricsAddr); err != nil {
			ln.Close()
			return fmt.Errorf("--metrics-addr %s: %w", c.metricsAddr, listenErr(err))
		}
	}
	closeListeners := func() {
		ln.Close()
		if mln != nil {
			mln.Close()
		}
	}

	log, err := openStore(c, logger)
	if err != nil {
		closeListeners()
		return err
	}

	// The verifier lives until the hub has stopped (it may refresh a key
	// set meanwhile), but a signal while it starts (fetching a key set)
	// stops it too.
	authCtx, stopAuth := context.WithCancel(context.WithoutCancel(ctx))
	defer stopAuth()
	stopEarly := context.AfterFunc(ctx, stopAuth)
	tokens, releaseTokens, err := c.jwt.verifiers(authCtx, logger)
	stopEarly()
	if err != nil {
		closeListeners()
		log.Close()
		return err
	}
	defer releaseTokens()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	h := hub.New(log, hubOptions(c, tokens, logger, reg))

	mux := http.NewServeMux()
	// The console answers "/" and its assets, and is the catch-all: any
	// other path is a 404 problem that names it.
	node := c.nodeName
	if node == "" {
		node = defaultNodeName(ln.Addr())
	}
	mux.Handle("/", web.NewHandler(&web.Options{TokenCookie: cmp.Or(c.tokenCookie, hub.DefaultTokenCookie), Node: node}))
	mux.Handle("/events", h.EventsHandler())
	mux.Handle(hub.MercurePath, h.MercureHandler())
	subs := h.MercureSubscriptionsHandler() // 404 unless --mercure-subscriptions
	for _, p := range []string{"", "/{topic}", "/{topic}/{subscriber}"} {
		mux.Handle(hub.MercurePath+"/subscriptions"+p, subs)
	}
	mux.Handle("/healthz", h.HealthHandler())
	mux.Handle("/readyz", h.ReadyHandler())
	metrics := http.NewServeMux()
	metrics.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	var msrv *http.Server // serves metrics on mln
	if mln == nil {
		mux.Handle("GET /metrics", metrics)
	} else {
		msrv = newServer(serveConfig{readHeaderTimeout: c.readHeaderTimeout}, metrics, logger) // plain HTTP/1.1
	}

	srv := newServer(c, mux, logger)
	scheme, http2 := "http", "off"
	switch {
	case c.tlsCert != nil:
		scheme, http2 = "https", "negotiated"
	case c.h2c:
		http2 = "h2c"
	}

	runCtx, stopRun := context.WithCancel(context.Background())
	defer stopRun()
	var wg sync.WaitGroup
	runErr := make(chan error, 1)
	wg.Go(func() { runErr <- h.Run(runCtx) })
	wg.Go(func() { trimLoop(runCtx, log, c.retention, c.trimEvery, logger) })
	serveErr := make(chan error, 1)
	wg.Go(func() {
		if c.tlsCert != nil {
			serveErr <- srv.ServeTLS(ln, "", "") // the certificate is in srv.TLSConfig
		} else {
			serveErr <- srv.Serve(ln)
		}
	})
	metricsErr := make(chan error, 1)
	if msrv != nil {
		wg.Go(func() { metricsErr <- msrv.Serve(mln) })
		logger.Info("metrics served apart", "addr", "http://"+mln.Addr().String()+"/metrics")
	}

	auth := "off"
	if tokens.on() {
		auth = "on"
	}
	cors := "none"
	if len(c.corsOrigins) > 0 {
		cors = strings.Join(c.corsOrigins, ",")
	}
	st := buildStamp()
	start := []any{"version", st.version, "revision", cmp.Or(st.revision, "unknown"),
		"addr", scheme + "://" + ln.Addr().String(), "http2", http2, "auth", auth, "cors_origins", cors, "store", c.store}
	if c.store == "bolt" {
		start = append(start, "data_dir", c.dataDir)
	}
	start = append(start, c.backend.describe(c.store)...)
	start = append(start, "node", node)
	start = append(start, "retention_count", c.retention.MaxCount, "retention_age", c.retention.MaxAge, "retention_interval", c.trimEvery)
	logger.Info("ssehub serving", start...)
	if !tokens.on() && c.insecureOpen {
		logger.Warn("--insecure-open: the hub has no signing key, so anyone who can reach it can publish and subscribe; configure "+keyFlags,
			"addr", ln.Addr().String())
	}
	if c.retention == (hub.Retention{}) {
		logger.Warn("retention is unbounded: history grows until the disk is full (--retention-count 0 --retention-age 0)")
	}
	if ready != nil {
		ready <- ln.Addr()
	}

	var failure error
	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case err := <-runErr:
		failure = fmt.Errorf("hub stopped: %w", err)
	case err := <-serveErr:
		failure = err
	case err := <-metricsErr:
		failure = fmt.Errorf("metrics: %w", err)
	}

	// Stop accepting, end the streams (clients reconnect elsewhere), then
	// wait for the other handlers.
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Shutdown(shutCtx); err != nil {
		logger.Warn("ending streams", "err", err)
	}
	if err := srv.Shutdown(shutCtx); err != nil {
		logger.Warn("closing connections", "err", err)
		srv.Close()
	}
	if msrv != nil {
		if err := msrv.Shutdown(shutCtx); err != nil {
			msrv.Close()
		}
	}
	stopRun()
	wg.Wait()
	if err := log.Close(); err != nil && failure == nil {
		failure = fmt.Errorf("close store: %w", err)
	}
	logger.Info("stopped")
	return failure
}

// hubOptions returns the hub.Options of c, with the verifiers of its
// keys.
func hubOptions(c serveConfig, tokens tokenVerifiers, logger *slog.Logger, reg prometheus.Registerer) *hub.Options {
	o := &hub.Options{
		Retry:          c.retry,
		Heartbeat:      c.heartbeat,
		QueueSize:      c.queueSize,
		Gzip:           c.gzip,
		MaxBodyBytes:   c.maxBody,
		TokenCookie:    c.tokenCookie,
		TokenQuery:     c.tokenQuery,
		NoAnonymous:    c.noAnonymous,
		CORSOrigins:    c.corsOrigins,
		CORSMaxAge:     c.corsMaxAge,
		Limits:         c.limits,
		Mercure:        hub.MercureOptions{Cookie: c.mercureCookie, Subscriptions: c.mercureSubscriptions, NodeHeartbeat: c.mercureHeartbeat},
		TrustedProxies: c.trustedProxies,
		Logger:         logger,
		Registerer:     reg,
	}
	// Never a nil *Verifier in an interface: the hub would take it for one.
	if tokens.on() {
		o.PublisherTokens = tokens.publish
		o.SubscriberTokens = tokens.subscribe
		o.Mercure.PublisherTokens = tokens.mercurePublish
		o.Mercure.SubscriberTokens = tokens.mercureSubscribe
	}
	return o
}

// newServer returns the http.Server of c for handler: HTTPS with HTTP/2
// when c has a certificate, HTTP/1.1 and HTTP/2 with prior knowledge
// when c.h2c, otherwise HTTP/1.1.
//
// A client must send its request headers (or finish its TLS handshake,
// or send the HTTP/2 preface) within the read-header timeout, so one
// that trickles them cannot hold a connection. There is no ReadTimeout
// or WriteTimeout: they would end every event stream.
func newServer(c serveConfig, handler http.Handler, logger *slog.Logger) *http.Server {
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: cmp.Or(c.readHeaderTimeout, defaultReadHeaderTimeout),
		IdleTimeout:       serverIdleTimeout,
		MaxHeaderBytes:    serverMaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	switch {
	case c.tlsCert != nil:
		// ServeTLS offers h2 and http/1.1 by ALPN.
		srv.TLSConfig = &tls.Config{
			Certificates: []tls.Certificate{*c.tlsCert},
			MinVersion:   tls.VersionTLS12,
		}
	case c.h2c:
		var p http.Protocols
		p.SetHTTP1(true)
		p.SetUnencryptedHTTP2(true)
		srv.Protocols = &p
	}
	return srv
}

// listenErr returns the reason of a net.Listen error, without the
// operation and address its message repeats ("listen tcp ADDR: ").
func listenErr(err error) error {
	if oe, ok := errors.AsType[*net.OpError](err); ok && oe.Err != nil {
		return oe.Err
	}
	return err
}

// openStore opens the Log the configuration names. The bolt store logs
// to logger.
func openStore(c serveConfig, logger *slog.Logger) (hub.Log, error) {
	switch c.store {
	case "memory":
		return memstore.New(), nil
	case "redis", "nats":
		return c.backend.open(c.store, logger)
	}
	if err := os.MkdirAll(c.dataDir, 0o750); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	path := filepath.Join(c.dataDir, "events.db")
	st, err := boltstore.Open(path, &boltstore.Options{Logger: logger})
	if errors.Is(err, bolterrors.ErrTimeout) {
		// bbolt waited for the file lock in vain: another process (most
		// likely another ssehub serve) has the store open.
		return nil, fmt.Errorf("another process holds the data dir %s (%s is locked): stop it, or give this hub another --data-dir", c.dataDir, path)
	}
	return st, err
}

// defaultNodeName names a node after its host and the port it listens
// on, which tells apart the nodes of a cluster on one machine too.
func defaultNodeName(addr net.Addr) string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	port := addr.String()
	if a, ok := addr.(*net.TCPAddr); ok {
		port = strconv.Itoa(a.Port)
	}
	return net.JoinHostPort(host, port)
}

// trimLoop applies retention every interval until ctx is done.
func trimLoop(ctx context.Context, log hub.Log, r hub.Retention, every time.Duration, logger *slog.Logger) {
	if r == (hub.Retention{}) {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		n, err := log.Trim(ctx, r)
		switch {
		case err != nil && ctx.Err() == nil:
			logger.Warn("retention", "err", err)
		case n > 0:
			logger.Info("retention removed events", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
