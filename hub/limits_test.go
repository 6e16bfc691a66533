package hub

import (
	"net/http"
	"net/netip"
	"testing"
	"time"
)

func TestClientAddr(t *testing.T) {
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	tests := []struct {
		name    string
		remote  string
		xff     []string
		trusted []netip.Prefix
		want    string
	}{
		{"no proxies: the peer", "192.0.2.1:5000", []string{"203.0.113.1"}, nil, "192.0.2.1"},
		{"untrusted peer: its header is ignored", "192.0.2.1:5000", []string{"203.0.113.1"}, proxies, "192.0.2.1"},
		{"trusted peer", "10.1.2.3:5000", []string{"203.0.113.1"}, proxies, "203.0.113.1"},
		{"trusted peer, no header", "10.1.2.3:5000", nil, proxies, "10.1.2.3"},
		{"chain of proxies", "10.1.2.3:5000", []string{"203.0.113.1, 10.9.9.9"}, proxies, "203.0.113.1"},
		{"a prepended lie is not believed", "10.1.2.3:5000", []string{"198.51.100.66, 203.0.113.1"}, proxies, "203.0.113.1"},
		{"several header lines", "10.1.2.3:5000", []string{"198.51.100.66", "203.0.113.1, 10.0.0.2"}, proxies, "203.0.113.1"},
		{"unreadable hop: the last trusted one", "10.1.2.3:5000", []string{"junk, 10.0.0.2"}, proxies, "10.0.0.2"},
		{"IPv6 peer", "[::1]:5000", []string{"2001:db8::7"}, proxies, "2001:db8::7"},
		{"IPv4-mapped", "[::ffff:192.0.2.1]:5000", nil, nil, "192.0.2.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &http.Request{RemoteAddr: tt.remote, Header: http.Header{}}
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := clientAddr(r, tt.trusted); got.String() != tt.want {
				t.Errorf("clientAddr = %v; want %v", got, tt.want)
			}
		})
	}
}

func TestLimitsResolve(t *testing.T) {
	d := Limits{}.resolve()
	if d.maxTopics != 64 || d.maxSelectors != 64 || d.maxSelectorBytes != 256 || d.maxEventBytes != 256<<10 ||
		d.maxStreams != 100_000 || d.maxPerClient != 1000 || d.rate != 10_000 || d.burst != 10_000 || d.bodyTimeout != 30*time.Second {
		t.Errorf("defaults = %+v", d)
	}
	n := Limits{MaxStreams: -1, MaxStreamsPerClient: -1, PublishRate: -1, BodyTimeout: -1, MaxEventBytes: -1, MaxTopics: -1}.resolve()
	if n.maxStreams != 0 || n.maxPerClient != 0 || n.rate != 0 || n.bodyTimeout != 0 || n.maxEventBytes <= 1<<40 {
		t.Errorf("negative = %+v; want the bounds removed", n)
	}
	if n.maxTopics != 1 {
		t.Errorf("MaxTopics -1 gives %d; want 1 (a per-request bound cannot be removed)", n.maxTopics)
	}
	if r := (Limits{PublishRate: 0.5}).resolve(); r.burst != 1 {
		t.Errorf("PublishRate 0.5 gives burst %d; want 1", r.burst)
	}
}

func TestPublishLimiters(t *testing.T) {
	p := publishLimiters{rate: 1, burst: 2}
	now := time.Unix(1000, 0)
	for i, want := range []time.Duration{0, 0, time.Second} {
		wait, ok := p.reserve("k", 1, now)
		if !ok || wait != want {
			t.Errorf("reserve %d = %v, %v; want %v, true", i, wait, ok, want)
		}
	}
	if _, ok := p.reserve("k", 3, now); ok {
		t.Error("a batch larger than the burst was not refused")
	}
	if wait, _ := p.reserve("other", 2, now); wait != 0 {
		t.Errorf("another key waits %v; want its own budget", wait)
	}
	// A refused reservation takes nothing: a second later one event passes.
	if wait, _ := p.reserve("k", 1, now.Add(time.Second)); wait != 0 {
		t.Errorf("after a second: wait %v; want 0", wait)
	}
	// Idle limiters are dropped.
	p.reserve("k", 1, now.Add(limiterIdle+2*time.Second))
	p.reserve("k", 1, now.Add(2*limiterIdle+3*time.Second))
	if _, ok := p.byKey["other"]; ok {
		t.Error("an idle limiter was kept")
	}
}
