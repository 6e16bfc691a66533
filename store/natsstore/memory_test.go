package natsstore_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ssehub/ssehub/hub"
	"github.com/ssehub/ssehub/internal/testserver"
	"github.com/ssehub/ssehub/store/natsstore"
)

// TestIndexMemory measures what a node's in-memory index costs per
// record: a Store that opens a stream of 100,000 records (on 10 topics,
// one in ten with a publisher's ID) reads them all at start, and its heap
// grows by the index, its cache of batches turned off. The package doc
// promises about 50 to 70 bytes a record; the test fails above 120.
func TestIndexMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("appends 100,000 records: skipped in -short mode")
	}
	const batches, per = 100, 1000
	u := testserver.NATSURL(t)
	name := uniqueStream("SSEHUBTEST_")
	deleteStream(t, u, name)
	w, err := natsstore.Open(natsstore.Options{URL: u, Stream: name})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	data := strings.Repeat("x", 100)
	ctx := context.Background()
	for b := range batches {
		recs := make([]hub.Record, per)
		for i := range recs {
			n := b*per + i
			recs[i] = hub.Record{Topics: []string{fmt.Sprintf("t/%d", n%10)}, Data: data}
			if n%10 == 0 {
				recs[i].ID = fmt.Sprintf("p-%d", n)
			}
		}
		if err := w.Append(ctx, recs); err != nil {
			t.Fatal(err)
		}
	}

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	r, err := natsstore.Open(natsstore.Options{URL: u, Stream: name})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	r.NoCache()
	_, last, err := r.Bounds(ctx) // waits until the index holds the stream
	if err != nil {
		t.Fatal(err)
	}
	caughtUp := time.Since(start)
	if last != batches*per {
		t.Fatalf("the new Store's last = %d; want %d", last, batches*per)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	perRecord := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / (batches * per)
	t.Logf("index: %.1f bytes a record (heap %d -> %d bytes for %d records); read the stream at start in %v",
		perRecord, before.HeapAlloc, after.HeapAlloc, batches*per, caughtUp.Round(time.Millisecond))
	if perRecord > 120 {
		t.Errorf("the index costs %.1f bytes a record; want at most 120", perRecord)
	}
	runtime.KeepAlive(r)
}
