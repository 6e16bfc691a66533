package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/ssehub/ssehub/hub"
	"github.com/ssehub/ssehub/hub/logtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// sharedURL returns the URL of the shared Redis the tests use, from
// SSEHUB_TEST_REDIS_URL or 127.0.0.1:6379. When it does not answer, the
// test is skipped, or fails under CI=true.
func sharedURL(t testing.TB) string {
	t.Helper()
	url := os.Getenv("SSEHUB_TEST_REDIS_URL")
	if url == "" {
		url = "redis://127.0.0.1:6379"
	}
	o, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("SSEHUB_TEST_REDIS_URL: %v", err)
	}
	c := redis.NewClient(o)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		msg := "no Redis at " + url + " (" + err.Error() + "): start one (apt-get install redis-server; redis-server) or set SSEHUB_TEST_REDIS_URL"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return url
}

// uniquePrefix returns a new key prefix and deletes its keys in
// t.Cleanup.
func uniquePrefix(t testing.TB, url string) string {
	t.Helper()
	var b [8]byte
	rand.Read(b[:])
	prefix := "ssehub-test-" + hex.EncodeToString(b[:])
	t.Cleanup(func() { deleteKeys(t, url, prefix) })
	return prefix
}

// deleteKeys deletes every key of prefix.
func deleteKeys(t testing.TB, url, prefix string) {
	t.Helper()
	o, err := redis.ParseURL(url)
	if err != nil {
		t.Error(err)
		return
	}
	c := redis.NewClient(o)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	iter := c.Scan(ctx, 0, "{"+prefix+"}:*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
		if len(keys) == 1000 {
			if err := c.Unlink(ctx, keys...).Err(); err != nil {
				t.Errorf("deleting the test keys: %v", err)
			}
			keys = keys[:0]
		}
	}
	if err := iter.Err(); err != nil {
		t.Errorf("listing the test keys: %v", err)
	}
	if len(keys) > 0 {
		if err := c.Unlink(ctx, keys...).Err(); err != nil {
			t.Errorf("deleting the test keys: %v", err)
		}
	}
}

// openShared opens a Store on the shared Redis with a unique prefix,
// closed and cleaned up with t.
func openShared(t testing.TB, o Options) *Store {
	t.Helper()
	url := sharedURL(t)
	if o.URL == "" {
		o.URL = url
	}
	if o.Prefix == "" {
		o.Prefix = uniquePrefix(t, url)
	}
	s, err := Open(o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestLog(t *testing.T) {
	logtest.Run(t, func(t *testing.T) hub.Log {
		url := sharedURL(t)
		s, err := Open(Options{URL: url, Prefix: uniquePrefix(t, url)})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return s
	})
}
