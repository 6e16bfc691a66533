package sse

import (
	"io"
	"strconv"
	"strings"
	"time"
)

// specDecode is a reference for the Decoder: a plain transcription of the
// WHATWG HTML standard, "Interpreting an event stream", working on the whole
// stream at once with no regard for speed or memory. It applies no size
// limit. The tests compare the Decoder with it.
func specDecode(in []byte, initID string) decodeResult {
	// "Streams must be decoded using the UTF-8 decode algorithm": drop a
	// leading BOM, then decode with replacement.
	text := whatwgUTF8Decode(in)
	text = strings.TrimPrefix(text, "\uFEFF")

	var (
		res          decodeResult
		data, typ    string
		idBuf        = initID
		evRetry      time.Duration
		lastIDString = initID
	)
	// Lines end in CRLF, LF or CR; text after the last line end is not a
	// line, and is discarded with the event it belongs to.
	for {
		i := strings.IndexAny(text, "\r\n")
		if i < 0 {
			break
		}
		line := text[:i]
		if strings.HasPrefix(text[i:], "\r\n") {
			text = text[i+2:]
		} else {
			text = text[i+1:]
		}

		switch {
		case line == "": // dispatch the event
			lastIDString = idBuf
			if data == "" {
				typ, evRetry = "", 0
				continue
			}
			data = strings.TrimSuffix(data, "\n")
			res.events = append(res.events, Event{ID: lastIDString, Type: typ, Data: data, Retry: evRetry})
			data, typ, evRetry = "", "", 0
			continue
		case line[0] == ':':
			continue // a comment
		}
		field, value, found := strings.Cut(line, ":")
		if found {
			value = strings.TrimPrefix(value, " ")
		}
		switch field {
		case "event":
			typ = value
		case "data":
			data += value + "\n"
		case "id":
			if !strings.Contains(value, "\x00") {
				idBuf = value
			}
		case "retry":
			// Only ASCII digits. The standard sets no upper bound; this
			// package ignores values too large for a time.Duration.
			if value != "" && strings.Trim(value, "0123456789") == "" {
				ms, err := strconv.ParseInt(value, 10, 64)
				if err == nil && ms <= maxRetryMS {
					d := time.Duration(ms) * time.Millisecond
					res.retry, res.retrySet, evRetry = d, true, d
				}
			}
		}
	}
	res.err = io.EOF
	res.lastID = lastIDString
	return res
}

// whatwgUTF8Decode decodes b as the "UTF-8 decoder" of the WHATWG Encoding
// standard does, in replacement mode, following its steps one by one.
func whatwgUTF8Decode(b []byte) string {
	var (
		out          strings.Builder
		cp           rune
		seen, needed int
		lower, upper byte = 0x80, 0xBF
	)
	for i := 0; i < len(b); i++ {
		c := b[i]
		if needed == 0 {
			switch {
			case c <= 0x7F:
				out.WriteByte(c)
			case c >= 0xC2 && c <= 0xDF:
				needed, cp = 1, rune(c&0x1F)
			case c >= 0xE0 && c <= 0xEF:
				if c == 0xE0 {
					lower = 0xA0
				}
				if c == 0xED {
					upper = 0x9F
				}
				needed, cp = 2, rune(c&0xF)
			case c >= 0xF0 && c <= 0xF4:
				if c == 0xF0 {
					lower = 0x90
				}
				if c == 0xF4 {
					upper = 0x8F
				}
				needed, cp = 3, rune(c&0x7)
			default:
				out.WriteRune('\uFFFD')
			}
			continue
		}
		if c < lower || c > upper {
			cp, needed, seen, lower, upper = 0, 0, 0, 0x80, 0xBF
			i-- // "restore byte to ioQueue"
			out.WriteRune('\uFFFD')
			continue
		}
		lower, upper = 0x80, 0xBF
		cp = cp<<6 | rune(c&0x3F)
		seen++
		if seen == needed {
			out.WriteRune(cp)
			cp, needed, seen = 0, 0, 0
		}
	}
	if needed != 0 { // end of stream inside a sequence
		out.WriteRune('\uFFFD')
	}
	return out.String()
}
