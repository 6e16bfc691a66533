package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
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
		{"no URL", []string{}, "want a URL"},
		{"two topics across URLs", []string{"http://a/events?topic=x", "http://b/events?topic=y"}, "different topics"},
		{"second URL not http", []string{"http://a", "ftp://b/events"}, "http"},
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

// TestBenchParseNodes gives bench the URLs of three nodes: the first is
// the URL, the others its further nodes, and one topic given by any.
func TestBenchParseNodes(t *testing.T) {
	c, code, ok := parseBench([]string{"--publish-round-robin", "http://127.0.0.1:1", "http://127.0.0.1:2/events?topic=a", "http://127.0.0.1:3/events"}, os.Stdout, os.Stderr)
	if !ok {
		t.Fatalf("parseBench failed with status %d", code)
	}
	o := c.opts
	if o.URL != "http://127.0.0.1:1/events" || strings.Join(o.URLs, " ") != "http://127.0.0.1:2/events http://127.0.0.1:3/events" ||
		o.Topic != "a" || !o.PublishRoundRobin {
		t.Errorf("URL %q, URLs %q, topic %q, round-robin %v; want :1's endpoint, :2's and :3's, topic a, round-robin", o.URL, o.URLs, o.Topic, o.PublishRoundRobin)
	}
	c, _, _ = parseBench([]string{"http://127.0.0.1:1"}, os.Stdout, os.Stderr)
	if len(c.opts.URLs) != 0 || c.opts.PublishRoundRobin {
		t.Errorf("one URL: URLs %q, round-robin %v; want none, false", c.opts.URLs, c.opts.PublishRoundRobin)
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

// TestBenchTextNodes gives bench one hub twice, as two nodes of a
// cluster: the report names both and how events were published.
func TestBenchTextNodes(t *testing.T) {
	base := startMemoryHub(t)
	code, stdout, stderr := runMain(t, "bench", "--subscribers", "4", "--rate", "20", "--duration", "1s", "--publish-round-robin", base, base+"/events")
	if code != exitOK {
		t.Fatalf("exit status %d, stderr %q; want 0", code, stderr)
	}
	for _, want := range []string{
		"  and " + base + "/events: subscribers spread over 2 nodes, events published to each in turn\n",
		"4 of 4 connected",
		"80 of 80 expected",
		"\n  lost         0\n",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
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

// TestBenchServerPID: bench checks that --server-pid holds the hub's
// listening socket, and warns, naming the process that does, when it
// does not.
func TestBenchServerPID(t *testing.T) {
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		t.Skipf("no /proc here (%v): the check has nothing to read", err)
	}
	base := startMemoryHub(t) // in this test process
	other := exec.Command("sleep", "60")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		other.Process.Kill()
		other.Wait()
	})
	addr := strings.TrimPrefix(base, "http://")
	run := func(pid int) (*loadgen.Report, string) {
		t.Helper()
		code, stdout, stderr := runMain(t, "bench", "--json", "--subscribers", "2", "--rate", "20", "--duration", "500ms", "--drain", "1s",
			"--server-pid", strconv.Itoa(pid), base)
		if code != exitOK {
			t.Fatalf("bench --server-pid %d: status %d, stderr %q", pid, code, stderr)
		}
		var rep loadgen.Report
		if err := json.Unmarshal([]byte(stdout), &rep); err != nil || rep.Server == nil {
			t.Fatalf("bench --server-pid %d: no report with a server (%v):\n%s", pid, err, stdout)
		}
		return &rep, stderr
	}
	rep, stderr := run(other.Process.Pid)
	want := fmt.Sprintf("pid %d does not listen at %s; pid %d (", other.Process.Pid, addr, os.Getpid())
	if !strings.Contains(rep.Server.Warning, want) || !strings.Contains(stderr, "ssehub bench: WARNING: "+want) {
		t.Errorf("server warning %q, stderr %q; want both to say %q", rep.Server.Warning, stderr, want)
	}
	if rep, stderr := run(os.Getpid()); rep.Server.Warning != "" || stderr != "" {
		t.Errorf("--server-pid of the hub: warning %q, stderr %q; want none", rep.Server.Warning, stderr)
	}
}

// TestBenchTLS: bench measures an https hub given its certificate with
// --cacert, and without it stops with one line about --cacert.
func TestBenchTLS(t *testing.T) {
	certFile, keyFile := writeTestCert(t)
	base, _ := startServe(t, parseServeTest(t, "--tls-cert", certFile, "--tls-key", keyFile))
	code, _, stderr := runMain(t, "bench", "--json", "--subscribers", "2", "--duration", "500ms", base)
	if code != exitFail || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "certificate signed by unknown authority (the hub's certificate is not trusted: give its CA with --cacert FILE)") {
		t.Errorf("bench without --cacert: status %d, stderr %q; want 1 and one line about --cacert", code, stderr)
	}
	code, stdout, stderr := runMain(t, "bench", "--json", "--subscribers", "2", "--rate", "20", "--duration", "500ms", "--cacert", certFile, base)
	var rep loadgen.Report
	if code != exitOK || json.Unmarshal([]byte(stdout), &rep) != nil || rep.Connected != 2 || rep.Publish.Events != 10 || rep.Delivered != 20 {
		t.Errorf("bench --cacert: status %d, stderr %q, report %+v; want 0, 2 connected, 10 published, 20 delivered", code, stderr, rep)
	}
}

// TestBenchToolWarningShown: the report shows the tool's warning, and
// otherwise how busy the machine was, without a warning.
func TestBenchToolWarningShown(t *testing.T) {
	for _, tt := range []struct {
		tool    loadgen.ToolReport
		want    string
		wantNot string
	}{
		{loadgen.ToolReport{IO: loadgen.IOEpoll, Workers: 1, CPUPercent: 13, CPUs: 2, MachineBusyPercent: 60},
			"the machine's 2 CPUs were 60% busy while publishing", "WARNING"},
		{loadgen.ToolReport{IO: loadgen.IOEpoll, Workers: 1, CPUPercent: 46, CPUs: 2, MachineBusyPercent: 99, Warning: "the machine was busy"},
			"WARNING: the machine was busy", "were 99% busy"},
	} {
		var b strings.Builder
		writeReport(&b, &loadgen.Report{Tool: tt.tool})
		if !strings.Contains(b.String(), tt.want) || strings.Contains(b.String(), tt.wantNot) {
			t.Errorf("report of %+v:\n%s\nwant %q and no %q", tt.tool, b.String(), tt.want, tt.wantNot)
		}
	}
}
