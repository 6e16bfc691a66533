// Package cluster holds the cluster test suite of ssehub and nothing
// else: its tests start real "ssehub serve" processes on one shared Log
// (Redis Streams or NATS JetStream) and check what issue 10 promises of a
// cluster, with no mock anywhere.
//
//	go test -race ./internal/cluster
//	go test -run '^$' -bench ClusterLatency -benchtime 1x -count 3 ./internal/cluster
//
// # What the suite starts
//
// TestMain builds the ssehub binary once (go build ./cmd/ssehub from the
// module root). Each test, for each backend, starts its own redis-server
// or nats-server on a free loopback port with a data directory of its
// own, so that it may kill it with SIGKILL and start it again on the same
// port and directory; it never touches the machine's shared services on
// 6379 and 4222. It then starts its ssehub nodes, each on a free port,
// and kills only the processes it started.
//
// The servers are set up as the cluster's guarantees need them (see
// docs/CLUSTER.md): redis-server with appendonly yes and appendfsync
// always, so that an acknowledged append survives the server's death;
// nats-server with JetStream's file store, which writes each message to
// its file before it acknowledges it (nats-server 2.9 has no setting
// for when it fsyncs, and none is needed against a killed process: what
// was written survives in the page cache; only a machine crash can lose
// what the store has not fsynced yet).
//
// Without redis-server or nats-server the tests skip and say how to get
// them (apt-get install -y redis-server nats-server); with CI=true they
// fail instead.
//
// # Subscribers and checks
//
// Subscribers are the eventsource package's client. One that must move
// to another node, as behind a load balancer, closes its EventSource on
// the first error and opens one on the next node with the last event ID
// it saw. Every wait is bounded; when a test fails, it prints the last
// log lines of each node it started.
//
// BenchmarkClusterLatency compares the publish-to-receive latency of a
// single bolt node with that of three nodes on Redis and on NATS, with
// the bench engine (internal/loadgen) spreading its subscribers over the
// nodes.
package cluster
