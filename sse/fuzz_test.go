package sse

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"
	"unicode/utf8"
)

// fuzzMax is the small maximum event size FuzzDecode uses to check the
// Decoder's limits.
const fuzzMax = 64

// FuzzDecode checks that the Decoder never panics; that it agrees with
// itself whether the input comes in one read, in two split at an arbitrary
// point, or a byte at a time; that it agrees with the reference decoder of
// spec_test.go; and that with a small maximum event size neither the events
// nor the Decoder's buffers outgrow it.
func FuzzDecode(f *testing.F) {
	for _, c := range decodeCases {
		f.Add([]byte(c.in), uint16(len(c.in)/2))
	}
	f.Add([]byte("data: a\r"), uint16(8))
	f.Add([]byte("\xEF\xBB\xBFid: \xFF\xFF\xFF\n\ndata: x\n\n"), uint16(1))
	f.Fuzz(func(t *testing.T, in []byte, split uint16) {
		k := int(split) % (len(in) + 1)
		for _, max := range []int{0, fuzzMax} {
			c := &decodeCase{max: max}
			whole, msg := decodeAll(bytes.NewReader(in), c)
			if msg != "" {
				t.Fatalf("max %d: %s", max, msg)
			}
			ways := []struct {
				name string
				r    io.Reader
			}{
				{fmt.Sprintf("split at %d", k), &chunkReader{chunks: []string{string(in[:k]), string(in[k:])}}},
				{"one byte per read", iotest.OneByteReader(bytes.NewReader(in))},
			}
			for _, w := range ways {
				got, msg := decodeAll(w.r, c)
				if msg != "" {
					t.Fatalf("max %d, %s: %s", max, w.name, msg)
				}
				if !reflect.DeepEqual(got, whole) {
					t.Fatalf("max %d: decoding %.200q %s:\ngot  %.500v\nwhole %.500v", max, in, w.name, got, whole)
				}
			}

			ref := specDecode(in, "")
			if max == 0 {
				if !reflect.DeepEqual(whole, ref) {
					t.Fatalf("decoding %.200q:\ngot  %.500v\nspec %.500v", in, whole, ref)
				}
				continue
			}
			// With a small maximum, the Decoder agrees with the reference
			// until it gives up, and only gives up on a large event.
			switch whole.err {
			case io.EOF:
				if !reflect.DeepEqual(whole, ref) {
					t.Fatalf("max %d: decoding %.200q:\ngot  %.500v\nspec %.500v", max, in, whole, ref)
				}
			case ErrEventTooLarge:
				if n := len(whole.events); n > len(ref.events) || !slices.Equal(whole.events, ref.events[:n]) {
					t.Fatalf("max %d: decoding %.200q:\ngot  %.500v\nspec %.500v", max, in, whole, ref)
				}
			default:
				t.Fatalf("max %d: decoding %.200q: error %v; want io.EOF or ErrEventTooLarge", max, in, whole.err)
			}
			checkLimits(t, in, max)
		}
	})
}

// checkLimits decodes in with the maximum event size max and checks, after
// each Decode, that no event and no buffer of the Decoder outgrows it.
func checkLimits(t *testing.T, in []byte, max int) {
	t.Helper()
	d := NewDecoder(iotest.HalfReader(bytes.NewReader(in)))
	d.SetMaxEventSize(max)
	for {
		var ev Event
		err := d.Decode(&ev)
		if n := len(ev.Data) + len(ev.Type) + len(ev.ID); n > max {
			t.Fatalf("decoding %.200q: event %+v of %d bytes; want at most %d", in, ev, n, max)
		}
		if !utf8.ValidString(ev.Data) || !utf8.ValidString(ev.Type) || !utf8.ValidString(ev.ID) {
			t.Fatalf("decoding %.200q: event %+v is not valid UTF-8", in, ev)
		}
		for _, b := range []struct {
			name      string
			cap, want int
		}{
			{"read buffer", cap(d.buf), max + lineSlack},
			{"data buffer", cap(d.data), max + 1},
			{"type buffer", cap(d.typ), max},
			{"id buffer", cap(d.id), max},
			{"last event ID", len(d.lastID), max},
		} {
			if b.cap > b.want {
				t.Fatalf("decoding %.200q: %s of %d bytes; want at most %d", in, b.name, b.cap, b.want)
			}
		}
		if err != nil {
			return
		}
	}
}

// FuzzRoundTrip checks that every event a browser would dispatch, encoded
// and then decoded, comes back the same, but for the line breaks in its
// data, which arrive as LF, and its comment, which is dropped.
func FuzzRoundTrip(f *testing.F) {
	f.Add("1", "update", `{"a":1}`, "", int64(0))
	f.Add("", "", "line one\r\nline two\rthree\n", "note\nmore", int64(1500))
	f.Add(" spaced", " type", "  data", "", int64(1))
	f.Add("é", "ü", "€\x00😀", "\xff", int64(9223372036854))
	f.Add("", "ping", "", ":", int64(-3))
	f.Fuzz(func(t *testing.T, id, typ, data, comment string, retryMS int64) {
		if retryMS < 0 {
			retryMS = -(retryMS + 1) // every non-negative value, once
		}
		ev := Event{
			ID:      id,
			Type:    typ,
			Data:    data,
			Comment: comment,
			Retry:   time.Duration(retryMS%(maxRetryMS+1)) * time.Millisecond,
		}
		wire, err := AppendEvent(nil, &ev)
		if !safeField(id) || !safeField(typ) {
			if !errors.Is(err, ErrInvalidID) && !errors.Is(err, ErrInvalidType) || len(wire) != 0 {
				t.Fatalf("AppendEvent(%+v) = %q, %v; want nothing and an invalid field error", ev, wire, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("AppendEvent(%+v) = %v; want nil", ev, err)
		}
		// Each field on its own: "\xcb" and "\xaf" are invalid, but
		// together they are a valid character.
		if !ev.dispatches() || !utf8.ValidString(id) || !utf8.ValidString(typ) || !utf8.ValidString(data) {
			return // not an event a browser would see as it was sent
		}

		d := NewDecoder(bytes.NewReader(wire))
		var got Event
		if err := d.Decode(&got); err != nil {
			t.Fatalf("Decode(%q) = %v; want an event", wire, err)
		}
		want := ev
		want.Comment = ""
		want.Data = strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(data)
		if got != want {
			t.Fatalf("Decode(AppendEvent(%+v)) = %+v; want %+v (wire %q)", ev, got, want, wire)
		}
		if err := d.Decode(&got); err != io.EOF {
			t.Fatalf("Decode(%q) after the event = %v, %+v; want io.EOF", wire, err, got)
		}
	})
}
