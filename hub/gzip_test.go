package hub_test

import (
	"bufio"
	"compress/gzip"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/ssehub/ssehub/hub"
)

// gzipServers are the servers the gzip tests run on: a plain HTTP/1.1
// one, whose connections the hub takes over, and two over TLS, whose
// streams are ssehttp's.
var gzipServers = []struct {
	name      string
	newServer func(http.Handler) *httptest.Server
	major     int
}{
	{"HTTP/1.1", httptest.NewServer, 1},
	{"HTTP/1.1+TLS", tlsServer(false), 1},
	{"HTTP/2", tlsServer(true), 2},
}

// TestGzipStream checks a compressed stream end to end: the response's
// fields, then, decoded as it arrives, the opening, the replay of a
// resumption, each live event as soon as it is published, and a
// heartbeat, all in one gzip stream.
func TestGzipStream(t *testing.T) {
	for _, srv := range gzipServers {
		t.Run(srv.name, func(t *testing.T) {
			noLeaks(t)
			th := startHubWith(t, &hub.Options{Gzip: true, Heartbeat: 50 * time.Millisecond}, nil, true, srv.newServer)
			waitFor(t, waitTimeout, th.ready)
			appendN(t, th.log, "t", 3)
			// Setting Accept-Encoding stops the transport from decoding.
			resp := th.get(t, "/events?topic=t", http.Header{"Accept-Encoding": {"gzip, deflate, br"}, "Last-Event-Id": {"1"}})
			t.Cleanup(func() { resp.Body.Close() })
			if resp.StatusCode != 200 || resp.ProtoMajor != srv.major {
				t.Fatalf("response = %d %s; want 200 over HTTP/%d", resp.StatusCode, resp.Proto, srv.major)
			}
			if got := resp.Header.Get("Content-Encoding"); got != "gzip" {
				t.Fatalf("Content-Encoding = %q; want gzip", got)
			}
			if got := resp.Header.Values("Vary"); !slices.Equal(got, []string{"Accept-Encoding"}) {
				t.Errorf("Vary = %q; want [Accept-Encoding]", got)
			}
			zr, err := gzip.NewReader(resp.Body)
			if err != nil {
				t.Fatalf("gzip.NewReader: %v", err)
			}
			rs := &rawStream{resp: resp, br: bufio.NewReader(zr)}
			want := []string{": open", "retry: 2000", "", "id: 2", "data: d1", "", "id: 3", "data: d2", ""}
			if got := rs.lines(t, len(want)); !slices.Equal(got, want) {
				t.Fatalf("opening and replay = %q; want %q", got, want)
			}
			for _, data := range []string{"live one", "live two"} {
				id := th.publish(t, url.Values{"topic": {"t"}, "data": {data}})
				// Published after the last read: read only when the hub
				// has flushed it through the compressor.
				if got, want := nonPing(t, rs, 3), []string{"id: " + id, "data: " + data, ""}; !slices.Equal(got, want) {
					t.Fatalf("live event = %q; want %q", got, want)
				}
			}
			waitFor(t, waitTimeout, func() bool { return rs.lines(t, 1)[0] == ": ping" })
			if got := th.metric(t, "ssehub_gzip_streams_total"); got != 1 {
				t.Errorf("ssehub_gzip_streams_total = %v; want 1", got)
			}
		})
	}
}

// nonPing reads the next n lines of rs that are not heartbeats.
func nonPing(t *testing.T, rs *rawStream, n int) []string {
	t.Helper()
	var out []string
	for len(out) < n {
		if l := rs.lines(t, 1)[0]; l != ": ping" {
			out = append(out, l)
		}
	}
	return out
}

// TestGzipNegotiation checks which responses are compressed: those to a
// request that accepts gzip, when Options.Gzip is set, and never when
// middleware has encoded the body already.
func TestGzipNegotiation(t *testing.T) {
	cases := []struct {
		name     string
		gzip     bool
		accept   string
		encoding string // set by middleware
		wantCE   string
		wantVary bool
	}{
		{"on, accepted", true, "gzip", "", "gzip", true},
		{"on, accepted with a weight", true, "br;q=1, gzip;q=0.5", "", "gzip", true},
		{"on, refused", true, "gzip;q=0", "", "", true},
		{"on, identity", true, "identity", "", "", true},
		{"on, middleware encodes", true, "gzip", "br", "br", true},
		{"off", false, "gzip", "", "", false},
	}
	for _, srv := range gzipServers {
		for _, tc := range cases {
			t.Run(srv.name+"/"+tc.name, func(t *testing.T) {
				th := startHubWith(t, &hub.Options{Gzip: tc.gzip, Heartbeat: -1}, nil, true, func(h http.Handler) *httptest.Server {
					return srv.newServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
						if tc.encoding != "" {
							w.Header().Set("Content-Encoding", tc.encoding)
						}
						h.ServeHTTP(wrapped{w}, r)
					}))
				})
				waitFor(t, waitTimeout, th.ready)
				resp := th.get(t, "/events?topic=t", http.Header{"Accept-Encoding": {tc.accept}})
				t.Cleanup(func() { resp.Body.Close() })
				wantCE := tc.wantCE
				if srv.name == "HTTP/1.1" && tc.encoding != "" {
					// A taken-over response's head is the hub's: the
					// middleware never sees the body, so cannot encode it.
					wantCE = ""
				}
				if got := resp.Header.Get("Content-Encoding"); got != wantCE {
					t.Errorf("Content-Encoding = %q; want %q", got, wantCE)
				}
				if got := resp.Header.Get("Vary") == "Accept-Encoding"; got != tc.wantVary {
					t.Errorf("Vary = %q; want Accept-Encoding: %v", resp.Header.Get("Vary"), tc.wantVary)
				}
				body := resp.Body
				rs := &rawStream{resp: resp, br: bufio.NewReader(body)}
				if tc.wantCE == "gzip" {
					zr, err := gzip.NewReader(body)
					if err != nil {
						t.Fatalf("gzip.NewReader: %v", err)
					}
					rs.br = bufio.NewReader(zr)
				}
				if got := rs.lines(t, 1)[0]; got != ": open" {
					t.Errorf("first line = %q; want %q", got, ": open")
				}
				want := 0.0
				if tc.wantCE == "gzip" {
					want = 1
				}
				// Counted once the stream is open, which may be just after
				// its first bytes are sent.
				waitFor(t, waitTimeout, func() bool { return th.metric(t, "ssehub_connections") == 1 })
				if got := th.metric(t, "ssehub_gzip_streams_total"); got != want {
					t.Errorf("ssehub_gzip_streams_total = %v; want %v", got, want)
				}
			})
		}
	}
}
