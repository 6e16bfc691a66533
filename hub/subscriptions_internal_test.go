package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"
)

// idLog is a Log that keeps what is appended and refuses an ID it holds,
// as every Log does.
type idLog struct {
	nopLog
	mu   sync.Mutex // guards recs and ids
	recs []Record
	ids  map[string]bool
}

func (l *idLog) Append(ctx context.Context, recs []Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range recs {
		if r.ID != "" && l.ids[r.ID] {
			return fmt.Errorf("%w: %q", ErrDuplicateID, r.ID)
		}
	}
	for _, r := range recs {
		if r.ID != "" {
			l.ids[r.ID] = true
		}
		l.recs = append(l.recs, r)
	}
	return nil
}

// TestSweepOnce: two nodes that both take a third for dead before either
// has read the other's updates publish the end of each of its
// subscriptions once, not twice. (The external cluster test cannot make
// the two sweeps meet: a node that reads the other's end updates first
// has nothing left to end.)
func TestSweepOnce(t *testing.T) {
	log := &idLog{ids: make(map[string]bool)}
	h := New(log, &Options{Mercure: MercureOptions{Subscriptions: true}})
	defer h.Close()
	const dead = "deadbeef"
	var docs []subscriptionDoc
	for i := range snapshotPart + 3 { // two batches
		sub := fmt.Sprintf("urn:uuid:%d", i)
		docs = append(docs, subscriptionDoc{ID: subscriptionID("t", sub), Type: "Subscription", Topic: "t", Subscriber: sub, Active: true})
	}
	nodes := []*activeSubs{newActiveSubs(h), newActiveSubs(h)}
	for _, a := range nodes {
		v := &nodeView{seen: time.Now().Add(-time.Hour), subs: make(map[string]subscriptionDoc)}
		for _, d := range docs {
			v.subs[d.ID] = d
		}
		a.nodes[dead] = v
	}
	for _, a := range nodes {
		a.sweep(context.Background())
		if _, ok := a.nodes[dead]; ok {
			t.Fatal("the dead node is still in the view after a sweep")
		}
	}
	ends := make(map[string]int)
	for _, r := range log.recs {
		var d subscriptionDoc
		if err := json.Unmarshal([]byte(r.Data), &d); err != nil {
			t.Fatal(err)
		}
		if d.Active || r.Topics[1] != nodesTopic+dead {
			t.Errorf("record %+v; want the end of a subscription of the dead node", r)
		}
		ends[d.ID]++
	}
	if len(ends) != len(docs) {
		t.Errorf("%d subscriptions ended; want %d", len(ends), len(docs))
	}
	for id, n := range ends {
		if n != 1 {
			t.Errorf("%s ended %d times; want once", id, n)
		}
	}
}
