package redisstore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ssehub/ssehub/hub"
)

var _ hub.Log = (*Store)(nil)

// ErrInvalidRecord is returned by Append, appending nothing of the batch,
// for a record the store cannot index: an empty topic or one that
// contains NUL. Compare with errors.Is.
var ErrInvalidRecord = errors.New("redisstore: invalid record")

// Sizes of one script call or command.
const (
	readBatch        = 512  // most records one Read script call returns
	tailBatch        = 1024 // most records one XREAD returns
	defaultTrimChunk = 1000 // most records one Trim script call removes
	// maxTopics is how many topics Read merges from the per-topic index;
	// for selectors that match more, it scans the records instead.
	maxTopics = 256
	// tailBlock is how long one XREAD waits for new records. Tail checks
	// its context and Close between two.
	tailBlock = 500 * time.Millisecond
)

// Options configure Open.
type Options struct {
	// URL is the server: redis://[user:password@]host:port[/db] or
	// rediss://... for TLS, as go-redis's ParseURL reads it (its query
	// parameters, such as dial_timeout or pool_size, are honoured).
	// Required.
	URL string

	// Prefix is the key prefix. Every key of the store is
	// "{"+Prefix+"}:"+name, so all of them share one hash tag (one Redis
	// Cluster slot), and hubs with different prefixes share a Redis
	// without seeing one another. It must not contain '{' or '}'. If
	// empty, "ssehub" is used.
	Prefix string

	// TLSConfig, when set, is the TLS configuration of a rediss:// URL,
	// for example with RootCAs from a CA file or a client certificate;
	// its ServerName defaults to the URL's host. A TLSConfig with a
	// redis:// URL is refused. If nil, a rediss:// URL uses the system's
	// roots.
	TLSConfig *tls.Config

	// Cluster says that URL is a Redis Cluster's, as go-redis's
	// ParseClusterURL reads it: redis://[user:password@]host:port
	// ?addr=host2:port2&addr=..., any of its nodes (or rediss://). The
	// store's keys are all in one slot, so one node serves them; the
	// client follows the cluster's redirections.
	Cluster bool

	// TrimChunk is the most records one Trim script call removes, so
	// that a large trim never blocks Redis for long: Redis runs one
	// script at a time. If zero, 1000 is used.
	TrimChunk int

	// Logger receives the store's rare messages: Tail's connection
	// errors at Warn, trims at Debug. If nil, nothing is logged.
	Logger *slog.Logger
}

// A Store is a hub.Log on Redis Streams. It is safe for concurrent use,
// and several Stores, in one process or on many machines, may share the
// same Redis and prefix: that is how hub nodes form a cluster. The zero
// value is not usable; call Open, and Close when done.
type Store struct {
	rdb       redis.UniversalClient
	log       *slog.Logger
	trimChunk int
	closed    atomic.Bool

	// Keys. See doc.go.
	kSeq, kLog, kIDs, kTopics string
	kTopicPrefix              string // + topic: the topic's index

	// visited counts the records Read decoded; tests use it to check
	// that Read reads only the index of the topics asked for.
	visited atomic.Uint64
}

// Open returns a Store for o. It checks o, but does not contact the
// server: a hub node may start while Redis is down, and the Store's
// methods fail with errors wrapping the connection's until it is up.
// The caller must Close the Store.
func Open(o Options) (*Store, error) {
	if o.URL == "" {
		return nil, errors.New("redisstore: open: no URL")
	}
	if o.Prefix == "" {
		o.Prefix = "ssehub"
	}
	if strings.ContainsAny(o.Prefix, "{}") {
		return nil, fmt.Errorf("redisstore: open: prefix %q contains a brace", o.Prefix)
	}
	rdb, err := newClient(o)
	if err != nil {
		return nil, fmt.Errorf("redisstore: open: %w", err)
	}
	if o.TrimChunk <= 0 {
		o.TrimChunk = defaultTrimChunk
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{
		rdb:       rdb,
		log:       o.Logger,
		trimChunk: o.TrimChunk,
	}
	tag := "{" + o.Prefix + "}:"
	s.kSeq, s.kLog, s.kIDs, s.kTopics = tag+"seq", tag+"log", tag+"ids", tag+"topics"
	s.kTopicPrefix = tag + "t:"
	return s, nil
}

// newClient returns the client of o.URL.
func newClient(o Options) (redis.UniversalClient, error) {
	var (
		tc   **tls.Config
		newc func() redis.UniversalClient
	)
	if o.Cluster {
		co, err := redis.ParseClusterURL(o.URL)
		if err != nil {
			return nil, err
		}
		tc = &co.TLSConfig
		co.MaxRetries, co.ContextTimeoutEnabled = -1, true
		if co.DialerRetries <= 0 {
			co.DialerRetries = 2
		}
		newc = func() redis.UniversalClient { return redis.NewClusterClient(co) }
	} else {
		ro, err := redis.ParseURL(o.URL)
		if err != nil {
			return nil, err
		}
		tc = &ro.TLSConfig
		// The client never retries a command itself: a script whose
		// reply was lost may have run, and running an Append again
		// would append its records twice. The hub retries Tail;
		// publishers retry a publish.
		ro.MaxRetries = -1
		// Deadlines of the caller's contexts bound each command, so
		// that Bounds fails within the hub's readiness timeout instead
		// of hanging.
		ro.ContextTimeoutEnabled = true
		// Two tries of a dial, not five: while Redis is down, each
		// operation fails in a few hundred milliseconds, and the hub
		// retries.
		if ro.DialerRetries <= 0 {
			ro.DialerRetries = 2
		}
		newc = func() redis.UniversalClient { return redis.NewClient(ro) }
	}
	if o.TLSConfig != nil {
		parsed := *tc
		if parsed == nil {
			return nil, errors.New("a TLSConfig needs a rediss:// URL")
		}
		c := o.TLSConfig.Clone()
		if c.ServerName == "" {
			c.ServerName = parsed.ServerName
		}
		c.InsecureSkipVerify = c.InsecureSkipVerify || parsed.InsecureSkipVerify
		if c.MinVersion == 0 {
			c.MinVersion = parsed.MinVersion
		}
		*tc = c
	}
	return newc(), nil
}

// Close implements hub.Log. It closes the connections, which makes a Tail
// waiting in XREAD return hub.ErrLogClosed, as do the Store's methods
// called afterwards. Closing a closed Store returns nil.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	if err := s.rdb.Close(); err != nil && !errors.Is(err, redis.ErrClosed) {
		return fmt.Errorf("redisstore: close: %w", err)
	}
	return nil
}

// wrap adds op to err and turns the client's error after Close into
// hub.ErrLogClosed.
func (s *Store) wrap(op string, err error) error {
	if errors.Is(err, redis.ErrClosed) || s.closed.Load() && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		err = hub.ErrLogClosed
	}
	return fmt.Errorf("redisstore: %s: %w", op, err)
}

// check returns the error of an operation that begins: ErrLogClosed
// after Close, or ctx's.
func (s *Store) check(op string, ctx context.Context) error {
	if s.closed.Load() {
		return fmt.Errorf("redisstore: %s: %w", op, hub.ErrLogClosed)
	}
	return ctx.Err()
}

func (s *Store) topicKey(topic string) string { return s.kTopicPrefix + topic }

// Append implements hub.Log. One script call checks every ID of the
// batch, then takes the batch's positions from the counter and adds the
// records and their index entries; Redis runs it atomically, so a batch
// is appended whole or not at all, and its records become visible to
// every node at once.
//
// Append refuses, with an error wrapping hub.ErrDuplicateID, an ID made
// only of ASCII digits: those are the IDs it assigns. It refuses with
// ErrInvalidRecord an empty topic or one containing NUL. On success it
// sets each record's Pos, Time (Redis's clock, to the microsecond) and,
// when empty, ID; it keeps no reference to recs.
//
// An error from the connection (Redis down, a timeout, ctx ending while
// the reply is awaited) cannot tell whether the script ran: the batch was
// then appended whole or not at all, and a publisher's ID tells which
// (Lookup).
func (s *Store) Append(ctx context.Context, recs []hub.Record) error {
	if err := s.check("append", ctx); err != nil {
		return err
	}
	if len(recs) == 0 {
		return nil
	}
	keys, args, err := s.appendArgs(recs)
	if err != nil {
		return err
	}
	res, err := appendScript.Run(ctx, s.rdb, keys, args...).Slice()
	if err != nil {
		return s.wrap("append", err)
	}
	if len(res) != 2 {
		return fmt.Errorf("redisstore: append: unexpected reply %v", res)
	}
	last, ok := res[0].(int64)
	if !ok {
		return fmt.Errorf("redisstore: append: unexpected reply %v", res)
	}
	if last == 0 {
		return fmt.Errorf("redisstore: append: id %q: %w", res[1], hub.ErrDuplicateID)
	}
	ts, err := strconv.ParseInt(fmt.Sprint(res[1]), 10, 64)
	if err != nil {
		return fmt.Errorf("redisstore: append: unexpected time %v", res[1])
	}
	at := time.UnixMicro(ts)
	pos := uint64(last) - uint64(len(recs))
	for i := range recs {
		pos++
		recs[i].Pos, recs[i].Time = pos, at
		if recs[i].ID == "" {
			recs[i].ID = strconv.FormatUint(pos, 10)
		}
	}
	return nil
}

// appendArgs returns the keys and arguments of appendScript for recs, or
// an error for a record that cannot be appended.
func (s *Store) appendArgs(recs []hub.Record) ([]string, []any, error) {
	var (
		keys   = []string{s.kSeq, s.kLog, s.kIDs, s.kTopics}
		names  []string
		index  = make(map[string]int) // topic → its 1-based place in names
		blob   []byte
		perRec = make([]any, 0, len(recs)*5)
	)
	for i := range recs {
		r := &recs[i]
		if hub.ReservedID(r.ID) {
			return nil, nil, fmt.Errorf("redisstore: append %q: id of digits is reserved: %w", r.ID, hub.ErrDuplicateID)
		}
		for _, t := range r.Topics {
			switch {
			case t == "":
				return nil, nil, fmt.Errorf("redisstore: append: empty topic: %w", ErrInvalidRecord)
			case strings.IndexByte(t, 0) >= 0:
				return nil, nil, fmt.Errorf("redisstore: append: topic %q contains NUL: %w", t, ErrInvalidRecord)
			}
		}
		blob = appendBlob(blob[:0], r)
		perRec = append(perRec, r.ID, strings.Join(r.Topics, "\x00"), string(blob))
		// The record's distinct topics, by their place in names.
		var own []any
		for _, t := range r.Topics {
			n, ok := index[t]
			if !ok {
				names = append(names, t)
				n = len(names)
				index[t] = n
				keys = append(keys, s.topicKey(t))
			}
			if !containsAny(own, n) {
				own = append(own, n)
			}
		}
		perRec = append(perRec, len(own))
		perRec = append(perRec, own...)
	}
	args := make([]any, 0, 1+len(names)+len(perRec))
	args = append(args, len(names))
	for _, n := range names {
		args = append(args, n)
	}
	return keys, append(args, perRec...), nil
}

func containsAny(s []any, n int) bool {
	for _, v := range s {
		if v == n {
			return true
		}
	}
	return false
}

// Lookup implements hub.Log. A publisher's ID is found in the ID hash; an
// assigned ID, the decimal position, is found when the record at that
// position is held and has no publisher's ID.
func (s *Store) Lookup(ctx context.Context, id string) (uint64, error) {
	if err := s.check("lookup", ctx); err != nil {
		return 0, err
	}
	if hub.ReservedID(id) {
		pos, err := strconv.ParseUint(id, 10, 64)
		if err != nil || strconv.FormatUint(pos, 10) != id {
			return 0, fmt.Errorf("redisstore: lookup %q: %w", id, hub.ErrNotFound)
		}
		held, err := assignedScript.Run(ctx, s.rdb, []string{s.kLog}, pos).Int()
		if err != nil {
			return 0, s.wrap(fmt.Sprintf("lookup %q", id), err)
		}
		if held != 1 {
			return 0, fmt.Errorf("redisstore: lookup %q: %w", id, hub.ErrNotFound)
		}
		return pos, nil
	}
	v, err := s.rdb.HGet(ctx, s.kIDs, id).Result()
	if errors.Is(err, redis.Nil) {
		return 0, fmt.Errorf("redisstore: lookup %q: %w", id, hub.ErrNotFound)
	}
	if err != nil {
		return 0, s.wrap(fmt.Sprintf("lookup %q", id), err)
	}
	pos, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("redisstore: lookup %q: bad position %q in the id hash", id, v)
	}
	return pos, nil
}

// Bounds implements hub.Log. One script call reads the counter and the
// stream's length: the stream holds every position from first to last,
// since Append adds a batch's records with the counter in one script and
// Trim removes only the oldest records.
func (s *Store) Bounds(ctx context.Context) (first, last uint64, err error) {
	if err := s.check("bounds", ctx); err != nil {
		return 0, 0, err
	}
	first, last, err = s.bounds(ctx)
	if err != nil {
		return 0, 0, s.wrap("bounds", err)
	}
	return first, last, nil
}

func (s *Store) bounds(ctx context.Context) (first, last uint64, err error) {
	res, err := boundsScript.Run(ctx, s.rdb, []string{s.kSeq, s.kLog}).Int64Slice()
	if err != nil {
		return 0, 0, err
	}
	if len(res) != 2 {
		return 0, 0, fmt.Errorf("unexpected reply %v", res)
	}
	return uint64(res[0]), uint64(res[1]), nil
}
