package daemon

import (
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ssehub/ssehub/internal/loadgen"
)

func TestBenchFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string // in the one-line error
	}{
		{"no URL", []string{}, "exactly one URL"},
		{"two URLs", []string{"http://a", "http://b"}, "exactly one URL"},
		{"unknown flag", []string{"--bogus", "http://a"}, "bogus"},
		{"bad number", []string{"--rate", "fast", "http://a"}, "rate"},
		{"no subscribers", []string{"--subscribers", "0", "http://a"}, "--subscribers"},
		{"zero rate", []string{"--rate", "0", "http://a"}, "--rate"},
		{"NaN rate", []string{"--rate", "NaN", "http://a"}, "--rate"},
		{"zero connect rate", []string{"--connect-rate", "0", "http://a"}, "--connect-rate"},
		{"zero duration", []string{"--duration", "0s", "http://a"}, "--duration"},
		{"tiny size", []string{"--size", "10", "http://a"}, "--size"},
		{"no publishers", []string{"--publishers", "0", "http://a"}, "--publishers"},
		{"negative drain", []string{"--drain", "-1s", "http://a"}, "--drain"},
		{"long warmup", []string{"--warmup", "20s", "--duration", "10s", "http://a"}, "--warmup"},
		{"bad io", []string{"--io", "poll", "http://a"}, "--io"},
		{"negative poll", []string{"--poll-every", "-1ms", "http://a"}, "--poll-every"},
		{"slow poll", []string{"--poll-every", "2s", "http://a"}, "--poll-every"},
		{"bad source", []string{"--source-ips", "nope", "http://a"}, "--source-ips"},
		{"huge prefix", []string{"--source-ips", "10.0.0.0/8", "http://a"}, "--source-ips"},
		{"bad header", []string{"--header", "nocolon", "http://a"}, "header"},
		{"not http", []string{"ftp://a/events"}, "http"},
		{"two topics", []string{"http://a/events?topic=x&topic=y"}, "2 topics"},
		{"no-publish without topic", []string{"--no-publish", "http://a"}, "--no-publish"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkFails(t, append([]string{"bench"}, tt.args...), exitUsage, tt.want)
		})
	}
}

func TestBenchHelp(t *testing.T) {
	code, stdout, _ := runMain(t, "bench", "-h")
	if code != exitOK || !strings.Contains(stdout, "Examples:") || !strings.Contains(stdout, "ssehub bench --subscribers") {
		t.Errorf("bench -h: status %d, stdout %q; want 0 and usage with examples", code, stdout)
	}
	if _, stdout, _ = runMain(t, "help"); !strings.Contains(stdout, "bench") {
		t.Errorf("ssehub help does not list bench:\n%s", stdout)
	}
}

func TestBenchParse(t *testing.T) {
	c, code, ok := parseBench([]string{"http://127.0.0.1:1/events?topic=a/b", "--rate", "5", "--warmup", "0", "--drain", "0", "--poll-every", "1ms",
		"--source-ips", "127.0.0.8/30, 127.0.0.20", "--header", "Authorization: Bearer x"}, os.Stdout, os.Stderr)
	if !ok {
		t.Fatalf("parseBench failed with status %d", code)
	}
	o := c.opts
	want := []netip.Addr{netip.MustParseAddr("127.0.0.9"), netip.MustParseAddr("127.0.0.10"), netip.MustParseAddr("127.0.0.20")}
	if o.URL != "http://127.0.0.1:1/events" || o.Topic != "a/b" || o.Rate != 5 || o.Warmup >= 0 || o.Drain >= 0 ||
		len(o.SourceIPs) != 3 || o.SourceIPs[0] != want[0] || o.SourceIPs[1] != want[1] || o.SourceIPs[2] != want[2] ||
		o.Header.Get("Authorization") != "Bearer x" || o.PollEvery != time.Millisecond {
		t.Errorf("options = %+v; want URL without the topic, topic a/b, rate 5, no warm-up or drain, sources %v, the header, polling every 1ms", o, want)
	}
	c, _, _ = parseBench([]string{"http://127.0.0.1:1"}, os.Stdout, os.Stderr)
	if !strings.HasPrefix(c.opts.Topic, "bench/") || c.opts.URL != "http://127.0.0.1:1/events" || c.opts.PollEvery != 0 {
		t.Errorf("default topic %q, URL %q, poll every %v; want bench/<random>, the /events endpoint, no polling", c.opts.Topic, c.opts.URL, c.opts.PollEvery)
	}
}

func TestParseSources(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{"127.0.0.2", "127.0.0.2"},
		{"127.0.0.2,127.0.0.3", "127.0.0.2 127.0.0.3"},
		{"10.0.0.0/30", "10.0.0.1 10.0.0.2"},
		{"10.0.0.4/31", "10.0.0.4 10.0.0.5"},
		{"10.0.0.7/32", "10.0.0.7"},
		{"fd00::/127", "fd00:: fd00::1"},
		{"10.1.2.3/30", "10.1.2.1 10.1.2.2"},
	}
	for _, tt := range tests {
		got, err := parseSources(tt.in)
		var s []string
		for _, a := range got {
			s = append(s, a.String())
		}
		if err != nil || strings.Join(s, " ") != tt.want {
			t.Errorf("parseSources(%q) = %v, %v; want %s", tt.in, s, err, tt.want)
		}
	}
}

// startMemoryHub runs "ssehub serve" with the memory store in-process.
func startMemoryHub(t *testing.T) string {
	t.Helper()
	c := testServeConfig(t, "127.0.0.1:0")
	c.store = "memory"
	base, _ := startServe(t, c)
	return base
}

func TestBenchJSON(t *testing.T) {
	base := startMemoryHub(t)
	code, stdout, stderr := runMain(t, "bench", "--json", "--subscribers", "10", "--rate", "50", "--duration", "1s",
		"--server-pid", strconv.Itoa(os.Getpid()), base)
	if code != exitOK {
		t.Fatalf("exit status %d, stderr %q; want 0", code, stderr)
	}
	var rep loadgen.Report
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil || dec.More() {
		t.Fatalf("stdout is not one JSON report (%v):\n%s", err, stdout)
	}
	if rep.Connected != 10 || rep.Publish.Events != 50 || rep.Delivered != 500 || rep.Lost.Total != 0 || rep.Duplicated.Total != 0 {
		t.Errorf("report: connected %d, published %d, delivered %d, lost %d, duplicated %d; want 10, 50, 500, 0, 0",
			rep.Connected, rep.Publish.Events, rep.Delivered, rep.Lost.Total, rep.Duplicated.Total)
	}
	if rep.Server == nil || rep.Server.RSSBeforeKiB <= 0 || rep.Server.Error != "" || !strings.HasPrefix(rep.Topic, "bench/") {
		t.Errorf("server %+v, topic %q; want RSS figures and a bench/ topic", rep.Server, rep.Topic)
	}
	// Not a terminal: no progress with --json, anywhere.
	if stderr != "" {
		t.Errorf("stderr = %q; want nothing", stderr)
	}
}

func TestBenchText(t *testing.T) {
	base := startMemoryHub(t)
	code, stdout, stderr := runMain(t, "bench", "--subscribers", "5", "--rate", "20", "--duration", "1s", base+"/events?topic=text")
	if code != exitOK {
		t.Fatalf("exit status %d, stderr %q; want 0", code, stderr)
	}
	for _, want := range []string{
		"\npublishing ", // a plain progress line: stdout is not a terminal
		"topic text\n",
		"5 of 5 connected",
		"20 events of 100 bytes",
		"100 of 100 expected",
		"\n  lost         0\n",
		"\n  duplicated   0\n",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "\r") {
		t.Errorf("stdout has a carriage return, for a terminal only:\n%q", stdout)
	}
}

func TestBenchUnreachable(t *testing.T) {
	code, stdout, stderr := runMain(t, "bench", "--subscribers", "50", "http://"+freeAddr(t))
	if code != exitFail {
		t.Errorf("exit status %d; want %d", code, exitFail)
	}
	if strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "no subscriber connected") || !strings.Contains(stderr, "refused") {
		t.Errorf("stderr = %q; want one line saying no subscriber connected, and why", stderr)
	}
	if strings.Contains(stdout, "latency") {
		t.Errorf("stdout has a report with nothing measured:\n%s", stdout)
	}
}

// TestBenchInterrupted cancels a long run, as Ctrl-C does: it stops and
// still reports what it measured.
func TestBenchInterrupted(t *testing.T) {
	base := startMemoryHub(t)
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	var out, errOut strings.Builder
	start := time.Now()
	code := Main(ctx, []string{"bench", "--subscribers", "5", "--rate", "100", "--duration", "1h", base}, nil, &out, &errOut)
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("bench took %v after cancellation; want a prompt stop", took)
	}
	if code != exitOK {
		t.Errorf("exit status %d, stderr %q; want 0", code, errOut.String())
	}
	if s := out.String(); !strings.Contains(s, "interrupted after") || !strings.Contains(s, "latency") || strings.Contains(s, "0 of 0 expected") {
		t.Errorf("stdout does not report the interrupted run's figures:\n%s", s)
	}
}
