package daemon

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ssehub/ssehub/sse"
)

// parseServeTest parses args as "ssehub serve" flags, on a free loopback
// port with the memory store.
func parseServeTest(t *testing.T, args ...string) serveConfig {
	t.Helper()
	args = append([]string{"--addr", "127.0.0.1:0", "--store", "memory"}, args...)
	var stderr strings.Builder
	c, code, ok := parseServe(args, io.Discard, &stderr)
	if !ok {
		t.Fatalf("parseServe(%q): status %d, %s", args, code, stderr.String())
	}
	return c
}

// countingDialer returns a DialContext that counts the TCP connections it
// makes in n.
func countingDialer(n *atomic.Int32) func(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		n.Add(1)
		return d.DialContext(ctx, network, addr)
	}
}

// TestServeHTTP2Streams checks that one HTTP/2 connection carries 50
// concurrent event streams, each receiving every event, both over TLS
// (HTTP/2 negotiated by ALPN, as a browser does) and over h2c (HTTP/2
// with prior knowledge, as a TLS-terminating proxy does). This is what
// lifts the browser's limit of 6 HTTP/1.1 connections per host.
func TestServeHTTP2Streams(t *testing.T) {
	certFile, keyFile := writeTestCert(t)
	tests := []struct {
		name      string
		args      []string
		transport func(serveConfig) *http.Transport
	}{
		{"tls", []string{"--tls-cert", certFile, "--tls-key", keyFile}, func(c serveConfig) *http.Transport {
			// Offers http/1.1 and h2, and uses what the server picks.
			return &http.Transport{TLSClientConfig: clientTLSConfig(t, c), ForceAttemptHTTP2: true}
		}},
		{"h2c", []string{"--h2c"}, func(serveConfig) *http.Transport {
			var p http.Protocols
			p.SetUnencryptedHTTP2(true)
			return &http.Transport{Protocols: &p}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := parseServeTest(t, tt.args...)
			base, _ := startServe(t, c)
			var dials atomic.Int32
			tr := tt.transport(c)
			tr.DialContext = countingDialer(&dials)
			t.Cleanup(tr.CloseIdleConnections)
			checkSharedStreams(t, &http.Client{Transport: tr}, base, &dials)
		})
	}
}

// checkSharedStreams opens 50 event streams with client, checks that
// they are HTTP/2 streams on one TCP connection (the only one dials
// counts), publishes events and checks that every stream receives all of
// them, in order.
func checkSharedStreams(t *testing.T, client *http.Client, base string, dials *atomic.Int32) {
	t.Helper()
	const (
		streams = 50
		events  = 3
	)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	type stream struct {
		proto string
		local string // the client's end of the TCP connection
		dec   *sse.Decoder
	}
	open := func(i int) (*stream, error) {
		var local atomic.Pointer[string]
		tctx := httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
			GotConn: func(ci httptrace.GotConnInfo) {
				a := ci.Conn.LocalAddr().String()
				local.Store(&a)
			},
		})
		req, err := http.NewRequestWithContext(tctx, "GET", fmt.Sprintf("%s/events?topic=fan/all&topic=fan/%d", base, i), nil)
		if err != nil {
			return nil, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("stream %d: %v", i, err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("stream %d: status %d; want 200", i, resp.StatusCode)
		}
		// The hub flushes a retry line once the stream is subscribed.
		br := bufio.NewReader(resp.Body)
		if _, err := br.ReadString('\n'); err != nil {
			return nil, fmt.Errorf("stream %d: reading the first line: %v", i, err)
		}
		s := &stream{proto: resp.Proto, dec: sse.NewDecoder(br)}
		if p := local.Load(); p != nil {
			s.local = *p
		}
		return s, nil
	}

	// The first stream makes the connection; the others, opened at once,
	// must find it rather than dial their own.
	all := make([]*stream, streams)
	first, err := open(0)
	if err != nil {
		t.Fatal(err)
	}
	all[0] = first
	var wg sync.WaitGroup
	errs := make(chan error, streams)
	for i := 1; i < streams; i++ {
		wg.Go(func() {
			s, err := open(i)
			if err != nil {
				errs <- err
				return
			}
			all[i] = s
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}

	protos, conns := map[string]int{}, map[string]int{}
	for _, s := range all {
		protos[s.proto]++
		conns[s.local]++
	}
	if len(protos) != 1 || protos["HTTP/2.0"] != streams {
		t.Errorf("the %d streams used these protocols (streams each): %v; want HTTP/2.0", streams, protos)
	}
	if len(conns) != 1 || conns[""] != 0 {
		t.Errorf("the %d streams went over these local addresses (streams each): %v; want one TCP connection", streams, conns)
	}

	for k := range events {
		form := url.Values{"topic": {"fan/all"}, "data": {fmt.Sprintf("event %d", k)}}
		req, _ := http.NewRequestWithContext(ctx, "POST", base+"/events", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("publish: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("publish: status %d, %q; want 200", resp.StatusCode, body)
		}
	}
	if n := dials.Load(); n != 1 {
		t.Errorf("the client made %d TCP connections for %d streams and %d publishes; want 1", n, streams, events)
	}

	errs = make(chan error, streams)
	for i, s := range all {
		wg.Go(func() {
			for k := range events {
				var ev sse.Event
				if err := s.dec.Decode(&ev); err != nil {
					errs <- fmt.Errorf("stream %d: event %d: %v", i, k, err)
					return
				}
				if want := fmt.Sprintf("event %d", k); ev.Data != want {
					errs <- fmt.Errorf("stream %d: event %d has data %q; want %q", i, k, ev.Data, want)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestServeH2COnlyWithFlag checks that HTTP/2 without TLS is served only
// when --h2c asks for it.
func TestServeH2COnlyWithFlag(t *testing.T) {
	base, _ := startServe(t, parseServeTest(t))
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &p}
	t.Cleanup(tr.CloseIdleConnections)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/healthz", nil)
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("an h2c request to a hub without --h2c got %s %d; want an error", resp.Proto, resp.StatusCode)
	}
}

// TestServeSlowHeaders checks that a client trickling its request headers
// (or its TLS handshake, or its HTTP/2 preface) one byte at a time is
// disconnected at about the read-header timeout: a Slowloris client
// cannot hold a connection and its goroutine.
func TestServeSlowHeaders(t *testing.T) {
	certFile, keyFile := writeTestCert(t)
	const (
		timeout  = 500 * time.Millisecond
		interval = 100 * time.Millisecond // 50 bytes in the 5s the test waits
		slack    = 2500 * time.Millisecond
	)
	padding := strings.Repeat("a", 100)
	tests := []struct {
		name    string
		args    []string
		trickle string
	}{
		{"http/1.1", nil, "GET /events?topic=slow HTTP/1.1\r\nHost: hub\r\nX-Padding: " + padding},
		{"h2c preface", []string{"--h2c"}, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + padding},
		// A TLS handshake record of 512 bytes, never complete.
		{"tls handshake", []string{"--tls-cert", certFile, "--tls-key", keyFile}, "\x16\x03\x01\x02\x00" + padding},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := parseServeTest(t, append(tt.args, "--read-header-timeout", timeout.String())...)
			base, _ := startServe(t, c)
			u, err := url.Parse(base)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { conn.Close() })
			closed := make(chan time.Duration, 1)
			go func() {
				io.Copy(io.Discard, conn) // until the server closes the connection
				closed <- time.Since(start)
			}()
			tick := time.NewTicker(interval)
			defer tick.Stop()
			giveUp := time.After(5 * time.Second)
			for i := 0; ; {
				select {
				case after := <-closed:
					if after < timeout || after > timeout+slack {
						t.Errorf("the server closed the connection after %v; want about the read-header timeout, %v", after, timeout)
					}
					return
				case <-giveUp:
					t.Fatalf("the connection is open 5s after it started trickling, %d bytes in; want it closed after %v", i, timeout)
				case <-tick.C:
					if i < len(tt.trickle) {
						conn.Write([]byte{tt.trickle[i]}) // a failure shows as the closing
						i++
					}
				}
			}
		})
	}
}
