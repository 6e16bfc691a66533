package daemon

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ssehub/ssehub/eventsource"
	"github.com/ssehub/ssehub/hub"
)

func TestServeFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string // in the one-line error
	}{
		{"unknown store", []string{"serve", "--store", "mongo"}, nil, "bolt or memory"},
		{"public address", []string{"serve", "--addr", "0.0.0.0:8080"}, nil, "loopback"},
		{"all interfaces", []string{"serve", "--addr", ":8080"}, nil, "loopback"},
		{"bad address", []string{"serve", "--addr", "nope"}, nil, "--addr"},
		{"negative count", []string{"serve", "--retention-count", "-1"}, nil, "retention-count"},
		{"zero heartbeat", []string{"serve", "--heartbeat", "0s"}, nil, "heartbeat"},
		{"zero queue", []string{"serve", "--queue-size", "0"}, nil, "queue-size"},
		{"stray argument", []string{"serve", "extra"}, nil, "extra"},
		{"bad env", []string{"serve"}, map[string]string{"SSEHUB_QUEUE_SIZE": "lots"}, "SSEHUB_QUEUE_SIZE"},
		{"env public address", []string{"serve"}, map[string]string{"SSEHUB_ADDR": "192.0.2.1:80"}, "loopback"},
		{"default command", []string{"--store", "mongo"}, nil, "bolt or memory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			checkFails(t, tt.args, exitUsage, tt.want)
		})
	}
}

func TestServeEnvAndFlagPrecedence(t *testing.T) {
	t.Setenv("SSEHUB_QUEUE_SIZE", "7")
	t.Setenv("SSEHUB_STORE", "memory")
	t.Setenv("SSEHUB_RETRY", "5s")
	c, code, ok := parseServe([]string{"--retry", "1s"}, io.Discard, io.Discard)
	if !ok {
		t.Fatalf("parseServe failed with status %d", code)
	}
	if c.queueSize != 7 || c.store != "memory" {
		t.Errorf("from the environment: queue size %d, store %q; want 7, memory", c.queueSize, c.store)
	}
	if c.retry != time.Second {
		t.Errorf("retry = %v; want 1s: a flag wins over SSEHUB_RETRY", c.retry)
	}
}

// startServe runs serve with c on a free loopback port and returns its base
// URL and a function that stops it and returns serve's error.
func startServe(t *testing.T, c serveConfig) (string, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	done := make(chan struct{})
	var err error // set before done is closed
	go func() {
		defer close(done)
		err = serve(ctx, c, slog.New(slog.DiscardHandler), ready)
	}()
	select {
	case addr := <-ready:
		stop := func() error {
			cancel()
			select {
			case <-done:
				return err
			case <-time.After(20 * time.Second):
				t.Fatal("serve did not return within 20s of cancellation")
				return nil
			}
		}
		t.Cleanup(func() { cancel(); <-done })
		base := "http://" + addr.String()
		waitReady(t, base)
		return base, stop
	case <-done:
		cancel()
		t.Fatalf("serve: %v", err)
	case <-time.After(20 * time.Second):
		cancel()
		t.Fatal("serve did not start within 20s")
	}
	return "", nil
}

// waitReady polls /readyz until the hub says it is ready, for up to 20s.
func waitReady(t *testing.T, base string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/readyz not 200 after 20s (last error %v)", base, err)
		}
		time.Sleep(20 * time.Millisecond) // polling a server this test does not control
	}
}

func testServeConfig(t *testing.T, addr string) serveConfig {
	return serveConfig{
		addr: addr, store: "bolt", dataDir: t.TempDir(),
		retention: hub.Retention{MaxCount: 1000, MaxAge: time.Hour},
		heartbeat: time.Second, retry: 50 * time.Millisecond, queueSize: 64, trimEvery: time.Minute,
	}
}

// TestServeEndToEnd publishes with "ssehub publish", receives with an
// EventSource, restarts the hub on the same data directory, and resumes
// with Last-Event-ID: nothing acknowledged is lost across the restart.
func TestServeEndToEnd(t *testing.T) {
	c := testServeConfig(t, "127.0.0.1:0")
	base, stop := startServe(t, c)

	code, stdout, stderr := runMain(t, "publish", "--url", base, "--topic", "news/eu", "--type", "headline", "--data", "first")
	if code != exitOK {
		t.Fatalf("publish: status %d, stderr %q", code, stderr)
	}
	firstID := strings.TrimSpace(stdout)
	if firstID == "" {
		t.Fatal("publish printed no ID")
	}
	if err := stop(); err != nil {
		t.Fatalf("serve returned %v after cancellation; want nil", err)
	}

	// Same data directory, and the same port so a client could resume.
	c.addr = strings.TrimPrefix(base, "http://")
	base, _ = startServe(t, c)
	var in strings.Builder
	in.WriteString("second\n\nthird\n")
	code, stdout, stderr = runMainIn(t, strings.NewReader(in.String()), "publish", "--url", base, "--topic", "news/us")
	if code != exitOK {
		t.Fatalf("publish from stdin: status %d, stderr %q", code, stderr)
	}
	if ids := strings.Fields(stdout); len(ids) != 2 {
		t.Fatalf("publish from stdin printed %q; want 2 IDs (the empty line is skipped)", stdout)
	}

	es, err := eventsource.New(base+"/events?topic=news/**", &eventsource.Options{LastEventID: firstID})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var got []string
	for ev := range es.Events(ctx) {
		if ev.IsMessage() {
			got = append(got, ev.Type+":"+ev.Data)
			if len(got) == 2 {
				break
			}
		}
	}
	if want := "message:second message:third"; strings.Join(got, " ") != want {
		t.Errorf("resumed after %s and got %q; want %q", firstID, strings.Join(got, " "), want)
	}
}

func TestServeEndpoints(t *testing.T) {
	base, _ := startServe(t, testServeConfig(t, "127.0.0.1:0"))
	for _, tt := range []struct {
		path, wantType string
		wantIn         string
	}{
		{"/", "text/html", "<"},
		{"/healthz", "", ""},
		{"/readyz", "", ""},
		{"/metrics", "text/plain", "ssehub_"},
	} {
		resp, err := http.Get(base + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: status %d; want 200", tt.path, resp.StatusCode)
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, tt.wantType) {
			t.Errorf("GET %s: Content-Type %q; want %q", tt.path, ct, tt.wantType)
		}
		if !strings.Contains(string(body), tt.wantIn) {
			t.Errorf("GET %s: body lacks %q", tt.path, tt.wantIn)
		}
	}
}

// TestPublishDataFromEnv checks that SSEHUB_DATA counts as --data: the
// event is published once, with the given ID, and stdin is not read.
func TestPublishDataFromEnv(t *testing.T) {
	base, _ := startServe(t, testServeConfig(t, "127.0.0.1:0"))
	t.Setenv("SSEHUB_DATA", "from env")
	code, stdout, stderr := runMainIn(t, strings.NewReader("not read\n"), "publish", "--url", base, "--topic", "a", "--id", "env-1")
	if code != exitOK || stdout != "env-1\n" {
		t.Errorf("publish with SSEHUB_DATA: status %d, stdout %q, stderr %q; want 0 and the ID env-1", code, stdout, stderr)
	}
}

func TestPublishErrors(t *testing.T) {
	base, _ := startServe(t, testServeConfig(t, "127.0.0.1:0"))
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no topic", []string{"publish", "--url", base, "--data", "x"}, exitUsage, "--topic"},
		{"id without data", []string{"publish", "--url", base, "--topic", "a", "--id", "x"}, exitUsage, "--id"},
		{"bad url", []string{"publish", "--url", "ftp://x", "--topic", "a", "--data", "x"}, exitUsage, "--url"},
		{"injected type", []string{"publish", "--url", base, "--topic", "a", "--type", "x\ndata: evil", "--data", "x"}, exitFail, "400"},
		{"bad topic", []string{"publish", "--url", base, "--topic", "a//b", "--data", "x"}, exitFail, "400"},
		{"hub down", []string{"publish", "--url", "http://127.0.0.1:1", "--topic", "a", "--data", "x"}, exitFail, "127.0.0.1:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkFails(t, tt.args, tt.code, tt.want) })
	}
}
