package sse

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"strconv"
	"strings"
	"sync"
)

// Binary events.
//
// The SSE format carries UTF-8 text, so a binary payload travels as text:
// the data of a binary event is two lines,
//
//	ssehub-binary <media type> <encoding> <size>
//	<base64>
//
// where the first line begins with BinaryPrefix, <media type> is the
// payload's (application/octet-stream when unknown), <encoding> is gzip
// when the payload was gzip-compressed before base64 (only when that made
// it smaller) or identity, <size> is the payload's length in bytes,
// decimal, and <base64> is the standard base64 encoding (RFC 4648, with
// padding) of the payload, compressed or not. A browser tells the two
// kinds apart with ev.data.startsWith("ssehub-binary "), with no
// library; a publisher's text data may not begin with BinaryPrefix, so
// the test never guesses.

// BinaryPrefix begins the data of every binary event, and of no text
// event.
const BinaryPrefix = "ssehub-binary "

// The encodings of a binary event's payload.
const (
	EncodingGzip     = "gzip"
	EncodingIdentity = "identity"
)

// DefaultBinaryMediaType is the media type of a payload whose type is not
// known.
const DefaultBinaryMediaType = "application/octet-stream"

// MaxBinaryBytes is the largest payload Event.Bytes decodes, whatever an
// event's size says, so that a small compressed event cannot make its
// reader allocate without bound.
const MaxBinaryBytes = 64 << 20

// Errors of binary events.
var (
	// ErrNotBinary is returned for a text event, whose data does not
	// begin with BinaryPrefix.
	ErrNotBinary = errors.New("sse: not a binary event")
	// ErrMalformedBinary is wrapped by the errors for a binary event
	// that cannot be decoded: a bad first line, bad base64, bad gzip, or
	// a payload whose length is not its size.
	ErrMalformedBinary = errors.New("sse: malformed binary event")
)

// BinaryData returns the data of a binary event carrying payload, of
// media type mediaType (DefaultBinaryMediaType if empty). The payload is
// gzip-compressed first when that makes it smaller. It fails only for a
// media type that is not one: not type/subtype with optional parameters
// (as mime.ParseMediaType reads it), or with a space or a line break.
// A Decoder holds events up to its SetMaxEventSize: base64 makes a
// payload a third larger.
func BinaryData(payload []byte, mediaType string) (string, error) {
	if mediaType == "" {
		mediaType = DefaultBinaryMediaType
	}
	if err := checkMediaType(mediaType); err != nil {
		return "", err
	}
	body, enc := payload, EncodingIdentity
	if z := gzipped(payload); len(z) < len(payload) {
		body, enc = z, EncodingGzip
	}
	var b strings.Builder
	b.Grow(len(BinaryPrefix) + len(mediaType) + 32 + base64.StdEncoding.EncodedLen(len(body)))
	b.WriteString(BinaryPrefix)
	b.WriteString(mediaType)
	b.WriteByte(' ')
	b.WriteString(enc)
	b.WriteByte(' ')
	b.WriteString(strconv.Itoa(len(payload)))
	b.WriteByte('\n')
	w := base64.NewEncoder(base64.StdEncoding, &b)
	w.Write(body) // a strings.Builder does not fail
	w.Close()
	return b.String(), nil
}

// checkMediaType checks the media type of a binary event.
func checkMediaType(t string) error {
	if strings.ContainsAny(t, " \t\r\n") {
		return fmt.Errorf("sse: media type %q: it may not hold spaces or line breaks", t)
	}
	mt, _, err := mime.ParseMediaType(t)
	if err != nil {
		return fmt.Errorf("sse: media type %q: %w", t, err)
	}
	if typ, sub, ok := strings.Cut(mt, "/"); !ok || typ == "" || sub == "" {
		return fmt.Errorf("sse: media type %q: not type/subtype", t)
	}
	return nil
}

// gzipWriters holds *gzip.Writer at BestCompression: a new one
// allocates about a megabyte of tables, and a publish of binary events
// would otherwise pay for it on every event.
var gzipWriters = sync.Pool{New: func() any {
	zw, _ := gzip.NewWriterLevel(io.Discard, gzip.BestCompression) // a valid level: cannot fail
	return zw
}}

// gzipped returns p compressed with gzip, with an empty header (no name,
// no time), so that the same payload always gives the same bytes.
func gzipped(p []byte) []byte {
	var buf bytes.Buffer
	zw := gzipWriters.Get().(*gzip.Writer)
	zw.Reset(&buf)
	zw.Write(p) // a bytes.Buffer does not fail
	zw.Close()
	zw.Reset(io.Discard) // let buf go
	gzipWriters.Put(zw)
	return buf.Bytes()
}

// A BinaryHeader is the first line of a binary event's data.
type BinaryHeader struct {
	MediaType string // the payload's media type
	Encoding  string // EncodingGzip or EncodingIdentity
	Size      int    // the payload's length in bytes
}

// ParseBinaryHeader parses the first line of data, the data of a binary
// event, and returns it with the base64 that follows. It returns
// ErrNotBinary for text data, and an error wrapping ErrMalformedBinary
// for a first line it cannot read.
func ParseBinaryHeader(data string) (BinaryHeader, string, error) {
	if !strings.HasPrefix(data, BinaryPrefix) {
		return BinaryHeader{}, "", ErrNotBinary
	}
	line, rest, ok := strings.Cut(data[len(BinaryPrefix):], "\n")
	if !ok {
		return BinaryHeader{}, "", fmt.Errorf("%w: no line after the first", ErrMalformedBinary)
	}
	f := strings.Split(line, " ")
	if len(f) != 3 {
		return BinaryHeader{}, "", fmt.Errorf("%w: the first line %.64q is not %q", ErrMalformedBinary, line, "ssehub-binary <media type> <encoding> <size>")
	}
	h := BinaryHeader{MediaType: f[0], Encoding: f[1]}
	if err := checkMediaType(h.MediaType); err != nil {
		return BinaryHeader{}, "", fmt.Errorf("%w: %v", ErrMalformedBinary, err)
	}
	if h.Encoding != EncodingGzip && h.Encoding != EncodingIdentity {
		return BinaryHeader{}, "", fmt.Errorf("%w: encoding %.32q is neither gzip nor identity", ErrMalformedBinary, h.Encoding)
	}
	n, err := strconv.Atoi(f[2])
	if err != nil || n < 0 || strconv.Itoa(n) != f[2] {
		return BinaryHeader{}, "", fmt.Errorf("%w: size %.32q is not a length", ErrMalformedBinary, f[2])
	}
	h.Size = n
	return h, rest, nil
}

// IsBinary reports whether e is a binary event: its data begins with
// BinaryPrefix.
func (e *Event) IsBinary() bool { return strings.HasPrefix(e.Data, BinaryPrefix) }

// Bytes returns the payload of e, a binary event, decoded: base64, then
// gzip when its encoding says so. It returns ErrNotBinary for a text
// event, and an error wrapping ErrMalformedBinary when the data cannot
// be decoded or the payload's length is not its size. It decodes at
// most MaxBinaryBytes.
func (e *Event) Bytes() ([]byte, error) {
	h, b64, err := ParseBinaryHeader(e.Data)
	if err != nil {
		return nil, err
	}
	if h.Size > MaxBinaryBytes {
		return nil, fmt.Errorf("%w: size %d is more than MaxBinaryBytes (%d)", ErrMalformedBinary, h.Size, MaxBinaryBytes)
	}
	body, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("%w: base64: %v", ErrMalformedBinary, err)
	}
	if h.Encoding == EncodingGzip {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, fmt.Errorf("%w: gzip: %v", ErrMalformedBinary, err)
		}
		out := bytes.NewBuffer(make([]byte, 0, h.Size))
		// One byte more than the size, to tell a longer payload.
		if _, err := io.Copy(out, io.LimitReader(zr, int64(h.Size)+1)); err != nil {
			return nil, fmt.Errorf("%w: gzip: %v", ErrMalformedBinary, err)
		}
		body = out.Bytes()
	}
	if len(body) != h.Size {
		return nil, fmt.Errorf("%w: %d bytes; its size says %d", ErrMalformedBinary, len(body), h.Size)
	}
	return body, nil
}
