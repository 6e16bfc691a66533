package redisstore

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// A server is a redis-server the test started, on a loopback port of its
// own with its data in a directory of its own, so that the test may kill
// it. The shared Redis is never touched.
type server struct {
	t    testing.TB
	bin  string
	port int
	dir  string
	args []string // besides the port and directory

	mu     sync.Mutex // guards cmd and stderr
	cmd    *exec.Cmd
	stderr bytes.Buffer
}

// redisServer returns the path of redis-server, or skips the test (fails
// it under CI=true) saying how to install it.
func redisServer(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("redis-server"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/bin/redis-server", "/usr/sbin/redis-server", "/usr/local/bin/redis-server"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	msg := "redis-server not found: install it (apt-get install redis-server) to run this test"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startServer starts a redis-server with AOF on every write (appendonly
// yes, appendfsync always) and args added, and kills it in t.Cleanup.
// tlsPort says whether the port is its TLS port (and the plain port off).
func startServer(t testing.TB, tlsPort bool, args ...string) *server {
	t.Helper()
	s := &server{t: t, bin: redisServer(t), port: freePort(t), dir: t.TempDir()}
	s.args = []string{"--bind", "127.0.0.1", "--dir", s.dir, "--save", "",
		"--appendonly", "yes", "--appendfsync", "always", "--daemonize", "no", "--loglevel", "warning"}
	if tlsPort {
		s.args = append(s.args, "--port", "0", "--tls-port", strconv.Itoa(s.port))
	} else {
		s.args = append(s.args, "--port", strconv.Itoa(s.port))
	}
	s.args = append(s.args, args...)
	s.start()
	t.Cleanup(s.kill)
	return s
}

// start starts the server and waits until its port accepts connections.
func (s *server) start() {
	s.t.Helper()
	s.mu.Lock()
	s.stderr.Reset()
	cmd := exec.Command(s.bin, s.args...)
	cmd.Stdout, cmd.Stderr = &s.stderr, &s.stderr
	if err := cmd.Start(); err != nil {
		s.mu.Unlock()
		s.t.Fatalf("starting redis-server: %v", err)
	}
	s.cmd = cmd
	s.mu.Unlock()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			s.mu.Lock()
			out := s.stderr.String()
			s.mu.Unlock()
			s.t.Fatalf("redis-server %v did not listen on %s: %v\n%s", s.args, addr, err, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill kills the server with SIGKILL, if it runs, and waits for it.
func (s *server) kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGKILL)
	s.cmd.Wait()
	s.cmd = nil
}

func (s *server) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// supportsTLS reports whether redis-server was built with TLS: told to
// listen on no port, plain or TLS, a build with TLS exits saying so,
// and one without refuses tls-port as a bad directive.
func supportsTLS(t testing.TB) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, redisServer(t), "--port", "0", "--tls-port", "0").CombinedOutput()
	return !strings.Contains(string(out), "Bad directive")
}

// testCert writes a self-signed CA and a server certificate for
// 127.0.0.1 and localhost into dir, and returns the CA pool and the
// paths of the CA, the certificate and its key.
func testCert(t testing.TB, dir string) (*x509.CertPool, string, string, string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "redisstore test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pool, write("ca.pem", "CERTIFICATE", caDER), write("cert.pem", "CERTIFICATE", der), write("key.pem", "PRIVATE KEY", keyDER)
}

// ping checks that a client of url and tc reaches the server.
func ping(url string, tc *tls.Config) error {
	o, err := redis.ParseURL(url)
	if err != nil {
		return err
	}
	if tc != nil {
		o.TLSConfig = tc
	}
	c := redis.NewClient(o)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return c.Ping(ctx).Err()
}

func (s *server) String() string { return fmt.Sprintf("redis-server on %s", s.addr()) }
