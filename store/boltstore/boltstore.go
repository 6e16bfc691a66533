package boltstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/ssehub/ssehub/hub"
)

var _ hub.Log = (*Store)(nil)

// Errors of the boltstore package, besides the hub.Log errors its methods
// return. Compare with errors.Is.
var (
	// ErrCorrupt is returned when the file holds data this version cannot
	// decode: a damaged record or an unknown format version.
	ErrCorrupt = errors.New("boltstore: corrupt data")
	// ErrInvalidRecord is returned by Append, appending nothing of the
	// batch, for a record the store cannot index: a topic that is empty
	// or contains NUL, a topic or ID longer than 32,000 bytes, or Data
	// longer than 1 GiB.
	ErrInvalidRecord = errors.New("boltstore: invalid record")
)

// Bucket names and meta keys. See doc.go for the layout.
var (
	bucketMeta   = []byte("meta")
	bucketRecs   = []byte("recs")
	bucketTopics = []byte("topics")
	bucketIDs    = []byte("ids")

	keyFormat  = []byte("format")
	keyLast    = []byte("last")
	keyIndexed = []byte("indexed")
)

// formatV1 is the file format this package writes and reads.
const formatV1 = 1

// maxKeyLen bounds topics and IDs, leaving room under bbolt's key limit
// for the index key's NUL and position; maxDataLen bounds Data, well
// under bbolt's value limit.
const (
	maxKeyLen  = 32000
	maxDataLen = 1 << 30
)

// Options configure Open. The zero value, and a nil *Options, give the
// defaults.
type Options struct {
	// NoSync skips the fsync of each commit. Appends are then much
	// faster, but an operating system crash or power loss can lose
	// acknowledged records or damage the file; a crash of the process
	// alone loses nothing. For tests and for data that can be lost.
	// The default, false, syncs.
	NoSync bool

	// MaxBatch is the most records that one commit holds. Concurrent
	// Appends are committed together up to this many records; an Append
	// of more records than MaxBatch is committed alone. If zero, 8192 is
	// used.
	MaxBatch int

	// TrimBatch is the most records that Trim removes in one transaction,
	// so that a large trim does not hold the writer for long nor build one
	// huge transaction. If zero, 10000 is used.
	TrimBatch int

	// LockTimeout is how long Open waits for the file lock that another
	// process holds, such as a second ssehub on the same data directory.
	// If zero, 1s is used; if negative, Open waits forever.
	LockTimeout time.Duration

	// Logger receives the store's rare messages: failed commits at
	// Error, trims at Debug. If nil, nothing is logged.
	Logger *slog.Logger

	// indexLag, if positive, replaces defaultIndexLag; tests set it.
	indexLag int
	// afterCommit, if set, runs in the committer after each write
	// transaction has committed and before its records are published;
	// tests set it to widen that window, as a slow fsync does.
	afterCommit func()
}

// Stats are counters since Open.
type Stats struct {
	Commits uint64 // write transactions of Append that committed
	Appends uint64 // Append calls that succeeded
	Records uint64 // records those calls appended
}

// A Store is a hub.Log kept in a bbolt file. It is safe for concurrent
// use. The zero value is not usable; call Open, and call Close when done,
// which waits for the Store's committer goroutine.
type Store struct {
	db        *bolt.DB
	log       *slog.Logger
	maxBatch  int
	trimBatch int
	indexLag  int
	now       func() time.Time

	afterCommit func() // Options.afterCommit

	idx pendingIndex // the memory part of the per-topic index

	wake chan struct{} // 1-slot signal: the queue has requests, or closed is set
	wg   sync.WaitGroup

	mu     sync.Mutex    // guards queue, queued, closed and notify
	queue  []*request    // Appends waiting for the committer
	queued int           // records in queue
	closed bool          // set by Close; no request is queued after
	notify chan struct{} // closed and replaced after each commit; closed by Close

	last atomic.Uint64 // newest committed position; only the committer stores it

	commits, appends, records atomic.Uint64 // for Stats

	// visited counts the records Read decoded; tests use it to check
	// that Read walks only the index of the topics asked for.
	visited atomic.Uint64
	// beforeCommit, if set by a test before the first Append, runs in
	// the committer before each transaction.
	beforeCommit func()
}

// A request is one Append waiting for the committer.
type request struct {
	recs []hub.Record
	done chan error // buffered; receives the Append's result
}

// Open opens the store in the bbolt file at path, creating the file (not
// its directory) if needed. A data directory holds one such file; the
// daemon names it filepath.Join(dir, "ssehub.db"). The file is locked
// while the Store is open: a second Open of it, from this process or
// another, waits up to opts.LockTimeout and fails. The caller must Close
// the Store.
func Open(path string, opts *Options) (*Store, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 8192
	}
	if o.TrimBatch <= 0 {
		o.TrimBatch = 10000
	}
	if o.indexLag <= 0 {
		o.indexLag = defaultIndexLag
	}
	switch {
	case o.LockTimeout == 0:
		o.LockTimeout = time.Second
	case o.LockTimeout < 0:
		o.LockTimeout = 0 // bbolt's "forever"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout: o.LockTimeout,
		NoSync:  o.NoSync,
		// The freelist is rebuilt by a scan at Open instead of being
		// written by every commit, which after a large Trim would be
		// a long list written again and again.
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if err != nil {
		return nil, fmt.Errorf("boltstore: open %q: %w", path, err)
	}
	var (
		last uint64
		idx  pendingIndex
	)
	err = db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		switch v := meta.Get(keyFormat); {
		case v == nil:
			if err := meta.Put(keyFormat, []byte{formatV1}); err != nil {
				return err
			}
		case len(v) != 1 || v[0] != formatV1:
			return fmt.Errorf("%w: unknown file format %v", ErrCorrupt, v)
		}
		for _, name := range [][]byte{bucketRecs, bucketTopics, bucketIDs} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		if v := meta.Get(keyLast); v != nil {
			if len(v) != 8 {
				return fmt.Errorf("%w: last position is %d bytes", ErrCorrupt, len(v))
			}
			last = binary.BigEndian.Uint64(v)
		}
		return loadPending(tx, &idx)
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("boltstore: open %q: %w", path, err)
	}
	s := &Store{
		db:        db,
		log:       o.Logger,
		maxBatch:  o.MaxBatch,
		trimBatch: o.TrimBatch,
		indexLag:  o.indexLag,
		now:       time.Now,

		afterCommit: o.afterCommit,
		wake:        make(chan struct{}, 1),
		notify:      make(chan struct{}),
	}
	s.idx.indexed, s.idx.topics, s.idx.n = idx.indexed, idx.topics, idx.n
	s.last.Store(last)
	s.wg.Go(s.run)
	return s, nil
}

// Path returns the path of the store's file.
func (s *Store) Path() string { return s.db.Path() }

// Stats returns the store's counters. The ratio of Appends to Commits
// shows how many Appends each commit, and each fsync, carried.
func (s *Store) Stats() Stats {
	return Stats{Commits: s.commits.Load(), Appends: s.appends.Load(), Records: s.records.Load()}
}

// Close implements hub.Log. It waits for the Appends already queued to
// commit, ends the committer goroutine, makes Tails in progress return
// hub.ErrLogClosed and closes the file, after any Read transaction in
// progress ends. Closing a closed Store returns nil.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.signal()
	s.wg.Wait()
	s.mu.Lock()
	close(s.notify)
	s.mu.Unlock()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("boltstore: close: %w", err)
	}
	return nil
}

func (s *Store) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// wrap adds op to err, and turns bbolt's error for a closed database,
// which op meets when Close ran during it, into hub.ErrLogClosed.
func (s *Store) wrap(op string, err error) error {
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		err = hub.ErrLogClosed
	}
	return fmt.Errorf("boltstore: %s: %w", op, err)
}

func (s *Store) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Append implements hub.Log. Concurrent Appends are committed together,
// in one bbolt transaction and one fsync, by the Store's committer; each
// still gets its own result, so a duplicate ID fails only the Append that
// has it. Once its records are queued, Append waits for the commit even
// if ctx is done, so that nil always means durable and an error always
// means nothing of recs was appended.
//
// Append refuses, with an error wrapping hub.ErrDuplicateID, an ID made
// only of ASCII digits: those are the IDs it assigns, and accepting one
// could collide with a later position. It refuses with ErrInvalidRecord
// a topic it cannot index. On success it sets each record's Pos, Time
// and, when empty, ID; Append keeps no reference to recs.
func (s *Store) Append(ctx context.Context, recs []hub.Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := validate(recs); err != nil {
		return err
	}
	req := &request{recs: recs, done: make(chan error, 1)}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("boltstore: append: %w", hub.ErrLogClosed)
	}
	if len(recs) == 0 {
		s.mu.Unlock()
		return nil
	}
	s.queue = append(s.queue, req)
	s.queued += len(recs)
	s.mu.Unlock()
	s.signal()
	return <-req.done
}

// validate checks what can be checked without the database.
func validate(recs []hub.Record) error {
	for i := range recs {
		r := &recs[i]
		if len(r.ID) > maxKeyLen {
			return fmt.Errorf("boltstore: append: id of %d bytes: %w", len(r.ID), ErrInvalidRecord)
		}
		if hub.ReservedID(r.ID) {
			return fmt.Errorf("boltstore: append %q: id of digits is reserved: %w", r.ID, hub.ErrDuplicateID)
		}
		if len(r.Data) > maxDataLen {
			return fmt.Errorf("boltstore: append: data of %d bytes: %w", len(r.Data), ErrInvalidRecord)
		}
		for _, t := range r.Topics {
			switch {
			case t == "":
				return fmt.Errorf("boltstore: append: empty topic: %w", ErrInvalidRecord)
			case len(t) > maxKeyLen:
				return fmt.Errorf("boltstore: append: topic of %d bytes: %w", len(t), ErrInvalidRecord)
			case strings.IndexByte(t, 0) >= 0:
				return fmt.Errorf("boltstore: append: topic %q contains NUL: %w", t, ErrInvalidRecord)
			}
		}
	}
	return nil
}

// run is the committer: it commits the queued Appends, as many as
// MaxBatch allows per transaction, until Close sets closed and the queue
// is empty. The Store's wg owns it.
//
// After a commit the Appends it answered usually come straight back, as
// their publishers send the next event; the Appends that queued during
// the commit are only part of the load. So before the next commit it
// lingers, for at most a quarter of the last commit's duration, until as
// many Appends are queued as the last commit answered plus those that
// queued during it. A lone publisher never waits: its next Append meets
// the target at once. Without this, 16 publishers settle into commits of
// 8 while the other 8 are being answered.
func (s *Store) run() {
	var (
		target int           // Appends expected before the next commit
		last   time.Duration // duration of the last commit
	)
	for {
		if target > 1 {
			s.linger(target, min(last/4, maxLinger))
		}
		reqs, closed := s.take()
		if len(reqs) > 0 {
			start := time.Now()
			s.commit(reqs)
			last = time.Since(start)
			target = len(reqs) + s.queueLen()
			continue
		}
		target = 0
		if closed {
			return
		}
		<-s.wake
	}
}

// maxLinger bounds the committer's wait for more Appends.
const maxLinger = 2 * time.Millisecond

// linger waits until n Appends or MaxBatch records are queued, the Store
// is closed, or d passes.
func (s *Store) linger(n int, d time.Duration) {
	if d <= 0 {
		return
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		s.mu.Lock()
		done := len(s.queue) >= n || s.queued >= s.maxBatch || s.closed
		s.mu.Unlock()
		if done {
			return
		}
		select {
		case <-s.wake:
		case <-timer.C:
			return
		}
	}
}

// queueLen returns the number of queued Appends.
func (s *Store) queueLen() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue)
}

// take removes from the queue the requests of the next commit, at least
// one and more while their records fit in MaxBatch, and returns them and
// whether the Store is closed.
func (s *Store) take() ([]*request, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, records := 0, 0
	for n < len(s.queue) {
		k := len(s.queue[n].recs)
		if n > 0 && records+k > s.maxBatch {
			break
		}
		records += k
		n++
	}
	reqs := make([]*request, n)
	copy(reqs, s.queue)
	rest := copy(s.queue, s.queue[n:])
	clear(s.queue[rest:])
	s.queue = s.queue[:rest]
	s.queued -= records
	return reqs, s.closed
}

// commit appends reqs in one transaction and answers each.
func (s *Store) commit(reqs []*request) {
	if s.beforeCommit != nil {
		s.beforeCommit()
	}
	results := make([]error, len(reqs))
	starts := make([]uint64, len(reqs)) // first position of each accepted request
	ts := time.Unix(0, s.now().UnixNano())
	var (
		last  uint64
		fresh []entry // index entries of the new records
		flush bool    // whether the index goes to disk in this commit
	)
	err := s.db.Update(func(tx *bolt.Tx) error {
		meta, recsB, ids := tx.Bucket(bucketMeta), tx.Bucket(bucketRecs), tx.Bucket(bucketIDs)
		recsB.FillPercent = 1 // keys only ever grow: pack pages full
		last = s.last.Load()
		// bbolt keeps the key and value slices until the commit, so
		// everything is encoded into arenas that are never overwritten.
		var vals, keys []byte
		var scratch hub.Record
		for i, req := range reqs {
			if err := checkIDs(ids, req.recs); err != nil {
				results[i] = err
				continue
			}
			starts[i] = last + 1
			for j := range req.recs {
				last++
				r := &req.recs[j]
				scratch = *r
				scratch.Pos, scratch.Time = last, ts
				posID := r.ID == ""
				from := len(vals)
				vals = appendRecord(vals, &scratch, posID)
				kfrom := len(keys)
				keys = binary.BigEndian.AppendUint64(keys, last)
				pk := keys[kfrom:len(keys):len(keys)]
				if err := recsB.Put(pk, vals[from:len(vals):len(vals)]); err != nil {
					return err
				}
				for _, t := range r.Topics {
					fresh = append(fresh, entry{t, last})
				}
				if !posID {
					if err := ids.Put([]byte(r.ID), pk); err != nil {
						return err
					}
				}
			}
		}
		if last == s.last.Load() {
			return nil // every request refused
		}
		if s.idx.n+len(fresh) >= s.indexLag {
			flush = true
			if err := flushIndex(tx, s.idx.entries(fresh), last); err != nil {
				return err
			}
		}
		return meta.Put(keyLast, posKey(last))
	})
	if err == nil && s.afterCommit != nil {
		s.afterCommit()
	}
	if err != nil {
		s.log.Error("boltstore: commit failed", "appends", len(reqs), "err", err)
		err = s.wrap("append", err)
		for i, req := range reqs {
			if results[i] == nil {
				results[i] = err
			}
			req.done <- results[i]
		}
		return
	}
	var n uint64
	for i, req := range reqs {
		if results[i] != nil {
			req.done <- results[i]
			continue
		}
		for j := range req.recs {
			r := &req.recs[j]
			r.Pos, r.Time = starts[i]+uint64(j), ts
			if r.ID == "" {
				r.ID = strconv.FormatUint(r.Pos, 10)
			}
		}
		n += uint64(len(req.recs))
		s.appends.Add(1)
	}
	s.records.Add(n)
	s.commits.Add(1)
	// Publish the commit: first the index, then last. New read
	// transactions already see the records, but Bounds reports last, and
	// a Read that starts after Bounds must find them in the index too.
	if flush {
		s.idx.flushed(last)
	} else {
		s.idx.add(fresh)
	}
	s.last.Store(last)
	s.mu.Lock()
	close(s.notify)
	s.notify = make(chan struct{})
	s.mu.Unlock()
	for i, req := range reqs {
		if results[i] == nil {
			req.done <- nil
		}
	}
}

// checkIDs returns an error wrapping hub.ErrDuplicateID if an ID of recs
// is in the ID index, which includes the requests committed before in
// the same transaction, or twice in recs.
func checkIDs(ids *bolt.Bucket, recs []hub.Record) error {
	var seen map[string]bool
	for i := range recs {
		id := recs[i].ID
		if id == "" {
			continue
		}
		if ids.Get([]byte(id)) != nil {
			return fmt.Errorf("boltstore: append %q: %w", id, hub.ErrDuplicateID)
		}
		if seen == nil {
			seen = make(map[string]bool)
		}
		if seen[id] {
			return fmt.Errorf("boltstore: append %q twice in one batch: %w", id, hub.ErrDuplicateID)
		}
		seen[id] = true
	}
	return nil
}
