package sse

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// encodeCases are written to testdata/encode_<name>.golden. Each also says
// what a decoder makes of the wire text: the event it dispatches, if any.
var encodeCases = []struct {
	name string
	ev   Event
	want *Event // the decoded event; nil when nothing is dispatched
}{
	{
		name: "simple",
		ev:   Event{Data: "hello"},
		want: &Event{Data: "hello"},
	},
	{
		name: "multiline_lf",
		ev:   Event{Data: "a\nb\nc"},
		want: &Event{Data: "a\nb\nc"},
	},
	{
		name: "multiline_cr",
		ev:   Event{Data: "a\rb\rc"},
		want: &Event{Data: "a\nb\nc"},
	},
	{
		name: "multiline_crlf",
		ev:   Event{Data: "a\r\nb\r\nc"},
		want: &Event{Data: "a\nb\nc"},
	},
	{
		name: "multiline_mixed",
		ev:   Event{Data: "a\r\n\r\nb\n\rc\r"},
		want: &Event{Data: "a\n\nb\n\nc\n"},
	},
	{
		name: "trailing_newline",
		ev:   Event{Data: "a\n"},
		want: &Event{Data: "a\n"},
	},
	{
		name: "leading_space",
		ev:   Event{Data: " a\n  b"},
		want: &Event{Data: " a\n  b"},
	},
	{
		name: "empty_data_with_type",
		ev:   Event{Type: "ping"},
		want: &Event{Type: "ping"},
	},
	{
		name: "all_fields",
		ev:   Event{ID: "42", Type: "update", Data: `{"n":1}`, Retry: 1500 * time.Millisecond, Comment: "note"},
		want: &Event{ID: "42", Type: "update", Data: `{"n":1}`, Retry: 1500 * time.Millisecond},
	},
	{
		name: "leading_space_id_type",
		ev:   Event{ID: " 7", Type: " t", Data: "x"},
		want: &Event{ID: " 7", Type: " t", Data: "x"},
	},
	{
		name: "comment_only",
		ev:   Event{Comment: "keep-alive"},
	},
	{
		name: "comment_multiline",
		ev:   Event{Comment: "a\r\nb\n\nc"},
	},
	{
		name: "retry_only",
		ev:   Event{Retry: 3 * time.Second},
	},
	{
		name: "id_only",
		ev:   Event{ID: "7"},
	},
	{
		name: "empty",
		ev:   Event{},
	},
	{
		name: "unicode",
		ev:   Event{ID: "é", Type: "ü", Data: "€ 😀\x00"},
		want: &Event{ID: "é", Type: "ü", Data: "€ 😀\x00"},
	},
}

func TestEncodeGolden(t *testing.T) {
	for _, c := range encodeCases {
		t.Run(c.name, func(t *testing.T) {
			got, err := AppendEvent(nil, &c.ev)
			if err != nil {
				t.Fatalf("AppendEvent(%+v) = %v; want nil", c.ev, err)
			}
			var buf bytes.Buffer
			if err := NewEncoder(&buf).Encode(c.ev); err != nil {
				t.Fatalf("Encode(%+v) = %v; want nil", c.ev, err)
			}
			if !bytes.Equal(buf.Bytes(), got) {
				t.Errorf("Encode(%+v) wrote %q; AppendEvent gave %q", c.ev, buf.Bytes(), got)
			}

			golden := filepath.Join("testdata", "encode_"+c.name+".golden")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("AppendEvent(%+v) = %q; want %q (from %s)", c.ev, got, want, golden)
			}

			// What a browser makes of the wire text.
			d := NewDecoder(bytes.NewReader(got))
			var ev Event
			err = d.Decode(&ev)
			switch {
			case c.want == nil && err != io.EOF:
				t.Errorf("decoding %q: Decode = %v, %+v; want io.EOF", got, err, ev)
			case c.want != nil && err != nil:
				t.Errorf("decoding %q: Decode = %v; want %+v", got, err, *c.want)
			case c.want != nil && ev != *c.want:
				t.Errorf("decoding %q: Decode = %+v; want %+v", got, ev, *c.want)
			}
		})
	}
}

// writeRecorder records each Write.
type writeRecorder struct {
	writes [][]byte
	err    error
}

func (w *writeRecorder) Write(p []byte) (int, error) {
	w.writes = append(w.writes, bytes.Clone(p))
	if w.err != nil {
		return 0, w.err
	}
	return len(p), nil
}

func TestEncodeInvalid(t *testing.T) {
	tests := []struct {
		name string
		ev   Event
		err  error
	}{
		{"id cr", Event{ID: "1\r", Data: "x"}, ErrInvalidID},
		{"id lf", Event{ID: "1\ndata: injected", Data: "x"}, ErrInvalidID},
		{"id crlf", Event{ID: "\r\n"}, ErrInvalidID},
		{"id nul", Event{ID: "1\x002", Data: "x"}, ErrInvalidID},
		{"type cr", Event{Type: "a\rb", Data: "x"}, ErrInvalidType},
		{"type lf", Event{Type: "a\n\ndata: injected", Data: "x"}, ErrInvalidType},
		{"type nul", Event{Type: "\x00", Data: "x"}, ErrInvalidType},
		{"id checked first", Event{ID: "\n", Type: "\n"}, ErrInvalidID},
		{"negative retry", Event{Retry: -time.Millisecond, Data: "x"}, ErrInvalidRetry},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := []byte("previous event\n\n")
			got, err := AppendEvent(dst, &tt.ev)
			if !errors.Is(err, tt.err) {
				t.Errorf("AppendEvent(%+v) error = %v; want %v", tt.ev, err, tt.err)
			}
			if string(got) != "previous event\n\n" {
				t.Errorf("AppendEvent(%+v) = %q; want dst unchanged", tt.ev, got)
			}

			var w writeRecorder
			if err := NewEncoder(&w).Encode(tt.ev); !errors.Is(err, tt.err) {
				t.Errorf("Encode(%+v) = %v; want %v", tt.ev, err, tt.err)
			}
			if len(w.writes) != 0 {
				t.Errorf("Encode(%+v) wrote %q; want nothing", tt.ev, w.writes)
			}
		})
	}
}

func TestEncoderWrites(t *testing.T) {
	var w writeRecorder
	enc := NewEncoder(&w)
	events := []Event{
		{Data: strings.Repeat("long line\n", 200)}, // larger than the initial buffer
		{}, // nothing to write
		{ID: "2", Data: "b"},
	}
	for _, ev := range events {
		if err := enc.Encode(ev); err != nil {
			t.Fatalf("Encode(%+v) = %v; want nil", ev, err)
		}
	}
	if len(w.writes) != 2 {
		t.Fatalf("Encode made %d writes for %d non-empty events; want one each", len(w.writes), 2)
	}
	if got, want := string(w.writes[1]), "id: 2\ndata: b\n\n"; got != want {
		t.Errorf("second write = %q; want %q", got, want)
	}

	errDown := errors.New("connection closed")
	w = writeRecorder{err: errDown}
	if err := NewEncoder(&w).Encode(Event{Data: "x"}); err != errDown {
		t.Errorf("Encode to a failing writer = %v; want %v", err, errDown)
	}
}

func TestEncodeAllocs(t *testing.T) {
	ev := Event{ID: "12345", Type: "update", Data: "line one\nline two\r\nline three", Retry: time.Second, Comment: "c"}
	enc := NewEncoder(io.Discard)
	if err := enc.Encode(ev); err != nil { // grow the buffer
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { _ = enc.Encode(ev) }); n != 0 {
		t.Errorf("Encode makes %v allocations; want 0", n)
	}
	buf, _ := AppendEvent(nil, &ev)
	if n := testing.AllocsPerRun(100, func() { buf, _ = AppendEvent(buf[:0], &ev) }); n != 0 {
		t.Errorf("AppendEvent on a reused buffer makes %v allocations; want 0", n)
	}
}
