package daemon

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ssehub/ssehub/sse"
)

// TestPublishFile: --file sends the file's bytes as one binary event, in
// an application/octet-stream request with the fields in the query
// string, with the media type --media gives or the extension names.
func TestPublishFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	png := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
	text := []byte("hello, binary world\n")
	tests := []struct {
		name      string
		args      []string
		stdin     []byte
		want      []byte
		wantMedia string
		wantQuery string // of the request, if not empty
	}{
		{"png by its extension", []string{"--file", write("a.png", png)}, nil, png, "image/png", ""},
		{"text by its extension", []string{"--file", write("a.txt", text)}, nil, text, "text/plain;charset=utf-8", ""},
		{"no extension", []string{"--file", write("noext", png)}, nil, png, "application/octet-stream", ""},
		{"unknown extension", []string{"--file", write("a.zzzunknown", png)}, nil, png, "application/octet-stream", ""},
		{"--media wins", []string{"--file", write("b.png", png), "--media", "application/x-thing"}, nil, png, "application/x-thing", ""},
		{"--media with the usual space", []string{"--file", write("d.png", png), "--media", "text/plain; charset=utf-8"}, nil, png, "text/plain;charset=utf-8", ""},
		{"empty file", []string{"--file", write("empty.bin", nil)}, nil, []byte{}, "application/octet-stream", ""},
		{"stdin", []string{"--file", "-"}, png, png, "application/octet-stream", ""},
		{"stdin with --media", []string{"--file", "-", "--media", "image/png"}, png, png, "image/png", ""},
		{"every field", []string{"--file", write("c.png", png), "--topic", "u", "--type", "snap", "--id", "x 1", "--retry", "1500ms", "--private"}, nil, png, "image/png",
			"id=x+1&media=image%2Fpng&private=true&retry=1500&topic=t&topic=u&type=snap"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var query string
			h := newFakeHub(t, func(_ int, _ []byte, _ http.ResponseWriter, r *http.Request) bool {
				if ct := r.Header.Get("Content-Type"); ct != "application/octet-stream" {
					t.Errorf("Content-Type %q; want application/octet-stream", ct)
				}
				query = r.URL.RawQuery
				return false
			})
			args := append([]string{"publish", "--url", h.URL, "--topic", "t"}, tt.args...)
			code, stdout, stderr := runMainIn(t, bytes.NewReader(tt.stdin), args...)
			if code != exitOK || stderr != "" {
				t.Fatalf("publish: status %d, stderr %q; want 0 and nothing", code, stderr)
			}
			h.mu.Lock()
			defer h.mu.Unlock()
			if len(h.stored) != 1 {
				t.Fatalf("the hub stored %d events; want 1", len(h.stored))
			}
			ev := h.stored[0]
			if stdout != ev.ID+"\n" {
				t.Errorf("stdout %q; want the ID %q", stdout, ev.ID)
			}
			hd, _, err := sse.ParseBinaryHeader(ev.Data)
			if err != nil {
				t.Fatal(err)
			}
			if hd.MediaType != tt.wantMedia {
				t.Errorf("media type %q; want %q", hd.MediaType, tt.wantMedia)
			}
			se := sse.Event{Data: ev.Data}
			if got, err := se.Bytes(); err != nil || !bytes.Equal(got, tt.want) {
				t.Errorf("payload %q, %v; want %q", got, err, tt.want)
			}
			if tt.wantQuery != "" && query != tt.wantQuery {
				t.Errorf("query %q; want %q", query, tt.wantQuery)
			}
		})
	}
}

// TestPublishFileSendsAgain: a binary event is sent again, the same
// bytes with the same ID, after a 503 and after a lost answer.
func TestPublishFileSendsAgain(t *testing.T) {
	var h *fakeHub
	lose := loseAnswer(t, &h, 1)
	h = newFakeHub(t, func(n int, body []byte, w http.ResponseWriter, r *http.Request) bool {
		if n == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return true
		}
		return lose(n, body, w, r)
	})
	payload := bytes.Repeat([]byte{0, 1, 2, 3, 0xff}, 1000)
	code, stdout, stderr := runMainIn(t, bytes.NewReader(payload), "publish", "--url", h.URL, "--topic", "t", "--file", "-")
	if code != exitOK {
		t.Fatalf("publish: status %d, stderr %q", code, stderr)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.requests != 3 || len(h.stored) != 1 {
		t.Fatalf("%d requests, %d events stored; want 3 and 1", h.requests, len(h.stored))
	}
	if want := h.stored[0].ID + "\n"; stdout != want {
		t.Errorf("stdout %q; want %q", stdout, want)
	}
	for i, b := range h.bodies {
		if b != h.bodies[0] {
			t.Errorf("request %d sent other bytes than the first", i)
		}
	}
	se := sse.Event{Data: h.stored[0].Data}
	if got, err := se.Bytes(); err != nil || !bytes.Equal(got, payload) {
		t.Errorf("payload of %d bytes, %v; want the %d bytes sent", len(got), err, len(payload))
	}
}

// TestPublishFileErrors: mistakes with --file end publish with one line
// on stderr: status 2 for flags, 1 for a file it cannot read.
func TestPublishFileErrors(t *testing.T) {
	h := newFakeHub(t, nil)
	dir := t.TempDir()
	good := filepath.Join(dir, "a.bin")
	if err := os.WriteFile(good, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"publish", "--url", h.URL, "--topic", "t"}
	for _, tt := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"with --data", []string{"--file", good, "--data", "x"}, exitUsage, "--file and --data"},
		{"with empty --data", []string{"--file", good, "--data", ""}, exitUsage, "--file and --data"},
		{"--media alone", []string{"--media", "image/png", "--data", "x"}, exitUsage, "--media needs --file"},
		{"bad --media", []string{"--file", good, "--media", "png"}, exitUsage, `--media "png" is not a media type`},
		{"--media with a space", []string{"--file", good, "--media", `text/plain;a="b c"`}, exitUsage, "--media: sse: media type"},
		{"missing file", []string{"--file", filepath.Join(dir, "none")}, exitFail, "--file: open"},
		{"a directory", []string{"--file", dir}, exitFail, "is a directory"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			checkFails(t, append(base, tt.args...), tt.code, tt.want)
		})
	}
	t.Run("SSEHUB_PUBLISH_DATA", func(t *testing.T) {
		t.Setenv("SSEHUB_PUBLISH_DATA", "d")
		checkFails(t, append(base, "--file", good), exitUsage, "--file and SSEHUB_PUBLISH_DATA")
	})
	t.Run("too large", func(t *testing.T) {
		r := io.LimitReader(zeros{}, maxFileBytes+1)
		code, stdout, stderr := runMainIn(t, r, append(base, "--file", "-")...)
		if code != exitFail || stdout != "" || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, fmt.Sprintf("more than %d bytes", maxFileBytes)) {
			t.Errorf("status %d, stdout %q, stderr %q; want 1, nothing and one line saying it is too large", code, stdout, stderr)
		}
	})
	if n := len(h.datas()); n != 0 {
		t.Errorf("the hub stored %d events; want none", n)
	}
}

// zeros reads as endless zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
