// Package natsstore is a hub.Log kept in a NATS JetStream stream: the
// shared history and bus of several hub nodes.
//
//	s, err := natsstore.Open(natsstore.Options{URL: "nats://127.0.0.1:4222"})
//	if err != nil {
//		return err
//	}
//	defer s.Close()
//	h := hub.New(s, nil) // the Hub does not close s
//
// It needs nats-server 2.9.0 or later with JetStream enabled (it uses
// the consumer-create API with names and direct gets, both new in 2.9);
// it is tested on Debian's 2.9.10.
//
// # Layout
//
// One stream per hub, named by Options.Stream ("SSEHUB"), with subjects
// "<stream>.>", file storage, Options.Replicas replicas, no limits of its
// own (retention is Trim's), direct gets allowed. Open creates it or
// updates it to that configuration (never deleting data), as soon as the
// server is reachable. Two subjects are used:
//
//	<stream>.batch  one message per commit: the records of one or more
//	                Appends, encoded compactly (see codec.go), with headers
//	                Ssehub-First (the position of its first record) and
//	                Ssehub-Count (how many it holds)
//	<stream>.trim   trim markers: an empty message whose header Ssehub-Floor
//	                is the oldest position kept; only the newest is kept
//
// # Why this design
//
// The Log's positions are dense and global (1, 2, 3, ... across topics),
// a batch is all or nothing, and a publisher's ID is taken once and for
// all. A subject per topic with the stream sequence as position gives
// none of these: an event on several topics would be several messages,
// JetStream 2.9 has no atomic multi-message publish, sequences are
// shared with markers, and Nats-Msg-Id deduplication holds only within
// a window and answers a duplicate with success. So each commit is one
// message, and every node keeps an index of the stream in memory.
//
// Appends are queued to a committer goroutine, which takes every queued
// Append that fits in one message (group commit), checks their IDs
// against the index, assigns positions after the newest it holds, and
// publishes with an expected last sequence: the last stream sequence the
// index has applied. If another node (or a Trim) published first,
// JetStream refuses; the committer waits for the follower to apply the
// newcomer and checks again. Position assignment and the duplicate check
// are thus atomic across nodes (optimistic concurrency), whichever node
// an Append reaches, and an ID stays taken until Trim removes its record.
// An Append whose ID is taken fails alone with hub.ErrDuplicateID; the
// others of its group commit.
//
// Each Store runs a follower goroutine: an ordered consumer over the
// whole stream, recreated from its next sequence after any error, which
// decodes every message and applies it to the index. The index maps each
// held position to its batch message (sequence and index in it) and its
// time, each topic to its positions, and each publisher's ID to its
// position; assigned IDs are the decimal position and need no entry.
// Batches just committed or read are kept decoded in a cache of 32 MiB.
//
//   - Bounds asks the server for the stream's last sequence and waits
//     until the index has applied it: one round trip. So a Read that
//     follows sees every record up to last, and Tail, which is fed by the
//     index, never runs ahead of Bounds.
//   - Read takes the positions from the index, merging the lists of the
//     topics its selectors match (a pattern matching more than 32 topics
//     walks every position), and fetches only the batch messages holding
//     them, from the cache or with direct gets, 16 in flight. A quiet
//     topic is replayed without reading the busy ones.
//   - Tail delivers what the index holds after its position and waits for
//     it to grow.
//   - Lookup answers from the index, after catching up with the stream
//     when the ID is not there.
//
// Memory: the index costs about 60 bytes per held record: a 40-byte
// entry, 8 bytes per topic in the topic lists (up to twice that while a
// list grows), and for a publisher's ID a map entry of about 40 bytes
// plus the ID. TestIndexMemory measures it: 62.6 bytes a record for
// 100,000 records on 10 topics, one in ten with a publisher's ID. A
// million held records take about 60 MB, plus the cache (32 MiB at
// most). At start a node reads the whole stream once, through its
// follower, and is ready (Bounds answers) when it has caught up (65 ms
// for those 100,000 records, in batches of 1,000, on loopback); the
// retention the daemon applies bounds that.
//
// # Trim
//
// Trim catches up, computes the new floor from the index (by count, and
// by age from the records' times, which are the committing node's
// clock), and publishes a marker with it, expecting the last marker to
// be the one its index holds, so that concurrent Trims on several nodes
// agree and the highest floor wins. Every node applies the marker to its
// index: records below the floor are gone for Read (hub.ErrTrimmed),
// Lookup and Tail at once. Then Trim purges, with a subject-filtered
// purge, the batch messages wholly below the floor, and the older
// markers. A batch straddling the floor stays stored until a later Trim
// passes its end, but its records below the floor are no longer served;
// a node that starts later learns the floor from the kept marker.
//
// # Durability and failures
//
// Append returns once JetStream has acknowledged the message: it is
// stored in the stream's file store, on a majority of the replicas when
// Replicas > 1. Each message is written to its block file before the
// acknowledgement, so a nats-server killed with SIGKILL loses nothing
// acknowledged (TestKillRestart checks that under concurrent appends).
// The file store is fsynced on an interval, though, so a crash of the
// machine (or power) can lose the newest acknowledged records of a
// single server: nats-server 2.9 has no setting for that; 2.10 and later
// take "jetstream { sync_interval: always }". Run three replicas
// (Replicas: 3 on a three-server cluster) for records that survive the
// loss of a machine.
//
// Open does not wait for the server: a node may start while NATS is
// down. The connection retries without end and buffers nothing while
// disconnected (a buffered publish sent later would store records whose
// Append had failed). While NATS is unreachable, Append, Bounds, Lookup,
// Read and Trim fail with wrapped errors (within their ctx); Tail goes on
// waiting, or fails when it needs a batch that is not cached, and the hub
// calls it again from its last position. Once the server is back the
// follower resumes from its next sequence, and everything works again.
// An Append whose ctx ends while its message is in flight returns an
// error, and its records may have been stored all the same, as with any
// remote store.
//
// A stream that loses its messages (its server's data wiped, a memory
// store restarted, the stream deleted) is noticed by the next Bounds,
// which sees a last sequence below what the index applied, or no
// stream: the index starts over, the follower reads (or creates) the
// stream from its start, and Appends work again, at position 1. Bounds
// then reports a last below the one it reported before, which the
// contract never allows otherwise, and which tells the hub to end its
// streams (see hub.Run). TestStreamLost checks it.
//
// Server settings: JetStream enabled with file storage, and a
// max_payload (1 MiB by default) at least as large as the biggest batch
// published; Append refuses a larger batch with an error saying so.
//
// # Concurrency
//
// A Store is safe for concurrent use. It owns two goroutines, the
// follower and the committer; Close ends both and closes the connection.
// Store.mu guards the index, cache.mu the cache and Store.qmu the queue
// of Appends; no two of them are held at once.
package natsstore
