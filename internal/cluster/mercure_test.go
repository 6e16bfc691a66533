package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"syscall"
	"testing"
	"time"
)

// mercureSubscriptions returns the topics of the active Mercure
// subscriptions node n lists, sorted, or an error.
func (n *node) mercureSubscriptions() ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, n.base+"/.well-known/mercure/subscriptions", nil)
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	var c struct {
		Subscriptions []struct {
			Topic  string `json:"topic"`
			Active bool   `json:"active"`
		} `json:"subscriptions"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&c); err != nil {
		return nil, err
	}
	var topics []string
	for _, s := range c.Subscriptions {
		if s.Active {
			topics = append(topics, s.Topic)
		}
	}
	slices.Sort(topics)
	return topics, nil
}

// mercureStream opens a Mercure subscription to topic on n, held until
// the test ends.
func mercureStream(t *testing.T, n *node, topic string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, n.base+"/.well-known/mercure?topic="+url.QueryEscape(topic), nil)
	resp, err := client.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("subscribe on %s: %v", n.name, err)
	}
	if resp.StatusCode != http.StatusOK {
		cancel()
		t.Fatalf("subscribe on %s: %d", n.name, resp.StatusCode)
	}
	t.Cleanup(func() {
		cancel()
		resp.Body.Close()
	})
}

// TestMercureSubscriptionsAcrossNodes: each of three nodes lists the
// Mercure subscriptions of all three; a node that joins late lists them
// too; a node killed with SIGKILL is forgotten within three heartbeats.
func TestMercureSubscriptionsAcrossNodes(t *testing.T) {
	const heartbeat = 200 * time.Millisecond
	forEachBackend(t, func(t *testing.T, be *backend) {
		flags := append(be.nodeFlags(), "--mercure-subscriptions", "--mercure-node-heartbeat", heartbeat.String())
		var nodes []*node
		for _, name := range []string{"A", "B", "C"} {
			nodes = append(nodes, startNode(t, name, flags, true))
		}
		var want []string
		for _, n := range nodes {
			topic := "https://example.com/on/" + n.name
			mercureStream(t, n, topic)
			want = append(want, topic)
		}
		lists := func(nodes []*node, want []string) {
			t.Helper()
			for _, n := range nodes {
				waitFor(t, 15*time.Second, func() bool {
					got, err := n.mercureSubscriptions()
					return err == nil && slices.Equal(got, want)
				}, "node %s does not list %v", n.name, want)
			}
		}
		lists(nodes, want)

		late := startNode(t, "D", flags, true)
		lists([]*node{late}, want)

		nodes[2].p.cmd.Process.Signal(syscall.SIGKILL)
		t0 := time.Now()
		lists([]*node{nodes[0], nodes[1], late}, want[:2])
		// Three heartbeats and a sweep's tick, with room for a slow
		// machine; never the node's whole life.
		if d := time.Since(t0); d > 3*time.Second {
			t.Errorf("a killed node's subscription listed for %v; want within about %v", d, 4*heartbeat)
		}
		t.Logf("%s: a killed node's subscription gone from the three others' lists after %v", be.kind, time.Since(t0).Round(10*time.Millisecond))
	})
}
