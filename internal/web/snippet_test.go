package web_test

import (
	"os"
	"strings"
	"testing"
)

// TestBinarySnippetInDocs: the browser snippet docs/BINARY.md shows is
// binary.js, byte for byte, the file the console serves and the Chromium
// tests run (TestConsoleBinary here, TestBinaryRoundTrip in
// internal/daemon).
func TestBinarySnippetInDocs(t *testing.T) {
	doc, err := os.ReadFile("../../docs/BINARY.md")
	if err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile("static/binary.js")
	if err != nil {
		t.Fatal(err)
	}
	const begin, end = "<!-- snippet: internal/web/static/binary.js -->\n```js\n", "```\n<!-- end snippet -->"
	_, rest, ok := strings.Cut(string(doc), begin)
	if !ok {
		t.Fatalf("docs/BINARY.md has no %q", begin)
	}
	snippet, _, ok := strings.Cut(rest, end)
	if !ok {
		t.Fatalf("docs/BINARY.md has no %q after the snippet", end)
	}
	if snippet != string(file) {
		t.Errorf("the snippet in docs/BINARY.md:\n%s\nis not static/binary.js:\n%s", snippet, file)
	}
	if n := strings.Count(snippet, "\n"); n > 15 {
		t.Errorf("the snippet has %d lines; want about ten", n)
	}
	for _, want := range []string{"atob(", `DecompressionStream("gzip")`, `startsWith("ssehub-binary ")`} {
		if !strings.Contains(snippet, want) {
			t.Errorf("the snippet does not use %s", want)
		}
	}
}
