package loadgen

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// chunked frames parts as chunks of a chunked body, ending it if last.
func chunked(last bool, parts ...string) string {
	var b strings.Builder
	for _, p := range parts {
		fmt.Fprintf(&b, "%x\r\n%s\r\n", len(p), p)
	}
	if last {
		b.WriteString("0\r\n\r\n")
	}
	return b.String()
}

const okHead = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"

func payload(t int64, seq uint64) string {
	return fmt.Sprintf(`{"t":%d,"seq":%d,"pad":"xx"}`, t, seq)
}

// A feedResult is what feeding a whole response produced.
type feedResult struct {
	opened    int
	err       error
	delivered uint64
	unique    uint64
	dups      uint64
	foreign   uint64
	lastID    string
	retry     time.Duration
	maxLat    uint64
}

// feedAll feeds in to a new stream in pieces cut at cuts, at time now.
func feedAll(in string, cuts []int, now int64) feedResult {
	var s stream
	s.reset()
	s.seq.fixed = true
	var rec recorder
	var res feedResult
	prev := 0
	for _, c := range append(cuts, len(in)) {
		b := []byte(in[prev:c]) // a copy: the stream must not keep it
		prev = c
		opened, err := s.feed(b, now, &rec)
		for i := range b {
			b[i] = '#'
		}
		if opened {
			res.opened++
		}
		if err != nil {
			res.err = err
			break
		}
	}
	res.delivered, res.unique, res.dups, res.foreign = rec.delivered, rec.unique, rec.dups, rec.foreign
	res.lastID, res.retry, res.maxLat = string(s.lastID), s.retry, rec.latency.max
	return res
}

func TestStreamFeed(t *testing.T) {
	const now = 1_000_000_000
	ev := func(seq uint64) string {
		return "id: " + fmt.Sprint(seq+1) + "\ndata: " + payload(now-int64(seq)*1000, seq) + "\n\n"
	}
	tests := []struct {
		name string
		in   string
		want feedResult // err compared with errors.Is, or by type for statusError
	}{
		{
			name: "hub stream",
			in: okHead + chunked(false, ": open\nretry: 2000\n\n", "id: 0\n\n", ev(0), ev(1)+ev(2),
				"id: 9\ndata: not a payload\n\n"),
			want: feedResult{opened: 1, delivered: 3, unique: 3, lastID: "9", retry: 2 * time.Second, foreign: 1, maxLat: 2000},
		},
		{
			name: "line split across chunks, extension, end",
			in: okHead + "5;ext=1\r\nid: 7\r\n" + chunked(false, "\nda", "ta: "+payload(now, 4)[:10], payload(now, 4)[10:]+"\n", "\n") +
				"0\r\nTrailer: x\r\n\r\n",
			want: feedResult{opened: 1, delivered: 1, unique: 1, lastID: "7", err: io.EOF},
		},
		{
			name: "CR and CRLF line ends, duplicate",
			in:   okHead + chunked(true, "data: "+payload(now, 0)+"\r\rdata:"+payload(now, 0)+"\r\n\r\nid: a\r"),
			want: feedResult{opened: 1, delivered: 2, unique: 1, dups: 1, lastID: "a", err: io.EOF},
		},
		{
			name: "json fallback and foreign",
			in: okHead + chunked(false, `data: {"seq":5, "t":`+fmt.Sprint(now)+"}\n\n", "data: [1]\n\n",
				`data: {"t":1}`+"\n\n", "data\n\n", "event: x\n\n"),
			want: feedResult{opened: 1, delivered: 1, unique: 1, foreign: 2},
		},
		{
			name: "identity body to the end",
			in:   "HTTP/1.0 200 OK\nContent-Type: Text/Event-Stream; charset=utf-8\n\n" + ev(0) + ev(1),
			want: feedResult{opened: 1, delivered: 2, unique: 2, lastID: "2", maxLat: 1000},
		},
		{
			name: "content length",
			in:   "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: " + fmt.Sprint(len(ev(0))) + "\r\n\r\n" + ev(0) + ev(1),
			want: feedResult{opened: 1, delivered: 1, unique: 1, lastID: "1", err: io.EOF},
		},
		{
			name: "not found",
			in:   "HTTP/1.1 404 Not Found\r\nContent-Type: application/problem+json\r\n\r\n{}",
			want: feedResult{err: &statusError{code: 404}},
		},
		{
			name: "wrong content type",
			in:   "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nhello",
			want: feedResult{err: &statusError{code: 200}},
		},
		{
			name: "bad chunk size",
			in:   okHead + "zz\r\n",
			want: feedResult{opened: 1, err: errProtocol},
		},
		{
			name: "no CRLF after chunk",
			in:   okHead + "2\r\nab!",
			want: feedResult{opened: 1, err: errProtocol},
		},
		{
			name: "not HTTP",
			in:   "SSH-2.0-OpenSSH\r\n\r\n",
			want: feedResult{err: errProtocol},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check := func(desc string, got feedResult) {
				t.Helper()
				want := tt.want
				if !sameErr(got.err, want.err) {
					t.Errorf("%s: error %v; want %v", desc, got.err, want.err)
				}
				got.err, want.err = nil, nil
				if got != want {
					t.Errorf("%s: %+v; want %+v", desc, got, want)
				}
			}
			check("whole", feedAll(tt.in, nil, now))
			// Split at every point, as reads may, and into single bytes.
			for i := 1; i < len(tt.in); i++ {
				check(fmt.Sprintf("split at %d", i), feedAll(tt.in, []int{i}, now))
			}
			var bytewise []int
			for i := 1; i < len(tt.in); i++ {
				bytewise = append(bytewise, i)
			}
			check("byte by byte", feedAll(tt.in, bytewise, now))
		})
	}
}

func sameErr(got, want error) bool {
	if want == nil || got == nil {
		return got == want
	}
	if se, ok := want.(*statusError); ok {
		g, ok := errors.AsType[*statusError](got)
		return ok && g.code == se.code
	}
	return errors.Is(got, want)
}

// TestStreamRandomSplits feeds a long hub-like stream cut at random points.
func TestStreamRandomSplits(t *testing.T) {
	const n = 500
	var body strings.Builder
	body.WriteString(okHead)
	var pending strings.Builder
	for i := range uint64(n) {
		fmt.Fprintf(&pending, "id: %d\ndata: %s\n\n", i+1, payload(int64(i), i))
		if i%7 == 6 { // the hub writes several events per chunk
			body.WriteString(chunked(false, pending.String()))
			pending.Reset()
		}
	}
	body.WriteString(chunked(true, pending.String()))
	in := body.String()
	rng := rand.New(rand.NewPCG(1, 2))
	for range 50 {
		var cuts []int
		for c := rng.IntN(300); c < len(in); c += 1 + rng.IntN(300) {
			cuts = append(cuts, c)
		}
		got := feedAll(in, cuts, n)
		if !errors.Is(got.err, io.EOF) || got.delivered != n || got.unique != n || got.dups != 0 || got.lastID != fmt.Sprint(n) {
			t.Fatalf("cuts %v: %+v; want %d unique deliveries, last ID %d, io.EOF", cuts, got, n, n)
		}
	}
}

func TestStreamLongLineSkipped(t *testing.T) {
	long := "data: " + strings.Repeat("y", maxLine+10)
	in := okHead + chunked(false, long[:maxLine/2], long[maxLine/2:]+"\n", "data: "+payload(5, 0)+"\n\n")
	got := feedAll(in, nil, 5)
	if got.err != nil || got.delivered != 1 || got.foreign != 0 {
		t.Errorf("feed = %+v; want 1 delivery, the long line skipped", got)
	}
}

func TestParsePayload(t *testing.T) {
	tests := []struct {
		in     string
		t      int64
		seq    uint64
		wantOK bool
	}{
		{`{"t":1767225600123456789,"seq":42,"pad":"xx"}`, 1767225600123456789, 42, true},
		{`{"t":1,"seq":0}`, 1, 0, true},
		{`{"seq":3,"t":2}`, 2, 3, true},
		{`{ "t": 5, "seq": 6, "other": [1] }`, 5, 6, true},
		{`{"t":1,"seq":}`, 0, 0, false},
		{`{"t":1}`, 0, 0, false},
		{`{"t":"1","seq":2}`, 0, 0, false},
		{`hello`, 0, 0, false},
		{``, 0, 0, false},
	}
	for _, tt := range tests {
		gotT, gotSeq, ok := parsePayload([]byte(tt.in))
		if ok != tt.wantOK || ok && (gotT != tt.t || gotSeq != tt.seq) {
			t.Errorf("parsePayload(%q) = %d, %d, %v; want %d, %d, %v", tt.in, gotT, gotSeq, ok, tt.t, tt.seq, tt.wantOK)
		}
	}
}

func TestStreamFeedNoAllocs(t *testing.T) {
	var s stream
	s.reset()
	s.seq.fixed = true
	var rec recorder
	if _, err := s.feed([]byte(okHead), 0, &rec); err != nil {
		t.Fatal(err)
	}
	bodies := make([][]byte, 1001)
	for i := range bodies {
		msg := "id: 1\ndata: " + payload(1, uint64(i)) + "\n\n"
		bodies[i] = []byte(chunked(false, msg[:20], msg[20:]))
	}
	i := 0
	allocs := testing.AllocsPerRun(1000, func() {
		b := bodies[i]
		i++
		_, _ = s.feed(b[:len(b)/2], 2, &rec)
		_, _ = s.feed(b[len(b)/2:], 2, &rec)
	})
	if allocs != 0 || rec.unique != 1001 {
		t.Errorf("feed: %.1f allocations per event, %d events counted; want 0, 1001", allocs, rec.unique)
	}
}

func BenchmarkStreamFeed(b *testing.B) {
	var s stream
	s.reset()
	s.seq.fixed = true
	var rec recorder
	s.feed([]byte(okHead), 0, &rec)
	var chunk strings.Builder
	const perChunk = 50
	for i := range perChunk {
		fmt.Fprintf(&chunk, "id: %d\ndata: %s\n\n", i, payload(1, uint64(i)))
	}
	body := []byte(chunked(false, chunk.String()))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		s.seq = seqSet{fixed: true}
		s.feed(body, 2, &rec)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*perChunk), "ns/event")
}
