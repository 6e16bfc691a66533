package testserver

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// RedisOptions configure a redis-server. The zero value is a server
// without persistence, password or TLS.
type RedisOptions struct {
	// Save is the --save setting, such as "60 1000". If empty, the server
	// takes no snapshots.
	Save string

	// AppendOnly turns the AOF on with appendfsync always: every write is
	// in the file before the server acknowledges it, so that it survives
	// a SIGKILL.
	AppendOnly bool

	// Password is the default user's password (requirepass). If empty,
	// there is none. Set it here, not in Args: Redis logs in with it to
	// see whether the server answers.
	Password string

	// TLSCertFile and TLSKeyFile, when set, make the server's port a TLS
	// port (tls-port, and the plain port off) with this certificate and
	// key; TLSCAFile is its tls-ca-cert-file, if not empty. Clients need
	// no certificate (tls-auth-clients no). Certs makes such files. A
	// redis-server built without TLS skips the test (fails it under
	// CI=true).
	TLSCertFile, TLSKeyFile, TLSCAFile string

	// Args are more arguments of redis-server, after those above, which
	// they may override: "--cluster-enabled", "yes".
	Args []string

	// Stopped makes Redis return the server without starting it: call
	// Start.
	Stopped bool
}

// Redis starts a redis-server with o on a free loopback port, with a
// t.TempDir() of its own as its --dir, and returns when it answers. The
// server is killed and waited for in tb.Cleanup.
func Redis(tb testing.TB, o RedisOptions) *Server {
	tb.Helper()
	tlsOn := o.TLSCertFile != "" || o.TLSKeyFile != ""
	scheme := "redis"
	if tlsOn {
		scheme = "rediss"
	}
	s := newServer(tb, "redis-server", scheme)
	if tlsOn && !redisHasTLS(s.bin) {
		unavailable(tb, s.bin+" was built without TLS: apt-get install -y redis-server (Debian's has it)")
	}
	s.args = func(port int) []string {
		args := []string{"--bind", "127.0.0.1", "--dir", s.dir, "--save", o.Save,
			"--daemonize", "no", "--logfile", ""}
		if tlsOn {
			args = append(args, "--port", "0", "--tls-port", strconv.Itoa(port),
				"--tls-cert-file", o.TLSCertFile, "--tls-key-file", o.TLSKeyFile, "--tls-auth-clients", "no")
			if o.TLSCAFile != "" {
				args = append(args, "--tls-ca-cert-file", o.TLSCAFile)
			}
		} else {
			args = append(args, "--port", strconv.Itoa(port))
		}
		if o.AppendOnly {
			args = append(args, "--appendonly", "yes", "--appendfsync", "always")
		} else {
			args = append(args, "--appendonly", "no")
		}
		if o.Password != "" {
			args = append(args, "--requirepass", o.Password)
		}
		return append(args, o.Args...)
	}
	s.probe = func(addr string, pid int) error { return probeRedis(addr, pid, o.Password, tlsOn) }
	if !o.Stopped {
		if err := s.start(true); err != nil {
			tb.Fatal(err)
		}
	}
	return s
}

// redisHasTLS reports whether the redis-server at bin was built with
// TLS: told to listen on no port, plain or TLS, one with TLS exits
// saying so, and one without refuses tls-port as a bad directive.
func redisHasTLS(bin string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, bin, "--port", "0", "--tls-port", "0").CombinedOutput()
	return !strings.Contains(string(out), "Bad directive")
}

// probeRedis returns nil when the Redis at addr is the process pid and
// has loaded its data: INFO server and persistence say process_id:pid
// and loading:0. It returns errPortTaken when another process answers.
func probeRedis(addr string, pid int, password string, tlsOn bool) error {
	d := &net.Dialer{Timeout: time.Second}
	var c net.Conn
	var err error
	if tlsOn {
		// Only whose the server is matters here, not its certificate.
		c, err = tls.DialWithDialer(d, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
	} else {
		c, err = d.Dial("tcp", addr)
	}
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	r := bufio.NewReader(c)
	if password != "" {
		fmt.Fprintf(c, "AUTH %s\r\n", password)
		if _, err := redisReply(r); err != nil {
			return err
		}
	}
	io.WriteString(c, "INFO everything\r\n")
	info, err := redisReply(r)
	if err != nil {
		return err
	}
	if !strings.Contains(info, "\r\nprocess_id:"+strconv.Itoa(pid)+"\r\n") {
		return fmt.Errorf("%w: another redis-server answers at %s", errPortTaken, addr)
	}
	if !strings.Contains(info, "\r\nloading:0\r\n") {
		return fmt.Errorf("redis-server at %s is loading its data", addr)
	}
	return nil
}

// redisReply reads one reply of a simple string, an error or a bulk
// string, and returns an error reply as an error.
func redisReply(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	switch {
	case strings.HasPrefix(line, "-"):
		return "", fmt.Errorf("redis-server: %s", line[1:])
	case strings.HasPrefix(line, "$"):
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "", fmt.Errorf("redis-server: reply %q", line)
		}
		b := make([]byte, n+2)
		if _, err := io.ReadFull(r, b); err != nil {
			return "", err
		}
		return "\r\n" + string(b), nil
	default:
		return line, nil
	}
}
