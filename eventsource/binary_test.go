package eventsource_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ssehub/ssehub/eventsource"
	"github.com/ssehub/ssehub/sse"
)

// binaryStream returns a stream of one event for each data, with IDs 1, 2, ...
func binaryStream(datas ...string) string {
	var b bytes.Buffer
	enc := sse.NewEncoder(&b)
	for i, d := range datas {
		enc.Encode(sse.Event{ID: fmt.Sprint(i + 1), Data: d})
	}
	return b.String()
}

func TestEventBytes(t *testing.T) {
	payload := bytes.Repeat([]byte("\x00\xffbinary "), 100) // compressible: gzip
	zipped, err := sse.BinaryData(payload, "application/x-test")
	if err != nil {
		t.Fatal(err)
	}
	plain, err := sse.BinaryData([]byte{0, 1, 2}, "")
	if err != nil {
		t.Fatal(err)
	}
	header, _, _ := strings.Cut(zipped, "\n")
	tests := []struct {
		name    string
		data    string
		binary  bool
		want    []byte
		wantErr error
	}{
		{"gzip", zipped, true, payload, nil},
		{"identity", plain, true, []byte{0, 1, 2}, nil},
		{"text", "hello", false, nil, sse.ErrNotBinary},
		{"text that mentions the prefix later", "x ssehub-binary a/b identity 0\n", false, nil, sse.ErrNotBinary},
		{"bad base64", header + "\n!!!!", true, nil, sse.ErrMalformedBinary},
		{"size too large", strings.Replace(zipped, fmt.Sprintf(" %d\n", len(payload)), fmt.Sprintf(" %d\n", len(payload)+1), 1), true, nil, sse.ErrMalformedBinary},
		{"no second line", "ssehub-binary a/b identity 0", true, nil, sse.ErrMalformedBinary},
	}
	var datas []string
	for _, tt := range tests {
		datas = append(datas, tt.data)
	}
	srv := newStreamServer(binaryStream(datas...))
	t.Cleanup(srv.Close)
	es, err := eventsource.New(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	var got []eventsource.Event
	for ev := range es.Events(ctx) {
		if ev.Type == "open" {
			if ev.IsBinary() {
				t.Error("the open event: IsBinary() = true")
			}
			if _, err := ev.Bytes(); !errors.Is(err, sse.ErrNotBinary) {
				t.Errorf("the open event: Bytes() error %v; want sse.ErrNotBinary", err)
			}
		}
		if ev.IsMessage() {
			got = append(got, ev)
			if len(got) == len(tests) {
				break
			}
		}
	}
	if len(got) != len(tests) {
		t.Fatalf("got %d events; want %d (stream error %v)", len(got), len(tests), es.Err())
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := got[i]
			if ev.IsBinary() != tt.binary {
				t.Errorf("IsBinary() = %v; want %v", ev.IsBinary(), tt.binary)
			}
			b, err := ev.Bytes()
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Bytes() error %v; want %v", err, tt.wantErr)
			}
			if !bytes.Equal(b, tt.want) {
				t.Errorf("Bytes() = %q; want %q", b, tt.want)
			}
		})
	}
}
