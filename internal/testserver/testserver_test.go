package testserver

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func redisClient(t *testing.T, url string, o func(*redis.Options)) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	if o != nil {
		o(opt)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}

// TestRedisKillRestart writes to a server with AOF, kills it with
// SIGKILL, and finds the write again after Restart, on the same port.
func TestRedisKillRestart(t *testing.T) {
	srv := Redis(t, RedisOptions{AppendOnly: true})
	if !strings.HasPrefix(srv.URL(), "redis://127.0.0.1:") {
		t.Errorf("URL() = %q; want redis://127.0.0.1:port", srv.URL())
	}
	c := redisClient(t, srv.URL(), nil)
	if err := c.Set(t.Context(), "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if got := c.ConfigGet(t.Context(), "save").Val()["save"]; got != "" {
		t.Errorf("CONFIG GET save = %q; want \"\"", got)
	}
	addr := srv.Addr()
	srv.Kill()
	if srv.Running() {
		t.Fatal("Running() after Kill = true")
	}
	if conn, err := net.Dial("tcp", addr); err == nil {
		conn.Close()
		t.Fatal("the port takes connections after Kill")
	}
	srv.Restart()
	if srv.Addr() != addr {
		t.Errorf("Addr() after Restart = %s; want %s", srv.Addr(), addr)
	}
	if got, err := c.Get(t.Context(), "k").Result(); got != "v" || err != nil {
		t.Errorf("GET k after Restart = %q, %v; want v, nil", got, err)
	}
}

// TestRedisPasswordTLS starts a TLS server with a password, stopped at
// first.
func TestRedisPasswordTLS(t *testing.T) {
	certs := Certs(t)
	srv := Redis(t, RedisOptions{Password: "pw", TLSCertFile: certs.Cert, TLSKeyFile: certs.Key, TLSCAFile: certs.CA, Stopped: true})
	if srv.Running() {
		t.Fatal("Running() with Stopped = true")
	}
	srv.Start()
	if !strings.HasPrefix(srv.URL(), "rediss://") {
		t.Errorf("URL() = %q; want rediss://", srv.URL())
	}
	u := strings.Replace(srv.URL(), "://", "://:pw@", 1)
	c := redisClient(t, u, func(o *redis.Options) { o.TLSConfig = certs.ClientConfig() })
	if err := c.Ping(t.Context()).Err(); err != nil {
		t.Errorf("PING over TLS with the password: %v", err)
	}
	c = redisClient(t, srv.URL(), func(o *redis.Options) { o.TLSConfig = certs.ClientConfig() })
	if err := c.Ping(t.Context()).Err(); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Errorf("PING without the password = %v; want NOAUTH", err)
	}
}

// TestPortTaken checks that a first start moves away from a port that
// another server holds, and that a start on the same port waits until it
// is free.
func TestPortTaken(t *testing.T) {
	srv := Redis(t, RedisOptions{Stopped: true})
	startOnTaken(t, Redis(t, RedisOptions{}), srv)
	c := redisClient(t, srv.URL(), nil)
	if got := c.InfoMap(t.Context(), "server").Item("Server", "tcp_port"); got != srvPort(srv) {
		t.Errorf("tcp_port = %s; want %s", got, srvPort(srv))
	}

	// Held by a plain listener for a moment after the kill.
	srv.Kill()
	l, err := net.Listen("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(300 * time.Millisecond)
		l.Close()
	}()
	start := time.Now()
	srv.Start()
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Errorf("Start with the port held took %v; want it to wait for the port", d)
	}
	if err := c.Ping(t.Context()).Err(); err != nil {
		t.Errorf("PING after Start: %v", err)
	}

	// NATS: another nats-server on the port.
	startOnTaken(t, NATS(t, NATSOptions{}), NATS(t, NATSOptions{Stopped: true}))
}

// startOnTaken starts srv, not yet started, as a first start on the port
// of other, which runs: srv must start on another port.
func startOnTaken(t *testing.T, other, srv *Server) {
	t.Helper()
	srv.port = other.port
	if err := srv.start(true); err != nil {
		t.Fatalf("first start on a taken port: %v", err)
	}
	if srv.port == other.port {
		t.Fatalf("%s started on the port of %s", srv, other)
	}
}

func srvPort(s *Server) string { _, p, _ := net.SplitHostPort(s.Addr()); return p }

// TestNATS starts servers with JetStream, with a token over TLS, and
// with a user, and uses them; and restarts one with its stream.
func TestNATS(t *testing.T) {
	certs := Certs(t)
	tests := []struct {
		name   string
		o      NATSOptions
		scheme string
		opts   []nats.Option
	}{
		{"plain", NATSOptions{}, "nats://", nil},
		{"token over TLS", NATSOptions{Token: "tok", TLSCertFile: certs.Cert, TLSKeyFile: certs.Key}, "tls://",
			[]nats.Option{nats.Token("tok"), nats.Secure(certs.ClientConfig())}},
		{"user", NATSOptions{User: "u", Password: "p"}, "nats://", []nats.Option{nats.UserInfo("u", "p")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := NATS(t, tt.o)
			if !strings.HasPrefix(srv.URL(), tt.scheme) {
				t.Errorf("URL() = %q; want %s...", srv.URL(), tt.scheme)
			}
			nc, err := nats.Connect(srv.URL(), tt.opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			js, err := jetstream.New(nc)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s"}}); err != nil {
				t.Fatal(err)
			}
			if _, err := js.Publish(ctx, "s", []byte("x")); err != nil {
				t.Fatal(err)
			}
			if tt.o.Token == "" && tt.o.User == "" {
				nc.Close()
				srv.Restart()
				nc, err := nats.Connect(srv.URL())
				if err != nil {
					t.Fatal(err)
				}
				defer nc.Close()
				js, _ := jetstream.New(nc)
				st, err := js.Stream(ctx, "S")
				if err != nil {
					t.Fatal(err)
				}
				if n := st.CachedInfo().State.Msgs; n != 1 {
					t.Errorf("after Restart, the stream holds %d messages; want 1", n)
				}
			}
			if len(tt.opts) > 0 {
				if nc, err := nats.Connect(srv.URL()); err == nil {
					nc.Close()
					t.Error("Connect without credentials succeeded")
				}
			}
		})
	}
}

// TestURLs checks RedisURL and NATSURL: a server of the test's own
// without the variables, and the variable's URL with them.
func TestURLs(t *testing.T) {
	t.Setenv(RedisURLEnv, "")
	t.Setenv(NATSURLEnv, "")
	r, n := RedisURL(t), NATSURL(t)
	if strings.Contains(r, ":6379") || strings.Contains(n, ":4222") {
		t.Errorf("RedisURL, NATSURL = %s, %s; want servers of the test's own", r, n)
	}
	if err := redisClient(t, r, nil).Ping(t.Context()).Err(); err != nil {
		t.Errorf("PING %s: %v", r, err)
	}
	t.Setenv(RedisURLEnv, r)
	t.Setenv(NATSURLEnv, n)
	if got := RedisURL(t); got != r {
		t.Errorf("RedisURL with %s set = %s; want %s", RedisURLEnv, got, r)
	}
	if got := NATSURL(t); got != n {
		t.Errorf("NATSURL with %s set = %s; want %s", NATSURLEnv, got, n)
	}
}

// TestLogs checks that a server's output is kept. The server answers
// before its output has necessarily been copied, so the line may come a
// little after Redis returns.
func TestLogs(t *testing.T) {
	srv := Redis(t, RedisOptions{})
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(srv.Logs(), "Ready to accept connections") {
		if time.Now().After(deadline) {
			t.Fatalf("Logs() = %q after 5s; want redis-server's start-up lines", srv.Logs())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
