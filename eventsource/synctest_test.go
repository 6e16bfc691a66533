package eventsource

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
)

// The tests in this file measure reconnection delays with testing/synctest:
// inside a bubble the clock is fake and jumps ahead whenever every
// goroutine is durably blocked, so a 30s backoff takes no real time and
// every measured delay is exact. Goroutines blocked on real sockets are
// not durably blocked (an event outside the bubble could wake them), so a
// bubble using httptest's loopback server would never advance its clock.
// These tests therefore run a real http.Server and http.Transport over
// pipeNet, an in-memory network of net.Pipe connections created inside the
// bubble.

// A pipeNet is an in-memory network: a net.Listener for an http.Server and
// a DialContext for an http.Transport. Each dial is recorded, and refused
// when refuse says so; otherwise it creates a net.Pipe and hands the
// server end to Accept.
type pipeNet struct {
	conns     chan net.Conn
	done      chan struct{}
	closeOnce sync.Once
	refuse    func(n int) bool // reports whether the n-th dial is refused; nil refuses none

	mu    sync.Mutex // guards dials
	dials []time.Time
}

func newPipeNet(refuse func(int) bool) *pipeNet {
	return &pipeNet{conns: make(chan net.Conn), done: make(chan struct{}), refuse: refuse}
}

func (n *pipeNet) Accept() (net.Conn, error) {
	select {
	case c := <-n.conns:
		return c, nil
	case <-n.done:
		return nil, net.ErrClosed
	}
}

func (n *pipeNet) Close() error {
	n.closeOnce.Do(func() { close(n.done) })
	return nil
}

func (n *pipeNet) Addr() net.Addr { return pipeAddr{} }

func (n *pipeNet) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	n.mu.Lock()
	i := len(n.dials)
	n.dials = append(n.dials, time.Now())
	n.mu.Unlock()
	if n.refuse != nil && n.refuse(i) {
		return nil, &net.OpError{Op: "dial", Net: network, Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	}
	client, server := net.Pipe()
	select {
	case n.conns <- server:
		return client, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-n.done:
		return nil, net.ErrClosed
	}
}

// gaps returns the time between consecutive dials: the waits between
// attempts, as no other time passes in the bubble.
func (n *pipeNet) gaps() []time.Duration {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []time.Duration
	for i := 1; i < len(n.dials); i++ {
		out = append(out, n.dials[i].Sub(n.dials[i-1]))
	}
	return out
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// serveBubble serves h on a pipeNet inside the current synctest bubble and
// returns the network and a client dialing it. The server, its goroutines
// and the client's idle connections end when the test does.
func serveBubble(t *testing.T, h http.Handler, refuse func(int) bool) (*pipeNet, *http.Client) {
	t.Helper()
	pn := newPipeNet(refuse)
	srv := &http.Server{Handler: h}
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(pn)
	}()
	// Without keep-alives every attempt dials, so dials are attempts: a
	// stream that ended cleanly would otherwise leave its connection idle
	// for the next attempt to reuse.
	tr := &http.Transport{DialContext: pn.DialContext, DisableKeepAlives: true}
	t.Cleanup(func() {
		srv.Close()
		<-served
		tr.CloseIdleConnections()
	})
	return pn, &http.Client{Transport: tr}
}

// checkGaps reports each measured delay that is not within [want,
// want+want/5], the range the jitter allows.
func checkGaps(t *testing.T, got, want []time.Duration) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("delays between attempts = %v; want %v (+ up to 20%% jitter)", got, want)
	}
	for i := range got {
		if got[i] < want[i] || got[i] > want[i]+want[i]/5 {
			t.Errorf("delays between attempts = %v; want %v (+ up to 20%% jitter)", got, want)
			return
		}
	}
}

func TestRetryDelay(t *testing.T) {
	tests := []struct {
		name   string
		retry  time.Duration // Options.Retry
		stream string        // the first connection's stream, which then ends
		want   time.Duration
	}{
		{"default", 0, "data: a\n\n", 3 * time.Second},
		{"option", 1500 * time.Millisecond, "data: a\n\n", 1500 * time.Millisecond},
		{"field", time.Second, "retry: 5000\ndata: a\n\n", 5 * time.Second},
		{"field in an event not dispatched", time.Second, "retry: 7000\n\n", 7 * time.Second},
		{"field in an unterminated event", time.Second, "retry: 8000\ndata: a", 8 * time.Second},
		{"last field wins", time.Second, "retry: 5000\n\nretry: 2000\ndata: a\n\n", 2 * time.Second},
		{"invalid field ignored", time.Second, "retry: 5s\ndata: a\n\nretry: -1\n\nretry\n\n", time.Second},
		{"zero", time.Second, "retry: 0\ndata: a\n\n", 0},
		{"longer than MaxRetry", time.Second, "retry: 45000\ndata: a\n\n", 45 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkLeaks(t)
			synctest.Test(t, func(t *testing.T) {
				pn, client := serveBubble(t, newScript(stream(tt.stream)), nil)
				es := newES(t, "http://sse.test/", &Options{Client: client, Retry: tt.retry})
				opens := 0
				collect(t.Context(), es, func(ev Event) bool {
					if ev.Type == "open" {
						opens++
					}
					return opens == 2
				})
				checkGaps(t, pn.gaps(), []time.Duration{tt.want})
			})
		})
	}
}

func TestBackoffSequence(t *testing.T) {
	checkLeaks(t)
	synctest.Test(t, func(t *testing.T) {
		// Dials 0-4 are refused, 5 opens a stream that ends, 6-7 are
		// refused, 8 opens a stream that stays.
		refused := func(n int) bool { return n != 5 && n < 8 }
		s := newScript(stream("data: a\n\n"))
		pn, client := serveBubble(t, s, refused)
		es := newES(t, "http://sse.test/", &Options{Client: client, Retry: time.Second, MaxRetry: 5 * time.Second})
		opens := 0
		evs := collect(t.Context(), es, func(ev Event) bool {
			if ev.Type == "open" {
				opens++
			}
			return opens == 2
		})

		const s1 = time.Second
		checkGaps(t, pn.gaps(), []time.Duration{
			1 * s1, 2 * s1, 4 * s1, 5 * s1, 5 * s1, // doubling, capped at MaxRetry
			1 * s1,         // a stream that opened and ended: the delay itself
			1 * s1, 2 * s1, // the backoff started over
		})
		var got []string
		for _, ev := range evs {
			d := ev.Type + " " + ev.ReadyState.String()
			switch {
			case ev.Type != "error":
			case errors.Is(ev.Err, syscall.ECONNREFUSED):
				d += " refused"
			case errors.Is(ev.Err, io.EOF):
				d += " EOF"
			default:
				d += " " + ev.Err.Error()
			}
			got = append(got, d)
		}
		want := slices.Repeat([]string{"error CONNECTING refused"}, 5)
		want = append(want, "open OPEN", "message OPEN", "error CONNECTING EOF",
			"error CONNECTING refused", "error CONNECTING refused", "open OPEN")
		if !slices.Equal(got, want) {
			t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
}

func TestAbortWait(t *testing.T) {
	tests := []struct {
		name  string
		abort func(es *EventSource, cancel context.CancelFunc)
	}{
		{"Close", func(es *EventSource, _ context.CancelFunc) { es.Close() }},
		{"context", func(_ *EventSource, cancel context.CancelFunc) { cancel() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkLeaks(t)
			synctest.Test(t, func(t *testing.T) {
				pn, client := serveBubble(t, newScript(stream("data: a\n\n")), nil)
				es := newES(t, "http://sse.test/", &Options{Client: client, Retry: time.Hour})
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				var got []string
				es.AddEventListener("error", func(ev Event) { got = append(got, describe(ev)) })

				start := time.Now()
				done := make(chan error, 1)
				go func() { done <- es.Run(ctx) }()
				time.Sleep(time.Minute) // into the hour's wait
				synctest.Wait()
				if got := es.ReadyState(); got != Connecting {
					t.Fatalf("ReadyState() while waiting = %v; want CONNECTING", got)
				}
				tt.abort(es, cancel)
				if err := <-done; err != nil {
					t.Errorf("Run() = %v; want nil", err)
				}
				if d := time.Since(start); d != time.Minute {
					t.Errorf("Run returned after %v; want %v", d, time.Minute)
				}
				if want := []string{"error CONNECTING err"}; !slices.Equal(got, want) {
					t.Errorf("error events = %q; want %q", got, want)
				}
				if got := es.ReadyState(); got != Closed {
					t.Errorf("ReadyState() = %v; want CLOSED", got)
				}
				if n := len(pn.gaps()); n != 0 {
					t.Errorf("%d reconnections; want none", n)
				}
			})
		})
	}
}
