package daemon

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildSSEHub builds the ssehub binary into a temporary directory.
func buildSSEHub(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ssehub")
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	out, err := exec.Command(gobin, "build", "-o", bin, "github.com/ssehub/ssehub/cmd/ssehub").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startProcess starts "ssehub serve" as its own process and waits until
// it is ready. The process is killed when the test ends.
func startProcess(t *testing.T, bin, addr, dataDir string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--addr", addr, "--data-dir", dataDir, "--retry", "200ms")
	cmd.Stderr = t.Output()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	waitReady(t, "http://"+addr)
	return cmd
}

// TestServeSIGTERM checks graceful shutdown of a real process: on SIGTERM
// it ends open streams so clients can reconnect elsewhere, exits 0, and
// what it acknowledged is in the store when it starts again.
func TestServeSIGTERM(t *testing.T) {
	bin := buildSSEHub(t)
	addr := freeAddr(t)
	dataDir := t.TempDir()
	proc := startProcess(t, bin, addr, dataDir)
	base := "http://" + addr

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/events?topic=jobs", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	stream := bufio.NewReader(resp.Body)
	if _, err := stream.ReadString('\n'); err != nil {
		t.Fatalf("read the stream's first line: %v", err)
	}

	code, stdout, stderr := runMain(t, "publish", "--url", base, "--topic", "jobs", "--data", "kept")
	if code != exitOK {
		t.Fatalf("publish: status %d, %s", code, stderr)
	}
	id := strings.TrimSpace(stdout)
	for {
		line, err := stream.ReadString('\n')
		if err != nil {
			t.Fatalf("the stream ended before the published event: %v", err)
		}
		if line == "data: kept\n" {
			break
		}
	}

	if err := proc.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The stream ends: EOF, not a hang (ctx bounds the read).
	if _, err := io.ReadAll(stream); err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("reading the stream after SIGTERM: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- proc.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("ssehub serve exited with %v after SIGTERM; want status 0", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("ssehub serve still running 15s after SIGTERM")
	}

	// Restarted on the same data directory, it still knows the event: a
	// client resuming from before it gets it again.
	startProcess(t, bin, addr, dataDir)
	req, _ = http.NewRequestWithContext(ctx, "GET", base+"/events?topic=jobs&lastEventID=0", nil)
	resp2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	br := bufio.NewReader(resp2.Body)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("replay after restart ended before event %s: %v", id, err)
		}
		if line == "id: "+id+"\n" {
			break
		}
	}
}

// freeAddr returns a loopback address with a port that was free a moment
// ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
