package natsstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/ssehub/ssehub/hub"
	"github.com/ssehub/ssehub/hub/logtest"
	"github.com/ssehub/ssehub/internal/testserver"
	"github.com/ssehub/ssehub/store/natsstore"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// uniqueStream returns a stream name no other test uses: the server may
// be one that other tests share (testserver.NATSURL).
func uniqueStream(prefix string) string {
	b := make([]byte, 6)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// deleteStream deletes stream name on the server at u, in t.Cleanup.
func deleteStream(tb testing.TB, u, name string, opts ...nats.Option) {
	tb.Helper()
	tb.Cleanup(func() {
		nc, err := nats.Connect(u, opts...)
		if err != nil {
			tb.Errorf("delete stream %s: %v", name, err)
			return
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			tb.Errorf("delete stream %s: %v", name, err)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := js.DeleteStream(ctx, name); err != nil && err != jetstream.ErrStreamNotFound {
			tb.Errorf("delete stream %s: %v", name, err)
		}
	})
}

// openStore opens a Store on a new stream of the server at u, deleted
// after the test.
func openStore(tb testing.TB, u string) *natsstore.Store {
	tb.Helper()
	name := uniqueStream("SSEHUBTEST_")
	deleteStream(tb, u, name)
	s, err := natsstore.Open(natsstore.Options{URL: u, Stream: name})
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func TestLog(t *testing.T) {
	u := testserver.NATSURL(t)
	logtest.Run(t, func(t *testing.T) hub.Log { return openStore(t, u) })
}
