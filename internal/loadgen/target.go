package loadgen

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
)

// A target is where the subscriptions connect and what they send.
type target struct {
	tls        bool
	addr       netip.AddrPort // the hub's address
	host       string         // the Host header, and the TLS server name's source
	uri        string         // the subscription's request target: path?query
	publishURL string
	sources    []netip.Addr // local addresses, round-robin; empty: the system chooses
	header     string       // extra request header lines, each ending in CRLF
}

// resolveTargets resolves the targets of o's URL and URLs, in that
// order, and checks that they share a scheme and an address family.
func resolveTargets(ctx context.Context, o *Options) ([]*target, error) {
	var tgts []*target
	for _, raw := range append([]string{o.URL}, o.URLs...) {
		t, err := resolveTarget(ctx, o, raw)
		if err != nil {
			return nil, err
		}
		if first := tgts; len(first) > 0 {
			if t.tls != first[0].tls {
				return nil, fmt.Errorf("loadgen: %q and %q are not of one scheme", o.URL, raw)
			}
			if t.addr.Addr().Is4() != first[0].addr.Addr().Is4() {
				return nil, fmt.Errorf("loadgen: %q and %q are not of one address family", o.URL, raw)
			}
		}
		tgts = append(tgts, t)
	}
	return tgts, nil
}

// resolveTarget parses raw, a URL of o, and resolves its host.
func resolveTarget(ctx context.Context, o *Options, raw string) (*target, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("loadgen: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Hostname() == "" {
		return nil, fmt.Errorf("loadgen: %q is not an http(s) URL", raw)
	}
	t := &target{tls: u.Scheme == "https", host: u.Host}
	if t.tls && o.IO == IOEpoll {
		return nil, fmt.Errorf("loadgen: epoll I/O speaks plain HTTP only, not https")
	}
	port := u.Port()
	if port == "" {
		port = "80"
		if t.tls {
			port = "443"
		}
	}
	pn, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("loadgen: bad port in %q", raw)
	}
	ip, err := netip.ParseAddr(u.Hostname())
	if err != nil {
		ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", u.Hostname())
		if err != nil {
			return nil, fmt.Errorf("loadgen: %w", err)
		}
		ip = ips[0]
		for _, a := range ips { // prefer IPv4, as loopback spreading needs it
			if a.Unmap().Is4() {
				ip = a
				break
			}
		}
	}
	ip = ip.Unmap()
	t.addr = netip.AddrPortFrom(ip, uint16(pn))

	pub := *u
	pub.RawQuery, pub.Fragment = "", ""
	t.publishURL = pub.String()
	sub := *u
	q := sub.Query()
	q.Del("topic")
	q.Set("topic", o.Topic)
	sub.RawQuery = q.Encode()
	t.uri = sub.RequestURI()

	switch {
	case len(o.SourceIPs) > 0:
		for _, s := range o.SourceIPs {
			s = s.Unmap()
			if s.Is4() != ip.Is4() {
				return nil, fmt.Errorf("loadgen: source address %s is not of the hub address %s's family", s, ip)
			}
			t.sources = append(t.sources, s)
		}
	case ip.Is4() && ip.IsLoopback():
		t.sources = LoopbackSources()
	}

	var h strings.Builder
	for k, vs := range o.Header {
		for _, v := range vs {
			if strings.ContainsAny(k, "\r\n:") || strings.ContainsAny(v, "\r\n\x00") {
				return nil, fmt.Errorf("loadgen: bad header %q", k)
			}
			h.WriteString(k + ": " + v + "\r\n")
		}
	}
	if o.Gzip {
		h.WriteString("Accept-Encoding: gzip\r\n")
	}
	t.header = h.String()
	return t, nil
}

// LoopbackSources returns 127.0.0.2 to 127.0.0.254, the source addresses
// used by default for a hub at a loopback IPv4 address.
func LoopbackSources() []netip.Addr {
	var s []netip.Addr
	for i := 2; i <= 254; i++ {
		s = append(s, netip.AddrFrom4([4]byte{127, 0, 0, byte(i)}))
	}
	return s
}

// request returns the bytes of a subscription request, resuming after
// lastID if it is not empty.
func (t *target) request(lastID []byte) []byte {
	b := make([]byte, 0, 192+len(t.uri)+len(t.header)+len(lastID))
	b = append(b, "GET "...)
	b = append(b, t.uri...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, t.host...)
	b = append(b, "\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\nUser-Agent: ssehub-bench\r\n"...)
	b = append(b, t.header...)
	if len(lastID) > 0 {
		b = append(b, "Last-Event-ID: "...)
		b = append(b, lastID...)
		b = append(b, "\r\n"...)
	}
	return append(b, "\r\n"...)
}

// checkCapacity refuses a run that needs more open files or local ports
// than the system gives.
func checkCapacity(o *Options, t *target) error {
	n := o.Subscribers
	if limit := openFileLimit(); limit > 0 && uint64(n)+fdMargin > limit {
		return fmt.Errorf("loadgen: %d subscribers need %d open files, but the limit is %d (ulimit -n)", n, n+fdMargin, limit)
	}
	ports := localPorts()
	srcs := max(1, len(t.sources))
	if n > srcs*ports-portMargin {
		return fmt.Errorf("loadgen: %d subscribers from %d source address(es) need more than the %d local ports of each; give more source addresses", n, srcs, ports)
	}
	return nil
}

// Margins for the files and ports a run needs besides its subscriptions.
const (
	fdMargin   = 64
	portMargin = 64
)

// localPorts returns how many ephemeral ports each source address has.
func localPorts() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		f := strings.Fields(string(b))
		if len(f) == 2 {
			lo, err1 := strconv.Atoi(f[0])
			hi, err2 := strconv.Atoi(f[1])
			if err1 == nil && err2 == nil && hi >= lo {
				return hi - lo + 1
			}
		}
	}
	return 16384 // the IANA range, 49152–65535
}
