package testserver

import (
	"bytes"
	"errors"
	"fmt"
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
)

// Timeouts of starting and killing a server.
const (
	startTimeout = 15 * time.Second // until a started server answers
	killTimeout  = 10 * time.Second // until a killed server has ended
)

// A Server is a redis-server or nats-server process that a test started
// with Redis or NATS, on a loopback port and a data directory that stay
// the same across Kill and Start. Its methods are for the test's
// goroutine; URL, Addr and Dir are safe for concurrent use. The zero
// value is not usable.
type Server struct {
	tb   testing.TB
	name string // "redis-server" or "nats-server"
	bin  string
	dir  string // the data directory
	port int    // set before the first start; changed only by a first start whose port was taken
	url  string // the scheme and "://", before the address

	args  func(port int) []string          // the command line, for a port
	probe func(addr string, pid int) error // nil when the server at addr is the process pid and takes requests

	logs Tail

	mu     sync.Mutex    // guards cmd and exited
	cmd    *exec.Cmd     // the running process, nil when there is none
	exited chan struct{} // closed when cmd has ended and been waited for
}

// newServer prepares a Server of name (the binary's name) with a new
// data directory and a free port, killed in tb.Cleanup.
func newServer(tb testing.TB, name, scheme string) *Server {
	tb.Helper()
	s := &Server{tb: tb, name: name, bin: binary(tb, name), dir: tb.TempDir(), port: freePort(tb), url: scheme + "://"}
	tb.Cleanup(func() {
		if err := s.kill(); err != nil {
			tb.Error(err)
		}
		if tb.Failed() {
			tb.Logf("last lines of %s:\n%s", s, s.logs.String())
		}
	})
	return s
}

// URL returns the server's URL, without credentials: redis:// or
// rediss://, nats:// or tls://, then Addr.
func (s *Server) URL() string { return s.url + s.Addr() }

// Addr returns the server's address, 127.0.0.1:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Dir returns the server's data directory.
func (s *Server) Dir() string { return s.dir }

// String returns the server's name and address, as "redis-server on
// 127.0.0.1:port".
func (s *Server) String() string { return s.name + " on " + s.Addr() }

// Logs returns the last lines the server wrote, across its restarts.
func (s *Server) Logs() string { return s.logs.String() }

// Running reports whether the server's process runs.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.runningLocked()
}

// runningLocked is Running; s.mu must be held.
func (s *Server) runningLocked() bool {
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// Kill kills the server with SIGKILL, as a crash would end it, and waits
// for its end. A server that does not run is left as it is.
func (s *Server) Kill() {
	s.tb.Helper()
	fmt.Fprintf(&s.logs, "--- SIGKILL\n")
	if err := s.kill(); err != nil {
		s.tb.Error(err)
	}
}

// kill is Kill without the test's involvement, for Cleanup.
func (s *Server) kill() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return nil
	}
	s.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-s.exited:
	case <-time.After(killTimeout):
		return fmt.Errorf("%s (pid %d) still running %v after SIGKILL", s, s.cmd.Process.Pid, killTimeout)
	}
	s.cmd = nil
	return nil
}

// Restart kills the server if it runs and starts it again, on the same
// port with the same data directory.
func (s *Server) Restart() {
	s.tb.Helper()
	s.Kill()
	s.Start()
}

// Start starts a server that does not run (one made with Stopped, or
// killed) on its port with its data directory, and returns when it
// answers. While the port is taken, as it may briefly be after a kill,
// it tries again, for up to 15 s; then it fails the test.
func (s *Server) Start() {
	s.tb.Helper()
	if err := s.start(false); err != nil {
		s.tb.Fatal(err)
	}
}

// start starts the server. With newPort, a port found taken is given up
// for another free one (for a first start, before any caller knows the
// port); without, it is tried again until startTimeout.
func (s *Server) start(newPort bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.runningLocked() {
		return fmt.Errorf("%s: already running", s)
	}
	deadline := time.Now().Add(startTimeout)
	for {
		err := s.launchLocked(deadline)
		if err == nil {
			return nil
		}
		if !errors.Is(err, errPortTaken) || time.Now().After(deadline) {
			return fmt.Errorf("%s: %v\nits last lines:\n%s", s, err, s.logs.String())
		}
		if newPort {
			s.port = freePort(s.tb)
		} else {
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// errPortTaken is the error of a start whose port another process holds.
var errPortTaken = errors.New("port taken")

// launchLocked starts the process once and waits until it answers, ends,
// or deadline passes; s.mu must be held. It returns errPortTaken when the
// process ended saying so, or answered not as itself.
func (s *Server) launchLocked(deadline time.Time) error {
	args := s.args(s.port)
	mark := s.logs.mark()
	fmt.Fprintf(&s.logs, "--- %s %s\n", s.bin, strings.Join(args, " "))
	cmd := exec.Command(s.bin, args...)
	cmd.Dir = s.dir // whatever it writes where it runs stays in its directory
	cmd.Stdout, cmd.Stderr = &s.logs, &s.logs
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	s.cmd, s.exited = cmd, exited
	for {
		select {
		case <-exited:
			s.cmd = nil
			if strings.Contains(strings.ToLower(s.logs.since(mark)), "address already in use") {
				return errPortTaken
			}
			return fmt.Errorf("exited at start: %v", cmd.ProcessState)
		default:
		}
		err := s.probe(s.Addr(), cmd.Process.Pid)
		if err == nil {
			return nil
		}
		if errors.Is(err, errPortTaken) || time.Now().After(deadline) {
			// Not ours, or never answering: end it, and say why.
			cmd.Process.Signal(syscall.SIGKILL)
			<-exited
			s.cmd = nil
			if errors.Is(err, errPortTaken) {
				return err
			}
			return fmt.Errorf("does not answer within %v: %v", startTimeout, err)
		}
		time.Sleep(10 * time.Millisecond) // polling a process the test does not control
	}
}

// binary returns the path of name, on PATH or in /usr/bin or /usr/sbin,
// or skips the test (fails it under CI=true) saying how to install it.
func binary(tb testing.TB, name string) string {
	tb.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range []string{"/usr/bin", "/usr/sbin"} {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	unavailable(tb, name+" not found on PATH or in /usr/bin, /usr/sbin: apt-get install -y redis-server nats-server")
	return ""
}

// unavailable skips the test with msg, or fails it under CI=true, where
// a test must not pass by skipping.
func unavailable(tb testing.TB, msg string) {
	tb.Helper()
	if os.Getenv("CI") == "true" {
		tb.Fatal(msg)
	}
	tb.Skip(msg)
}

// FreeAddr returns a loopback address, 127.0.0.1:port, whose port was
// free a moment ago, for a process the test starts.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// freePort returns the port of FreeAddr.
func freePort(tb testing.TB) int {
	tb.Helper()
	_, p, _ := net.SplitHostPort(FreeAddr(tb))
	port, _ := strconv.Atoi(p)
	return port
}

// A Tail is an io.Writer that keeps the last 40 lines written to it,
// such as a process's output. It is safe for concurrent use. The zero
// value is an empty Tail.
type Tail struct {
	mu    sync.Mutex // guards lines, part and total
	lines []string
	part  []byte
	total int // lines written, including those no longer kept
}

// tailLines is how many lines a Tail keeps.
const tailLines = 40

// Write adds p to the lines; it never fails.
func (l *Tail) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.part = append(l.part, p...)
	for {
		i := bytes.IndexByte(l.part, '\n')
		if i < 0 {
			break
		}
		l.lines = append(l.lines, string(l.part[:i]))
		l.part = l.part[i+1:]
		l.total++
	}
	if len(l.lines) > tailLines {
		l.lines = append(l.lines[:0], l.lines[len(l.lines)-tailLines:]...)
	}
	return len(p), nil
}

// mark returns how many lines have been written, for since.
func (l *Tail) mark() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
}

// since returns the kept lines written after mark, and the partial one.
func (l *Tail) since(mark int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	kept := l.lines[max(0, len(l.lines)-(l.total-mark)):]
	return strings.Join(kept, "\n") + "\n" + string(l.part)
}

// String returns the lines kept, and a last one not yet ended.
func (l *Tail) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := strings.Join(l.lines, "\n")
	if len(l.part) > 0 {
		s += "\n" + string(l.part)
	}
	return s
}
