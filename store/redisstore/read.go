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
// merged in position order in the script, a record with several matching
// topics once: replaying a quiet topic costs the same however many
// records other topics have. Selectors that start with a wildcard, or
// that match more than 256 topics, make it scan the log instead.
//
// Each script call returns up to 512 records and checks, in the same
// call, that the records after the position it reads after are held; fn
// is called between script calls. fn may keep the records.
func (s *Store) Read(ctx context.Context, after uint64, sels []hub.Selector, fn func(*hub.Record) bool) error {
	if err := s.check("read", ctx); err != nil {
		return err
	}
	if len(sels) == 0 {
		return nil
	}
	script, keys := scanScript, []string{s.kSeq, s.kLog}
	topics, ok, err := s.topics(ctx, sels)
	if err != nil {
		return s.wrap("read", err)
	}
	if ok {
		if len(topics) == 0 {
			// No topic matches; there is nothing to read, unless what is
			// to be read was trimmed.
			first, last, err := s.bounds(ctx)
			if err != nil {
				return s.wrap("read", err)
			}
			if first > after+1 || first == 0 && last > after {
				return fmt.Errorf("redisstore: read: %w", hub.ErrTrimmed)
			}
			return nil
		}
		script = indexScript
		for _, t := range topics {
			keys = append(keys, s.topicKey(t))
		}
	}
	for {
		if err := s.check("read", ctx); err != nil {
			return err
		}
		res, err := script.Run(ctx, s.rdb, keys, after, readBatch).Slice()
		if err != nil {
			return s.wrap("read", err)
		}
		if len(res) == 0 {
			return fmt.Errorf("redisstore: read: empty reply")
		}
		status, _ := res[0].(int64)
		if status < 0 {
			return fmt.Errorf("redisstore: read after %d: %w", after, hub.ErrTrimmed)
		}
		s.visited.Add(uint64(len(res) - 1))
		for _, v := range res[1:] {
			r, err := decodeScriptEntry(v)
			if err != nil {
				return fmt.Errorf("redisstore: read: %w", err)
			}
			after = r.Pos
			if !ok && !hub.MatchAny(sels, r.Topics) {
				continue
			}
			if !fn(&r) {
				return nil
			}
		}
		if status == 0 {
			return nil
		}
	}
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
