package daemon

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/ssehub/ssehub/hub"
	"github.com/ssehub/ssehub/store/natsstore"
	"github.com/ssehub/ssehub/store/redisstore"
)

// stores are the values of --store.
var stores = []string{"bolt", "memory", "redis", "nats"}

// backendFlags configure the cluster stores, --store redis and --store
// nats, whose Log lives on a server that every node of a cluster shares.
type backendFlags struct {
	redisURL     string
	redisPrefix  string
	redisCACert  string
	redisCluster bool

	natsURL      string
	natsStream   string
	natsReplicas int
	natsCreds    string
	natsToken    string
	natsCACert   string
}

// register adds the flags to fs.
func (b *backendFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&b.redisURL, "redis-url", "", "with --store redis: the Redis server `URL`, redis://[user:password@]host:port[/db], or rediss:// for TLS")
	fs.StringVar(&b.redisPrefix, "redis-prefix", "ssehub", "with --store redis: the `prefix` of every key, as {prefix}:name (hubs with different prefixes share a Redis; one hash tag for Redis Cluster)")
	fs.BoolVar(&b.redisCluster, "redis-cluster", false, "with --store redis: --redis-url is a node of a Redis Cluster (several nodes: redis://host1:6379?addr=host2:6379&addr=host3:6379); the keys share one hash tag, so one slot")
	fs.StringVar(&b.redisCACert, "redis-cacert", "", "with --store redis and rediss://: trust the CA certificates in this PEM `file` rather than the system's")
	fs.StringVar(&b.natsURL, "nats-url", "", "with --store nats: the NATS server `URLs`, nats://[user:password@]host:port or tls://..., comma-separated")
	fs.StringVar(&b.natsStream, "nats-stream", "SSEHUB", "with --store nats: the JetStream stream `name` (created or updated at start)")
	fs.IntVar(&b.natsReplicas, "nats-replicas", 1, "with --store nats: the stream's replicas in a NATS cluster (1 to 5)")
	fs.StringVar(&b.natsCreds, "nats-creds", "", "with --store nats: a NATS credentials `file` (.creds)")
	fs.StringVar(&b.natsToken, "nats-token", "", "with --store nats: a NATS authentication `token` (better in SSEHUB_NATS_TOKEN than on the command line)")
	fs.StringVar(&b.natsCACert, "nats-cacert", "", "with --store nats and TLS: trust the CA certificates in this PEM `file` rather than the system's")
}

// check validates the flags for store; set tells which flags were given.
func (b *backendFlags) check(store string, set map[string]bool) error {
	for name := range set {
		if s, _, ok := strings.Cut(name, "-"); ok && (s == "redis" || s == "nats") && s != store {
			return fmt.Errorf("--%s is for --store %s, not --store %s", name, s, store)
		}
	}
	switch store {
	case "redis":
		if b.redisURL == "" {
			return errors.New("--store redis needs --redis-url (redis://host:6379 or rediss://...)")
		}
		u, err := url.Parse(b.redisURL)
		if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
			return fmt.Errorf("--redis-url %q is not a redis:// or rediss:// URL", redact(b.redisURL))
		}
		if b.redisPrefix == "" || strings.ContainsAny(b.redisPrefix, "{}") {
			return fmt.Errorf("--redis-prefix %q must be non-empty, without { or }", b.redisPrefix)
		}
		if b.redisCACert != "" && u.Scheme != "rediss" {
			return errors.New("--redis-cacert needs a rediss:// --redis-url")
		}
	case "nats":
		if b.natsURL == "" {
			return errors.New("--store nats needs --nats-url (nats://host:4222 or tls://...)")
		}
		for _, s := range strings.Split(b.natsURL, ",") {
			u, err := url.Parse(strings.TrimSpace(s))
			if err != nil || u.Host == "" || (u.Scheme != "nats" && u.Scheme != "tls") {
				return fmt.Errorf("--nats-url %q is not a list of nats:// or tls:// URLs", redact(s))
			}
		}
		if b.natsStream == "" || strings.ContainsAny(b.natsStream, ". *>\t\r\n") {
			return fmt.Errorf("--nats-stream %q must be a stream name: non-empty, without spaces, '.', '*' or '>'", b.natsStream)
		}
		if b.natsReplicas < 1 || b.natsReplicas > 5 {
			return fmt.Errorf("--nats-replicas must be 1 to 5, not %d", b.natsReplicas)
		}
		if b.natsCreds != "" {
			if _, err := os.Stat(b.natsCreds); err != nil {
				return fmt.Errorf("--nats-creds: %w", err)
			}
		}
	}
	return nil
}

// open opens the cluster store store. It does not need the server to be
// up: the hub waits for it, not ready, and so may the node.
func (b *backendFlags) open(store string, logger *slog.Logger) (hub.Log, error) {
	caFlag, caFile := "redis-cacert", b.redisCACert
	if store == "nats" {
		caFlag, caFile = "nats-cacert", b.natsCACert
	}
	tlsConfig, err := caConfig(caFlag, caFile)
	if err != nil {
		return nil, err
	}
	switch store {
	case "redis":
		// go-redis reports a failed dial through its own logger, on
		// stderr by default: into the hub's log, at debug, since the hub
		// logs the store's failures itself.
		redis.SetLogger(redisLogger{logger})
		return redisstore.Open(redisstore.Options{URL: b.redisURL, Prefix: b.redisPrefix, Cluster: b.redisCluster,
			TLSConfig: tlsConfig, Logger: logger})
	case "nats":
		return natsstore.Open(natsstore.Options{URL: b.natsURL, Stream: b.natsStream, Replicas: b.natsReplicas,
			CredsFile: b.natsCreds, Token: b.natsToken, TLSConfig: tlsConfig, Logger: logger})
	}
	return nil, fmt.Errorf("not a cluster store: %q", store)
}

// describe returns the log attributes that say which server store uses,
// with any password left out.
func (b *backendFlags) describe(store string) []any {
	switch store {
	case "redis":
		return []any{"redis_url", redact(b.redisURL), "redis_prefix", b.redisPrefix, "redis_cluster", b.redisCluster}
	case "nats":
		return []any{"nats_url", redact(b.natsURL), "nats_stream", b.natsStream, "nats_replicas", b.natsReplicas}
	}
	return nil
}

// redisLogger routes go-redis's messages to a slog.Logger.
type redisLogger struct{ l *slog.Logger }

func (r redisLogger) Printf(ctx context.Context, format string, v ...any) {
	r.l.DebugContext(ctx, "redis client: "+fmt.Sprintf(format, v...))
}

// redact returns the URLs in s (comma-separated) with their passwords
// replaced by xxxxx, for messages and logs.
func redact(s string) string {
	parts := strings.Split(s, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil || u.User == nil {
			continue
		}
		if _, ok := u.User.Password(); !ok {
			u.User = url.User("xxxxx") // a name alone may be a token (nats://token@host)
		}
		parts[i] = u.Redacted()
	}
	return strings.Join(parts, ",")
}
