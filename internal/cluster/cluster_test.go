package cluster

import (
	"cmp"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestBoltNode runs the harness against one node on its own bolt store,
// the reference the cluster is compared with: publish, receive, resume,
// an NDJSON batch.
func TestBoltNode(t *testing.T) {
	n := startNode(t, "A", boltFlags(t), true)
	topic := randomName("t/")
	s := subscribe(t, "live", topic, "", false, n)
	var ids []string
	for i := range 5 {
		ids = append(ids, n.publishData(t, topic, fmt.Sprintf("e%d", i)))
	}
	batch := ndjson(topic, "b", 3, nil)
	r := n.publish("application/x-ndjson", batch, 10*time.Second)
	if r.status != http.StatusOK || len(r.ids) != 3 {
		t.Fatalf("NDJSON publish: status %d, %v, %q; want 200 and 3 IDs", r.status, r.err, r.body)
	}
	ids = append(ids, r.ids...)
	s.waitAll(t, ids, 10*time.Second)
	sameIDs(t, "subscriber live", s.ids(), ids)

	resumed := subscribe(t, "resumed", topic, ids[1], false, n)
	resumed.waitAll(t, ids[2:], 10*time.Second)
	sameIDs(t, "subscriber resumed after "+ids[1], resumed.ids(), ids[2:])
}

// ndjson returns an NDJSON body of count events to topic, with data
// prefix-0, prefix-1, ..., and the publisher's IDs ids[i] where given.
func ndjson(topic, prefix string, count int, ids map[int]string) string {
	var b strings.Builder
	for i := range count {
		if id, ok := ids[i]; ok {
			fmt.Fprintf(&b, `{"topic":%q,"id":%q,"data":"%s-%d"}`+"\n", topic, id, prefix, i)
			continue
		}
		fmt.Fprintf(&b, `{"topic":%q,"data":"%s-%d"}`+"\n", topic, prefix, i)
	}
	return b.String()
}

// TestThreeNodes publishes on one node of three and receives on all:
// the same events, with the same IDs, in the same order.
func TestThreeNodes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be *backend) {
		nodes := startNodes(t, be, 3)
		topic := randomName("t/")
		var subs []*subscriber
		for _, n := range nodes {
			subs = append(subs, subscribe(t, "on "+n.name, topic, "", false, n))
		}
		var ids []string
		data := make(map[string]string)
		for i := range 40 {
			id := nodes[0].publishData(t, topic, fmt.Sprintf("e%d", i))
			ids = append(ids, id)
			data[id] = fmt.Sprintf("e%d", i)
		}
		for _, s := range subs {
			s.waitAll(t, ids, 15*time.Second)
			sameIDs(t, "subscriber "+s.name, s.ids(), ids)
			for _, r := range s.received() {
				if data[r.id] != r.data {
					t.Errorf("subscriber %s: event %s has data %q; want %q", s.name, r.id, r.data, data[r.id])
				}
			}
			s.checkNoOddEvents(t)
		}
	})
}

// TestResumeOnAnotherNode reads some events on one node, and resumes
// with their last ID on another: nothing lost, nothing repeated,
// including what was published while no subscriber was connected.
func TestResumeOnAnotherNode(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be *backend) {
		nodes := startNodes(t, be, 3)
		a, b, c := nodes[0], nodes[1], nodes[2]
		topic := randomName("t/")
		publish := func(n *node, from, count int) (ids []string) {
			for i := from; i < from+count; i++ {
				ids = append(ids, n.publishData(t, topic, fmt.Sprintf("e%d", i)))
			}
			return ids
		}

		first := subscribe(t, "first on A", topic, "", false, a)
		ids := publish(c, 0, 10)
		first.waitAll(t, ids, 15*time.Second)
		first.stop()
		sameIDs(t, "subscriber on A", first.ids(), ids)

		ids = append(ids, publish(c, 10, 10)...) // while no one listens
		last := first.ids()[len(first.ids())-1]
		second := subscribe(t, "resumed on B", topic, last, false, b)
		ids = append(ids, publish(a, 20, 10)...)
		second.waitAll(t, ids[10:], 15*time.Second)
		sameIDs(t, "subscriber resumed on B after "+last, second.ids(), ids[10:])

		// Resuming from the middle, on a third node.
		third := subscribe(t, "resumed on C", topic, ids[4], false, c)
		third.waitAll(t, ids[5:], 15*time.Second)
		sameIDs(t, "subscriber resumed on C after "+ids[4], third.ids(), ids[5:])
		for _, s := range []*subscriber{second, third} {
			s.checkNoOddEvents(t)
		}
	})
}

// TestNodeKilledUnderLoad kills a node with SIGKILL while events are
// published on the others: its subscribers move to another node with
// their last event ID and lose nothing, repeat nothing.
func TestNodeKilledUnderLoad(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be *backend) {
		nodes := startNodes(t, be, 3)
		a, b, c := nodes[0], nodes[1], nodes[2]
		topic := randomName("t/")
		var onA []*subscriber
		for i := range 4 {
			onA = append(onA, subscribe(t, fmt.Sprintf("%d on A", i), topic, "", true, a, b, c))
		}
		stay := subscribe(t, "on B", topic, "", false, b)
		lp := startPublishers(t, topic, 5*time.Second, 5*time.Millisecond, b, c)

		waitFor(t, 15*time.Second, func() bool { return lp.acked() >= 60 }, "fewer than 60 events acknowledged")
		a.p.kill(t)
		killed := lp.acked()
		waitFor(t, 15*time.Second, func() bool { return lp.acked() >= killed+100 }, "fewer than 100 events acknowledged after node A was killed")
		lp.halted()

		all, acked, maybe := lp.outcomes()
		for _, o := range all {
			if o.status != http.StatusOK {
				t.Errorf("publish of %s on node %s: status %d, %v, %q; want 200 (only node A died)", o.data, o.node, o.status, o.err, o.body)
			}
		}
		checkUniqueIDs(t, acked)
		for _, s := range append(onA, stay) {
			s.waitData(t, acked, 15*time.Second)
			checkExactlyOnce(t, "subscriber "+s.name, s.received(), acked, maybe)
			s.checkNoOddEvents(t)
		}
		for _, s := range onA {
			got := s.received()
			if len(got) == 0 {
				continue // reported above
			}
			if s.openCount() < 2 || got[len(got)-1].node == "A" {
				t.Errorf("subscriber %s did not move off the dead node A: %d streams opened, last event from node %s",
					s.name, s.openCount(), got[len(got)-1].node)
			}
		}
		if errs := stay.errorList(); len(errs) > 0 {
			t.Errorf("subscriber on B lost its stream although B stayed up: %v", errs)
		}
		t.Logf("%d events acknowledged, %d of them after node A was killed", len(acked), len(acked)-killed)
	})
}

// TestBackendRestart kills the backend with SIGKILL while two nodes
// take publishes, and starts it again on the same port and data: no
// publish during the outage is answered 200, refusals are 503 with
// Retry-After, /readyz says 503 then 200 again, publishing works again
// within 10s, and subscribers that stayed connected get every
// acknowledged event exactly once.
func TestBackendRestart(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be *backend) {
		nodes := startNodes(t, be, 2)
		a, b := nodes[0], nodes[1]
		topic := randomName("t/")
		subs := []*subscriber{
			subscribe(t, "on A", topic, "", false, a),
			subscribe(t, "on B", topic, "", false, b),
		}
		// Two publishers per node, each request bounded by more than the
		// hub's StoreTimeout (10s), so that every request is answered.
		lp := startPublishers(t, topic, 15*time.Second, 10*time.Millisecond, a, b, a, b)
		waitFor(t, 15*time.Second, func() bool { return lp.acked() >= 40 }, "fewer than 40 events acknowledged")

		be.srv.Kill()
		killed := time.Now()
		for _, n := range nodes {
			waitFor(t, 15*time.Second, func() bool { return n.status("/readyz") == http.StatusServiceUnavailable },
				"node %s: /readyz not 503 with the backend down", n.name)
		}
		// The outage lasts 1.5s at least, and until both nodes have
		// refused publishes.
		waitFor(t, 25*time.Second, func() bool {
			if time.Since(killed) < 1500*time.Millisecond {
				return false
			}
			all, _, _ := lp.outcomes()
			refused := map[string]int{}
			for _, o := range all {
				if o.start.After(killed) && o.status == http.StatusServiceUnavailable {
					refused[o.node]++
				}
			}
			return refused["A"] >= 2 && refused["B"] >= 2
		}, "nodes did not refuse publishes with 503 while the backend was down")
		for _, n := range nodes {
			if !n.p.running() {
				t.Fatalf("node %s exited with its backend down", n.name)
			}
		}

		restarted := time.Now()
		be.srv.Start()
		for _, n := range nodes {
			waitFor(t, 15*time.Second, func() bool { return n.status("/readyz") == http.StatusOK },
				"node %s: /readyz not 200 after the backend came back", n.name)
		}
		// The first publish answered 200 after the restart, whenever it
		// began.
		ackedAgain := func(node string) (time.Time, bool) {
			all, _, _ := lp.outcomes()
			var first time.Time
			for _, o := range all {
				if o.node == node && o.end.After(restarted) && o.status == http.StatusOK && (first.IsZero() || o.end.Before(first)) {
					first = o.end
				}
			}
			return first, !first.IsZero()
		}
		for _, n := range nodes {
			waitFor(t, 15*time.Second, func() bool { _, ok := ackedAgain(n.name); return ok },
				"node %s: no publish acknowledged after the backend came back", n.name)
			at, _ := ackedAgain(n.name)
			if d := at.Sub(restarted); d > 10*time.Second {
				t.Errorf("node %s: first publish acknowledged %v after the backend's restart; want within 10s", n.name, d)
			} else {
				t.Logf("node %s: publishing again %v after the backend's restart began", n.name, d.Round(time.Millisecond))
			}
		}
		before := lp.acked()
		waitFor(t, 15*time.Second, func() bool { return lp.acked() >= before+40 }, "fewer than 40 events acknowledged after the restart")
		lp.halted()

		all, acked, maybe := lp.outcomes()
		var refused, unclear int
		for _, o := range all {
			during := o.start.After(killed) && o.end.Before(restarted)
			switch {
			case o.status == http.StatusOK && during:
				t.Errorf("publish of %s on node %s answered 200 while the backend was down (%v after the kill)",
					o.data, o.node, o.start.Sub(killed).Round(time.Millisecond))
			case o.status == http.StatusServiceUnavailable:
				refused++
				if o.retryAfter == "" {
					t.Errorf("publish of %s on node %s: 503 without Retry-After", o.data, o.node)
				} else if _, err := strconv.Atoi(o.retryAfter); err != nil {
					t.Errorf("publish of %s on node %s: Retry-After %q is not a number of seconds", o.data, o.node, o.retryAfter)
				}
			case o.status == http.StatusOK:
			default:
				unclear++
				if during {
					t.Errorf("publish of %s on node %s during the outage: status %d, %v, %q; want 503", o.data, o.node, o.status, o.err, o.body)
				}
			}
		}
		checkUniqueIDs(t, acked)
		for _, s := range subs {
			s.waitData(t, acked, 15*time.Second)
			checkExactlyOnce(t, "subscriber "+s.name, s.received(), acked, maybe)
			if errs := s.errorList(); len(errs) > 0 {
				t.Errorf("subscriber %s lost its stream during the backend's outage: %v", s.name, errs)
			}
			s.checkNoOddEvents(t)
		}
		t.Logf("%d publishes: %d acknowledged, %d refused with 503, %d other; outage %v",
			len(all), len(acked), refused, unclear, restarted.Sub(killed).Round(time.Millisecond))
	})
}

// TestNDJSONAcrossNodes publishes NDJSON batches on every node in turn:
// each batch gets consecutive IDs and arrives whole and in order on
// every node, and a publisher's ID taken on one node is refused on the
// others with 409, the whole batch with it.
func TestNDJSONAcrossNodes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be *backend) {
		nodes := startNodes(t, be, 3)
		topic := randomName("t/")
		var subs []*subscriber
		for _, n := range nodes {
			subs = append(subs, subscribe(t, "on "+n.name, topic, "", false, n))
		}
		var want []string
		for i := range 9 {
			n := nodes[i%3]
			r := n.publish("application/x-ndjson", ndjson(topic, fmt.Sprintf("b%d", i), 10, nil), 10*time.Second)
			if r.status != http.StatusOK || len(r.ids) != 10 {
				t.Fatalf("batch %d on node %s: status %d, %v, %q; want 200 and 10 IDs", i, n.name, r.status, r.err, r.body)
			}
			first, _ := strconv.ParseUint(r.ids[0], 10, 64)
			for j, id := range r.ids {
				if id != strconv.FormatUint(first+uint64(j), 10) {
					t.Errorf("batch %d on node %s: IDs %v are not consecutive positions", i, n.name, r.ids)
					break
				}
			}
			want = append(want, r.ids...)
		}

		dup := randomName("dup-")
		r := nodes[0].publish("application/x-ndjson", ndjson(topic, "chosen", 2, map[int]string{1: dup}), 10*time.Second)
		if r.status != http.StatusOK || len(r.ids) != 2 || r.ids[1] != dup {
			t.Fatalf("batch with ID %s on node A: status %d, %v, %q; want 200 and 2 IDs, the second %s", dup, r.status, r.err, r.body, dup)
		}
		want = append(want, r.ids...)
		for _, n := range nodes[1:] {
			r := n.publish("application/x-ndjson", ndjson(topic, "refused-"+n.name, 3, map[int]string{2: dup}), 10*time.Second)
			if r.status != http.StatusConflict {
				t.Errorf("batch reusing ID %s on node %s: status %d, %q; want 409", dup, n.name, r.status, r.body)
			}
		}
		r = nodes[2].publish("application/x-ndjson", ndjson(topic, "last", 5, nil), 10*time.Second)
		if r.status != http.StatusOK || len(r.ids) != 5 {
			t.Fatalf("last batch on node C: status %d, %v, %q; want 200 and 5 IDs", r.status, r.err, r.body)
		}
		want = append(want, r.ids...)
		for _, s := range subs {
			s.waitAll(t, want, 15*time.Second)
			sameIDs(t, "subscriber "+s.name, s.ids(), want)
		}

		// Batches published at once on all three nodes: each gets
		// consecutive positions of its own, and arrives whole.
		var wg sync.WaitGroup
		results := make([][]published, len(nodes))
		for i, n := range nodes {
			wg.Go(func() {
				for k := range 5 {
					results[i] = append(results[i], n.publish("application/x-ndjson", ndjson(topic, fmt.Sprintf("c%s%d", n.name, k), 10, nil), 10*time.Second))
				}
			})
		}
		wg.Wait()
		owner := make(map[string]string) // ID to batch
		for i, rs := range results {
			for k, r := range rs {
				batch := fmt.Sprintf("c%s%d", nodes[i].name, k)
				if r.status != http.StatusOK || len(r.ids) != 10 {
					t.Fatalf("concurrent batch %s: status %d, %v, %q; want 200 and 10 IDs", batch, r.status, r.err, r.body)
				}
				first, _ := strconv.ParseUint(r.ids[0], 10, 64)
				for j, id := range r.ids {
					if id != strconv.FormatUint(first+uint64(j), 10) {
						t.Errorf("concurrent batch %s: IDs %v are not consecutive positions", batch, r.ids)
						break
					}
				}
				for _, id := range r.ids {
					if other, ok := owner[id]; ok {
						t.Errorf("ID %s acknowledged for batches %s and %s", id, other, batch)
					}
					owner[id] = batch
				}
			}
		}
		if t.Failed() {
			return
		}
		var concurrent []string
		for id := range owner {
			concurrent = append(concurrent, id)
		}
		slices.SortFunc(concurrent, func(a, b string) int { return cmp.Compare(len(a), len(b))*2 + cmp.Compare(a, b) })
		want = append(want, concurrent...)
		for _, s := range subs {
			s.waitAll(t, want, 15*time.Second)
			sameIDs(t, "subscriber "+s.name, s.ids(), want)
			for _, r := range s.received() {
				if strings.HasPrefix(r.data, "refused-") {
					t.Errorf("subscriber %s received %q of a refused batch", s.name, r.data)
				}
			}
		}
	})
}

// TestNodeStartsBeforeBackend starts a node while its backend is down:
// it runs, answers /readyz and publishes with 503, and becomes ready,
// and publishes, once the backend starts.
func TestNodeStartsBeforeBackend(t *testing.T) {
	forEachKind(t, func(t *testing.T, be *backend) {
		n := startNode(t, "A", be.nodeFlags(), false)
		waitFor(t, 15*time.Second, func() bool {
			if !n.p.running() {
				t.Fatalf("node A exited with its backend down")
			}
			return n.status("/readyz") == http.StatusServiceUnavailable
		}, "node A: /readyz not 503 with the backend down")
		topic := randomName("t/")
		r := n.publish("application/json", eventJSON(topic, "early"), 10*time.Second)
		if r.status != http.StatusServiceUnavailable || r.retryAfter == "" {
			t.Errorf("publish with the backend down: status %d, Retry-After %q, %v, %q; want 503 with Retry-After",
				r.status, r.retryAfter, r.err, r.body)
		}

		started := time.Now()
		be.srv.Start()
		waitFor(t, 15*time.Second, func() bool { return n.status("/readyz") == http.StatusOK },
			"node A: /readyz not 200 once the backend started")
		s := subscribe(t, "on A", topic, "", false, n)
		var id string
		waitFor(t, 10*time.Second, func() bool {
			r := n.publish("application/json", eventJSON(topic, "late"), 5*time.Second)
			if r.status == http.StatusOK && len(r.ids) == 1 {
				id = r.ids[0]
				return true
			}
			return false
		}, "node A: no publish acknowledged within 10s of the backend's start")
		t.Logf("ready and publishing %v after the backend started", time.Since(started).Round(time.Millisecond))
		s.waitAll(t, []string{id}, 10*time.Second)
		for _, r := range s.received() {
			if r.data == "early" {
				t.Errorf("the publish refused with 503 was delivered")
			}
		}
	})
}

// TestBackendLosesData restarts the backend with its data gone, as a
// Redis without persistence or a JetStream server whose store was wiped
// comes back. The nodes must notice that the Log went back, end their
// streams (whose cursors belong to the lost history), and serve the new
// history: publishing works again within 10 s, from position 1, and a
// subscriber that reconnects, as an EventSource does, gets the new
// events.
func TestBackendLosesData(t *testing.T) {
	forEachKind(t, func(t *testing.T, be *backend) {
		be.srv.Start()
		nodes := startNodes(t, be, 2)
		topic := randomName("t/")
		s := subscribe(t, "on B", topic, "", false, nodes[1])
		for i := range 5 {
			nodes[0].publishData(t, topic, fmt.Sprintf("old %d", i))
		}
		s.waitData(t, map[string]string{"old 4": ""}, 10*time.Second)
		opens := s.openCount()

		be.srv.Kill()
		entries, err := os.ReadDir(be.srv.Dir())
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if err := os.RemoveAll(filepath.Join(be.srv.Dir(), e.Name())); err != nil {
				t.Fatal(err)
			}
		}
		restarted := time.Now()
		be.srv.Start()

		var id string
		waitFor(t, 10*time.Second, func() bool {
			r := nodes[0].publish("application/json", eventJSON(topic, "new 1"), 5*time.Second)
			if r.status == http.StatusOK && len(r.ids) == 1 {
				id = r.ids[0]
				return true
			}
			return false
		}, "node A: no publish acknowledged within 10s of the backend's return, empty")
		t.Logf("publishing again %v after the backend came back empty", time.Since(restarted).Round(time.Millisecond))
		if id != "1" {
			t.Errorf("first ID in the new history = %s; want 1", id)
		}
		waitFor(t, 10*time.Second, func() bool { return s.openCount() > opens },
			"subscriber on B: its stream was not ended and reopened after the Log went back")
		for _, n := range nodes {
			if !strings.Contains(n.logs.String(), "the log went back") {
				t.Errorf("node %s did not log that the log went back", n.name)
			}
		}
		id2 := nodes[0].publishData(t, topic, "new 2")
		s.waitAll(t, []string{id2}, 10*time.Second)
	})
}
