// Package redisstore is a hub.Log on Redis Streams: the shared history
// and bus of a cluster of hub nodes. Every node opens a Store on the same
// Redis and prefix; any node takes any publish, every node tails the same
// stream and sees the same positions and IDs.
//
//	s, err := redisstore.Open(redisstore.Options{URL: "redis://:password@redis:6379/0", Prefix: "ssehub"})
//	if err != nil {
//		return err // a bad URL or prefix; Open does not contact Redis
//	}
//	defer s.Close()
//	h := hub.New(s, nil) // the Hub does not close s
//
// It uses github.com/redis/go-redis/v9 and needs Redis 6.2 or later
// (XTRIM MINID, exclusive XRANGE ranges); it is tested with Redis 7.0,
// standalone and as a Redis Cluster (Options.Cluster).
//
// # Keys
//
// Every key is "{"+Prefix+"}:"+name. The braces are a hash tag: Redis
// Cluster puts all the keys of one prefix in one slot, so the scripts,
// which touch several of them at once, work on a cluster too (open it
// with Options.Cluster, so that the client follows redirections; one
// prefix is served by one node and its replicas), and hubs
// with different prefixes share a Redis (or a cluster, spread over its
// slots) without seeing one another. Prefixes must not contain braces.
//
//	{P}:seq      string  the newest position ever assigned (INCRBY); never
//	                     lowered, so positions are never reused
//	{P}:log      stream  the records: entry ID "<pos>-0", fields ts (Redis's
//	                     clock, Unix microseconds), id (the publisher's
//	                     ID, empty for an assigned one), tp (the topics,
//	                     joined by NUL) and r (type, data, retry and the
//	                     private flag, encoded by Go)
//	{P}:ids      hash    publisher's ID → position, for Lookup and
//	                     duplicate detection; assigned IDs, the decimal
//	                     position, need no entry
//	{P}:t:TOPIC  stream  the per-topic index: one empty entry "<pos>-0"
//	                     per record on TOPIC
//	{P}:topics   zset    the topics that have an index, all with score 0,
//	                     so that a pattern's topics are found by a
//	                     ZRANGE BYLEX of its literal Prefix
//
// The index is a stream rather than a sorted set because its entries are
// positions in increasing order, which a stream stores delta-encoded in
// listpacks (about 16 bytes an entry, where a sorted set takes 50 or
// more), reads from any position with XRANGE, and trims with XTRIM MINID.
//
// # Scripts
//
// Every write, and every read that merges several keys, is one Lua
// script (EVALSHA, with go-redis falling back to EVAL when the server
// lacks it); the other reads that need a consistent view of several keys
// are one MULTI/EXEC transaction. Redis runs either alone, so no node
// ever sees half of one, and each script declares all its keys in KEYS.
//
//   - append checks every publisher's ID of the batch, against the hash
//     and within the batch, and refuses the whole batch with
//     hub.ErrDuplicateID, changing nothing, if one is taken; else it
//     takes the batch's positions with INCRBY, stamps it with TIME, and
//     adds each record to the log, its ID to the hash and its index
//     entries. A batch is appended whole or not at all, and the counter,
//     the records and their index entries become visible to every node
//     at once. IDs made only of digits are refused before the script:
//     they are reserved for assigned IDs.
//   - bounds reads the counter and the log's length: the log holds
//     exactly the positions last-len+1 to last, because append adds
//     positions with the counter and Trim removes only the oldest.
//   - Read reads pages of up to 512 records after a position, and checks
//     with each page, in the same script or transaction, that the records
//     after that position are still held; if not, it returns
//     hub.ErrTrimmed. By index, a script reads the index streams of the
//     selectors' topics and merges their positions in order, a record on
//     several of them once (one topic needs no merge: a transaction reads
//     its index stream); then XRANGE fetches the records from the log,
//     in one range when they are dense, and a record gone by then was
//     trimmed meanwhile (hub.ErrTrimmed too). A scan reads the log with
//     XRANGE. Records never pass through Lua's tables, which cost Redis
//     several times what XRANGE does. Read calls fn between pages.
//   - trim plan and trim apply: see below.
//
// Tail is XREAD BLOCK on the log, half a second at a time, so that it
// notices its context and Close. Because a record becomes visible only
// with its position in the counter, Tail never hands fn a record that
// Bounds does not report yet, and it sees every position in order.
//
// # Guarantees, and what "acknowledged" means
//
// Append returns nil once Redis has run its script. Whether the records
// then survive a crash of Redis depends on the server's settings, which
// this package cannot set:
//
//   - appendonly yes with appendfsync always: Redis writes and fsyncs the
//     script's effects to its AOF before it replies, so an acknowledged
//     record survives a crash or a SIGKILL of Redis and a restart. This
//     is the setting for a single Redis.
//   - appendfsync everysec (Redis's default when AOF is on) can lose the
//     last second of acknowledged records in a crash of the machine.
//   - With replicas, acknowledged records survive a failover only if the
//     replica had them. Redis replication is asynchronous; WAIT narrows
//     the window but is not a consensus. This package does not WAIT.
//
// The scripts replicate as their effects (the default since Redis 7), in
// a MULTI, so the AOF and replicas apply a batch whole.
//
// An Append that fails on the connection (Redis killed, a timeout, ctx
// ending while the reply is awaited) cannot tell whether Redis ran the
// script: its batch was then appended whole or not at all. The client
// never retries a command on its own (MaxRetries is -1) so that it never
// appends a batch twice; a publisher that retries with the same ID gets
// hub.ErrDuplicateID if the first try went through, and Lookup tells
// where.
//
// Open does not contact Redis: a node may start while Redis is down.
// While Redis is unreachable every method fails within a few hundred
// milliseconds (two dial attempts) with an error wrapping the
// connection's, Tail included, which the hub calls again with backoff;
// they work again as soon as Redis is back. The contexts' deadlines
// bound every command (go-redis's ContextTimeoutEnabled), so Bounds
// fails within the hub's readiness timeout rather than hanging on a
// server that does not answer.
//
// # Trim
//
// Trim takes Redis's clock (the clock that stamped the records) and the
// newest position when called, then removes records in steps of at most
// Options.TrimChunk (1000) records, so Redis, which runs one script at a
// time, is never blocked for long. A step is two script calls: the first
// reads the oldest records and returns the position up to which they are
// due, with their topics and IDs, changing nothing; the second, whose
// KEYS are the index streams of those topics, removes the records with
// XTRIM MINID, their index entries the same way (an index stream left
// empty is deleted, and its topic leaves the topics set), and their IDs
// from the hash, each only while it still maps to the removed record's
// position, since a trimmed ID is free for a new record. Several nodes
// may trim at once: each step removes and counts only what is still
// there, so every record is removed once and counted once, and the
// counter is never lowered.
//
// # Memory
//
// Measured on Redis 7.0 with MEMORY USAGE, for 100,000 records of 100
// bytes of data on one topic of 11 bytes, half of them with a
// publisher's ID of 12 bytes: the log takes 171 bytes a record (the data,
// the topics, the blob and about 40 bytes of stream overhead), each
// index entry 16 bytes, and each publisher's ID about 58 bytes in the
// hash. A record costs roughly its data and topics plus 60 bytes, and
// 60 more if it has a publisher's ID. Bound it with retention.
package redisstore
