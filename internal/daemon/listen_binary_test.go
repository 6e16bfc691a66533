package daemon

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ssehub/ssehub/sse"
)

// binaryChunk returns the wire form of a binary event of payload, with
// the id field line idLine ("" for none).
func binaryChunk(t *testing.T, idLine string, payload []byte, media string) string {
	t.Helper()
	data, err := sse.BinaryData(payload, media)
	if err != nil {
		t.Fatal(err)
	}
	return idLine + "data: " + strings.ReplaceAll(data, "\n", "\ndata: ") + "\n\n"
}

func TestIDFileName(t *testing.T) {
	long := strings.Repeat("x", 178) + "/" + strings.Repeat("y", 100)
	tests := []struct{ id, want string }{
		{"", ""},
		{"1", "1"},
		{"abc-XYZ_09.png", "abc-XYZ_09.png"},
		{"a/b", "a%2Fb"},
		{"a_b", "a_b"},
		{"../etc/passwd", "%2E.%2Fetc%2Fpasswd"},
		{".", "%2E"},
		{"..", "%2E."},
		{`a\b`, "a%5Cb"},
		{"a b%c", "a%20b%25c"},
		{"=noid-1", "%3Dnoid-1"},
		{"é", "%C3%A9"},
		{"\x00", "%00"},
		{strings.Repeat("z", 200), strings.Repeat("z", 200)},
		{long, strings.Repeat("x", 178) + "-"}, // the escape at 178 is not split; the hash follows
	}
	for _, tt := range tests {
		got := idFileName(tt.id)
		if tt.id == long {
			if !strings.HasPrefix(got, tt.want) || len(got) != 178+1+16 {
				t.Errorf("idFileName(%.20q...) = %q; want %q and 16 hex digits", tt.id, got, tt.want)
			}
			continue
		}
		if got != tt.want {
			t.Errorf("idFileName(%q) = %q; want %q", tt.id, got, tt.want)
		}
	}
	// Distinct IDs, distinct names; none holds a separator or starts with '.'.
	seen := map[string]string{}
	for _, id := range []string{"a/b", "a%2Fb", "a_b", "a.b", ".a", "%2Ea", strings.Repeat("q", 300), strings.Repeat("q", 301)} {
		name := idFileName(id)
		if prev, ok := seen[name]; ok {
			t.Errorf("idFileName(%q) = idFileName(%q) = %q", id, prev, name)
		}
		seen[name] = id
		if strings.ContainsAny(name, `/\`) || strings.HasPrefix(name, ".") || len(name) > maxIDName {
			t.Errorf("idFileName(%q) = %q: a separator, a leading dot, or too long", id, name)
		}
	}
}

// TestListenOut: --out writes each binary event's bytes to a file named
// after its ID, inside the directory whatever the ID, replacing a
// symbolic link rather than following it; text events print as ever;
// --json marks binary events; a malformed one is reported and skipped.
func TestListenOut(t *testing.T) {
	png := []byte("\x89PNG\r\n\x1a\n fake")
	zipped := bytes.Repeat([]byte("compressible "), 100)
	good, _ := sse.BinaryData([]byte("x"), "")
	header, _, _ := strings.Cut(good, "\n")
	srv := newScriptServer(t, hold(
		binaryChunk(t, "id: 1\n", png, "image/png"),
		"id: 2\ndata: just text\n\n",
		binaryChunk(t, "id: ../escape\n", zipped, "text/plain"),
		binaryChunk(t, "id\n", []byte{}, ""), // an empty ID field: no ID
		"id: 5\ndata: "+header+"\ndata: !!!\n\n",
		binaryChunk(t, "id: link\n", []byte("safe"), ""),
	))
	parent := t.TempDir()
	dir := filepath.Join(parent, "out")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(parent, "outside")
	if err := os.WriteFile(outside, []byte("untouched"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runMain(t, "listen", "--json", "--out", dir, "--max-events", "6", srv.URL)
	if code != exitOK {
		t.Fatalf("listen: status %d, stderr %q", code, stderr)
	}
	wantLines := []string{
		`{"type":"open"}`,
		`{"type":"message","binary":true,"media":"image/png","encoding":"identity","size":13,"lastEventId":"1","file":"` + filepath.Join(dir, "1") + `"}`,
		`{"type":"message","data":"just text","lastEventId":"2"}`,
		`{"type":"message","binary":true,"media":"text/plain","encoding":"gzip","size":1300,"lastEventId":"../escape","file":"` + filepath.Join(dir, "%2E.%2Fescape") + `"}`,
		`{"type":"message","binary":true,"media":"application/octet-stream","encoding":"identity","size":0,"lastEventId":"","file":"` + filepath.Join(dir, "=noid-1") + `"}`,
		`{"type":"message","binary":true,"media":"application/octet-stream","encoding":"identity","size":1,"lastEventId":"5","error":"sse: malformed binary event: base64: illegal base64 data at input byte 0"}`,
		`{"type":"message","binary":true,"media":"application/octet-stream","encoding":"identity","size":4,"lastEventId":"link","file":"` + filepath.Join(dir, "link") + `"}`,
	}
	if got := strings.Split(strings.TrimRight(stdout, "\n"), "\n"); strings.Join(got, "\n") != strings.Join(wantLines, "\n") {
		t.Errorf("stdout:\n%s\nwant:\n%s", stdout, strings.Join(wantLines, "\n"))
	}
	for _, line := range wantLines {
		var v map[string]any
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("line %s is not JSON: %v", line, err)
		}
	}
	wantFiles := map[string][]byte{"1": png, "%2E.%2Fescape": zipped, "=noid-1": {}, "link": []byte("safe")}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(wantFiles) {
		t.Errorf("%d entries in --out; want %d (%v)", len(entries), len(wantFiles), entries)
	}
	for name, want := range wantFiles {
		fi, err := os.Lstat(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !fi.Mode().IsRegular() {
			t.Errorf("%s has mode %v; want a regular file", name, fi.Mode())
		}
		if got, _ := os.ReadFile(filepath.Join(dir, name)); !bytes.Equal(got, want) {
			t.Errorf("%s holds %q; want %q", name, got, want)
		}
	}
	if got, _ := os.ReadFile(outside); string(got) != "untouched" {
		t.Errorf("the file the link pointed to holds %q; want it untouched", got)
	}
	if _, err := os.Stat(filepath.Join(parent, "escape")); err == nil {
		t.Error("a file was written outside --out")
	}
}

// TestListenBinaryHuman: without --json, a binary event shows its media
// type, size and file, never its base64.
func TestListenBinaryHuman(t *testing.T) {
	payload := bytes.Repeat([]byte{0xfe}, 300)
	srv := newScriptServer(t, hold(binaryChunk(t, "id: 9\n", payload, "application/x-thing")))
	for _, tt := range []struct {
		name string
		out  bool
		want string
	}{
		{"printed", false, "message    id=9  binary application/x-thing, 300 bytes\n"},
		{"written", true, "message    id=9  binary application/x-thing, 300 bytes -> "},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"listen", "--max-events", "1", srv.URL}
			dir := filepath.Join(t.TempDir(), "new", "dir")
			if tt.out {
				args = append(args, "--out", dir)
			}
			code, stdout, stderr := runMain(t, args...)
			if code != exitOK {
				t.Fatalf("listen: status %d, stderr %q", code, stderr)
			}
			if !strings.Contains(stdout, tt.want) || strings.Contains(stdout, sse.BinaryPrefix) {
				t.Errorf("stdout %q; want it to contain %q and no base64", stdout, tt.want)
			}
			if tt.out {
				if got, err := os.ReadFile(filepath.Join(dir, "9")); err != nil || !bytes.Equal(got, payload) {
					t.Errorf("the file: %d bytes, %v; want the %d bytes", len(got), err, len(payload))
				}
			}
		})
	}
}

// TestListenOutRefused: --out refuses a path that is not a directory.
func TestListenOutRefused(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	checkFails(t, []string{"listen", "--out", file, "http://127.0.0.1:1/events"}, exitUsage, "exists and is not a directory")
	checkFails(t, []string{"listen", "--out", filepath.Join(file, "sub"), "http://127.0.0.1:1/events"}, exitUsage, "--out:")
	checkFails(t, []string{"listen", "--max-event-size", "-1", "http://127.0.0.1:1/events"}, exitUsage, "--max-event-size")
}
