package hub

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// A problem is an RFC 9457 problem details object. Its type is always
// "about:blank": the status says what kind of problem it is, the title is
// the status's standard text, and the detail says what exactly went wrong.
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	// Line is the 1-based line of an NDJSON publish body that was refused;
	// an extension member, absent otherwise.
	Line int `json:"line,omitempty"`
}

// writeProblem answers with status and an application/problem+json body
// carrying detail. p, when not nil, supplies extension members.
func writeProblem(w http.ResponseWriter, status int, detail string, p *problem) {
	if p == nil {
		p = new(problem)
	}
	p.Type, p.Title, p.Status, p.Detail = "about:blank", http.StatusText(status), status, detail
	body, err := json.Marshal(p)
	if err != nil { // cannot happen: strings and ints only
		body = []byte(`{"type":"about:blank","status":` + strconv.Itoa(status) + `}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Del("Content-Length")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}
