package redisstore

import (
	"context"
	"fmt"
	"strconv"

	"github.com/ssehub/ssehub/hub"
)

// Trim implements hub.Log. It fixes its bounds when called: the newest
// position then assigned for MaxCount, and Redis's clock then for MaxAge
// (the clock that stamped the records). Then it works in steps of at most
// Options.TrimChunk records, each two script calls: one finds the oldest
// records due and their topics and IDs, without changing anything; the
// next removes them, their index entries and their IDs. Redis runs other
// commands between steps, so a large trim never blocks it for long.
//
// Nodes may trim at once: a step removes only records still held, and
// counts only what it removed, so each record is removed and counted
// once. If ctx ends or an error occurs midway, the records already
// removed stay removed and are counted. The counter is never lowered, so
// positions are never reused.
func (s *Store) Trim(ctx context.Context, r hub.Retention) (int, error) {
	if err := s.check("trim", ctx); err != nil {
		return 0, err
	}
	if r.MaxCount <= 0 && r.MaxAge <= 0 {
		return 0, nil
	}
	var countCut uint64 // remove positions up to this one
	if r.MaxCount > 0 {
		_, last, err := s.bounds(ctx)
		if err != nil {
			return 0, s.wrap("trim", err)
		}
		if last > uint64(r.MaxCount) {
			countCut = last - uint64(r.MaxCount)
		}
	}
	var ageCut int64 // remove records stamped before this; 0 for none
	if r.MaxAge > 0 {
		now, err := s.serverTime(ctx)
		if err != nil {
			return 0, s.wrap("trim", err)
		}
		ageCut = max(now.Add(-r.MaxAge).UnixMicro(), 0)
	}
	if countCut == 0 && ageCut == 0 {
		return 0, nil
	}
	total := 0
	for {
		if err := s.check("trim", ctx); err != nil {
			return total, err
		}
		n, more, err := s.trimStep(ctx, countCut, ageCut)
		total += n
		if err != nil {
			return total, s.wrap("trim", err)
		}
		if n > 0 {
			s.log.Debug("redisstore: trimmed", "records", n, "total", total)
		}
		if !more {
			return total, nil
		}
	}
}

// trimStep removes up to TrimChunk of the oldest records that are at or
// before countCut or stamped before ageCut, and reports whether more
// may be due.
func (s *Store) trimStep(ctx context.Context, countCut uint64, ageCut int64) (int, bool, error) {
	res, err := trimPlanScript.Run(ctx, s.rdb, []string{s.kLog}, countCut, ageCut, s.trimChunk).Slice()
	if err != nil {
		return 0, false, err
	}
	if len(res) < 3 {
		return 0, false, fmt.Errorf("unexpected reply %v", res)
	}
	cut, err := strconv.ParseUint(fmt.Sprint(res[0]), 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("unexpected reply %v", res[:3])
	}
	more, _ := res[1].(int64)
	nt, _ := res[2].(int64)
	if cut == 0 {
		return 0, false, nil
	}
	if nt < 0 || int(nt) > len(res)-3 {
		return 0, false, fmt.Errorf("unexpected reply %v", res[:3])
	}
	keys := []string{s.kLog, s.kIDs, s.kTopics}
	args := []any{cut, nt}
	for _, v := range res[3 : 3+nt] {
		t := fmt.Sprint(v)
		keys = append(keys, s.topicKey(t))
		args = append(args, t)
	}
	args = append(args, res[3+nt:]...)
	n, err := trimApplyScript.Run(ctx, s.rdb, keys, args...).Int()
	if err != nil {
		return 0, false, err
	}
	return n, more == 1, nil
}
