package hub

import (
	"math"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Defaults of the Limits fields.
const (
	defaultMaxTopics           = 64
	defaultMaxSelectors        = 64
	defaultMaxSelectorBytes    = 256
	defaultMaxEventBytes       = 256 << 10
	defaultMaxBinaryBytes      = 1 << 20
	defaultMaxStreams          = 100_000
	defaultMaxStreamsPerClient = 1_000
	defaultPublishRate         = 10_000
	defaultBodyTimeout         = 30 * time.Second
	defaultMaxReplay           = 50_000

	// limiterIdle is how long a token's publish limiter is kept unused.
	limiterIdle = 10 * time.Minute
)

// limits are the Limits with their defaults applied. A zero bound of
// maxStreams, maxPerClient, rate or maxReplay means none.
type limits struct {
	maxTopics        int
	maxSelectors     int
	maxSelectorBytes int
	maxEventBytes    int
	maxBinaryBytes   int
	maxStreams       int
	maxPerClient     int
	rate             rate.Limit
	burst            int
	bodyTimeout      time.Duration
	maxReplay        int
}

// resolve applies the defaults to l.
func (l Limits) resolve() limits {
	or := func(v, def int) int {
		switch {
		case v == 0:
			return def
		case v < 0:
			return 0
		}
		return v
	}
	r := limits{
		maxTopics:        or(l.MaxTopics, defaultMaxTopics),
		maxSelectors:     or(l.MaxSelectors, defaultMaxSelectors),
		maxSelectorBytes: or(l.MaxSelectorBytes, defaultMaxSelectorBytes),
		maxEventBytes:    or(l.MaxEventBytes, defaultMaxEventBytes),
		maxBinaryBytes:   or(l.MaxBinaryBytes, defaultMaxBinaryBytes),
		maxStreams:       or(l.MaxStreams, defaultMaxStreams),
		maxPerClient:     or(l.MaxStreamsPerClient, defaultMaxStreamsPerClient),
		bodyTimeout:      l.BodyTimeout,
		maxReplay:        or(l.MaxReplay, defaultMaxReplay),
	}
	// These three bound what a single request may carry: they cannot be
	// removed, only raised.
	r.maxTopics = max(r.maxTopics, 1)
	r.maxSelectors = max(r.maxSelectors, 1)
	r.maxSelectorBytes = max(r.maxSelectorBytes, 1)
	if r.maxEventBytes == 0 {
		r.maxEventBytes = math.MaxInt
	}
	if r.maxBinaryBytes == 0 {
		r.maxBinaryBytes = math.MaxInt
	}
	switch {
	case l.PublishRate == 0:
		r.rate = defaultPublishRate
	case l.PublishRate > 0:
		r.rate = rate.Limit(l.PublishRate)
	}
	if r.rate > 0 {
		r.burst = l.PublishBurst
		if r.burst <= 0 {
			r.burst = max(1, int(math.Min(float64(r.rate), math.MaxInt32)))
		}
	}
	switch {
	case r.bodyTimeout == 0:
		r.bodyTimeout = defaultBodyTimeout
	case r.bodyTimeout < 0:
		r.bodyTimeout = 0
	}
	return r
}

// clientAddr returns the address of the client that made r: the peer's,
// or, when the peer is a trusted proxy, the rightmost address of
// X-Forwarded-For that is not itself a trusted proxy.
func clientAddr(r *http.Request, trusted []netip.Prefix) netip.Addr {
	peer := peerAddr(r.RemoteAddr)
	if len(trusted) == 0 || !peer.IsValid() || !isTrusted(peer, trusted) {
		return peer
	}
	client := peer
	hops := r.Header.Values("X-Forwarded-For")
	for i := len(hops) - 1; i >= 0; i-- {
		parts := strings.Split(hops[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			a, err := netip.ParseAddr(strings.TrimSpace(parts[j]))
			if err != nil {
				return client // a hop we cannot read: trust nothing before it
			}
			client = a.Unmap()
			if !isTrusted(client, trusted) {
				return client
			}
		}
	}
	return client
}

// remote describes, for logs, where r comes from: its client's address
// (see clientAddr), followed by "via" and the peer's when they differ.
func (h *Hub) remote(r *http.Request) string {
	return remoteOf(clientAddr(r, h.opts.TrustedProxies), r)
}

// remoteOf is remote for a request whose client address is known.
func remoteOf(client netip.Addr, r *http.Request) string {
	if client != peerAddr(r.RemoteAddr) {
		return client.String() + " via " + r.RemoteAddr
	}
	return r.RemoteAddr
}

// peerAddr parses the address of an http.Request's RemoteAddr.
func peerAddr(remote string) netip.Addr {
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		return ap.Addr().Unmap()
	}
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, _ := netip.ParseAddr(host)
	return a.Unmap()
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// publishLimiters holds a rate limiter for each token that publishes.
type publishLimiters struct {
	rate  rate.Limit
	burst int

	mu    sync.Mutex
	byKey map[string]*tokenLimiter
	swept time.Time // when idle limiters were last dropped
}

type tokenLimiter struct {
	lim  *rate.Limiter
	used time.Time
}

// reserve takes n events from the budget of the token key and reports
// how long to wait before trying again if it cannot: zero when the
// events may be published now. ok is false when n is more than the
// token may ever publish at once.
func (p *publishLimiters) reserve(key string, n int, now time.Time) (wait time.Duration, ok bool) {
	if p.rate == 0 {
		return 0, true
	}
	if n > p.burst {
		return 0, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.byKey == nil {
		p.byKey = make(map[string]*tokenLimiter)
	}
	if now.Sub(p.swept) > limiterIdle {
		p.swept = now
		for k, t := range p.byKey {
			if now.Sub(t.used) > limiterIdle {
				delete(p.byKey, k)
			}
		}
	}
	t := p.byKey[key]
	if t == nil {
		t = &tokenLimiter{lim: rate.NewLimiter(p.rate, p.burst)}
		p.byKey[key] = t
	}
	t.used = now
	r := t.lim.ReserveN(now, n)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d, true
	}
	return 0, true
}
