package daemon

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/ssehub/ssehub/internal/testserver"
)

// backendURL returns the URL of a Redis or NATS server for the test:
// SSEHUB_TEST_REDIS_URL or SSEHUB_TEST_NATS_URL if set, else one of the
// test's own (testserver.RedisURL, testserver.NATSURL).
func backendURL(t *testing.T, store string) string {
	t.Helper()
	if store == "nats" {
		return testserver.NATSURL(t)
	}
	return testserver.RedisURL(t)
}

// TestServeClusterStores runs serve on each cluster store, on a server
// that may be shared (backendURL), with a name of its own, and publishes, subscribes and resumes
// through it; then removes what it stored.
func TestServeClusterStores(t *testing.T) {
	for _, store := range []string{"redis", "nats"} {
		t.Run(store, func(t *testing.T) {
			u := backendURL(t, store)
			name := "ssehubtest" + strconv.FormatInt(time.Now().UnixNano(), 36)
			c := testServeConfig(t, "127.0.0.1:0")
			c.store = store
			switch store {
			case "redis":
				c.backend.redisURL, c.backend.redisPrefix = u, name
				t.Cleanup(func() { dropRedisPrefix(t, u, name) })
			case "nats":
				c.backend.natsURL, c.backend.natsStream, c.backend.natsReplicas = u, name, 1
				t.Cleanup(func() { dropNATSStream(t, u, name) })
			}
			base, stop := startServe(t, c)
			first := publishForm(t, base, url.Values{"topic": {"t"}, "data": {"one"}})
			second := publishForm(t, base, url.Values{"topic": {"t"}, "data": {"two"}})
			if first != "1" || second != "2" {
				t.Errorf("IDs %s, %s; want 1, 2", first, second)
			}
			// Resume after the first: the second only.
			req, _ := http.NewRequest(http.MethodGet, base+"/events?topic=t", nil)
			req.Header.Set("Last-Event-ID", first)
			lines := readStream(t, req, "data: two")
			if !strings.Contains(lines, "id: 2\n") || strings.Contains(lines, "data: one") {
				t.Errorf("resumed stream:\n%s\nwant event 2 only", lines)
			}
			if err := stop(); err != nil {
				t.Errorf("serve returned %v; want nil", err)
			}
		})
	}
}

// TestServeBackendDown starts serve on each cluster store with nothing
// listening at the server's address: the node starts, is not ready, and
// refuses to publish with 503 and Retry-After.
func TestServeBackendDown(t *testing.T) {
	for _, store := range []string{"redis", "nats"} {
		t.Run(store, func(t *testing.T) {
			c := testServeConfig(t, "127.0.0.1:0")
			c.store = store
			dead := freeAddr(t) // nothing listens there
			switch store {
			case "redis":
				c.backend.redisURL, c.backend.redisPrefix = "redis://"+dead, "down"
			case "nats":
				c.backend.natsURL, c.backend.natsStream, c.backend.natsReplicas = "nats://"+dead, "DOWN", 1
			}
			ctx, cancel := context.WithCancel(context.Background())
			ready := make(chan net.Addr, 1)
			done := make(chan error, 1)
			go func() { done <- serve(ctx, c, slog.New(slog.DiscardHandler), ready) }()
			t.Cleanup(func() {
				cancel()
				select {
				case err := <-done:
					if err != nil {
						t.Errorf("serve = %v; want nil", err)
					}
				case <-time.After(20 * time.Second):
					t.Error("serve did not return within 20s of cancellation")
				}
			})
			var base string
			select {
			case addr := <-ready:
				base = loopbackBase(c, addr)
			case err := <-done:
				t.Fatalf("serve with its %s down: %v; want it to start", store, err)
			case <-time.After(20 * time.Second):
				t.Fatal("serve did not start within 20s")
			}
			resp, err := http.Get(base + "/readyz")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable {
				t.Errorf("/readyz = %d; want 503", resp.StatusCode)
			}
			resp, err = http.PostForm(base+"/events", url.Values{"topic": {"t"}, "data": {"x"}})
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
				t.Errorf("publish = %d, Retry-After %q, %s; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"), body)
			}
		})
	}
}

// publishForm publishes a form and returns the ID the hub answers.
func publishForm(t *testing.T, base string, form url.Values) string {
	t.Helper()
	resp, err := http.PostForm(base+"/events", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("publish %v: %d %s", form, resp.StatusCode, b)
	}
	return strings.TrimSpace(string(b))
}

// readStream reads req's event stream until a line equal to until, for
// up to 10 s, and returns what it read.
func readStream(t *testing.T, req *http.Request, until string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sb strings.Builder
	buf := make([]byte, 4096)
	for !strings.Contains(sb.String(), "\n"+until+"\n") {
		n, err := resp.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			t.Fatalf("stream ended (%v) before %q:\n%s", err, until, sb.String())
		}
	}
	return sb.String()
}

// dropRedisPrefix deletes the keys of a hub's prefix.
func dropRedisPrefix(t *testing.T, u, prefix string) {
	opt, err := redis.ParseURL(u)
	if err != nil {
		t.Error(err)
		return
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	iter := rdb.Scan(ctx, 0, "{"+prefix+"}:*", 1000).Iterator()
	for iter.Next(ctx) {
		rdb.Del(ctx, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Errorf("delete the keys of {%s}: %v", prefix, err)
	}
}

// dropNATSStream deletes a stream.
func dropNATSStream(t *testing.T, u, stream string) {
	nc, err := nats.Connect(u)
	if err != nil {
		t.Error(err)
		return
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Error(err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := js.DeleteStream(ctx, stream); err != nil {
		t.Errorf("delete stream %s: %v", stream, err)
	}
}
