package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/ssehub/ssehub/hub"
	"github.com/ssehub/ssehub/hub/logtest"
	"github.com/ssehub/ssehub/internal/testserver"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// uniquePrefix returns a new key prefix and deletes its keys in
// t.Cleanup: the Redis at url may be one that other tests share
// (testserver.RedisURL).
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

// openStore opens a Store on the Redis at url with o and, unless o has
// one, a unique prefix; it is closed and its keys deleted with t.
func openStore(t testing.TB, url string, o Options) *Store {
	t.Helper()
	o.URL = url
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
	url := testserver.RedisURL(t)
	logtest.Run(t, func(t *testing.T) hub.Log {
		s, err := Open(Options{URL: url, Prefix: uniquePrefix(t, url)})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return s
	})
}
