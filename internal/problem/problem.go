// Package problem reads RFC 9457 problem details, the error bodies of
// ssehub's HTTP API (application/problem+json), on the client side: the
// publish command and the load generator report a hub's refusal as one
// line.
package problem

import (
	"encoding/json"
	"mime"
	"net/http"
	"strings"
)

// Message returns a one-line account of an error response whose body,
// already read, is body: the status, then the detail (or, without one, the
// title) of an application/problem+json body, or a short one-line plain
// body as it is.
func Message(resp *http.Response, body []byte) string {
	msg := resp.Status
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	var prob struct{ Title, Detail string }
	if mt == "application/problem+json" && json.Unmarshal(body, &prob) == nil {
		if prob.Detail != "" {
			return msg + ": " + prob.Detail
		}
		if prob.Title != "" {
			return msg + ": " + prob.Title
		}
		return msg
	}
	if s := strings.TrimSpace(string(body)); s != "" && len(s) < 200 && !strings.Contains(s, "\n") {
		return msg + ": " + s
	}
	return msg
}
