package problem

import (
	"net/http"
	"testing"
)

func TestMessage(t *testing.T) {
	tests := []struct {
		name, ctype, body, want string
	}{
		{"detail", "application/problem+json", `{"title":"Bad Request","detail":"topic is required"}`, "400 Bad Request: topic is required"},
		{"title only", "application/problem+json; charset=utf-8", `{"title":"Bad Request"}`, "400 Bad Request: Bad Request"},
		{"empty problem", "application/problem+json", `{}`, "400 Bad Request"},
		{"bad json", "application/problem+json", `{`, "400 Bad Request: {"},
		{"short text", "text/plain", "nope\n", "400 Bad Request: nope"},
		{"long text", "text/plain", string(make([]byte, 300)), "400 Bad Request"},
		{"html", "text/html", "<html>\n<body>oops</body>\n</html>", "400 Bad Request"},
		{"empty", "", "", "400 Bad Request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := &http.Response{Status: "400 Bad Request", StatusCode: 400, Header: http.Header{"Content-Type": {tt.ctype}}}
			if got := Message(resp, []byte(tt.body)); got != tt.want {
				t.Errorf("Message(%q, %q) = %q; want %q", tt.ctype, tt.body, got, tt.want)
			}
		})
	}
}
