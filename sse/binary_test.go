package sse

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestBinaryRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	tests := []struct {
		name    string
		payload []byte
		media   string
		enc     string
	}{
		{"empty", nil, "", EncodingIdentity},
		{"one byte", []byte{0}, "", EncodingIdentity},
		{"random", random(1 << 20), "application/octet-stream", EncodingIdentity},
		{"compressible", bytes.Repeat([]byte(`{"symbol":"ACME","usd":42.17}`), 100), "application/json", EncodingGzip},
		{"media type with a parameter", []byte("hello hello hello hello hello hello"), "text/plain;charset=utf-8", EncodingGzip},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := BinaryData(tt.payload, tt.media)
			if err != nil {
				t.Fatal(err)
			}
			h, _, err := ParseBinaryHeader(data)
			if err != nil {
				t.Fatal(err)
			}
			wantMedia := tt.media
			if wantMedia == "" {
				wantMedia = DefaultBinaryMediaType
			}
			if h.MediaType != wantMedia || h.Encoding != tt.enc || h.Size != len(tt.payload) {
				t.Errorf("header %+v; want %s %s %d", h, wantMedia, tt.enc, len(tt.payload))
			}
			if strings.Count(data, "\n") != 1 || strings.ContainsAny(data, "\r\x00") {
				t.Errorf("data has %d line ends; want 1 and no CR or NUL", strings.Count(data, "\n"))
			}
			// Through the wire and back.
			var buf bytes.Buffer
			if err := NewEncoder(&buf).Encode(Event{Data: data}); err != nil {
				t.Fatal(err)
			}
			var ev Event
			dec := NewDecoder(&buf)
			dec.SetMaxEventSize(2 << 20) // 1 MiB of random bytes is 1.4 MB of base64
			if err := dec.Decode(&ev); err != nil {
				t.Fatal(err)
			}
			if !ev.IsBinary() {
				t.Fatal("IsBinary() = false")
			}
			got, err := ev.Bytes()
			if err != nil || !bytes.Equal(got, tt.payload) {
				t.Errorf("Bytes() = %d bytes, %v; want the %d bytes", len(got), err, len(tt.payload))
			}
		})
	}
}

func TestBinaryMalformed(t *testing.T) {
	good, _ := BinaryData([]byte("hello hello hello hello hello hello"), "")
	line, b64, _ := strings.Cut(good, "\n")
	for _, tt := range []struct {
		name, data string
		want       error
	}{
		{"text", "hello", ErrNotBinary},
		{"no second line", line, ErrMalformedBinary},
		{"two fields", BinaryPrefix + "a/b gzip\n" + b64, ErrMalformedBinary},
		{"bad media type", BinaryPrefix + "ab gzip 35\n" + b64, ErrMalformedBinary},
		{"bad encoding", BinaryPrefix + "a/b br 35\n" + b64, ErrMalformedBinary},
		{"bad size", BinaryPrefix + "a/b gzip -1\n" + b64, ErrMalformedBinary},
		{"size with a sign", BinaryPrefix + "a/b gzip +35\n" + b64, ErrMalformedBinary},
		{"wrong size", strings.Replace(line, " 35", " 34", 1) + "\n" + b64, ErrMalformedBinary},
		{"bad base64", line + "\n" + b64[:len(b64)-2] + "!", ErrMalformedBinary},
		{"bad gzip", line + "\nAAAA", ErrMalformedBinary},
		{"identity, wrong size", BinaryPrefix + "a/b identity 4\nAAA=", ErrMalformedBinary},
		{"too large", BinaryPrefix + "a/b identity 67108865\nAAA=", ErrMalformedBinary},
	} {
		ev := Event{Data: tt.data}
		if _, err := ev.Bytes(); !errors.Is(err, tt.want) {
			t.Errorf("%s: Bytes() = %v; want %v", tt.name, err, tt.want)
		}
	}
	for _, m := range []string{"a b", "a/b\n", "nonsense"} {
		if _, err := BinaryData([]byte("x"), m); err == nil {
			t.Errorf("BinaryData(media %q) = nil error", m)
		}
	}
}
