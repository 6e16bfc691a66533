package daemon

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"html"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ssehub/ssehub/eventsource"
	"github.com/ssehub/ssehub/hub"
	"github.com/ssehub/ssehub/hub/jwtauth"
)

func TestServeFlags(t *testing.T) {
	certFile, keyFile := writeTestCert(t)
	notPEM := filepath.Join(t.TempDir(), "not.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "missing.pem")
	pubSecret, subSecret, shortSecret := secretFile(t, publisherSecret), secretFile(t, subscriberSecret), secretFile(t, "tiny-secret\n")
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string // in the one-line error
	}{
		{"unknown store", []string{"serve", "--store", "mongo"}, nil, "bolt, memory, redis or nats"},
		{"public address", []string{"serve", "--addr", "0.0.0.0:8080"}, nil, "loopback"},
		{"all interfaces", []string{"serve", "--addr", ":8080"}, nil, "loopback"},
		{"bad address", []string{"serve", "--addr", "nope"}, nil, "--addr"},
		{"bad address with a key", []string{"serve", "--addr", "nope", "--jwt-secret", "0123456789abcdef0123456789abcdef"}, nil, "--addr"},
		{"negative count", []string{"serve", "--retention-count", "-1"}, nil, "retention-count"},
		{"zero heartbeat", []string{"serve", "--heartbeat", "0s"}, nil, "heartbeat"},
		{"zero queue", []string{"serve", "--queue-size", "0"}, nil, "queue-size"},
		{"stray argument", []string{"serve", "extra"}, nil, "extra"},
		{"bad env", []string{"serve"}, map[string]string{"SSEHUB_QUEUE_SIZE": "lots"}, "SSEHUB_QUEUE_SIZE"},
		{"env public address", []string{"serve"}, map[string]string{"SSEHUB_ADDR": "192.0.2.1:80"}, "loopback"},
		{"default command", []string{"--store", "mongo"}, nil, "bolt, memory, redis or nats"},

		{"redis without url", []string{"serve", "--store", "redis"}, nil, "--store redis needs --redis-url"},
		{"redis url not redis", []string{"serve", "--store", "redis", "--redis-url", "http://127.0.0.1:6379"}, nil, "not a redis:// or rediss:// URL"},
		{"redis url without host", []string{"serve", "--store", "redis", "--redis-url", "redis://"}, nil, "not a redis:// or rediss:// URL"},
		{"redis url password hidden", []string{"serve", "--store", "redis", "--redis-url", "http://u:s3cret@h:1"}, nil, "u:xxxxx@h"},
		{"redis prefix with a brace", []string{"serve", "--store", "redis", "--redis-url", "redis://h:1", "--redis-prefix", "a}b"}, nil, "--redis-prefix"},
		{"redis cacert without tls", []string{"serve", "--store", "redis", "--redis-url", "redis://h:1", "--redis-cacert", "ca.pem"}, nil, "rediss://"},
		{"redis flag with bolt", []string{"serve", "--redis-url", "redis://h:1"}, nil, "--redis-url is for --store redis, not --store bolt"},
		{"redis env with memory", []string{"serve", "--store", "memory"}, map[string]string{"SSEHUB_REDIS_PREFIX": "p"}, "--redis-prefix is for --store redis"},
		{"nats without url", []string{"serve", "--store", "nats"}, nil, "--store nats needs --nats-url"},
		{"nats url not nats", []string{"serve", "--store", "nats", "--nats-url", "redis://h:1"}, nil, "not a list of nats:// or tls:// URLs"},
		{"nats url second bad", []string{"serve", "--store", "nats", "--nats-url", "nats://h:1,h2:2"}, nil, "not a list of nats:// or tls:// URLs"},
		{"nats token in url hidden", []string{"serve", "--store", "nats", "--nats-url", "http://tok3n@h:1"}, nil, "xxxxx@h"},
		{"nats stream with a dot", []string{"serve", "--store", "nats", "--nats-url", "nats://h:1", "--nats-stream", "a.b"}, nil, "--nats-stream"},
		{"nats zero replicas", []string{"serve", "--store", "nats", "--nats-url", "nats://h:1", "--nats-replicas", "0"}, nil, "--nats-replicas must be 1 to 5"},
		{"nats missing creds", []string{"serve", "--store", "nats", "--nats-url", "nats://h:1", "--nats-creds", missing}, nil, "--nats-creds"},
		{"nats flag with redis", []string{"serve", "--store", "redis", "--redis-url", "redis://h:1", "--nats-stream", "S"}, nil, "--nats-stream is for --store nats, not --store redis"},

		{"cors star", []string{"serve", "--cors-origins", "*"}, nil, "credentials"},
		{"cors star in a list", []string{"serve", "--cors-origins", "https://a.example, *"}, nil, `"*" is not allowed`},
		{"cors star from env", []string{"serve"}, map[string]string{"SSEHUB_CORS_ORIGINS": "*"}, "SSEHUB_CORS_ORIGINS"},
		{"cors null", []string{"serve", "--cors-origins", "null"}, nil, "sandboxed"},
		{"cors wildcard host", []string{"serve", "--cors-origins", "https://*.example.com"}, nil, "wildcards"},
		{"cors path", []string{"serve", "--cors-origins", "https://a.example/app"}, nil, "path"},
		{"cors trailing slash", []string{"serve", "--cors-origins", "https://a.example/"}, nil, "trailing /"},
		{"cors query", []string{"serve", "--cors-origins", "https://a.example?x=1"}, nil, "query"},
		{"cors fragment", []string{"serve", "--cors-origins", "https://a.example#top"}, nil, "fragment"},
		{"cors no scheme", []string{"serve", "--cors-origins", "a.example"}, nil, "scheme"},
		{"cors host and port without scheme", []string{"serve", "--cors-origins", "a.example:8080"}, nil, "scheme"},
		{"cors other scheme", []string{"serve", "--cors-origins", "ftp://a.example"}, nil, "http or https"},
		{"cors user", []string{"serve", "--cors-origins", "https://me@a.example"}, nil, "user"},
		{"cors no host", []string{"serve", "--cors-origins", "https://"}, nil, "no host"},
		{"cors empty port", []string{"serve", "--cors-origins", "https://a.example:"}, nil, "port"},
		{"cors bad port", []string{"serve", "--cors-origins", "https://a.example:99999"}, nil, "port"},
		{"cors unicode host", []string{"serve", "--cors-origins", "https://bücher.example"}, nil, "xn--"},
		{"negative cors max age", []string{"serve", "--cors-max-age", "-1s"}, nil, "--cors-max-age"},

		{"half a tls pair: cert", []string{"serve", "--tls-cert", certFile}, nil, "both or neither"},
		{"half a tls pair: key", []string{"serve", "--tls-key", keyFile}, nil, "both or neither"},
		{"half a tls pair from env", []string{"serve"}, map[string]string{"SSEHUB_TLS_CERT": certFile}, "both or neither"},
		{"missing cert file", []string{"serve", "--tls-cert", missing, "--tls-key", keyFile}, nil, "missing.pem"},
		{"cert not pem", []string{"serve", "--tls-cert", notPEM, "--tls-key", keyFile}, nil, "--tls-cert"},
		{"key and cert swapped", []string{"serve", "--tls-cert", keyFile, "--tls-key", certFile}, nil, "--tls-cert"},
		{"h2c with tls", []string{"serve", "--h2c", "--tls-cert", certFile, "--tls-key", keyFile}, nil, "--h2c"},
		{"zero read header timeout", []string{"serve", "--read-header-timeout", "0s"}, nil, "--read-header-timeout"},

		{"bad proxy", []string{"serve", "--trusted-proxies", "proxy.example"}, nil, "proxy.example"},
		{"bad cidr bits", []string{"serve", "--trusted-proxies", "10.0.0.0/33"}, nil, "10.0.0.0/33"},
		{"bad cidr in a list", []string{"serve", "--trusted-proxies", "10.0.0.1, 10.0.0.0/x"}, nil, "10.0.0.0/x"},
		{"proxy with a zone", []string{"serve", "--trusted-proxies", "fe80::1%eth0"}, nil, "fe80::1%eth0"},
		{"proxy with a port", []string{"serve", "--trusted-proxies", "10.0.0.1:80"}, nil, "10.0.0.1:80"},
		{"short mapped prefix", []string{"serve", "--trusted-proxies", "::ffff:10.0.0.0/64"}, nil, "/96"},
		{"bad proxy from env", []string{"serve"}, map[string]string{"SSEHUB_TRUSTED_PROXIES": "10.0.0.0/8,nope"}, "SSEHUB_TRUSTED_PROXIES"},

		{"negative body", []string{"serve", "--max-body", "-1"}, nil, "--max-body"},
		{"negative topics", []string{"serve", "--max-topics", "-1"}, nil, "--max-topics"},
		{"negative selectors", []string{"serve", "--max-selectors", "-1"}, nil, "--max-selectors"},
		{"negative selector bytes", []string{"serve", "--max-selector-bytes", "-5"}, nil, "--max-selector-bytes"},
		{"negative event bytes", []string{"serve", "--max-event-bytes", "-1"}, nil, "--max-event-bytes"},
		{"event larger than body", []string{"serve", "--max-body", "1000", "--max-event-bytes", "2000"}, nil, "--max-event-bytes"},
		{"negative binary bytes", []string{"serve", "--max-binary-bytes", "-1"}, nil, "--max-binary-bytes"},
		{"binary larger than body", []string{"serve", "--max-body", "1000", "--max-binary-bytes", "2000"}, nil, "--max-binary-bytes 2000 is more than --max-body 1000"},
		{"binary larger than the default body", []string{"serve", "--max-binary-bytes", "2000000"}, nil, "--max-body 1048576"},
		{"binary larger than body from env", []string{"serve"}, map[string]string{"SSEHUB_MAX_BINARY_BYTES": "1048577"}, "--max-binary-bytes 1048577"},
		{"streams below -1", []string{"serve", "--max-streams", "-2"}, nil, "--max-streams"},
		{"per-client streams below -1", []string{"serve", "--max-streams-per-client", "-2"}, nil, "--max-streams-per-client"},
		{"replay budget below -1", []string{"serve", "--max-replay", "-2"}, nil, "--max-replay"},
		{"rate below -1", []string{"serve", "--publish-rate", "-0.5"}, nil, "--publish-rate"},
		{"rate not a number", []string{"serve", "--publish-rate", "NaN"}, nil, "--publish-rate"},
		{"rate infinite", []string{"serve", "--publish-rate", "+Inf"}, nil, "--publish-rate"},
		{"negative burst", []string{"serve", "--publish-burst", "-1"}, nil, "--publish-burst"},
		{"body timeout below -1s", []string{"serve", "--body-timeout", "-2s"}, nil, "--body-timeout"},
		{"not a number", []string{"serve", "--max-streams", "many"}, nil, "-max-streams"},

		{"no anonymous without a key", []string{"serve", "--no-anonymous"}, nil, "--no-anonymous"},
		{"bad cookie name", []string{"serve", "--token-cookie", "my token"}, nil, "--token-cookie"},
		{"open without the flag", []string{"serve", "--addr", "0.0.0.0:0"}, nil, "--insecure-open"},

		// Keys per role, and the Mercure endpoint.
		{"publisher key, subscribers none", []string{"serve", "--jwt-publisher-secret-file", pubSecret}, nil,
			"publishers have keys of their own but subscribers have none: give subscribers theirs (--jwt-subscriber-secret-file, --jwt-subscriber-public-key or --jwks-subscriber-url) or shared keys"},
		{"subscriber key from env, publishers none", []string{"serve", "--addr", "0.0.0.0:0"}, map[string]string{"SSEHUB_JWT_SUBSCRIBER_SECRET_FILE": subSecret},
			"subscribers have keys of their own but publishers have none"},
		{"subscriber JWKS, publishers none", []string{"serve", "--jwks-subscriber-url", "https://idp.example/jwks"}, nil, "publishers have none"},
		{"shared keys of no role", []string{"serve", "--jwt-secret-file", pubSecret, "--jwt-publisher-secret-file", pubSecret, "--jwt-subscriber-secret-file", subSecret}, nil,
			"the shared keys (--jwt-secret, --jwt-secret-file, --jwt-public-key or --jwks-url) would serve no one"},
		{"short publisher secret", []string{"serve", "--jwt-secret-file", subSecret, "--jwt-publisher-secret-file", shortSecret}, nil,
			"the publishers' JWT secret (--jwt-publisher-secret-file) is 11 bytes; use at least 32"},
		{"missing subscriber secret", []string{"serve", "--jwt-secret-file", subSecret, "--jwt-subscriber-secret-file", missing}, nil, "--jwt-subscriber-secret-file: open"},
		{"missing subscriber public key", []string{"serve", "--jwt-secret-file", pubSecret, "--jwt-subscriber-public-key", missing}, nil, "--jwt-subscriber-public-key: open"},
		{"publisher public key not PEM", []string{"serve", "--jwt-secret-file", pubSecret, "--jwt-publisher-public-key", notPEM}, nil, "--jwt-publisher-public-key " + notPEM + ": no PEM public key found"},
		{"subscriber JWKS over plain http", []string{"serve", "--jwks-subscriber-url", "http://idp.example.com/jwks"}, nil, "plain http is allowed only on loopback"},
		{"publisher JWKS from env over plain http", []string{"serve"}, map[string]string{"SSEHUB_JWKS_PUBLISHER_URL": "http://idp.example.com/jwks"}, "SSEHUB_JWKS_PUBLISHER_URL"},
		{"no exp without a key", []string{"serve", "--mercure-allow-no-exp"}, nil, "--mercure-allow-no-exp needs a key"},
		{"no exp from env without a key", []string{"serve"}, map[string]string{"SSEHUB_MERCURE_ALLOW_NO_EXP": "true"}, "--mercure-allow-no-exp needs a key"},
		{"bad mercure cookie", []string{"serve", "--mercure-cookie", "my token"}, nil, `--mercure-cookie "my token" is not a cookie name`},
		{"bad mercure cookie from env", []string{"serve"}, map[string]string{"SSEHUB_MERCURE_COOKIE": "a;b"}, "--mercure-cookie"},
		{"mercure heartbeat too short", []string{"serve", "--mercure-node-heartbeat", "10ms"}, nil, "--mercure-node-heartbeat 10ms: at least 100ms"},

		// --addr is checked before anything is opened (--store memory, so
		// that a regression cannot leave a data directory behind).
		{"port out of range", []string{"serve", "--store", "memory", "--addr", "127.0.0.1:99999"}, nil, "from 0 to 65535"},
		{"port out of range with a key", []string{"serve", "--store", "memory", "--addr", "127.0.0.1:65536", "--jwt-secret", testSecret}, nil, "from 0 to 65535"},
		{"port not a number", []string{"serve", "--store", "memory", "--addr", "127.0.0.1:http"}, nil, "from 0 to 65535"},
		{"port signed", []string{"serve", "--store", "memory", "--addr", "127.0.0.1:+80"}, nil, "from 0 to 65535"},
		{"no port", []string{"serve", "--store", "memory", "--addr", "127.0.0.1:"}, nil, "from 0 to 65535"},
		{"port out of range from env", []string{"serve", "--store", "memory"}, map[string]string{"SSEHUB_ADDR": "localhost:70000"}, "from 0 to 65535"},
		{"metrics port out of range", []string{"serve", "--store", "memory", "--metrics-addr", "127.0.0.1:99999"}, nil, "--metrics-addr"},

		{"zero retention interval", []string{"serve", "--retention-interval", "0s"}, nil, "--retention-interval must be positive"},
		{"negative retention interval", []string{"serve", "--retention-interval", "-1m"}, nil, "--retention-interval must be positive"},
		{"retention interval from env", []string{"serve"}, map[string]string{"SSEHUB_RETENTION_INTERVAL": "0s"}, "--retention-interval must be positive"},
		{"bad log format", []string{"serve", "--log-format", "xml"}, nil, "text or json"},
		{"bad log level", []string{"serve", "--log-level", "verbose"}, nil, "debug, info, warn or error"},
		{"bad log format from env", []string{"serve"}, map[string]string{"SSEHUB_LOG_FORMAT": "logfmt"}, "SSEHUB_LOG_FORMAT"},
		{"bad log level from env", []string{"serve"}, map[string]string{"SSEHUB_LOG_LEVEL": "trace"}, "SSEHUB_LOG_LEVEL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			checkFails(t, tt.args, exitUsage, tt.want)
		})
	}
}

// TestServeOpenAddrMessage checks that the refusal to listen open beyond
// loopback names both ways out.
func TestServeOpenAddrMessage(t *testing.T) {
	_, _, stderr := runMain(t, "serve", "--addr", "192.0.2.1:80")
	for _, want := range []string{"192.0.2.1:80", "--jwt-secret", "--jwt-secret-file", "--jwt-public-key", "--jwks-url", "--insecure-open"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr %q lacks %q", stderr, want)
		}
	}
}

// TestServeHubOptions checks that every flag and variable reaches the
// hub.Options, normalized.
func TestServeHubOptions(t *testing.T) {
	// The defaults are the hub's: zero values.
	c, _, ok := parseServe(nil, io.Discard, io.Discard)
	if !ok {
		t.Fatal("parseServe with no flags failed")
	}
	got := hubOptions(c, tokenVerifiers{}, nil, nil)
	want := &hub.Options{Retry: 2 * time.Second, Heartbeat: 15 * time.Second, QueueSize: 1024, Gzip: true, TokenCookie: hub.DefaultTokenCookie,
		Mercure: hub.MercureOptions{Cookie: hub.DefaultMercureCookie, NodeHeartbeat: hub.DefaultNodeHeartbeat}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("default hubOptions =\n%+v\nwant\n%+v", got, want)
	}
	if c.tlsCert != nil || c.h2c || c.insecureOpen {
		t.Errorf("defaults: TLS %v, h2c %v, insecure-open %v; want all off", c.tlsCert != nil, c.h2c, c.insecureOpen)
	}

	certFile, keyFile := writeTestCert(t)
	t.Setenv("SSEHUB_PUBLISH_BURST", "40")
	t.Setenv("SSEHUB_TRUSTED_PROXIES", "192.0.2.1") // the flag wins
	c, code, ok := parseServe([]string{
		"--store", "memory",
		"--jwt-secret", "0123456789abcdef0123456789abcdef", "--token-cookie", "tok", "--token-query", "--no-anonymous",
		"--cors-origins", "HTTPS://App.Example:443, http://localhost:3000,https://app.example",
		"--cors-origins", "http://[::1]:80",
		"--cors-max-age", "1h",
		"--max-body", "4096", "--max-topics", "3", "--max-selectors", "4", "--max-selector-bytes", "5",
		"--max-event-bytes", "1024", "--max-binary-bytes", "2048", "--max-streams", "-1", "--max-streams-per-client", "7",
		"--publish-rate", "2.5", "--body-timeout", "5s", "--max-replay", "1000",
		"--trusted-proxies", "10.1.2.3/8, 127.0.0.1,::1 ,::ffff:172.16.0.0/108,2001:db8::/32",
		"--tls-cert", certFile, "--tls-key", keyFile,
		"--read-header-timeout", "3s",
		"--mercure-cookie", "mc", "--mercure-subscriptions", "--mercure-node-heartbeat", "3s",
		"--gzip=false",
	}, io.Discard, io.Discard)
	if !ok {
		t.Fatalf("parseServe failed with status %d", code)
	}
	got = hubOptions(c, tokenVerifiers{}, nil, nil)
	want = &hub.Options{
		Retry: 2 * time.Second, Heartbeat: 15 * time.Second, QueueSize: 1024,
		MaxBodyBytes: 4096,
		TokenCookie:  "tok", TokenQuery: true, NoAnonymous: true,
		CORSOrigins: []string{"https://app.example", "http://localhost:3000", "http://[::1]"},
		CORSMaxAge:  time.Hour,
		Limits: hub.Limits{
			MaxTopics: 3, MaxSelectors: 4, MaxSelectorBytes: 5, MaxEventBytes: 1024, MaxBinaryBytes: 2048,
			MaxStreams: -1, MaxStreamsPerClient: 7, PublishRate: 2.5, PublishBurst: 40,
			BodyTimeout: 5 * time.Second, MaxReplay: 1000,
		},
		TrustedProxies: []netip.Prefix{
			netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.1/32"),
			netip.MustParsePrefix("::1/128"), netip.MustParsePrefix("172.16.0.0/12"),
			netip.MustParsePrefix("2001:db8::/32"),
		},
		Mercure: hub.MercureOptions{Cookie: "mc", Subscriptions: true, NodeHeartbeat: 3 * time.Second},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("hubOptions =\n%+v\nwant\n%+v", got, want)
	}
	if c.tlsCert == nil || c.tlsCert.Leaf == nil {
		t.Error("the TLS pair was not loaded")
	}
	srv := newServer(c, http.NotFoundHandler(), slog.New(slog.DiscardHandler))
	if srv.ReadHeaderTimeout != 3*time.Second || srv.ReadTimeout != 0 || srv.WriteTimeout != 0 {
		t.Errorf("server timeouts: read header %v, read %v, write %v; want 3s, 0, 0 (a read or write timeout would end every stream)",
			srv.ReadHeaderTimeout, srv.ReadTimeout, srv.WriteTimeout)
	}
	if srv.IdleTimeout <= 0 || srv.MaxHeaderBytes <= 0 {
		t.Errorf("server idle timeout %v, max header bytes %d; want both set", srv.IdleTimeout, srv.MaxHeaderBytes)
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent use, for logs.
type syncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestServeInsecureOpen checks the rule for non-loopback addresses: with
// no key the hub refuses them unless --insecure-open is given, and then
// warns; with a key it needs no flag. The hub binds all interfaces, but
// the test reaches it only over loopback.
func TestServeInsecureOpen(t *testing.T) {
	const addr = "0.0.0.0:0"
	tests := []struct {
		name     string
		args     []string
		wantWarn bool
		wantAuth string
	}{
		{"insecure open", []string{"--insecure-open"}, true, "auth=off"},
		{"insecure open from env", []string{"SSEHUB_INSECURE_OPEN=true"}, true, "auth=off"},
		// Needs the JWT verifier (authflags.go).
		{"with a key", []string{"--jwt-secret", "0123456789abcdef0123456789abcdef"}, false, "auth=on"},
		{"with keys per role", []string{"SSEHUB_JWT_PUBLISHER_SECRET_FILE=" + secretFile(t, publisherSecret), "--jwt-subscriber-secret-file", secretFile(t, subscriberSecret)}, false, "auth=on"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"--addr", addr, "--store", "memory"}
			for _, a := range tt.args {
				if k, v, ok := strings.Cut(a, "="); ok && strings.HasPrefix(k, "SSEHUB_") {
					t.Setenv(k, v)
					continue
				}
				args = append(args, a)
			}
			var errOut strings.Builder
			c, code, ok := parseServe(args, io.Discard, &errOut)
			if !ok {
				t.Fatalf("parseServe(%q): status %d, %s", args, code, errOut.String())
			}
			var logs syncBuffer
			base, stop := startServeLogging(t, c, slog.New(slog.NewTextHandler(&logs, nil)))
			resp, err := http.Get(base + "/healthz")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if err := stop(); err != nil {
				t.Errorf("serve returned %v; want nil", err)
			}
			out := logs.String()
			warned := strings.Contains(out, "level=WARN") && strings.Contains(out, "--insecure-open")
			if warned != tt.wantWarn {
				t.Errorf("warned about --insecure-open: %v; want %v. Logs:\n%s", warned, tt.wantWarn, out)
			}
			if !strings.Contains(out, tt.wantAuth) {
				t.Errorf("logs lack %q:\n%s", tt.wantAuth, out)
			}
		})
	}
}

func TestServeEnvAndFlagPrecedence(t *testing.T) {
	t.Setenv("SSEHUB_QUEUE_SIZE", "7")
	t.Setenv("SSEHUB_STORE", "memory")
	t.Setenv("SSEHUB_RETRY", "5s")
	c, code, ok := parseServe([]string{"--retry", "1s"}, io.Discard, io.Discard)
	if !ok {
		t.Fatalf("parseServe failed with status %d", code)
	}
	if c.queueSize != 7 || c.store != "memory" {
		t.Errorf("from the environment: queue size %d, store %q; want 7, memory", c.queueSize, c.store)
	}
	if c.retry != time.Second {
		t.Errorf("retry = %v; want 1s: a flag wins over SSEHUB_RETRY", c.retry)
	}
}

// startServe runs serve with c and returns its base URL and a function
// that stops it and returns serve's error.
func startServe(t *testing.T, c serveConfig) (string, func() error) {
	t.Helper()
	return startServeLogging(t, c, slog.New(slog.DiscardHandler))
}

// startServeLogging is startServe with serve's logs going to logger. The
// base URL is https when c has a certificate, and on loopback even when
// the hub listens on all interfaces.
func startServeLogging(t *testing.T, c serveConfig, logger *slog.Logger) (string, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	done := make(chan struct{})
	var err error // set before done is closed
	go func() {
		defer close(done)
		err = serve(ctx, c, logger, ready)
	}()
	select {
	case addr := <-ready:
		stop := func() error {
			cancel()
			select {
			case <-done:
				return err
			case <-time.After(20 * time.Second):
				t.Fatal("serve did not return within 20s of cancellation")
				return nil
			}
		}
		t.Cleanup(func() { cancel(); <-done })
		base := loopbackBase(c, addr)
		waitReadyClient(t, testClient(t, c), base)
		return base, stop
	case <-done:
		cancel()
		t.Fatalf("serve: %v", err)
	case <-time.After(20 * time.Second):
		cancel()
		t.Fatal("serve did not start within 20s")
	}
	return "", nil
}

// loopbackBase returns the URL of the hub c configures listening on addr,
// reached over loopback: a hub listening on all interfaces is reached at
// 127.0.0.1.
func loopbackBase(c serveConfig, addr net.Addr) string {
	scheme := "http"
	if c.tlsCert != nil {
		scheme = "https"
	}
	ap := addr.(*net.TCPAddr).AddrPort()
	ip := ap.Addr().Unmap()
	if ip.IsUnspecified() {
		ip = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	}
	return scheme + "://" + netip.AddrPortFrom(ip, ap.Port()).String()
}

// waitReady polls /readyz until the hub says it is ready, for up to 20s.
func waitReady(t *testing.T, base string) {
	t.Helper()
	waitReadyClient(t, http.DefaultClient, base)
}

// waitReadyClient is waitReady with client.
func waitReadyClient(t *testing.T, client *http.Client, base string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := client.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/readyz not 200 after 20s (last error %v)", base, err)
		}
		time.Sleep(20 * time.Millisecond) // polling a server this test does not control
	}
}

func testServeConfig(t *testing.T, addr string) serveConfig {
	return serveConfig{
		addr: addr, store: "bolt", dataDir: t.TempDir(),
		retention: hub.Retention{MaxCount: 1000, MaxAge: time.Hour},
		heartbeat: time.Second, retry: 50 * time.Millisecond, queueSize: 64, trimEvery: time.Minute,
	}
}

// TestServeEndToEnd publishes with "ssehub publish", receives with an
// EventSource, restarts the hub on the same data directory, and resumes
// with Last-Event-ID: nothing acknowledged is lost across the restart.
func TestServeEndToEnd(t *testing.T) {
	c := testServeConfig(t, "127.0.0.1:0")
	base, stop := startServe(t, c)

	code, stdout, stderr := runMain(t, "publish", "--url", base, "--topic", "news/eu", "--type", "headline", "--data", "first")
	if code != exitOK {
		t.Fatalf("publish: status %d, stderr %q", code, stderr)
	}
	firstID := strings.TrimSpace(stdout)
	if firstID == "" {
		t.Fatal("publish printed no ID")
	}
	if err := stop(); err != nil {
		t.Fatalf("serve returned %v after cancellation; want nil", err)
	}

	// Same data directory, and the same port so a client could resume.
	c.addr = strings.TrimPrefix(base, "http://")
	base, _ = startServe(t, c)
	var in strings.Builder
	in.WriteString("second\n\nthird\n")
	code, stdout, stderr = runMainIn(t, strings.NewReader(in.String()), "publish", "--url", base, "--topic", "news/us")
	if code != exitOK {
		t.Fatalf("publish from stdin: status %d, stderr %q", code, stderr)
	}
	if ids := strings.Fields(stdout); len(ids) != 2 {
		t.Fatalf("publish from stdin printed %q; want 2 IDs (the empty line is skipped)", stdout)
	}

	es, err := eventsource.New(base+"/events?topic=news/**", &eventsource.Options{LastEventID: firstID})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var got []string
	for ev := range es.Events(ctx) {
		if ev.IsMessage() {
			got = append(got, ev.Type+":"+ev.Data)
			if len(got) == 2 {
				break
			}
		}
	}
	if want := "message:second message:third"; strings.Join(got, " ") != want {
		t.Errorf("resumed after %s and got %q; want %q", firstID, strings.Join(got, " "), want)
	}
}

func TestServeEndpoints(t *testing.T) {
	base, _ := startServe(t, testServeConfig(t, "127.0.0.1:0"))
	for _, tt := range []struct {
		path, wantType string
		wantIn         string
	}{
		{"/", "text/html", "<"},
		{"/healthz", "", ""},
		{"/readyz", "", ""},
		{"/metrics", "text/plain", "ssehub_"},
	} {
		resp, err := http.Get(base + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: status %d; want 200", tt.path, resp.StatusCode)
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, tt.wantType) {
			t.Errorf("GET %s: Content-Type %q; want %q", tt.path, ct, tt.wantType)
		}
		if !strings.Contains(string(body), tt.wantIn) {
			t.Errorf("GET %s: body lacks %q", tt.path, tt.wantIn)
		}
	}
}

// TestPublishDataFromEnv checks that SSEHUB_PUBLISH_DATA counts as
// --data: the event is published once, with the given ID, and stdin is
// not read.
func TestPublishDataFromEnv(t *testing.T) {
	base, _ := startServe(t, testServeConfig(t, "127.0.0.1:0"))
	t.Setenv("SSEHUB_PUBLISH_DATA", "from env")
	code, stdout, stderr := runMainIn(t, strings.NewReader("not read\n"), "publish", "--url", base, "--topic", "a", "--id", "env-1")
	if code != exitOK || stdout != "env-1\n" {
		t.Errorf("publish with SSEHUB_PUBLISH_DATA: status %d, stdout %q, stderr %q; want 0 and the ID env-1", code, stdout, stderr)
	}
}

func TestPublishErrors(t *testing.T) {
	base, _ := startServe(t, testServeConfig(t, "127.0.0.1:0"))
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no topic", []string{"publish", "--url", base, "--data", "x"}, exitUsage, "--topic"},
		{"id without data", []string{"publish", "--url", base, "--topic", "a", "--id", "x"}, exitUsage, "--id"},
		{"bad url", []string{"publish", "--url", "ftp://x", "--topic", "a", "--data", "x"}, exitUsage, "--url"},
		{"injected type", []string{"publish", "--url", base, "--topic", "a", "--type", "x\ndata: evil", "--data", "x"}, exitFail, "400"},
		{"bad topic", []string{"publish", "--url", base, "--topic", "a//b", "--data", "x"}, exitFail, "400"},
		{"hub down", []string{"publish", "--url", "http://127.0.0.1:1", "--topic", "a", "--data", "x", "--retry-for", "0"}, exitFail, "127.0.0.1:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkFails(t, tt.args, tt.code, tt.want) })
	}
}

// TestPublishToken: against a hub with keys, publish needs --token (or
// SSEHUB_TOKEN), and waits out a 429 for the Retry-After the hub gives.
func TestPublishToken(t *testing.T) {
	c := testServeConfig(t, "127.0.0.1:0")
	c.jwt.secret = testSecret
	c.limits.PublishRate, c.limits.PublishBurst = 1, 1
	base, _ := startServe(t, c)
	tok, err := jwtauth.Mint([]byte(testSecret), jwtauth.Claims{Publish: []string{"chat/*"}, Expires: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}

	checkFails(t, []string{"publish", "--url", base, "--topic", "chat/a", "--data", "x"}, exitFail, "401")
	checkFails(t, []string{"publish", "--url", base, "--topic", "other", "--data", "x", "--token", tok}, exitFail, "403")
	code, stdout, stderr := runMain(t, "publish", "--url", base, "--topic", "chat/a", "--data", "x", "--token", tok)
	if code != exitOK || !strings.HasSuffix(stdout, "-1\n") {
		t.Fatalf("publish --token: status %d, stdout %q, stderr %q; want 0 and an ID R-1", code, stdout, stderr)
	}
	// The token's budget (1 event, 1 a second) is spent: the hub answers
	// 429 with Retry-After 1, and publish sends again after it.
	t.Setenv("SSEHUB_TOKEN", tok)
	start := time.Now()
	code, stdout, stderr = runMain(t, "publish", "--url", base, "--topic", "chat/a", "--data", "y")
	if code != exitOK || !strings.HasSuffix(stdout, "-1\n") {
		t.Fatalf("publish with SSEHUB_TOKEN: status %d, stdout %q, stderr %q; want 0 and an ID R-1", code, stdout, stderr)
	}
	if took := time.Since(start); took < 500*time.Millisecond {
		t.Errorf("published after %v; want it to have waited for the Retry-After", took)
	}
}

// TestServeMetricsApart: with --metrics-addr, /metrics is served there
// and no longer on the hub's own address.
func TestServeMetricsApart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0") // find a free port
	if err != nil {
		t.Fatal(err)
	}
	maddr := ln.Addr().String()
	ln.Close()
	c := testServeConfig(t, "127.0.0.1:0")
	c.metricsAddr = maddr
	base, _ := startServe(t, c)

	get := func(url string) (int, string) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("http://" + maddr + "/metrics"); code != 200 || !strings.Contains(body, "ssehub_connections") {
		t.Errorf("GET /metrics on --metrics-addr = %d (%d bytes); want 200 with ssehub_ metrics", code, len(body))
	}
	if code, _ := get(base + "/metrics"); code != http.StatusNotFound {
		t.Errorf("GET /metrics on --addr = %d; want 404", code)
	}
	if code, _ := get("http://" + maddr + "/events?topic=a"); code != http.StatusNotFound {
		t.Errorf("GET /events on --metrics-addr = %d; want 404", code)
	}
	checkFails(t, []string{"serve", "--metrics-addr", "nope"}, exitUsage, "--metrics-addr")
	checkFails(t, []string{"serve", "--addr", "127.0.0.1:9", "--metrics-addr", "127.0.0.1:9"}, exitUsage, "--metrics-addr is --addr")
}

// TestServeHelp checks that "ssehub serve -h" lists the flags added for
// operators, each with its variable.
func TestServeHelp(t *testing.T) {
	code, stdout, stderr := runMain(t, "serve", "-h")
	if code != exitOK || stderr != "" {
		t.Fatalf("serve -h: status %d, stderr %q; want 0 and nothing", code, stderr)
	}
	for _, want := range []string{
		"-retention-interval duration",
		"(and once at start) [$SSEHUB_RETENTION_INTERVAL] (default 1m0s)",
		"-log-format format",
		"text (key=value pairs) or json (one object a line) [$SSEHUB_LOG_FORMAT] (default text)",
		"-log-level level",
		"one line per publish and per subscription start and end",
		"[$SSEHUB_LOG_LEVEL] (default info)",
		"-jwt-publisher-secret-file file",
		"[$SSEHUB_JWT_PUBLISHER_SECRET_FILE]",
		"-jwt-subscriber-secret-file file",
		"[$SSEHUB_JWT_SUBSCRIBER_SECRET_FILE]",
		"-jwt-publisher-public-key files",
		"[$SSEHUB_JWT_PUBLISHER_PUBLIC_KEY]",
		"-jwt-subscriber-public-key files",
		"[$SSEHUB_JWT_SUBSCRIBER_PUBLIC_KEY]",
		"-jwks-publisher-url URL",
		"[$SSEHUB_JWKS_PUBLISHER_URL]",
		"-jwks-subscriber-url URL",
		"[$SSEHUB_JWKS_SUBSCRIBER_URL]",
		"-mercure-allow-no-exp",
		"never expires, so a leaked one grants its topics until its key is changed (needs a key) [$SSEHUB_MERCURE_ALLOW_NO_EXP]",
		"-mercure-cookie name",
		"[$SSEHUB_MERCURE_COOKIE] (default \"mercureAuthorization\")",
		"-mercure-subscriptions",
		"[$SSEHUB_MERCURE_SUBSCRIPTIONS]",
		"-mercure-node-heartbeat duration",
		"[$SSEHUB_MERCURE_NODE_HEARTBEAT] (default 10s)",
		"-gzip",
		"[$SSEHUB_GZIP] (default true)",
		"/.well-known/mercure",
		"-max-binary-bytes bytes",
		"largest payload of a binary event in bytes, decoded (0: 1 MiB); its data, encoded, is bounded by --max-event-bytes too [$SSEHUB_MAX_BINARY_BYTES]",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("serve -h lacks %q:\n%s", want, stdout)
		}
	}
}

// TestServeNewFlags checks that the flags and variables of retention and
// logging reach the configuration.
func TestServeNewFlags(t *testing.T) {
	c := parseServeTest(t)
	if c.trimEvery != time.Minute || c.log != (logFlags{format: "text", level: "info"}) {
		t.Errorf("defaults: retention interval %v, log %+v; want 1m, text at info", c.trimEvery, c.log)
	}
	c = parseServeTest(t, "--retention-interval", "5s", "--log-format", "JSON", "--log-level", "debug")
	if c.trimEvery != 5*time.Second || c.log != (logFlags{format: "json", level: "debug"}) {
		t.Errorf("flags: retention interval %v, log %+v; want 5s, json at debug", c.trimEvery, c.log)
	}
	t.Setenv("SSEHUB_RETENTION_INTERVAL", "90s")
	t.Setenv("SSEHUB_LOG_FORMAT", "json")
	t.Setenv("SSEHUB_LOG_LEVEL", "warn")
	t.Setenv("SSEHUB_GZIP", "false")
	c = parseServeTest(t, "--log-level", "error")
	if c.gzip {
		t.Errorf("SSEHUB_GZIP=false: gzip on; want off")
	}
	if c.trimEvery != 90*time.Second || c.log != (logFlags{format: "json", level: "error"}) {
		t.Errorf("variables: retention interval %v, log %+v; want 90s, json at error (the flag wins)", c.trimEvery, c.log)
	}
}

// TestServeDataDirLocked: a second hub on the data directory of a running
// one says that another process holds it, in one line, and exits 1.
func TestServeDataDirLocked(t *testing.T) {
	c := testServeConfig(t, "127.0.0.1:0")
	startServe(t, c)
	start := time.Now()
	checkFails(t, []string{"serve", "--addr", "127.0.0.1:0", "--data-dir", c.dataDir}, exitFail, "another process holds the data dir "+c.dataDir)
	t.Logf("the second hub gave up after %v", time.Since(start).Round(time.Millisecond))
}

// TestServePortInUse: a port in use is reported as such, before the
// store is touched, so the data directory is not even created.
func TestServePortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dataDir := filepath.Join(t.TempDir(), "data")
	checkFails(t, []string{"serve", "--addr", ln.Addr().String(), "--data-dir", dataDir}, exitFail, "--addr "+ln.Addr().String()+": bind: address already in use")
	if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
		t.Errorf("stat %s: %v; want it not to exist: the store was opened before the port was bound", dataDir, err)
	}

	// The same for the metrics listener.
	dataDir = filepath.Join(t.TempDir(), "data")
	checkFails(t, []string{"serve", "--addr", "127.0.0.1:0", "--metrics-addr", ln.Addr().String(), "--data-dir", dataDir},
		exitFail, "--metrics-addr "+ln.Addr().String()+": bind: address already in use")
	if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
		t.Errorf("stat %s: %v; want it not to exist", dataDir, err)
	}
}

// TestServeStartLine checks the line a hub logs when it starts: it names
// the data directory only when there is one.
func TestServeStartLine(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		want      []string
		wantNot   string
		wantStore string
	}{
		{"memory", []string{"--store", "memory"}, []string{"store=memory", "retention_interval=1m0s"}, "data_dir", "memory"},
		{"bolt", []string{"--data-dir", "DIR", "--retention-interval", "2m"}, []string{"store=bolt", "data_dir=DIR", "retention_interval=2m0s"}, "", "bolt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			args := []string{"--addr", "127.0.0.1:0"}
			for _, a := range tt.args {
				args = append(args, strings.ReplaceAll(a, "DIR", dir))
			}
			c, code, ok := parseServe(args, io.Discard, io.Discard)
			if !ok {
				t.Fatalf("parseServe(%q): status %d", args, code)
			}
			var logs syncBuffer
			_, stop := startServeLogging(t, c, slog.New(slog.NewTextHandler(&logs, nil)))
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			var line string
			for l := range strings.Lines(logs.String()) {
				if strings.Contains(l, `msg="ssehub serving"`) {
					line = l
				}
			}
			if line == "" {
				t.Fatalf("no start line in\n%s", logs.String())
			}
			for _, want := range tt.want {
				if !strings.Contains(line, strings.ReplaceAll(want, "DIR", dir)) {
					t.Errorf("start line %q lacks %q", line, strings.ReplaceAll(want, "DIR", dir))
				}
			}
			if tt.wantNot != "" && strings.Contains(line, tt.wantNot) {
				t.Errorf("start line %q has %q; want it only with --store bolt", line, tt.wantNot)
			}
			if !strings.Contains(line, "version=") || !strings.Contains(line, "revision=") {
				t.Errorf("start line %q lacks the version and revision", line)
			}
		})
	}
}

// A mainHub is "ssehub serve" run by Main, as from a shell.
type mainHub struct {
	base string      // http://127.0.0.1:PORT
	logs *syncBuffer // its stderr
	stop func() int  // cancels Main's context and returns its status
}

// startMain runs Main with args, which must run a hub on 127.0.0.1:0,
// and returns once the hub has logged its start line. The hub is stopped
// when the test ends, if it has not been.
func startMain(t *testing.T, args ...string) mainHub {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs := new(syncBuffer)
	done := make(chan int, 1)
	go func() { done <- Main(ctx, args, strings.NewReader(""), io.Discard, logs) }()
	var once sync.Once
	var code int
	stop := func() int {
		once.Do(func() {
			cancel()
			select {
			case code = <-done:
			case <-time.After(20 * time.Second):
				t.Errorf("ssehub %q did not return within 20s of cancellation", args)
				code = -1
			}
		})
		return code
	}
	t.Cleanup(func() { stop() })
	addr := regexp.MustCompile(`addr"?[=:]"?http://(127\.0\.0\.1:[0-9]+)`)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if m := addr.FindStringSubmatch(logs.String()); m != nil {
			return mainHub{base: "http://" + m[1], logs: logs, stop: stop}
		}
		select {
		case code := <-done:
			t.Fatalf("ssehub %q exited with status %d: %s", args, code, logs.String())
		case <-time.After(10 * time.Millisecond): // polling the log of a hub starting
		}
		if time.Now().After(deadline) {
			t.Fatalf("ssehub %q logged no start line within 20s: %s", args, logs.String())
		}
	}
}

// TestServeLogLevels runs a hub with JSON logs at debug level: every line
// is a JSON object, and a subscription logs its start at DEBUG. At info
// level the same subscription logs nothing.
func TestServeLogLevels(t *testing.T) {
	for _, level := range []string{"debug", "info"} {
		t.Run(level, func(t *testing.T) {
			h := startMain(t, "serve", "--addr", "127.0.0.1:0", "--store", "memory", "--log-format", "json", "--log-level", level)
			// Before Run tails the store, a stream opens and ends at once,
			// unregistered: nothing to log.
			waitReady(t, h.base)
			resp, err := http.Get(h.base + "/events?topic=logs/a")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil {
				t.Fatalf("read the stream's first line: %v", err)
			}
			resp.Body.Close()
			// Once Main has returned, every handler has, and logged what
			// it would.
			if code := h.stop(); code != exitOK {
				t.Fatalf("serve exited with status %d", code)
			}
			var subscribed []map[string]any
			for line := range strings.Lines(h.logs.String()) {
				var rec map[string]any
				if err := json.Unmarshal([]byte(line), &rec); err != nil {
					t.Fatalf("log line %q is not JSON: %v", line, err)
				}
				if rec["msg"] == "subscribed" {
					subscribed = append(subscribed, rec)
				}
			}
			if level == "info" {
				if len(subscribed) != 0 {
					t.Errorf("at info level, logged %v; want no subscription line", subscribed)
				}
				return
			}
			if len(subscribed) != 1 {
				t.Fatalf("logged %d subscription lines; want 1. Logs:\n%s", len(subscribed), h.logs.String())
			}
			if rec := subscribed[0]; rec["level"] != "DEBUG" || rec["remote"] == nil {
				t.Errorf("subscription line %v; want level DEBUG and the client's address", rec)
			}
		})
	}
}

// TestServeRetentionInterval: with --retention-interval, retention runs
// that often.
func TestServeRetentionInterval(t *testing.T) {
	h := startMain(t, "serve", "--addr", "127.0.0.1:0", "--store", "memory", "--log-format", "json",
		"--retention-count", "1", "--retention-interval", "100ms")
	for _, data := range []string{"a", "b", "c"} {
		if code, _, stderr := runMain(t, "publish", "--url", h.base, "--topic", "t", "--data", data); code != exitOK {
			t.Fatalf("publish: status %d, %s", code, stderr)
		}
	}
	// Retention keeps 1 of the 3 events: it removes 2, in one run or two.
	removed := func() int {
		n := 0
		for line := range strings.Lines(h.logs.String()) {
			var rec struct {
				Msg   string
				Count int
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "retention removed events" {
				n += rec.Count
			}
		}
		return n
	}
	deadline := time.Now().Add(10 * time.Second)
	for removed() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("retention removed nothing within 10s with --retention-interval 100ms. Logs:\n%s", h.logs.String())
		}
		time.Sleep(20 * time.Millisecond) // polling a log this test does not control
	}
}

// TestServeNotFound: a path nothing is served at is a 404 problem that
// names it, and does not speak of the console.
func TestServeNotFound(t *testing.T) {
	base, _ := startServe(t, testServeConfig(t, "127.0.0.1:0"))
	for _, tt := range []struct{ method, path string }{
		{"GET", "/api/events"},
		{"GET", "/events/x"},
		{"POST", "/v1/publish"},
		{"GET", "/.well-known/nothing"},
	} {
		req, _ := http.NewRequest(tt.method, base+tt.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var p struct {
			Status int
			Detail string
		}
		if err := json.Unmarshal(body, &p); err != nil || resp.StatusCode != http.StatusNotFound ||
			resp.Header.Get("Content-Type") != "application/problem+json" || p.Status != http.StatusNotFound {
			t.Errorf("%s %s: %d %s %q; want a 404 problem", tt.method, tt.path, resp.StatusCode, resp.Header.Get("Content-Type"), body)
			continue
		}
		if !strings.Contains(p.Detail, strconv.Quote(tt.path)) || strings.Contains(strings.ToLower(p.Detail), "console") {
			t.Errorf("%s %s: detail %q; want it to name the path and not the console", tt.method, tt.path, p.Detail)
		}
	}
}

// TestServeConsoleTokenCookie: the console page is told the cookie name
// of --token-cookie, so that its EventSource sends the token where the
// hub looks.
// TestServeConsoleNode checks that the console page names the node that
// served it: --node-name, or the host name and port.
func TestServeConsoleNode(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"", "node <a>"} {
		base, page := consolePage(t, func(c *serveConfig) { c.nodeName = name })
		u, _ := url.Parse(base)
		want := `<meta name="ssehub-node" content="` + html.EscapeString(cmp.Or(name, net.JoinHostPort(host, u.Port()))) + `">`
		if !strings.Contains(page, want) {
			t.Errorf("--node-name %q: the console page lacks %s", name, want)
		}
	}
}

// consolePage starts a hub on the memory store, configured further by
// set, and returns its base URL and its console page.
func consolePage(t *testing.T, set func(*serveConfig)) (base, page string) {
	t.Helper()
	c := testServeConfig(t, "127.0.0.1:0")
	c.store = "memory"
	set(&c)
	base, _ = startServe(t, c)
	resp, err := http.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return base, string(b)
}

func TestServeConsoleTokenCookie(t *testing.T) {
	for _, name := range []string{"", hub.DefaultTokenCookie, "tok"} {
		_, page := consolePage(t, func(c *serveConfig) { c.tokenCookie = name })
		want := `<meta name="ssehub-token-cookie" content="` + cmp.Or(name, hub.DefaultTokenCookie) + `">`
		if !strings.Contains(page, want) {
			t.Errorf("--token-cookie %q: the console page lacks %s", name, want)
		}
	}
}
