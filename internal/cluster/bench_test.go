package cluster

import (
	"context"
	"flag"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/ssehub/ssehub/internal/loadgen"
)

// Flags of BenchmarkClusterLatency, for longer runs than CI's.
var (
	benchSubscribers = flag.Int("cluster.subscribers", 1000, "BenchmarkClusterLatency: subscribers, spread over the nodes")
	benchRate        = flag.Float64("cluster.rate", 100, "BenchmarkClusterLatency: events published a second")
	benchDuration    = flag.Duration("cluster.duration", 5*time.Second, "BenchmarkClusterLatency: how long to publish")
	benchRoundRobin  = flag.Bool("cluster.round-robin", true, "BenchmarkClusterLatency: publish to the nodes in turn (false: to the first node only)")
)

// BenchmarkClusterLatency measures the publish-to-receive latency of a
// cluster against one node, side by side in one run: 1,000 subscribers
// (-cluster.subscribers) at 100 events a second (-cluster.rate) for 5s
// (-cluster.duration), first on one node on its own bolt store, then
// spread over three nodes on Redis and over three on NATS, with events
// published to the nodes in turn (to the first only with
// -cluster.round-robin=false). It reports the latency's p50, p90 and
// p99 in milliseconds, and fails on any event lost or repeated.
//
//	go test -run '^$' -bench ClusterLatency -benchtime 1x -count 3 ./internal/cluster
//
// Everything runs on this machine: the nodes, the backend and the
// subscribers share its CPUs, so compare the rows of one run, not runs.
func BenchmarkClusterLatency(b *testing.B) {
	b.Run("bolt-1node", func(b *testing.B) {
		nodes := []*node{startNode(b, "A", boltFlags(b), true)}
		benchLatency(b, nodes)
	})
	for _, kind := range backendKinds {
		b.Run(kind+"-3nodes", func(b *testing.B) {
			be := newBackend(b, kind)
			be.srv.Start()
			nodes := startNodes(b, be, 3)
			benchLatency(b, nodes)
		})
	}
}

// benchLatency runs the bench engine b.N times against nodes and reports
// the latency percentiles of the runs together (the median of the runs'
// figures when b.N > 1).
func benchLatency(b *testing.B, nodes []*node) {
	var urls []string
	for _, n := range nodes {
		urls = append(urls, n.base+"/events")
	}
	var p50, p90, p99 []float64
	for b.Loop() {
		rep, err := loadgen.Run(context.Background(), &loadgen.Options{
			URL: urls[0], URLs: urls[1:], PublishRoundRobin: *benchRoundRobin,
			Topic:       randomName("bench/"),
			Subscribers: *benchSubscribers, Rate: *benchRate, Duration: *benchDuration,
			ConnectRate: 2000, Drain: 5 * time.Second,
		})
		if err != nil {
			b.Fatalf("bench: %v", err)
		}
		if rep.Connected != rep.Subscribers || rep.Publish.Failed > 0 || rep.Publish.Behind {
			b.Errorf("connected %d of %d, %d events failed (%s), publisher behind: %v",
				rep.Connected, rep.Subscribers, rep.Publish.Failed, rep.Publish.Error, rep.Publish.Behind)
		}
		if rep.Lost.Total > 0 || rep.Undelivered.Total > 0 || rep.Duplicated.Total > 0 || rep.Disconnects > 0 {
			b.Errorf("lost %d, undelivered %d, duplicated %d events; %d streams ended early",
				rep.Lost.Total, rep.Undelivered.Total, rep.Duplicated.Total, rep.Disconnects)
		}
		p50 = append(p50, rep.Latency.P50)
		p90 = append(p90, rep.Latency.P90)
		p99 = append(p99, rep.Latency.P99)
		b.Logf("%d nodes, %d subscribers, %s events: latency p50 %.2fms p90 %.2fms p99 %.2fms max %.2fms; machine %.0f%% busy",
			len(nodes), rep.Connected, strconv.FormatUint(rep.Publish.Events, 10), rep.Latency.P50, rep.Latency.P90, rep.Latency.P99, rep.Latency.Max,
			rep.Tool.MachineBusyPercent)
	}
	b.ReportMetric(median(p50), "p50-ms")
	b.ReportMetric(median(p90), "p90-ms")
	b.ReportMetric(median(p99), "p99-ms")
}

// median returns the median of v, which it sorts.
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	return v[len(v)/2]
}
