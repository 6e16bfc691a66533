package hub_test

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/ssehub/ssehub/hub"
)

// TestMountedAnywhere mounts the hub's handlers at paths of the embedding
// program's choosing, without http.StripPrefix: they route on the method
// alone, so publishing, subscribing (on a taken-over HTTP/1.1 connection
// and over HTTP/2), the preflight, the 405s and the probes all work there,
// and the paths ServeHTTP serves are not served.
func TestMountedAnywhere(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		name := map[bool]string{false: "HTTP/1.1", true: "HTTP/2"}[h2]
		t.Run(name, func(t *testing.T) {
			mount := func(hh http.Handler) *httptest.Server {
				h := hh.(*hub.Hub)
				mux := http.NewServeMux()
				mux.Handle("/api/v1/stream", h.EventsHandler())
				mux.Handle("GET /ops/live", h.HealthHandler())
				mux.Handle("/ops/ready", h.ReadyHandler())
				if !h2 {
					return httptest.NewServer(mux)
				}
				return tlsServer(true)(mux)
			}
			th := startHubWith(t, nil, nil, true, mount)
			get := func(path string) (*http.Response, string) {
				t.Helper()
				resp, err := th.client.Get(th.srv.URL + path)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp, string(b)
			}
			waitFor(t, waitTimeout, func() bool {
				resp, _ := get("/ops/ready")
				return resp.StatusCode == http.StatusOK
			})
			if resp, body := get("/ops/live"); resp.StatusCode != http.StatusOK || body != "ok\n" {
				t.Errorf("GET /ops/live = %d %q; want 200 ok", resp.StatusCode, body)
			}
			for _, path := range []string{"/events", "/healthz", "/readyz"} {
				if resp, _ := get(path); resp.StatusCode != http.StatusNotFound {
					t.Errorf("GET %s = %d; want 404: only the mounted paths are served", path, resp.StatusCode)
				}
			}

			resp, err := th.client.Get(th.srv.URL + "/api/v1/stream?topic=t")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
				t.Fatalf("subscribe = %d %q; want 200 text/event-stream", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			pub, err := th.client.PostForm(th.srv.URL+"/api/v1/stream", url.Values{"topic": {"t"}, "data": {"mounted"}})
			if err != nil {
				t.Fatal(err)
			}
			id, _ := io.ReadAll(pub.Body)
			pub.Body.Close()
			if pub.StatusCode != http.StatusOK {
				t.Fatalf("publish = %d %s; want 200", pub.StatusCode, id)
			}
			br := bufio.NewReader(resp.Body)
			want := "id: " + strings.TrimSpace(string(id))
			for seen := false; !seen; {
				line, err := br.ReadString('\n')
				if err != nil {
					t.Fatalf("stream ended before %q: %v", want, err)
				}
				seen = strings.TrimSuffix(line, "\n") == want
			}
			if line, _ := br.ReadString('\n'); line != "data: mounted\n" {
				t.Errorf("after %q: %q; want data: mounted", want, line)
			}

			req, _ := http.NewRequest(http.MethodDelete, th.srv.URL+"/api/v1/stream", nil)
			del, err := th.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(del.Body)
			del.Body.Close()
			checkProblem(t, del.StatusCode, del.Header.Get("Content-Type"), string(b), http.StatusMethodNotAllowed, "use GET to subscribe or POST to publish")
		})
	}
}
