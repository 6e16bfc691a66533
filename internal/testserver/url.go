package testserver

import (
	"net"
	"net/url"
	"os"
	"testing"
	"time"
)

// The variables that point the tests at a server of the developer's
// choice instead of one of their own.
const (
	RedisURLEnv = "SSEHUB_TEST_REDIS_URL"
	NATSURLEnv  = "SSEHUB_TEST_NATS_URL"
)

// RedisURL returns the URL of a Redis for a test that does not kill it:
// SSEHUB_TEST_REDIS_URL if set (the test skips, or fails under CI=true,
// when nothing listens there), and otherwise that of a redis-server
// started for tb, which others may share through the URL but not
// through RedisURL: each call starts one. Tests that may run on a shared
// server keep their keys under a prefix of their own and delete them.
func RedisURL(tb testing.TB) string {
	tb.Helper()
	if u := fromEnv(tb, RedisURLEnv, "6379"); u != "" {
		return u
	}
	return Redis(tb, RedisOptions{}).URL()
}

// NATSURL returns the URL of a NATS with JetStream for a test that does
// not kill it: SSEHUB_TEST_NATS_URL if set (the test skips, or fails
// under CI=true, when nothing listens there), and otherwise that of a
// nats-server started for tb. Tests that may run on a shared server
// use streams of their own and delete them.
func NATSURL(tb testing.TB) string {
	tb.Helper()
	if u := fromEnv(tb, NATSURLEnv, "4222"); u != "" {
		return u
	}
	return NATS(tb, NATSOptions{}).URL()
}

// fromEnv returns the URL in the variable env, or "" when it is not set.
// It fails the test when the URL has no host, and skips it (fails it
// under CI=true) when nothing listens there (at port defaultPort if the
// URL names none).
func fromEnv(tb testing.TB, env, defaultPort string) string {
	tb.Helper()
	u := os.Getenv(env)
	if u == "" {
		return ""
	}
	p, err := url.Parse(u)
	if err != nil || p.Hostname() == "" {
		tb.Fatalf("%s=%q: not a URL with a host", env, u)
	}
	port := p.Port()
	if port == "" {
		port = defaultPort
	}
	c, err := net.DialTimeout("tcp", net.JoinHostPort(p.Hostname(), port), 2*time.Second)
	if err != nil {
		unavailable(tb, env+"="+u+" does not answer ("+err.Error()+"): start that server, or unset "+env+" to let the tests start their own")
		return ""
	}
	c.Close()
	return u
}
