package loadgen

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
)

// Limits of what a stream may send.
const (
	maxHead = 64 << 10 // status line and headers
	maxLine = 1 << 20  // an SSE line; a longer one is skipped
)

// Parser states of a stream.
const (
	stHead     uint8 = iota // reading the status line and headers
	stSize                  // reading a chunk-size line
	stSizeExt               // skipping a chunk extension, up to LF
	stData                  // inside chunk data
	stDataEnd               // the CRLF after chunk data
	stIdentity              // a body that is not chunked
	stEnd                   // the body has ended
)

// errProtocol is wrapped by the errors of a malformed response.
var errProtocol = errors.New("loadgen: malformed response")

// A statusError is a response other than 200 text/event-stream.
type statusError struct {
	code  int
	ctype string
}

func (e *statusError) Error() string {
	if e.code != 200 {
		return fmt.Sprintf("hub answered HTTP %d to the subscription", e.code)
	}
	return fmt.Sprintf("hub answered Content-Type %q, not text/event-stream", e.ctype)
}

// A stream parses the bytes of one subscription's HTTP/1.1 response as
// they arrive: the head, chunked framing, and the SSE lines of the body,
// of which it reads data, id and retry. Each data line that holds a
// payload (see the package documentation) counts as one delivery; it
// needs no allocation for that. A stream is not safe for concurrent use;
// reset it before the response to a new request.
type stream struct {
	state     uint8
	sizeN     int    // hex digits of the chunk-size line so far
	chunkLeft uint64 // bytes left in the current chunk
	bodyLeft  int64  // an identity body's bytes left; -1 until the connection ends
	head      []byte // a head split across reads
	line      []byte // a line split across reads or chunks
	skipLine  bool   // the line being read is too long: skip to its end
	lastID    []byte // the last event ID, for reconnection
	retry     time.Duration
	seq       seqSet    // the payload sequence numbers received
	gz        *inflater // the body's decoder when it is gzip; nil otherwise
}

// reset prepares s for a new response, keeping the last event ID, the
// retry delay and the sequence numbers.
func (s *stream) reset() {
	s.state, s.sizeN, s.chunkLeft, s.bodyLeft = stHead, 0, 0, -1
	s.head, s.skipLine = s.head[:0], false
	s.line = s.line[:0]
}

// feed parses the next bytes b of the response, received at now (Unix
// nanoseconds), and counts what they deliver in r, whose lock the
// caller holds. It reports opened when b completed a 200 text/event-stream
// head. It returns io.EOF when the body has ended, a *statusError for
// another response, and an error wrapping errProtocol for a malformed one.
func (s *stream) feed(b []byte, now int64, r *recorder) (opened bool, err error) {
	if s.state == stHead {
		if b, err = s.readHead(b); err != nil || s.state == stHead {
			return false, err
		}
		opened = true
		if s.gz != nil {
			r.gzipped++
		}
	}
	for len(b) > 0 {
		switch s.state {
		case stSize:
			c := b[0]
			b = b[1:]
			switch {
			case c == '\n':
				if err := s.endSizeLine(); err != nil {
					return opened, err
				}
			case c == '\r':
			case c == ';' || c == ' ' || c == '\t':
				s.state = stSizeExt
			default:
				v, ok := unhex(c)
				if !ok || s.sizeN >= 15 {
					return opened, fmt.Errorf("%w: bad chunk size", errProtocol)
				}
				s.chunkLeft = s.chunkLeft<<4 | uint64(v)
				s.sizeN++
			}
		case stSizeExt:
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				return opened, nil
			}
			b = b[i+1:]
			if err := s.endSizeLine(); err != nil {
				return opened, err
			}
		case stData:
			n := min(uint64(len(b)), s.chunkLeft)
			if err := s.body(b[:n], now, r); err != nil {
				return opened, err
			}
			b = b[n:]
			if s.chunkLeft -= n; s.chunkLeft == 0 {
				s.state = stDataEnd
			}
		case stDataEnd:
			c := b[0]
			b = b[1:]
			switch c {
			case '\r':
			case '\n':
				s.state, s.sizeN, s.chunkLeft = stSize, 0, 0
			default:
				return opened, fmt.Errorf("%w: no CRLF after chunk data", errProtocol)
			}
		case stIdentity:
			if s.bodyLeft < 0 {
				return opened, s.body(b, now, r)
			}
			n := min(int64(len(b)), s.bodyLeft)
			if err := s.body(b[:n], now, r); err != nil {
				return opened, err
			}
			b = b[n:]
			if s.bodyLeft -= n; s.bodyLeft == 0 {
				s.state = stEnd
			}
		case stEnd:
			return opened, io.EOF
		}
	}
	if s.state == stEnd {
		return opened, io.EOF
	}
	return opened, nil
}

// endSizeLine handles the end of a chunk-size line.
func (s *stream) endSizeLine() error {
	switch {
	case s.sizeN == 0:
		return fmt.Errorf("%w: empty chunk size", errProtocol)
	case s.chunkLeft == 0:
		s.state = stEnd // the last chunk; trailers are ignored
	default:
		s.state = stData
	}
	return nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

var (
	crlfcrlf = []byte("\r\n\r\n")
	lflf     = []byte("\n\n")
)

// readHead consumes the response head from b, returning the bytes after
// it; the state stays stHead while the head is incomplete.
func (s *stream) readHead(b []byte) ([]byte, error) {
	buf := b
	if len(s.head) > 0 {
		s.head = append(s.head, b...)
		buf = s.head
	}
	end, n := bytes.Index(buf, crlfcrlf), 4
	if end < 0 {
		end, n = bytes.Index(buf, lflf), 2
	}
	if end < 0 {
		if len(buf) > maxHead {
			return nil, fmt.Errorf("%w: head longer than %d bytes", errProtocol, maxHead)
		}
		if len(s.head) == 0 {
			s.head = append(s.head, b...)
		}
		return nil, nil
	}
	if err := s.parseHead(buf[:end]); err != nil {
		return nil, err
	}
	rest := buf[end+n:]
	s.head = s.head[:0]
	if cap(s.head) > 4<<10 {
		s.head = nil // rest still refers to it until feed returns
	}
	return rest, nil
}

// parseHead reads the status line and headers and sets the body state.
func (s *stream) parseHead(h []byte) error {
	line, h, _ := bytes.Cut(h, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	if !bytes.HasPrefix(line, []byte("HTTP/1.")) || len(line) < 12 || line[8] != ' ' {
		return fmt.Errorf("%w: status line %q", errProtocol, truncate(line))
	}
	code, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return fmt.Errorf("%w: status line %q", errProtocol, truncate(line))
	}
	var chunked, haveLength, gz bool
	var length int64
	var ctype string
	for len(h) > 0 {
		line, h, _ = bytes.Cut(h, []byte("\n"))
		name, value, ok := bytes.Cut(bytes.TrimSuffix(line, []byte("\r")), []byte(":"))
		if !ok {
			continue
		}
		value = bytes.TrimSpace(value)
		switch {
		case asciiEqualFold(name, "Transfer-Encoding"):
			chunked = chunked || bytes.Contains(bytes.ToLower(value), []byte("chunked"))
		case asciiEqualFold(name, "Content-Length"):
			length, err = strconv.ParseInt(string(value), 10, 64)
			if err != nil || length < 0 {
				return fmt.Errorf("%w: Content-Length %q", errProtocol, truncate(value))
			}
			haveLength = true
		case asciiEqualFold(name, "Content-Type"):
			ctype = string(value)
		case asciiEqualFold(name, "Content-Encoding"):
			switch {
			case asciiEqualFold(value, "gzip"), asciiEqualFold(value, "x-gzip"):
				gz = true
			case len(value) > 0 && !asciiEqualFold(value, "identity"):
				return fmt.Errorf("%w: Content-Encoding %q", errProtocol, truncate(value))
			}
		}
	}
	mt, _, _ := bytes.Cut([]byte(ctype), []byte(";"))
	if code != 200 || !asciiEqualFold(bytes.TrimSpace(mt), "text/event-stream") {
		return &statusError{code: code, ctype: ctype}
	}
	s.gz = nil
	if gz {
		s.gz = &inflater{}
	}
	switch {
	case chunked:
		s.state, s.sizeN, s.chunkLeft = stSize, 0, 0
	case haveLength:
		s.state, s.bodyLeft = stIdentity, length
		if length == 0 {
			s.state = stEnd
		}
	default:
		s.state, s.bodyLeft = stIdentity, -1
	}
	return nil
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		x, y := b[i]|0x20, s[i]|0x20 // ASCII letters only; others compare exactly below
		if x != y || (x < 'a' || x > 'z') && b[i] != s[i] {
			return false
		}
	}
	return true
}

func truncate(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "…"
	}
	return string(b)
}

// body handles the next bytes of the body, counting them, and decoding
// them first when the body is gzip-compressed.
func (s *stream) body(b []byte, now int64, r *recorder) error {
	r.bodyBytes += uint64(len(b))
	if s.gz == nil {
		s.events(b, now, r)
		return nil
	}
	return s.gz.feed(b, func(p []byte) { s.events(p, now, r) })
}

// events handles the next bytes of the event stream. Lines end in LF, CR
// or CRLF; blank lines, which end events, are not needed to count
// payloads and are skipped.
func (s *stream) events(b []byte, now int64, r *recorder) {
	// Hubs end lines in LF: look for CR once, not in every line.
	cr := bytes.IndexByte(b, '\r') >= 0
	for {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			break
		}
		if l := s.join(b[:i]); cr {
			s.lines(l, now, r)
		} else {
			s.handleLine(l, now, r)
		}
		b = b[i+1:]
	}
	if i := bytes.LastIndexByte(b, '\r'); i >= 0 {
		s.lines(s.join(b[:i]), now, r)
		b = b[i+1:]
	}
	// Carry the unterminated rest over to the next bytes.
	if s.skipLine || len(b) == 0 {
		return
	}
	if len(s.line)+len(b) > maxLine {
		s.line, s.skipLine = s.line[:0], true
		return
	}
	s.line = append(s.line, b...)
}

// join returns the line that ends with b: b itself, or the carried
// bytes and b. It empties the carry.
func (s *stream) join(b []byte) []byte {
	if s.skipLine {
		s.skipLine = false
		return nil
	}
	if len(s.line) == 0 {
		return b
	}
	if len(s.line)+len(b) > maxLine {
		s.line = s.line[:0]
		return nil
	}
	l := append(s.line, b...)
	s.line = l[:0]
	if cap(s.line) > 64<<10 {
		s.line = nil // l stays valid: it is used before the next read
	}
	return l
}

// lines handles b, one or more lines separated by CR.
func (s *stream) lines(b []byte, now int64, r *recorder) {
	for {
		i := bytes.IndexByte(b, '\r')
		if i < 0 {
			s.handleLine(b, now, r)
			return
		}
		s.handleLine(b[:i], now, r)
		b = b[i+1:]
	}
}

// handleLine handles one complete SSE line.
func (s *stream) handleLine(l []byte, now int64, r *recorder) {
	if len(l) == 0 {
		return
	}
	var v []byte
	switch l[0] {
	case 'd':
		if !bytes.HasPrefix(l, []byte("data:")) {
			return
		}
		v = l[5:]
	case 'i':
		if !bytes.HasPrefix(l, []byte("id:")) {
			return
		}
		v = l[3:]
	case 'r':
		if !bytes.HasPrefix(l, []byte("retry:")) {
			return
		}
		v = l[6:]
	default:
		return
	}
	if len(v) > 0 && v[0] == ' ' {
		v = v[1:]
	}
	switch l[0] {
	case 'd':
		s.payload(v, now, r)
	case 'i':
		if bytes.IndexByte(v, 0) < 0 {
			s.lastID = append(s.lastID[:0], v...)
		}
	case 'r':
		if n, ok := atou(v); ok {
			s.retry = time.Duration(n) * time.Millisecond
		}
	}
}

// payload counts the delivery of the data v.
func (s *stream) payload(v []byte, now int64, r *recorder) {
	t, seq, ok := parsePayload(v)
	if !ok {
		r.foreign++
		return
	}
	switch s.seq.add(seq) {
	case addOutOfRange:
		r.foreign++
		return
	case addNew:
		r.unique++
	case addDup:
		r.dups++
	}
	r.delivered++
	r.latency.record(time.Duration(now - t))
}

var (
	payloadT   = []byte(`{"t":`)
	payloadSeq = []byte(`,"seq":`)
)

// parsePayload reads the send time and sequence number of a payload:
// quickly when it starts {"t":T,"seq":N as this tool writes it, and with
// encoding/json otherwise.
func parsePayload(v []byte) (t int64, seq uint64, ok bool) {
	if rest, ok := bytes.CutPrefix(v, payloadT); ok {
		tn, i := leadingDigits(rest)
		if rest, ok := bytes.CutPrefix(rest[i:], payloadSeq); ok && i > 0 && i <= 19 {
			n, j := leadingDigits(rest)
			if j > 0 && j <= 19 && j < len(rest) && (rest[j] == ',' || rest[j] == '}') {
				return int64(tn), n, true
			}
		}
	}
	if len(v) == 0 || v[0] != '{' {
		return 0, 0, false
	}
	var p struct {
		T   *int64  `json:"t"`
		Seq *uint64 `json:"seq"`
	}
	if json.Unmarshal(v, &p) != nil || p.T == nil || p.Seq == nil {
		return 0, 0, false
	}
	return *p.T, *p.Seq, true
}

// leadingDigits returns the value of the ASCII digits that b starts
// with, and how many there are. Callers bound the count to 19, within
// which the value cannot overflow.
func leadingDigits(b []byte) (uint64, int) {
	var n uint64
	i := 0
	for i < len(b) && i < 20 && '0' <= b[i] && b[i] <= '9' {
		n = n*10 + uint64(b[i]-'0')
		i++
	}
	return n, i
}

// atou parses b, ASCII digits only, as SSE does for retry.
func atou(b []byte) (uint64, bool) {
	n, i := leadingDigits(b)
	return n, i > 0 && i == len(b) && i <= 18
}
