package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ssehub/ssehub/internal/problem"
)

// Bounds of publishing.
const (
	maxSize        = 256 << 10 // Options.Size
	maxBatchEvents = 1000      // events in one request
	maxBatchBytes  = 512 << 10 // bytes of one request; the hub takes 1 MiB by default
)

// pad fills payloads to their size.
var pad = strings.Repeat("x", maxSize)

// A seqRange is the sequence numbers first..last, inclusive.
type seqRange struct{ first, last uint64 }

// pubStats are the counts of a publisher.
type pubStats struct {
	sent         uint64 // events handed to a request: sequence numbers 0..sent-1
	acked        uint64
	failed       uint64
	failedRanges []seqRange
	requests     uint64
	batched      uint64
	unsent       uint64        // due but never sent
	lastAck      time.Duration // since publishing began
	err          error         // the first failure
}

// A publisher posts payloads to the hub at a steady rate. Its methods
// are safe for concurrent use.
type publisher struct {
	o        *Options
	client   *http.Client
	urls     []string // where to publish: the first, or each in turn with Options.PublishRoundRobin
	next     atomic.Uint64
	topic    []byte // the topic as a JSON string
	perBatch uint64

	mu sync.Mutex // guards st
	st pubStats
}

func newPublisher(o *Options, tgts []*target) *publisher {
	topic, _ := json.Marshal(o.Topic)
	var urls []string
	for _, t := range tgts {
		urls = append(urls, t.publishURL)
	}
	if !o.PublishRoundRobin {
		urls = urls[:1]
	}
	tr := &http.Transport{
		MaxIdleConnsPerHost: o.Publishers,
		DisableCompression:  true,
		IdleConnTimeout:     time.Minute,
	}
	if o.TLSConfig != nil {
		tr.TLSClientConfig = o.TLSConfig.Clone()
	}
	eventBytes := len(`{"topic":,"data":"{\"t\":1234567890123456789,\"seq\":1234567890,\"pad\":\"\"}"}`) + len(topic) + o.Size + 1
	return &publisher{
		o:        o,
		client:   &http.Client{Transport: tr, Timeout: 30 * time.Second},
		urls:     urls,
		topic:    topic,
		perBatch: uint64(max(1, min(maxBatchEvents, maxBatchBytes/eventBytes))),
	}
}

// stats returns a copy of the counts so far.
func (p *publisher) stats() pubStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.st
	st.failedRanges = append([]seqRange(nil), p.st.failedRanges...)
	return st
}

// run publishes Rate events a second for d, or until ctx is done, then
// waits for the requests in flight. Events due while every publisher is
// busy go in the next request.
func (p *publisher) run(ctx context.Context, d time.Duration) {
	jobs := make(chan seqRange)
	start := time.Now()
	var wg sync.WaitGroup
	for range p.o.Publishers {
		wg.Go(func() {
			var body bytes.Buffer
			for j := range jobs {
				p.send(ctx, j, &body, start)
			}
		})
	}
	p.schedule(ctx, jobs, start, d)
	close(jobs)
	wg.Wait()
	p.client.CloseIdleConnections()
}

// schedule hands the events due to the publishers: event k is due k/Rate
// seconds after start.
func (p *publisher) schedule(ctx context.Context, jobs chan<- seqRange, start time.Time, d time.Duration) {
	total := uint64(math.Round(p.o.Rate * d.Seconds()))
	tick := time.NewTicker(p.o.BatchEvery)
	defer tick.Stop()
	end := time.NewTimer(d)
	defer end.Stop()
	var next uint64
	job := func() (seqRange, bool) {
		due := min(total, uint64(p.o.Rate*time.Since(start).Seconds())+1)
		if due <= next {
			return seqRange{}, false
		}
		return seqRange{next, next + min(due-next, p.perBatch) - 1}, true
	}
loop:
	for next < total {
		var send chan<- seqRange
		j, ok := job()
		if ok {
			send = jobs
		}
		select {
		case send <- j:
			next = j.last + 1
		case <-tick.C:
		case <-end.C:
			// The last events fall due between the last tick and the
			// end: send them, unless the publisher is so far behind
			// that they are more than a tick's worth.
			if j, ok := job(); ok && j.last+1 == total && float64(total-next) <= p.o.Rate*p.o.BatchEvery.Seconds()+1 {
				select {
				case jobs <- j:
					next = total
				case <-ctx.Done():
				}
			}
			break loop
		case <-ctx.Done():
			break loop
		}
	}
	p.mu.Lock()
	p.st.sent = next
	if ctx.Err() == nil {
		p.st.unsent = total - next
	}
	p.mu.Unlock()
}

// send publishes the events of j in one request, stamped with the time
// just before it is sent.
func (p *publisher) send(ctx context.Context, j seqRange, body *bytes.Buffer, start time.Time) {
	n := j.last - j.first + 1
	body.Reset()
	now := time.Now().UnixNano()
	for seq := j.first; seq <= j.last; seq++ {
		p.appendEvent(body, seq, now)
	}
	err := p.post(ctx, body, n)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.st.requests++
	if n > 1 {
		p.st.batched++
	}
	if err != nil {
		p.st.failed += n
		p.st.failedRanges = append(p.st.failedRanges, j)
		if p.st.err == nil {
			p.st.err = err
		}
		return
	}
	p.st.acked += n
	p.st.lastAck = time.Since(start)
}

// appendEvent appends the publish request line of one payload.
func (p *publisher) appendEvent(b *bytes.Buffer, seq uint64, now int64) {
	var num [20]byte
	ts := strconv.AppendInt(num[:0], now, 10)
	b.WriteString(`{"topic":`)
	b.Write(p.topic)
	b.WriteString(`,"data":"{\"t\":`)
	b.Write(ts)
	b.WriteString(`,\"seq\":`)
	sq := strconv.AppendUint(num[:0], seq, 10)
	b.Write(sq)
	// The data's own length: {"t":T,"seq":N,"pad":"…"}
	fill := max(0, p.o.Size-(len(`{"t":,"seq":,"pad":""}`)+len(ts)+len(sq)))
	b.WriteString(`,\"pad\":\"`)
	b.WriteString(pad[:fill])
	b.WriteString("\\\"}\"}\n")
}

// post sends body, n events, and checks that the hub acknowledged each.
func (p *publisher) post(ctx context.Context, body *bytes.Buffer, n uint64) error {
	u := p.urls[(p.next.Add(1)-1)%uint64(len(p.urls))]
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body.Bytes()))
	if err != nil {
		return err
	}
	for k, vs := range p.o.Header {
		req.Header[k] = vs
	}
	req.Header.Set("Content-Type", "application/json")
	if n > 1 {
		req.Header.Set("Content-Type", "application/x-ndjson")
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("read publish response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("publish: hub answered %s", problem.Message(resp, b))
	}
	if ids := uint64(bytes.Count(b, []byte("\n"))); ids != n {
		return fmt.Errorf("hub answered %d IDs for %d events", ids, n)
	}
	return nil
}
