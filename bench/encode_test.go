package bench

import (
	"bytes"
	"io"
	"testing"

	ssehub "github.com/ssehub/ssehub/sse"
	gosse "github.com/tmaxmax/go-sse"
)

// The events of the stream, built once, outside every timer, in each
// library's own type: the encode benchmarks measure writing only.
var hubEvents, gosseMsgs = buildMessages()

func buildMessages() ([]ssehub.Event, []*gosse.Message) {
	evs := make([]ssehub.Event, numEvents)
	msgs := make([]*gosse.Message, numEvents)
	for i := range numEvents {
		evs[i] = ssehub.Event{ID: ids[i], Type: eventType, Data: datas[i]}
		m := &gosse.Message{ID: gosse.ID(ids[i]), Type: gosse.Type(eventType)}
		m.AppendData(datas[i])
		msgs[i] = m
	}
	return evs, msgs
}

// appendSSEHub appends the stream to dst with ssehub's sse.AppendEvent.
func appendSSEHub(dst []byte) ([]byte, error) {
	var err error
	for i := range hubEvents {
		if dst, err = ssehub.AppendEvent(dst, &hubEvents[i]); err != nil {
			return dst, err
		}
	}
	return dst, nil
}

// encodeSSEHub writes the stream with ssehub's sse.Encoder: one Write per
// event.
func encodeSSEHub(enc *ssehub.Encoder) error {
	for i := range hubEvents {
		if err := enc.Encode(hubEvents[i]); err != nil {
			return err
		}
	}
	return nil
}

// writeGoSSE writes the stream with go-sse's Message.WriteTo, which makes
// several small Writes per event.
func writeGoSSE(w io.Writer) error {
	for _, m := range gosseMsgs {
		if _, err := m.WriteTo(w); err != nil {
			return err
		}
	}
	return nil
}

// buildWriteGoSSE builds each event's go-sse Message, as a server does when
// it publishes, and writes it with WriteTo. AppendData is where go-sse
// splits data into lines, work that ssehub does inside AppendEvent.
func buildWriteGoSSE(w io.Writer) error {
	for i := range numEvents {
		m := gosse.Message{ID: gosse.ID(ids[i]), Type: gosse.Type(eventType)}
		m.AppendData(datas[i])
		if _, err := m.WriteTo(w); err != nil {
			return err
		}
	}
	return nil
}

func TestEncode(t *testing.T) {
	tests := []struct {
		name  string
		write func() ([]byte, error)
	}{
		{"ssehub-AppendEvent", func() ([]byte, error) { return appendSSEHub(nil) }},
		{"ssehub-Encoder", func() ([]byte, error) {
			var buf bytes.Buffer
			err := encodeSSEHub(ssehub.NewEncoder(&buf))
			return buf.Bytes(), err
		}},
		{"go-sse-WriteTo", func() ([]byte, error) {
			var buf bytes.Buffer
			err := writeGoSSE(&buf)
			return buf.Bytes(), err
		}},
		{"go-sse-build-WriteTo", func() ([]byte, error) {
			var buf bytes.Buffer
			err := buildWriteGoSSE(&buf)
			return buf.Bytes(), err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.write()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, stream) {
				i := 0
				for i < min(len(got), len(stream)) && got[i] == stream[i] {
					i++
				}
				t.Errorf("output differs from the stream at byte %d: got %q; want %q",
					i, got[i:min(i+40, len(got))], stream[i:min(i+40, len(stream))])
			}
		})
	}
}

// BenchmarkEncode writes the whole stream per op, from events built before
// the timer starts, except for impl=go-sse-build, which also builds each
// go-sse Message inside the timer. With sink=buffer the output goes to an
// in-memory buffer that is reused from op to op (grown once before the
// timer starts); with sink=discard it goes to io.Discard through each
// library's io.Writer path. r3labs/sse/v2 has no encoder to
// compare: its wire format is written by fmt.Fprintf inside
// Server.ServeHTTP.
func BenchmarkEncode(b *testing.B) {
	b.Run("sink=buffer/impl=ssehub", func(b *testing.B) {
		buf, _ := appendSSEHub(nil)
		benchStream(b, func() {
			var err error
			buf, err = appendSSEHub(buf[:0])
			if err != nil || len(buf) != len(stream) {
				b.Fatalf("AppendEvent wrote %d bytes, %v; want %d, nil", len(buf), err, len(stream))
			}
		})
	})
	b.Run("sink=buffer/impl=go-sse", func(b *testing.B) {
		var buf bytes.Buffer
		writeGoSSE(&buf)
		benchStream(b, func() {
			buf.Reset()
			if err := writeGoSSE(&buf); err != nil || buf.Len() != len(stream) {
				b.Fatalf("WriteTo wrote %d bytes, %v; want %d, nil", buf.Len(), err, len(stream))
			}
		})
	})
	b.Run("sink=buffer/impl=go-sse-build", func(b *testing.B) {
		var buf bytes.Buffer
		buildWriteGoSSE(&buf)
		benchStream(b, func() {
			buf.Reset()
			if err := buildWriteGoSSE(&buf); err != nil || buf.Len() != len(stream) {
				b.Fatalf("WriteTo wrote %d bytes, %v; want %d, nil", buf.Len(), err, len(stream))
			}
		})
	})
	b.Run("sink=discard/impl=ssehub", func(b *testing.B) {
		enc := ssehub.NewEncoder(io.Discard)
		benchStream(b, func() {
			if err := encodeSSEHub(enc); err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run("sink=discard/impl=go-sse", func(b *testing.B) {
		benchStream(b, func() {
			if err := writeGoSSE(io.Discard); err != nil {
				b.Fatal(err)
			}
		})
	})
}
