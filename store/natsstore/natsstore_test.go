package natsstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/ssehub/ssehub/hub"
	"github.com/ssehub/ssehub/hub/logtest"
	"github.com/ssehub/ssehub/store/natsstore"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// sharedURL returns the NATS server the tests share: SSEHUB_TEST_NATS_URL,
// or the local one.
func sharedURL() string {
	if u := os.Getenv("SSEHUB_TEST_NATS_URL"); u != "" {
		return u
	}
	return "nats://127.0.0.1:4222"
}

// needShared skips t when the shared NATS server is unreachable, or
// fails it under CI.
func needShared(tb testing.TB) string {
	tb.Helper()
	u := sharedURL()
	host := "127.0.0.1:4222"
	if p, err := url.Parse(u); err == nil && p.Host != "" {
		host = p.Host
	}
	c, err := net.DialTimeout("tcp", host, time.Second)
	if err != nil {
		msg := "NATS with JetStream is not reachable at " + u + " (" + err.Error() +
			"): start one with `nats-server -js` (Debian: apt-get install nats-server) or set SSEHUB_TEST_NATS_URL"
		if os.Getenv("CI") == "true" {
			tb.Fatal(msg)
		}
		tb.Skip(msg)
	}
	c.Close()
	return u
}

// uniqueStream returns a stream name no other test uses.
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

// openShared opens a Store on a new stream of the shared server, deleted
// after the test.
func openShared(tb testing.TB) *natsstore.Store {
	tb.Helper()
	u := needShared(tb)
	name := uniqueStream("SSEHUBTEST_")
	deleteStream(tb, u, name)
	s, err := natsstore.Open(natsstore.Options{URL: u, Stream: name})
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func TestLog(t *testing.T) {
	logtest.Run(t, func(t *testing.T) hub.Log { return openShared(t) })
}

func sels(t testing.TB, ss ...string) []hub.Selector {
	t.Helper()
	var out []hub.Selector
	for _, s := range ss {
		sel, err := hub.ParseSelector(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, sel)
	}
	return out
}
