package hub_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/ssehub/ssehub/hub"
	"github.com/ssehub/ssehub/store/memstore"
)

// endMessages are the messages of the lines that log a subscription's
// end, one per subscription.
var endMessages = []string{
	"unsubscribed",
	"subscription ended: replay budget reached",
	"subscription ended: hub stopped",
	"subscription ended: token expired",
	"subscriber disconnected: too slow",
}

// blockingReadLog is a Log whose Reads wait for release, or for their
// context to end: a replay that a client leaves before it is written.
type blockingReadLog struct {
	hub.Log
	reading chan struct{} // receives once a Read waits
	release chan struct{}
}

func (l *blockingReadLog) Read(ctx context.Context, after uint64, sels []hub.Selector, fn func(*hub.Record) bool) error {
	select {
	case l.reading <- struct{}{}:
	default: // not the first Read
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-l.release:
	}
	return l.Log.Read(ctx, after, sels, fn)
}

// TestSubscriptionLogged checks, on a connection the hub takes over
// (HTTP/1.1) and on an ssehttp stream (HTTP/2), that at debug level a
// subscription's start and its end are logged once each, with the
// client's address: when the client leaves, when it leaves during the
// replay, and when the replay reaches its budget.
func TestSubscriptionLogged(t *testing.T) {
	servers := []struct {
		name      string
		newServer func(http.Handler) *httptest.Server
	}{
		{"HTTP/1.1", httptest.NewServer},
		{"HTTP/2", tlsServer(true)},
	}
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) {
			t.Run("client leaves", func(t *testing.T) {
				var logs logBuffer
				th := startHubWith(t, &hub.Options{Logger: logs.logger()}, nil, true, srv.newServer)
				waitFor(t, waitTimeout, th.ready)
				s := th.subscribe(t, "topic=a", nil)
				// Once an event has arrived the stream is open: a client
				// that leaves before (as soon as the headers arrive, over
				// HTTP/2) may end it before it starts, and such a
				// subscription is logged neither as started nor as ended.
				s.waitID(t, th.publish(t, url.Values{"topic": {"a"}}))
				s.resp.Body.Close()
				checkStartEnd(t, &logs, "unsubscribed")
			})
			t.Run("client leaves during the replay", func(t *testing.T) {
				var logs logBuffer
				ms := memstore.New()
				t.Cleanup(func() { ms.Close() })
				appendN(t, ms, "a", 3)
				log := &blockingReadLog{Log: ms, reading: make(chan struct{}, 1), release: make(chan struct{})}
				th := startHubWith(t, &hub.Options{Logger: logs.logger()}, log, true, srv.newServer)
				waitFor(t, waitTimeout, th.ready)
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, th.srv.URL+"/events?topic=a", nil)
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Last-Event-ID", "0")
				done := make(chan struct{})
				go func() {
					defer close(done)
					// Reads until cancel: the client stays until the
					// replay has begun.
					if resp, err := th.client.Do(req); err == nil {
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
				}()
				select {
				case <-log.reading:
				case <-time.After(waitTimeout):
					t.Fatal("the replay did not begin")
				}
				cancel()
				<-done
				// Over HTTP/2 the Read ends with the request's context. A
				// taken-over connection has no such context (net/http no
				// longer watches it): the replay's first write finds the
				// client gone.
				close(log.release)
				checkStartEnd(t, &logs, "unsubscribed")
			})
			t.Run("replay budget", func(t *testing.T) {
				var logs logBuffer
				th := startHubWith(t, &hub.Options{Logger: logs.logger(), Limits: hub.Limits{MaxReplay: 2}}, nil, true, srv.newServer)
				waitFor(t, waitTimeout, th.ready)
				for range 3 {
					th.publish(t, url.Values{"topic": {"a"}})
				}
				s := th.subscribe(t, "topic=a&lastEventID=0", nil)
				s.waitEnd(t)
				checkStartEnd(t, &logs, "subscription ended: replay budget reached")
			})
		})
	}
}

// checkStartEnd waits until logs has an end line, and checks that there
// is one subscription start and one end, which is endMsg, at debug level
// and with the client's address.
func checkStartEnd(t *testing.T, logs *logBuffer, endMsg string) {
	t.Helper()
	ends := func() []map[string]any {
		var out []map[string]any
		for _, msg := range endMessages {
			out = append(out, logs.find(t, msg)...)
		}
		return out
	}
	deadline := time.Now().Add(waitTimeout)
	for len(ends()) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no end line after %v. The logs:\n%s", waitTimeout, logs.String())
		}
		time.Sleep(2 * time.Millisecond)
	}
	starts, got := logs.find(t, "subscribed"), ends()
	if len(starts) != 1 || len(got) != 1 {
		t.Fatalf("%d start and %d end lines; want 1 and 1. The logs:\n%s", len(starts), len(got), logs.String())
	}
	for _, rec := range []map[string]any{starts[0], got[0]} {
		if rec["level"] != "DEBUG" || rec["remote"] == nil || rec["remote"] == "" {
			t.Errorf("logged %v; want level DEBUG and the remote address", rec)
		}
	}
	if got[0]["msg"] != endMsg || !slices.Contains(endMessages, endMsg) {
		t.Errorf("end line %q; want %q", got[0]["msg"], endMsg)
	}
}
