package boltstore

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"

	bolt "go.etcd.io/bbolt"

	"github.com/ssehub/ssehub/hub"
)

// Trim implements hub.Log. It fixes its bounds when called, the newest
// position then held for MaxCount and the current time for MaxAge, and
// removes records with their index entries in transactions of at most
// Options.TrimBatch records, so Appends go on between them. If ctx ends
// or an error occurs midway, the records already removed stay removed
// and are counted. The last position ever assigned is kept, so positions
// are never reused, even after everything was trimmed.
func (s *Store) Trim(ctx context.Context, r hub.Retention) (int, error) {
	if s.isClosed() {
		return 0, fmt.Errorf("boltstore: trim: %w", hub.ErrLogClosed)
	}
	var countCut uint64 // remove positions up to this one
	if last := s.last.Load(); r.MaxCount > 0 && last > uint64(r.MaxCount) {
		countCut = last - uint64(r.MaxCount)
	}
	ageCut := int64(math.MinInt64) // remove records stored before this
	if r.MaxAge > 0 {
		ageCut = s.now().Add(-r.MaxAge).UnixNano()
	}
	if countCut == 0 && r.MaxAge <= 0 {
		return 0, nil
	}
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		var n int
		var more bool
		err := s.db.Update(func(tx *bolt.Tx) error {
			var err error
			n, more, err = s.trimSome(tx, countCut, ageCut)
			return err
		})
		if err != nil {
			return total, s.wrap("trim", err)
		}
		total += n
		if n > 0 {
			s.log.Debug("boltstore: trimmed", "records", n, "total", total)
		}
		if !more {
			return total, nil
		}
	}
}

// trimSome removes up to TrimBatch of the oldest records that are at or
// before countCut or older than ageCut, and reports whether more may be.
func (s *Store) trimSome(tx *bolt.Tx, countCut uint64, ageCut int64) (int, bool, error) {
	recs, topics, ids := tx.Bucket(bucketRecs), tx.Bucket(bucketTopics), tx.Bucket(bucketIDs)
	c := recs.Cursor()
	var (
		w   view
		key []byte
		n   int
	)
	for k, v := c.First(); k != nil; k, v = c.First() {
		if n == s.trimBatch {
			return n, true, nil
		}
		pos := binary.BigEndian.Uint64(k)
		if pos > countCut {
			if t, ok := recordTime(v); ok && t >= ageCut {
				return n, false, nil
			}
		}
		if err := w.parse(pos, v); err != nil {
			return n, false, err
		}
		for _, t := range w.topics {
			key = append(key[:0], t...)
			key = append(key, 0)
			key = binary.BigEndian.AppendUint64(key, pos)
			if err := topics.Delete(key); err != nil {
				return n, false, err
			}
		}
		if w.id != nil {
			if err := ids.Delete(w.id); err != nil {
				return n, false, err
			}
		}
		// After a Delete the cursor's place is undefined; First finds
		// the next oldest again.
		if err := c.Delete(); err != nil {
			return n, false, err
		}
		n++
	}
	return n, false, nil
}
