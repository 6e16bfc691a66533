package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ssehub/ssehub/hub"
)

// Read implements hub.Log. For selectors whose topics it can list, exact
// ones and patterns with a literal Prefix (whose topics it finds in the
// set of known topics), it reads only those topics' index streams,
// merged in position order in a script, a record with several matching
// topics once: replaying a quiet topic costs the same however many
// records other topics have. Selectors that start with a wildcard, or
// that match more than 256 topics, make it scan the log instead.
//
// It reads pages of up to 512 records. Each page checks, in the same
// atomic step as it reads, that the records after the position it reads
// after are held; the records of an index page are then fetched with
// XRANGE, and one that is gone by then was trimmed meanwhile. fn is
// called between pages, and may keep the records.
func (s *Store) Read(ctx context.Context, after uint64, sels []hub.Selector, fn func(*hub.Record) bool) error {
	if err := s.check("read", ctx); err != nil {
		return err
	}
	if len(sels) == 0 {
		return nil
	}
	topics, indexed, err := s.topics(ctx, sels)
	if err != nil {
		return s.wrap("read", err)
	}
	if indexed && len(topics) == 0 {
		// No topic matches; there is nothing to read, unless what is to
		// be read was trimmed.
		first, last, err := s.bounds(ctx)
		if err != nil {
			return s.wrap("read", err)
		}
		if trimmedAfter(after, first, last) {
			return fmt.Errorf("redisstore: read: %w", hub.ErrTrimmed)
		}
		return nil
	}
	keys := []string{s.kSeq, s.kLog}
	for _, t := range topics {
		keys = append(keys, s.topicKey(t))
	}
	for {
		if err := s.check("read", ctx); err != nil {
			return err
		}
		var (
			msgs []redis.XMessage
			more bool
		)
		if indexed {
			msgs, more, err = s.indexPage(ctx, keys, after)
		} else {
			msgs, more, err = s.scanPage(ctx, after)
		}
		if err != nil {
			if errors.Is(err, hub.ErrTrimmed) {
				return fmt.Errorf("redisstore: read after %d: %w", after, err)
			}
			return s.wrap("read", err)
		}
		s.visited.Add(uint64(len(msgs)))
		for _, m := range msgs {
			r, err := decodeValues(m.ID, m.Values)
			if err != nil {
				return fmt.Errorf("redisstore: read: %w", err)
			}
			after = r.Pos
			if !indexed && !hub.MatchAny(sels, r.Topics) {
				continue
			}
			if !fn(&r) {
				return nil
			}
		}
		if !more {
			return nil
		}
	}
}

// trimmedAfter reports whether records after position after, which a
// reader has not reached, are gone from a log whose bounds are first and
// last (first 0: none held).
func trimmedAfter(after, first, last uint64) bool {
	return first > after+1 || first == 0 && last > after
}

// scanPage reads the log's next page after position after.
func (s *Store) scanPage(ctx context.Context, after uint64) ([]redis.XMessage, bool, error) {
	msgs, err := s.rangeAfter(ctx, s.kLog, after)
	if err != nil {
		return nil, false, err
	}
	return msgs, len(msgs) == readBatch, nil
}

// rangeAfter reads the next page of the stream key (the log, or a topic's
// index) after position after, with the counter and the log's length in
// the same transaction, and returns hub.ErrTrimmed when they say that
// records after after are gone.
func (s *Store) rangeAfter(ctx context.Context, key string, after uint64) ([]redis.XMessage, error) {
	var (
		seq *redis.StringCmd
		n   *redis.IntCmd
		xr  *redis.XMessageSliceCmd
	)
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		seq = p.Get(ctx, s.kSeq)
		n = p.XLen(ctx, s.kLog)
		xr = p.XRangeN(ctx, key, "("+strconv.FormatUint(after, 10)+"-0", "+", readBatch)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	if err := checkHeld(after, seq, n); err != nil {
		return nil, err
	}
	return xr.Result()
}

// mergedPositions returns the next page of positions after after of the
// topics whose index streams are keys[2:], merged by indexScript.
func (s *Store) mergedPositions(ctx context.Context, keys []string, after uint64) ([]int64, bool, error) {
	res, err := indexScript.Run(ctx, s.rdb, keys, after, readBatch).Int64Slice()
	if err != nil {
		return nil, false, err
	}
	if len(res) == 0 {
		return nil, false, errors.New("empty reply")
	}
	if res[0] < 0 {
		return nil, false, hub.ErrTrimmed
	}
	return res[1:], res[0] == 1, nil
}

// topicPositions returns the next page of positions after after of one
// topic, whose index stream is key: the commonest replay needs no merge,
// and so no script.
func (s *Store) topicPositions(ctx context.Context, key string, after uint64) ([]int64, bool, error) {
	es, err := s.rangeAfter(ctx, key, after)
	if err != nil {
		return nil, false, err
	}
	ps := make([]int64, len(es))
	for i, e := range es {
		p, err := parseSID(e.ID)
		if err != nil {
			return nil, false, err
		}
		ps[i] = int64(p)
	}
	return ps, len(es) == readBatch, nil
}

// checkHeld returns hub.ErrTrimmed when records after position after are
// gone from the log whose counter and length seq and n read.
func checkHeld(after uint64, seq *redis.StringCmd, n *redis.IntCmd) error {
	last, err := seq.Uint64()
	if err != nil && !errors.Is(err, redis.Nil) {
		return err
	}
	var first uint64
	if l := uint64(n.Val()); l > 0 {
		first = last - l + 1
	}
	if trimmedAfter(after, first, last) {
		return hub.ErrTrimmed
	}
	return nil
}

// indexPage reads the positions of the next page of the topics' index
// streams (keys[2:]) after position after, then their records: with one
// XRANGE of their span when they are at least half of the log's records
// in it, else one XRANGE each, pipelined.
func (s *Store) indexPage(ctx context.Context, keys []string, after uint64) ([]redis.XMessage, bool, error) {
	var (
		ps   []int64
		more bool
		err  error
	)
	if len(keys) == 3 {
		ps, more, err = s.topicPositions(ctx, keys[2], after)
	} else {
		ps, more, err = s.mergedPositions(ctx, keys, after)
	}
	if err != nil {
		return nil, false, err
	}
	if len(ps) == 0 {
		return nil, more, nil
	}
	sid := func(p int64) string { return strconv.FormatInt(p, 10) + "-0" }
	var msgs []redis.XMessage
	if span := ps[len(ps)-1] - ps[0] + 1; span < 2*int64(len(ps)) {
		all, err := s.rdb.XRange(ctx, s.kLog, sid(ps[0]), sid(ps[len(ps)-1])).Result()
		if err != nil {
			return nil, false, err
		}
		msgs = make([]redis.XMessage, 0, len(ps))
		j := 0
		for _, m := range all {
			if j < len(ps) && m.ID == sid(ps[j]) {
				msgs = append(msgs, m)
				j++
			}
		}
	} else {
		cmds := make([]*redis.XMessageSliceCmd, len(ps))
		if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, pos := range ps {
				cmds[i] = p.XRange(ctx, s.kLog, sid(pos), sid(pos))
			}
			return nil
		}); err != nil {
			return nil, false, err
		}
		msgs = make([]redis.XMessage, 0, len(ps))
		for _, c := range cmds {
			msgs = append(msgs, c.Val()...)
		}
	}
	if len(msgs) < len(ps) {
		// Records the index listed are gone: Trim, which removes the
		// oldest first, removed them after the script ran.
		return nil, false, hub.ErrTrimmed
	}
	return msgs, more, nil
}

// topics returns the topics that sels match, from the set of known
// topics for patterns, or false when a scan is better: a selector
// without a literal prefix, or more than maxTopics topics.
func (s *Store) topics(ctx context.Context, sels []hub.Selector) ([]string, bool, error) {
	var names []string
	seen := make(map[string]bool)
	add := func(t string) bool {
		if !seen[t] {
			seen[t] = true
			names = append(names, t)
		}
		return len(names) <= maxTopics
	}
	for _, sel := range sels {
		switch {
		case sel.String() == "":
			continue // the zero Selector matches nothing
		case sel.Exact():
			if !add(sel.String()) {
				return nil, false, nil
			}
			continue
		}
		prefix := sel.Prefix()
		if prefix == "" {
			return nil, false, nil
		}
		// Topics are valid UTF-8, so none holds the byte 0xff: the
		// range holds every topic that starts with prefix. Looking at
		// more than a few times maxTopics is a sign that a scan is
		// cheaper.
		list, err := s.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{
			Key: s.kTopics, ByLex: true,
			Start: "[" + prefix, Stop: "(" + prefix + "\xff",
			Count: 4*maxTopics + 1,
		}).Result()
		if err != nil {
			return nil, false, err
		}
		if len(list) > 4*maxTopics {
			return nil, false, nil
		}
		for _, t := range list {
			if sel.Match(t) && !add(t) {
				return nil, false, nil
			}
		}
	}
	return names, true, nil
}

// Tail implements hub.Log with XREAD BLOCK on the log, waiting up to half
// a second at a time so that it notices ctx and Close. Since a record, its
// position and the counter become visible in one script, Tail never sees
// a record before Bounds reports it. When Redis cannot be reached, Tail
// returns the error (not ErrLogClosed) at once; the caller calls it again
// from its last position. A Tail whose next records were trimmed goes on
// from the oldest record held. fn may keep the records.
func (s *Store) Tail(ctx context.Context, after uint64, fn func([]hub.Record) error) error {
	for {
		if err := s.check("tail", ctx); err != nil {
			return err
		}
		streams, err := s.rdb.XRead(ctx, &redis.XReadArgs{
			Streams: []string{s.kLog, strconv.FormatUint(after, 10) + "-0"},
			Count:   tailBatch,
			Block:   tailBlock,
		}).Result()
		if errors.Is(err, redis.Nil) {
			continue // nothing new
		}
		if err != nil {
			if cerr := ctx.Err(); cerr != nil && !s.closed.Load() {
				return cerr
			}
			err = s.wrap("tail", err)
			if !errors.Is(err, hub.ErrLogClosed) {
				s.log.Warn("redisstore: tail", "after", after, "err", err)
			}
			return err
		}
		var out []hub.Record
		for _, st := range streams {
			for _, m := range st.Messages {
				r, err := decodeValues(m.ID, m.Values)
				if err != nil {
					return fmt.Errorf("redisstore: tail: %w", err)
				}
				out = append(out, r)
			}
		}
		if len(out) == 0 {
			continue
		}
		if err := fn(out); err != nil {
			return err
		}
		after = out[len(out)-1].Pos
	}
}

// serverTime returns the clock of the Redis that holds the log.
func (s *Store) serverTime(ctx context.Context) (time.Time, error) {
	us, err := timeScript.Run(ctx, s.rdb, []string{s.kLog}).Int64()
	if err != nil {
		return time.Time{}, err
	}
	return time.UnixMicro(us), nil
}
