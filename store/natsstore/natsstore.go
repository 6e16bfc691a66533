package natsstore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ssehub/ssehub/hub"
)

var _ hub.Log = (*Store)(nil)

// errNotReady is returned while the Store has not yet reached NATS and
// made sure its stream exists.
var errNotReady = errors.New("natsstore: not connected to jetstream yet")

// Options configure Open. The zero value is not usable: URL is required.
type Options struct {
	// URL is the NATS server to connect to: nats://[user:pass@]host:port,
	// or tls://... for TLS; several comma-separated servers of one
	// cluster are allowed. Required.
	URL string
	// Stream is the name of the JetStream stream holding the Log; its
	// subjects are "<Stream>.>". If empty, "SSEHUB" is used.
	Stream string
	// Replicas is the stream's number of replicas in a NATS cluster. If
	// zero, 1 is used.
	Replicas int
	// CredsFile is an optional .creds file (a user JWT and NKey seed).
	CredsFile string
	// Token is an optional authentication token.
	Token string
	// TLSConfig, when set, is used for the connection to NATS (for
	// example RootCAs read from a CA file); a tls:// URL without it uses
	// the system's roots.
	TLSConfig *tls.Config
	// Logger receives connection events and follower errors. If nil,
	// they are discarded.
	Logger *slog.Logger
}

// Timings. reconnectWait is how long the connection waits between
// attempts to reach NATS; publishTimeout bounds one publish of the
// committer; retryMax bounds the follower's backoff.
const (
	reconnectWait  = 250 * time.Millisecond
	publishTimeout = 5 * time.Second
	retryMax       = 2 * time.Second
)

// A Store is a hub.Log kept in a NATS JetStream stream. It is safe for
// concurrent use. The zero value is not usable; call Open, and Close to
// release the connection and the Store's goroutines.
type Store struct {
	log        *slog.Logger
	cfg        jetstream.StreamConfig
	batchSubj  string // subject of batch messages
	markerSubj string // subject of trim markers
	nc         *nats.Conn
	js         jetstream.JetStream
	cache      cache

	ctx     context.Context // ends at Close; bounds every request the Store's goroutines make
	cancel  context.CancelFunc
	closing chan struct{} // closed by Close
	wg      sync.WaitGroup

	mu         sync.Mutex       // guards the fields below
	idx        index            // see index
	changed    chan struct{}    // closed and replaced whenever idx changes
	st         jetstream.Stream // nil until the follower has made sure the stream exists
	closed     bool
	gen        uint64 // counts the index's starts over (see lostLocked)
	stopFollow func() // stops the follower's consumer; nil when none runs

	qmu     sync.Mutex // guards pending
	pending []*appendReq
	signal  chan struct{} // 1 slot: pending has grown
}

// Open connects to NATS and returns a Store on the stream o.Stream. It
// does not wait for the server: when NATS is unreachable Open still
// succeeds, the connection is retried without end, and the Store's
// methods fail until the server is back and the stream exists (the
// follower creates or updates it, idempotently, once connected). Open
// fails only on bad Options.
func Open(o Options) (*Store, error) {
	if o.URL == "" {
		return nil, errors.New("natsstore: open: no URL")
	}
	name := o.Stream
	if name == "" {
		name = "SSEHUB"
	}
	if strings.ContainsAny(name, ".*> \t\r\n/\\") || !validName(name) {
		return nil, fmt.Errorf("natsstore: open: invalid stream name %q", name)
	}
	replicas := o.Replicas
	if replicas == 0 {
		replicas = 1
	}
	if replicas < 0 || replicas > 5 {
		return nil, fmt.Errorf("natsstore: open: replicas %d: want 1 to 5", o.Replicas)
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("stream", name)
	opts := []nats.Option{
		nats.Name("ssehub"),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(reconnectWait),
		// No buffering while disconnected: a publish buffered then sent
		// on reconnect would append records whose Append had failed.
		nats.ReconnectBufSize(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn("natsstore: disconnected", "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("natsstore: reconnected", "server", nc.ConnectedUrlRedacted())
		}),
		nats.ConnectHandler(func(nc *nats.Conn) {
			log.Info("natsstore: connected", "server", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			log.Warn("natsstore: nats error", "err", err)
		}),
	}
	if o.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(o.CredsFile))
	}
	if o.Token != "" {
		opts = append(opts, nats.Token(o.Token))
	}
	if o.TLSConfig != nil {
		opts = append(opts, nats.Secure(o.TLSConfig.Clone()))
	}
	nc, err := nats.Connect(o.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("natsstore: open: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("natsstore: open: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Store{
		log: log,
		cfg: jetstream.StreamConfig{
			Name:        name,
			Description: "ssehub event log",
			Subjects:    []string{name + ".>"},
			Retention:   jetstream.LimitsPolicy,
			Discard:     jetstream.DiscardOld,
			MaxMsgs:     -1,
			MaxBytes:    -1,
			Storage:     jetstream.FileStorage,
			Replicas:    replicas,
			AllowDirect: true,
		},
		batchSubj:  name + ".batch",
		markerSubj: name + ".trim",
		nc:         nc,
		js:         js,
		cache:      cache{max: cacheBytes, m: make(map[uint64][]hub.Record)},
		ctx:        ctx,
		cancel:     cancel,
		closing:    make(chan struct{}),
		idx:        newIndex(),
		changed:    make(chan struct{}),
		signal:     make(chan struct{}, 1),
	}
	s.wg.Go(s.follow)
	s.wg.Go(s.commit)
	return s, nil
}

// validName reports whether name is printable ASCII, as JetStream wants
// of a stream name that is also a subject token.
func validName(name string) bool {
	for i := 0; i < len(name); i++ {
		if name[i] <= ' ' || name[i] > '~' {
			return false
		}
	}
	return true
}

// Close stops the Store's goroutines and closes its connection. Tail
// calls in progress return hub.ErrLogClosed, and Appends waiting for
// their commit fail with it. Close is idempotent.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.closing)
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	s.nc.Close()
	return nil
}

// notifyLocked wakes everyone waiting for the index to change. s.mu must
// be held.
func (s *Store) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// stream returns the stream, or an error when the Store is closed or
// not connected yet. While the connection is up but the follower has not
// yet made sure the stream exists (just after Open or a reconnection), it
// waits for that, within ctx and publishTimeout; while NATS is
// unreachable it fails at once.
func (s *Store) stream(ctx context.Context) (jetstream.Stream, error) {
	var timeout <-chan time.Time
	for {
		s.mu.Lock()
		closed, st, ch := s.closed, s.st, s.changed
		s.mu.Unlock()
		switch {
		case closed:
			return nil, hub.ErrLogClosed
		case st != nil:
			return st, nil
		case !s.nc.IsConnected():
			if last := s.nc.LastError(); last != nil {
				return nil, fmt.Errorf("%w: nats is unreachable (%s): %w", errNotReady, s.nc.Status(), last)
			}
			return nil, fmt.Errorf("%w: nats is unreachable (%s)", errNotReady, s.nc.Status())
		}
		if timeout == nil {
			timeout = time.After(publishTimeout)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", errNotReady, ctx.Err())
		case <-timeout:
			return nil, errNotReady
		case <-ch:
		}
	}
}

// sync waits until the index holds every message the stream held when
// sync was called.
func (s *Store) sync(ctx context.Context) error {
	st, err := s.stream(ctx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	applied, gen := s.idx.seq, s.gen
	s.mu.Unlock()
	info, err := st.Info(ctx)
	if err != nil {
		s.streamGone(err)
		return err
	}
	// A stream's last sequence never goes down, even when it is purged:
	// below what the index had applied before asking, it lost messages.
	if info.State.LastSeq < applied {
		s.mu.Lock()
		if s.gen == gen {
			s.lostLocked(fmt.Sprintf("its last sequence is %d", info.State.LastSeq))
		}
		s.mu.Unlock()
	}
	target := info.State.LastSeq
	if info.State.Msgs == 0 {
		target = 0 // purged by hand: there is nothing to wait for
	}
	return s.waitIndexed(ctx, target)
}

// lostLocked starts the index over when the stream lost messages the
// index holds: its server lost its data (a file store wiped, a memory
// store restarted), or someone deleted it. The stream's sequences and the
// Log's positions then start over, below those held, and nothing this
// node holds is true of the stream any more. The follower reads the
// stream again from its start (creating the stream when it is gone), and
// Bounds reports the new, lower end, which the hub takes as the sign to
// end every stream (see hub.Run). s.mu must be held.
func (s *Store) lostLocked(why string) {
	s.log.Error("natsstore: the stream lost its messages; the index starts over", "why", why, "applied", s.idx.seq, "newest", s.idx.newest)
	s.idx = newIndex()
	s.gen++
	s.cache.drop() // cache.mu is taken only after s.mu, never before
	if s.stopFollow != nil {
		s.stopFollow()
	}
	s.notifyLocked()
}

// streamGone handles an error of a call on the stream: when it says the
// stream does not exist, the index starts over and the follower creates
// the stream anew.
func (s *Store) streamGone(err error) {
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st != nil {
		s.st = nil
		s.lostLocked("the stream does not exist")
	}
}

// waitIndexed waits until the index has applied stream sequence seq.
func (s *Store) waitIndexed(ctx context.Context, seq uint64) error {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return hub.ErrLogClosed
		}
		if s.idx.seq >= seq {
			s.mu.Unlock()
			return nil
		}
		ch := s.changed
		s.mu.Unlock()
		if err := s.awaitChange(ctx, ch, 0); err != nil {
			return err
		}
	}
}

// awaitChange waits until ch, the index's changed channel, is closed, or
// for at most d when d is positive. It returns ctx's error when ctx ends
// first, and hub.ErrLogClosed when the Store closes.
func (s *Store) awaitChange(ctx context.Context, ch <-chan struct{}, d time.Duration) error {
	var timeout <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-s.closing:
		return hub.ErrLogClosed
	case <-ch:
	case <-timeout:
	}
	return nil
}

// follow is the follower goroutine: it makes sure the stream exists,
// then reads every message of it in order with an ordered consumer and
// applies it to the index, starting again from the next sequence after
// an error. It ends at Close.
func (s *Store) follow() {
	wait := 50 * time.Millisecond
	for {
		progress, err := s.followOnce()
		if s.ctx.Err() != nil {
			return
		}
		if progress {
			wait = 50 * time.Millisecond
		}
		s.log.Warn("natsstore: follower restarts", "err", err, "in", wait)
		select {
		case <-s.closing:
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, retryMax)
	}
}

// followOnce runs one ordered consumer until it fails, and reports
// whether it applied any message.
func (s *Store) followOnce() (progress bool, err error) {
	s.mu.Lock()
	st := s.st
	s.mu.Unlock()
	if st == nil {
		ctx, cancel := context.WithTimeout(s.ctx, publishTimeout)
		var err error
		st, err = s.js.CreateOrUpdateStream(ctx, s.cfg)
		cancel()
		if err != nil {
			return false, fmt.Errorf("natsstore: create or update stream: %w", err)
		}
		s.mu.Lock()
		s.st = st
		s.notifyLocked()
		s.mu.Unlock()
		s.log.Info("natsstore: stream ready")
	}
	s.mu.Lock()
	start, gen := s.idx.seq+1, s.gen
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(s.ctx, publishTimeout)
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   start,
	})
	cancel()
	if err != nil {
		return false, fmt.Errorf("natsstore: follower: %w", err)
	}
	it, err := cons.Messages()
	if err != nil {
		return false, fmt.Errorf("natsstore: follower: %w", err)
	}
	defer it.Stop()
	stop := context.AfterFunc(s.ctx, it.Stop)
	defer stop()
	s.mu.Lock()
	if s.gen != gen {
		s.mu.Unlock()
		return false, errors.New("natsstore: follower: the index started over")
	}
	s.stopFollow = it.Stop
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.stopFollow = nil
		s.mu.Unlock()
	}()
	for {
		msg, err := it.Next()
		if err != nil {
			return progress, fmt.Errorf("natsstore: follower: %w", err)
		}
		if err := s.apply(msg, gen); err != nil {
			s.log.Error("natsstore: follower skips a message", "err", err)
		}
		progress = true
	}
}

// apply applies one message read by the follower of the index's
// generation gen; it drops a message read before the index started over.
func (s *Store) apply(msg jetstream.Msg, gen uint64) error {
	meta, err := msg.Metadata()
	if err != nil {
		return err
	}
	seq := meta.Sequence.Stream
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen != gen {
		return nil
	}
	switch msg.Subject() {
	case s.batchSubj:
		recs, err := decodeMsg(msg.Headers(), msg.Data())
		if err != nil {
			s.skipLocked(seq)
			return fmt.Errorf("message %d: %w", seq, err)
		}
		s.cache.put(seq, recs) // cache.mu is taken only after s.mu, never before
		s.idx.applyBatch(seq, recs)
		s.notifyLocked()
	case s.markerSubj:
		floor, err := strconv.ParseUint(msg.Headers().Get(hdrFloor), 10, 64)
		if err != nil || floor == 0 {
			s.skipLocked(seq)
			return fmt.Errorf("%w: trim marker %d: floor %q", errCorrupt, seq, msg.Headers().Get(hdrFloor))
		}
		s.idx.applyMarker(seq, floor)
		s.notifyLocked()
	default:
		s.skipLocked(seq)
		return fmt.Errorf("message %d on unknown subject %q", seq, msg.Subject())
	}
	return nil
}

// skipLocked marks stream sequence seq as applied without changing the
// index. s.mu must be held.
func (s *Store) skipLocked(seq uint64) {
	s.idx.seq = max(s.idx.seq, seq)
	s.notifyLocked()
}

// decodeMsg decodes a batch message from its headers and payload.
func decodeMsg(h nats.Header, data []byte) ([]hub.Record, error) {
	first, err := strconv.ParseUint(h.Get(hdrFirst), 10, 64)
	if err != nil || first == 0 {
		return nil, fmt.Errorf("%w: header %s %q", errCorrupt, hdrFirst, h.Get(hdrFirst))
	}
	count, err := strconv.Atoi(h.Get(hdrCount))
	if err != nil {
		return nil, fmt.Errorf("%w: header %s %q", errCorrupt, hdrCount, h.Get(hdrCount))
	}
	return decodeBatch(first, count, data)
}

// isWrongLast reports whether err is JetStream's refusal of a publish
// whose expected last sequence was not the stream's (or subject's).
func isWrongLast(err error) bool {
	var ae *jetstream.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			ae.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
	}
	return false
}
