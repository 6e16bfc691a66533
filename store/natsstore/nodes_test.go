package natsstore_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"

	"github.com/ssehub/ssehub/hub"
	"github.com/ssehub/ssehub/internal/testserver"
	"github.com/ssehub/ssehub/store/natsstore"
)

// TestNodesAppendConcurrently appends from three Stores on one stream, as
// three hub nodes do, without pause: the Stores' committers lose the race
// for the stream's last sequence again and again. Every record must get
// a position of its own and, when it came without an ID, that position as
// its ID; publisher IDs must stay as given.
func TestNodesAppendConcurrently(t *testing.T) {
	u := testserver.NATSURL(t)
	name := uniqueStream("SSEHUBTEST_")
	deleteStream(t, u, name)
	var nodes []*natsstore.Store
	for range 3 {
		s, err := natsstore.Open(natsstore.Options{URL: u, Stream: name})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		nodes = append(nodes, s)
	}
	const perWriter = 60
	var (
		mu   sync.Mutex
		byID = map[string]uint64{}
		wg   sync.WaitGroup
	)
	for n, s := range nodes {
		for w := range 2 {
			wg.Go(func() {
				for i := range perWriter {
					recs := []hub.Record{{Topics: []string{"t"}}, {Topics: []string{"t"}, ID: fmt.Sprintf("n%d-w%d-%d", n, w, i)}, {Topics: []string{"u"}}}
					if err := s.Append(context.Background(), recs); err != nil {
						t.Errorf("node %d: append: %v", n, err)
						return
					}
					mu.Lock()
					for j, r := range recs {
						if j != 1 && r.ID != strconv.FormatUint(r.Pos, 10) {
							t.Errorf("node %d: a record without an ID got ID %q at position %d", n, r.ID, r.Pos)
						}
						if other, ok := byID[r.ID]; ok {
							t.Errorf("ID %q acknowledged twice, at positions %d and %d", r.ID, other, r.Pos)
						}
						byID[r.ID] = r.Pos
					}
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	// Every node reads the same records, each ID at its position.
	want := 3 * 2 * perWriter * 3
	for n, s := range nodes {
		_, last, err := s.Bounds(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if last != uint64(want) {
			t.Errorf("node %d: last %d; want %d", n, last, want)
		}
		for id, pos := range byID {
			got, err := s.Lookup(context.Background(), id)
			if err != nil || got != pos {
				t.Errorf("node %d: Lookup(%q) = %d, %v; want %d", n, id, got, err, pos)
				break
			}
		}
	}
}
