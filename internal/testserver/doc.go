// Package testserver starts redis-server and nats-server processes for
// tests. It is a normal package so that tests of several packages can
// share it, but only _test.go files import it: nothing of it is linked
// into the ssehub binary.
//
//	srv := testserver.Redis(t, testserver.RedisOptions{AppendOnly: true})
//	s, err := redisstore.Open(redisstore.Options{URL: srv.URL()})
//	...
//	srv.Kill()    // SIGKILL, as a crash would end it
//	srv.Restart() // the same port and data directory
//
// # What a server is
//
// Each Server is a process of the test's own: on a loopback port that was
// free when it started, with its data in a t.TempDir() of its own, so that
// the test may kill it and start it again, and so that tests running in
// parallel, in one package or in several, never share one. The test's
// Cleanup kills it (SIGKILL) and waits for it, and, when the test failed,
// logs the server's last output lines. A server answers before Redis or
// NATS returns it: Redis has loaded its data (INFO says loading:0) and
// NATS has sent its INFO line, and either proves it is the process the
// test started (its process ID, its server name), not another that holds
// the port.
//
// redis-server runs with no snapshots (--save ""), unless RedisOptions
// asks for them, and without AOF unless AppendOnly asks for appendonly
// yes with appendfsync always, the setting under which an acknowledged
// write survives a SIGKILL. nats-server runs with JetStream's file store
// (-js -sd), which writes each message to its file before it
// acknowledges it.
//
// # Binaries
//
// The binaries are Debian's (apt-get install -y redis-server
// nats-server), found on PATH or in /usr/bin or /usr/sbin. Without them a
// test skips with a message that says how to install them; with CI=true
// it fails instead, so that CI never passes by skipping.
//
// # Tests that do not kill
//
// RedisURL and NATSURL give the URL of a server for tests that only need
// one: SSEHUB_TEST_REDIS_URL or SSEHUB_TEST_NATS_URL when set (a
// developer's choice, such as the machine's shared servers on :6379 and
// :4222), and otherwise the URL of a server started for the calling
// test. So by default no test touches a shared server; tests that may run
// against one still use a key prefix or stream name of their own and
// delete it afterwards.
package testserver
