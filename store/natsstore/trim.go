package natsstore

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ssehub/ssehub/hub"
)

// Trim implements hub.Log. It catches up with the stream, computes the
// new floor (the oldest position kept) from the index, publishes a trim
// marker carrying it, expecting the last marker to be the one the index
// holds (so two nodes trimming at once agree, and the higher floor
// wins), waits until the index has applied it, and then purges the batch
// messages wholly below the floor and the older markers. It returns how
// many records the marker removed. A batch straddling the floor stays
// stored until a later Trim passes its end; its records below the floor
// are no longer served.
func (s *Store) Trim(ctx context.Context, r hub.Retention) (int, error) {
	st, err := s.stream(ctx)
	if err != nil {
		return 0, fmt.Errorf("natsstore: trim: %w", err)
	}
	if r.MaxCount <= 0 && r.MaxAge <= 0 {
		return 0, nil
	}
	for {
		if err := s.sync(ctx); err != nil {
			return 0, fmt.Errorf("natsstore: trim: %w", err)
		}
		s.mu.Lock()
		floor, markerSeq := s.floorLocked(r, time.Now()), s.idx.markerSeq
		n := int(floor - s.idx.base)
		if floor <= s.idx.base || s.idx.first() == 0 {
			s.mu.Unlock()
			return 0, nil
		}
		s.mu.Unlock()

		msg := nats.NewMsg(s.markerSubj)
		msg.Header.Set(hdrFloor, strconv.FormatUint(floor, 10))
		ack, err := s.js.PublishMsg(ctx, msg, jetstream.WithExpectLastSequencePerSubject(markerSeq))
		if isWrongLast(err) {
			continue // another node trimmed meanwhile: look again
		}
		if err != nil {
			return 0, fmt.Errorf("natsstore: trim: publish marker: %w", err)
		}
		if err := s.waitIndexed(ctx, ack.Sequence); err != nil {
			return n, fmt.Errorf("natsstore: trim: %w", err)
		}
		// Purge the batches wholly below the floor: those before the
		// batch holding the floor, or, when nothing is held, before the
		// marker.
		s.mu.Lock()
		below := ack.Sequence
		if e, ok := s.idx.at(floor); ok {
			below = e.seq
		}
		s.mu.Unlock()
		if err := st.Purge(ctx, jetstream.WithPurgeSubject(s.batchSubj), jetstream.WithPurgeSequence(below)); err != nil {
			return n, fmt.Errorf("natsstore: trim: purge batches before %d: %w", below, err)
		}
		if err := st.Purge(ctx, jetstream.WithPurgeSubject(s.markerSubj), jetstream.WithPurgeKeep(1)); err != nil {
			return n, fmt.Errorf("natsstore: trim: purge old markers: %w", err)
		}
		return n, nil
	}
}

// floorLocked returns the oldest position r keeps at time now. s.mu must
// be held.
func (s *Store) floorLocked(r hub.Retention, now time.Time) uint64 {
	x := &s.idx
	i := 0
	if r.MaxCount > 0 && len(x.entries) > r.MaxCount {
		i = len(x.entries) - r.MaxCount
	}
	if r.MaxAge > 0 {
		cutoff := now.Add(-r.MaxAge).UnixNano()
		for i < len(x.entries) && x.entries[i].time < cutoff {
			i++
		}
	}
	return x.base + uint64(i)
}
