package bench

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// The stream every benchmark reads or writes: numEvents events, event i
// (0-based) being
//
//	id: <i>
//	event: update
//	data: {"seq":<i>,"ts":1732550400000,"user":"u<i%97>","payload":"xxx…"}
//
// followed by a blank line, where the JSON is padded with 'x' to exactly
// jsonLen bytes. sse/benchstream_test.go in the main module builds the same
// bytes.
const (
	numEvents = 10000
	jsonLen   = 100
	eventType = "update"

	// streamLen and streamSHA256 pin the stream's bytes; the stream of
	// sse/benchstream_test.go has the same length and digest.
	streamLen    = 1308890
	streamSHA256 = "9052798bf13ab48f89093c63589ce98431443de8a854f3e5a94842a5ceed8ef0"
)

// The stream's parts. Package-level initialisation, not init, so that the
// variables that depend on these are built after them.
var (
	ids, datas = buildEvents() // ids[i] and datas[i] are event i's ID and JSON
	stream     = buildStream() // the whole wire stream
)

func buildEvents() (ids, datas []string) {
	ids = make([]string, numEvents)
	datas = make([]string, numEvents)
	for i := range numEvents {
		ids[i] = strconv.Itoa(i)
		datas[i] = eventJSON(i)
	}
	return ids, datas
}

func buildStream() []byte {
	var b []byte
	for i := range numEvents {
		b = append(b, "id: "...)
		b = append(b, ids[i]...)
		b = append(b, "\nevent: "+eventType+"\ndata: "...)
		b = append(b, datas[i]...)
		b = append(b, "\n\n"...)
	}
	return b
}

// eventJSON returns event i's JSON, padded to exactly jsonLen bytes.
func eventJSON(i int) string {
	var b []byte
	b = append(b, `{"seq":`...)
	b = strconv.AppendInt(b, int64(i), 10)
	b = append(b, `,"ts":1732550400000,"user":"u`...)
	b = strconv.AppendInt(b, int64(i%97), 10)
	b = append(b, `","payload":"`...)
	pad := jsonLen - len(b) - len(`"}`)
	b = append(b, bytes.Repeat([]byte{'x'}, pad)...)
	b = append(b, `"}`...)
	return string(b)
}

func TestStream(t *testing.T) {
	for i, d := range datas {
		if len(d) != jsonLen {
			t.Fatalf("len(eventJSON(%d)) = %d; want %d", i, len(d), jsonLen)
		}
	}
	tests := []struct {
		i    int
		want string
	}{
		{0, "id: 0\nevent: update\ndata: {\"seq\":0,\"ts\":1732550400000,\"user\":\"u0\",\"payload\":\"" +
			strings.Repeat("x", 47) + "\"}\n\n"},
		{96, "id: 96\nevent: update\ndata: {\"seq\":96,\"ts\":1732550400000,\"user\":\"u96\",\"payload\":\"" +
			strings.Repeat("x", 45) + "\"}\n\n"},
		{9999, "id: 9999\nevent: update\ndata: {\"seq\":9999,\"ts\":1732550400000,\"user\":\"u8\",\"payload\":\"" +
			strings.Repeat("x", 44) + "\"}\n\n"},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.i), func(t *testing.T) {
			if !bytes.Contains(stream, []byte(tt.want)) {
				t.Errorf("stream lacks event %d = %q", tt.i, tt.want)
			}
		})
	}
	if !bytes.HasPrefix(stream, []byte("id: 0\n")) || !bytes.HasSuffix(stream, []byte("\"}\n\n")) {
		t.Errorf("stream = %q…%q; want it to start with event 0 and end with a blank line",
			stream[:20], stream[len(stream)-20:])
	}
	if sum := fmt.Sprintf("%x", sha256.Sum256(stream)); len(stream) != streamLen || sum != streamSHA256 {
		t.Errorf("stream is %d bytes with SHA-256 %s; want %d bytes with %s", len(stream), sum, streamLen, streamSHA256)
	}
	if got := bytes.Count(stream, []byte("\n\n")); got != numEvents {
		t.Errorf("blank lines in stream = %d; want %d", got, numEvents)
	}
}
