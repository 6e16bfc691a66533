package redisstore

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ssehub/ssehub/hub"
	"github.com/ssehub/ssehub/hub/logtest"
	"github.com/ssehub/ssehub/internal/testserver"
)

// TestCluster runs the contract suite through a cluster client, against
// a one-node Redis Cluster of the test's own that serves every slot:
// every script's keys must be declared and in the prefix's one slot.
func TestCluster(t *testing.T) {
	srv := testserver.Redis(t, testserver.RedisOptions{Args: []string{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"}})
	c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer c.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := c.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", 0, 16383).Err(); err != nil {
		t.Fatalf("CLUSTER ADDSLOTSRANGE: %v", err)
	}
	waitFor(t, 10*time.Second, "cluster_state:ok", func() bool {
		info, err := c.ClusterInfo(ctx).Result()
		return err == nil && strings.Contains(info, "cluster_state:ok")
	})
	url := srv.URL()
	logtest.Run(t, func(t *testing.T) hub.Log {
		s, err := Open(Options{URL: url, Cluster: true, Prefix: uniquePrefix(t, url)})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return s
	})
}
