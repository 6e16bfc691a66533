package daemon

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ssehub/ssehub/hub"
	"github.com/ssehub/ssehub/internal/web"
	"github.com/ssehub/ssehub/store/boltstore"
	"github.com/ssehub/ssehub/store/memstore"
)

const serveUsage = `Usage: ssehub serve [flags]

Runs the hub: publishers POST events to topics at /events, browsers
subscribe there with EventSource, and the console page is at /. Every flag
can also be set with the SSEHUB_* variable named after it.

Example:
  ssehub serve --addr 127.0.0.1:8080 --data-dir /var/lib/ssehub

With no signing key the hub runs open, and so only on a loopback address.

Flags:
`

// serveConfig is the validated configuration of "ssehub serve".
type serveConfig struct {
	addr      string
	store     string // "bolt" or "memory"
	dataDir   string
	retention hub.Retention
	heartbeat time.Duration
	retry     time.Duration
	queueSize int
	trimEvery time.Duration
}

// parseServe parses the flags and SSEHUB_* variables of "ssehub serve".
func parseServe(args []string, stdout, stderr io.Writer) (serveConfig, int, bool) {
	var c serveConfig
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.StringVar(&c.addr, "addr", "127.0.0.1:8080", "listen on this `host:port`")
	fs.StringVar(&c.store, "store", "bolt", "event store: bolt (durable, in --data-dir) or memory (lost on restart)")
	fs.StringVar(&c.dataDir, "data-dir", "ssehub-data", "directory of the bolt store")
	fs.IntVar(&c.retention.MaxCount, "retention-count", 1_000_000, "keep at most this many events (0: no count bound)")
	fs.DurationVar(&c.retention.MaxAge, "retention-age", 7*24*time.Hour, "drop events older than this (0: no age bound)")
	fs.DurationVar(&c.heartbeat, "heartbeat", 15*time.Second, "send a comment to idle subscribers this often")
	fs.DurationVar(&c.retry, "retry", 2*time.Second, "reconnection delay sent to subscribers (retry:)")
	fs.IntVar(&c.queueSize, "queue-size", 1024, "events queued per subscriber before a slow one is disconnected")
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
	case c.store != "bolt" && c.store != "memory":
		return fail("--store must be bolt or memory, not %q", c.store)
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
	}
	if err := checkOpenAddr(c.addr); err != nil {
		return fail("%v", err)
	}
	c.trimEvery = time.Minute
	return c, 0, true
}

// checkOpenAddr refuses an address that is not loopback: with no signing
// key the hub is open to anyone who can reach it.
func checkOpenAddr(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--addr %q: %v", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("refusing to listen on %q: with no signing key the hub is open to anyone, so it listens only on loopback (127.0.0.1, ::1, localhost)", addr)
}

func runServe(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	c, code, ok := parseServe(args, stdout, stderr)
	if !ok {
		return code
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	if err := serve(ctx, c, logger, nil); err != nil {
		fmt.Fprintf(stderr, "ssehub serve: %v\n", err)
		return exitFail
	}
	return exitOK
}

// serve runs the hub until ctx is done, then shuts down gracefully: it
// stops accepting, ends every stream so clients reconnect elsewhere, and
// closes the store. When ready is not nil, it receives the listening
// address once the hub accepts connections.
func serve(ctx context.Context, c serveConfig, logger *slog.Logger, ready chan<- net.Addr) error {
	log, err := openStore(c)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		log.Close()
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	h := hub.New(log, &hub.Options{
		Retry:      c.retry,
		Heartbeat:  c.heartbeat,
		QueueSize:  c.queueSize,
		Logger:     logger,
		Registerer: reg,
	})

	mux := http.NewServeMux()
	mux.Handle("/", web.Handler())
	mux.Handle("/events", h)
	mux.Handle("/healthz", h)
	mux.Handle("/readyz", h)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))

	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}

	runCtx, stopRun := context.WithCancel(context.Background())
	defer stopRun()
	var wg sync.WaitGroup
	runErr := make(chan error, 1)
	wg.Go(func() { runErr <- h.Run(runCtx) })
	wg.Go(func() { trimLoop(runCtx, log, c.retention, c.trimEvery, logger) })
	serveErr := make(chan error, 1)
	wg.Go(func() { serveErr <- srv.Serve(ln) })

	logger.Info("ssehub serving", "addr", "http://"+ln.Addr().String(), "store", c.store, "data_dir", c.dataDir,
		"retention_count", c.retention.MaxCount, "retention_age", c.retention.MaxAge)
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
	stopRun()
	wg.Wait()
	if err := log.Close(); err != nil && failure == nil {
		failure = fmt.Errorf("close store: %w", err)
	}
	logger.Info("stopped")
	return failure
}

// openStore opens the Log the configuration names.
func openStore(c serveConfig) (hub.Log, error) {
	if c.store == "memory" {
		return memstore.New(), nil
	}
	if err := os.MkdirAll(c.dataDir, 0o750); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	return boltstore.Open(filepath.Join(c.dataDir, "events.db"), nil)
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
