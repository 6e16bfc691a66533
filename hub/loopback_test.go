//go:build linux

package hub

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BenchmarkLoopbackFanout publishes events to N subscribers of one topic
// over real loopback HTTP/1.1 connections, at a paced rate, and reports
// the deliveries per second, the publish-to-read latency (p50, p99, max)
// and the events lost. The subscribers are raw sockets in a child
// process (the test binary, run as TestLoopbackReader), drained with
// epoll by a few goroutines, so that the server's figures, CPU profile
// included, are of the hub alone, and 10,000 subscribers fit the
// process's file limit. Each event carries its sequence number and the
// time it was due to be published, so a publisher that falls behind
// shows as latency.
//
// The offered load is -loopback.rate deliveries per second (events/s
// times N), 2,000,000 by default, the hub's target; the run lasts
// -benchtime. Events are 100 bytes of data, fed to the fan-out as Run's
// Tail would, without a Log, in batches of what is due each time the
// publisher wakes.
func BenchmarkLoopbackFanout(b *testing.B) {
	for _, n := range fanoutSizes {
		b.Run(fmt.Sprint(n), func(b *testing.B) { benchLoopback(b, n) })
	}
}

var loopbackRate = flag.Float64("loopback.rate", 2e6, "deliveries per second offered by BenchmarkLoopbackFanout")

const loopbackEnv = "SSEHUB_LOOPBACK_READER"

func benchLoopback(b *testing.B, n int) {
	h := runHub(b, &Options{Heartbeat: -1})
	srv := httptest.NewServer(h)
	b.Cleanup(srv.Close)
	b.Cleanup(func() { h.Close() })

	cmd := exec.Command(os.Args[0], "-test.run=^TestLoopbackReader$", "-test.count=1")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s,%d", loopbackEnv, srv.Listener.Addr(), n))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	out := bufio.NewReader(stdout)
	if line, err := out.ReadString('\n'); err != nil || line != "ready\n" {
		cmd.Process.Kill()
		cmd.Wait()
		b.Fatalf("reader: %q, %v", line, err)
	}

	rate := *loopbackRate / float64(n) // events per second
	interval := time.Duration(float64(time.Second) / rate)
	pad := strings.Repeat("x", 100)
	var recs []Record
	var ru0, ru1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	seq := 0
	start := time.Now()
	flush := func() {
		if len(recs) > 0 {
			h.fanout(recs)
			recs = recs[:0]
		}
	}
	for b.Loop() {
		seq++
		due := start.Add(time.Duration(seq-1) * interval)
		if d := time.Until(due); d > 0 {
			flush()
			time.Sleep(d) // pacing the publisher, not waiting for a result
		}
		data := fmt.Sprintf("%d %d ", seq, due.UnixNano())
		recs = append(recs, Record{Pos: uint64(seq), ID: strconv.Itoa(seq), Topics: []string{"t"}, Data: data + pad[:100-len(data)]})
	}
	flush()
	elapsed := time.Since(start)
	fmt.Fprintf(stdin, "%d\n", seq)
	var res loopbackResult
	if err := json.NewDecoder(out).Decode(&res); err != nil {
		b.Fatal(err)
	}
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	if err := cmd.Wait(); err != nil {
		b.Fatal(err)
	}
	cpu := func(ru *syscall.Rusage) time.Duration {
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	b.ReportMetric(float64(res.Delivered)/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(float64(res.P50)/1e6, "p50-ms")
	b.ReportMetric(float64(res.P99)/1e6, "p99-ms")
	b.ReportMetric(float64(res.Max)/1e6, "max-ms")
	b.ReportMetric(float64(res.Lost), "lost")
	b.ReportMetric(float64(cpu(&ru1)-cpu(&ru0))/float64(elapsed), "server-cpus")
	b.ReportMetric(float64(cpu(cmd.ProcessState.SysUsage().(*syscall.Rusage)))/float64(elapsed), "reader-cpus")
}

// loopbackResult is what TestLoopbackReader reports, in JSON.
type loopbackResult struct {
	Delivered     int64 // events read, over all connections
	Lost          int64 // events not read, over all connections
	P50, P99, Max int64 // publish-to-read latency, ns
}

// TestLoopbackReader is the subscriber side of BenchmarkLoopbackFanout,
// run in a child process; it is skipped otherwise. It opens n
// subscriptions to addr with raw non-blocking sockets from source
// addresses spread over 127.0.0.0/8, prints "ready" once each has read
// its first event, reads the events with epoll until it is told on
// stdin how many were published and has them all (or nothing came for
// 5s), and prints a loopbackResult.
func TestLoopbackReader(t *testing.T) {
	env := os.Getenv(loopbackEnv)
	if env == "" {
		t.Skip("run by BenchmarkLoopbackFanout")
	}
	addr, nstr, _ := strings.Cut(env, ",")
	n, _ := strconv.Atoi(nstr)
	ta, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	const readers = 2
	rs := make([]*reader, readers)
	for i := range rs {
		if rs[i], err = newReader(); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		fd, err := dialRaw(ta, i)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		if err := rs[i%readers].add(fd); err != nil {
			t.Fatal(err)
		}
	}

	var total atomicInt
	total.set(-1)
	results := make([]loopbackResult, readers)
	hists := make([][]int64, readers)
	ready := make(chan struct{}, readers)
	var wg sync.WaitGroup
	for i, r := range rs {
		wg.Go(func() { hists[i] = r.run(&total, ready, &results[i]) })
	}
	for range readers {
		<-ready
	}
	fmt.Println("ready")
	line, _ := bufio.NewReader(os.Stdin).ReadString('\n')
	tot, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("total %q: %v", line, err)
	}
	total.set(int64(tot))
	wg.Wait()

	var res loopbackResult
	hist := make([]int64, histBuckets)
	for i := range rs {
		res.Delivered += results[i].Delivered
		res.Lost += results[i].Lost
		res.Max = max(res.Max, results[i].Max)
		for j, c := range hists[i] {
			hist[j] += c
		}
	}
	res.P50 = percentile(hist, res.Delivered, 0.50)
	res.P99 = percentile(hist, res.Delivered, 0.99)
	json.NewEncoder(os.Stdout).Encode(res)
}

// Latency histogram: 50µs buckets up to 5s.
const (
	histBucket  = 50 * time.Microsecond
	histBuckets = int(5*time.Second/histBucket) + 1
)

func percentile(hist []int64, n int64, p float64) int64 {
	want := int64(float64(n) * p)
	var c int64
	for i, v := range hist {
		if c += v; c > want {
			return int64(i+1) * int64(histBucket)
		}
	}
	return int64(len(hist)) * int64(histBucket)
}

type atomicInt struct {
	mu sync.Mutex
	v  int64
}

func (a *atomicInt) set(v int64) { a.mu.Lock(); a.v = v; a.mu.Unlock() }
func (a *atomicInt) get() int64  { a.mu.Lock(); defer a.mu.Unlock(); return a.v }

// dialRaw connects a blocking socket to ta from 127.0.0.(2+i%250),
// sends a subscription request, and makes the socket non-blocking.
func dialRaw(ta *net.TCPAddr, i int) (int, error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	local := &syscall.SockaddrInet4{Addr: [4]byte{127, 0, byte(1 + i/250%250), byte(2 + i%250)}}
	remote := &syscall.SockaddrInet4{Port: ta.Port}
	copy(remote.Addr[:], ta.IP.To4())
	if err := syscall.Bind(fd, local); err != nil {
		syscall.Close(fd)
		return -1, fmt.Errorf("bind: %w", err)
	}
	if err := syscall.Connect(fd, remote); err != nil {
		syscall.Close(fd)
		return -1, fmt.Errorf("connect: %w", err)
	}
	req := []byte("GET /events?topic=t HTTP/1.1\r\nHost: bench\r\n\r\n")
	if _, err := syscall.Write(fd, req); err != nil {
		syscall.Close(fd)
		return -1, err
	}
	return fd, syscall.SetNonblock(fd, true)
}

// A reader reads its connections with one epoll set.
type reader struct {
	ep    int
	conns map[int32]*readConn
}

type readConn struct {
	fd      int
	started bool  // read the id event that ends the opening
	last    int64 // the last sequence number read
	n       int64 // events read
	closed  bool
	partial []byte // an incomplete line
}

func newReader() (*reader, error) {
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	return &reader{ep: ep, conns: map[int32]*readConn{}}, err
}

func (r *reader) add(fd int) error {
	r.conns[int32(fd)] = &readConn{fd: fd}
	return syscall.EpollCtl(r.ep, syscall.EPOLL_CTL_ADD, fd, &syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: int32(fd)})
}

// run reads until every connection has read total events or is closed,
// or nothing came for 5s; it signals ready once every connection has
// started, and returns the latency histogram.
func (r *reader) run(total *atomicInt, ready chan<- struct{}, res *loopbackResult) []int64 {
	defer func() {
		for fd := range r.conns {
			syscall.Close(int(fd))
		}
		syscall.Close(r.ep)
	}()
	hist := make([]int64, histBuckets)
	events := make([]syscall.EpollEvent, 256)
	buf := make([]byte, 64<<10)
	started, isReady := 0, false
	lastProgress := time.Now()
	for {
		if !isReady && started == len(r.conns) {
			isReady = true
			ready <- struct{}{}
		}
		if tot := total.get(); tot >= 0 {
			done := true
			for _, c := range r.conns {
				if !c.closed && c.last < tot {
					done = false
					break
				}
			}
			if done || time.Since(lastProgress) > 5*time.Second {
				for _, c := range r.conns {
					res.Lost += tot - c.n
				}
				return hist
			}
		}
		k, err := syscall.EpollWait(r.ep, events, 100)
		if err != nil && err != syscall.EINTR {
			panic(err)
		}
		for _, ev := range events[:max(k, 0)] {
			c := r.conns[ev.Fd]
			for !c.closed {
				m, err := syscall.Read(c.fd, buf)
				if err == syscall.EAGAIN {
					break
				}
				if err != nil || m == 0 {
					c.closed = true
					syscall.EpollCtl(r.ep, syscall.EPOLL_CTL_DEL, c.fd, nil)
					break
				}
				now := time.Now().UnixNano()
				lastProgress = time.Now()
				wasStarted := c.started
				c.scan(buf[:m], now, hist, res)
				if !wasStarted && c.started {
					started++
				}
			}
		}
	}
}

// scan reads the lines in p: the first "id: " line starts the stream,
// and each "data: SEQ TS ..." line is an event.
func (c *readConn) scan(p []byte, now int64, hist []int64, res *loopbackResult) {
	for len(p) > 0 {
		i := slices.Index(p, '\n')
		if i < 0 {
			c.partial = append(c.partial, p...)
			return
		}
		line := p[:i]
		p = p[i+1:]
		if len(c.partial) > 0 {
			line = append(c.partial, line...)
			c.partial = c.partial[:0]
		}
		switch {
		case !c.started:
			c.started = len(line) > 4 && string(line[:4]) == "id: "
		case len(line) > 6 && string(line[:6]) == "data: ":
			seq, rest := parseInt(line[6:])
			ts, _ := parseInt(rest)
			if seq != c.last+1 {
				panic(fmt.Sprintf("event %d after %d", seq, c.last))
			}
			c.last = seq
			c.n++
			res.Delivered++
			lat := now - ts
			res.Max = max(res.Max, lat)
			hist[min(int(lat/int64(histBucket)), histBuckets-1)]++
		}
	}
}

// parseInt parses the decimal number at the start of p, and returns it
// and what follows the space after it.
func parseInt(p []byte) (int64, []byte) {
	var v int64
	for i, c := range p {
		if c < '0' || c > '9' {
			return v, p[i+1:]
		}
		v = v*10 + int64(c-'0')
	}
	return v, nil
}
