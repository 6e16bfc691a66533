package testserver

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// NATSOptions configure a nats-server. The zero value is a server with
// JetStream and no authentication or TLS.
type NATSOptions struct {
	// Token is the token clients must present. If empty, there is none.
	Token string

	// User and Password are the one user clients must log in as. If
	// empty, there is none.
	User, Password string

	// TLSCertFile and TLSKeyFile, when set, make the server require TLS
	// with this certificate and key (Certs makes such files), and URL
	// return a tls:// URL.
	TLSCertFile, TLSKeyFile string

	// Config is more of the configuration file, after what the fields
	// above make of it.
	Config string

	// Args are more arguments of nats-server, after the others.
	Args []string

	// Stopped makes NATS return the server without starting it: call
	// Start.
	Stopped bool
}

// NATS starts a nats-server with JetStream (-js) on a free loopback
// port, with a t.TempDir() of its own as its store directory (-sd), and
// returns when it answers. With authentication, TLS or Config asked for,
// it also reads a configuration file made of them. The server is killed
// and waited for in tb.Cleanup.
func NATS(tb testing.TB, o NATSOptions) *Server {
	tb.Helper()
	scheme := "nats"
	if o.TLSCertFile != "" || o.TLSKeyFile != "" {
		scheme = "tls"
	}
	s := newServer(tb, "nats-server", scheme)
	var b [8]byte
	rand.Read(b[:])
	name := "testserver-" + hex.EncodeToString(b[:])
	conf := natsConfig(o)
	file := filepath.Join(s.dir, "nats.conf")
	if conf != "" {
		if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	s.args = func(port int) []string {
		var args []string
		if conf != "" {
			args = append(args, "-c", file)
		}
		args = append(args, "-a", "127.0.0.1", "-p", strconv.Itoa(port), "-n", name,
			"-js", "-sd", filepath.Join(s.dir, "jetstream"))
		return append(args, o.Args...)
	}
	s.probe = func(addr string, _ int) error { return probeNATS(addr, name) }
	if !o.Stopped {
		if err := s.start(true); err != nil {
			tb.Fatal(err)
		}
	}
	return s
}

// natsConfig returns the configuration file o asks for, or "" when o
// asks for none.
func natsConfig(o NATSOptions) string {
	var b strings.Builder
	if o.TLSCertFile != "" || o.TLSKeyFile != "" {
		fmt.Fprintf(&b, "tls {\n  cert_file: %q\n  key_file: %q\n}\n", o.TLSCertFile, o.TLSKeyFile)
	}
	if o.Token != "" || o.User != "" || o.Password != "" {
		b.WriteString("authorization {\n")
		if o.Token != "" {
			fmt.Fprintf(&b, "  token: %q\n", o.Token)
		}
		if o.User != "" || o.Password != "" {
			fmt.Fprintf(&b, "  user: %q\n  password: %q\n", o.User, o.Password)
		}
		b.WriteString("}\n")
	}
	if o.Config != "" {
		b.WriteString(o.Config + "\n")
	}
	return b.String()
}

// probeNATS returns nil when the NATS at addr is the server named name:
// its INFO line, which it sends first, says so. It returns errPortTaken
// when another server answers.
func probeNATS(addr, name string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "INFO ") {
		return fmt.Errorf("nats-server at %s sent %q first; want INFO", addr, line)
	}
	if !strings.Contains(line, `"server_name":"`+name+`"`) {
		return fmt.Errorf("%w: another nats-server answers at %s", errPortTaken, addr)
	}
	return nil
}
