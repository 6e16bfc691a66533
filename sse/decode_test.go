package sse

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// decodeCase is one stream and what a browser's EventSource makes of it,
// following "Interpreting an event stream" in the WHATWG HTML standard.
type decodeCase struct {
	name   string
	in     string
	max    int    // SetMaxEventSize(max) when non-zero
	initID string // SetLastEventID(initID) when non-empty

	want     []Event       // dispatched events; ID is the last event ID at dispatch
	err      error         // error ending the stream; nil means io.EOF
	lastID   string        // LastEventID() at the end
	retry    time.Duration // Retry() at the end, when retrySet
	retrySet bool
}

var decodeCases = []decodeCase{
	// Byte order mark. The stream is decoded with "UTF-8 decode", which
	// drops one leading BOM and no other.
	{
		name: "bom dropped",
		in:   "\xEF\xBB\xBFdata: a\n\n",
		want: []Event{{Data: "a"}},
	},
	{
		name: "second bom kept",
		in:   "\xEF\xBB\xBF\xEF\xBB\xBFdata: a\n\ndata: b\n\n",
		want: []Event{{Data: "b"}}, // the first field is named "\uFEFFdata"
	},
	{
		name: "bom after start kept",
		in:   "data: a\n\n\xEF\xBB\xBFdata: b\n\n",
		want: []Event{{Data: "a"}},
	},
	{
		name: "partial bom is not a bom",
		in:   "\xEF\xBBdata: a\n\ndata: b\n\n",
		want: []Event{{Data: "b"}}, // "\xEF\xBB" is one U+FFFD in the name
	},
	{
		name: "utf-16 bom not used",
		in:   "\xFF\xFEdata:1\n\ndata:2\n\n",
		want: []Event{{Data: "2"}},
	},
	{
		name: "bom then blank line",
		in:   "\xEF\xBB\xBF\r\ndata:x\r\n\r\n",
		want: []Event{{Data: "x"}},
	},
	{
		name: "bom only",
		in:   "\xEF\xBB\xBF",
	},

	// Line ends: CRLF, LF or CR, in any mix.
	{
		name: "lf",
		in:   "data: a\n\ndata: b\n\n",
		want: []Event{{Data: "a"}, {Data: "b"}},
	},
	{
		name: "crlf",
		in:   "data: a\r\n\r\ndata: b\r\n\r\n",
		want: []Event{{Data: "a"}, {Data: "b"}},
	},
	{
		name: "cr",
		in:   "data: a\r\rdata: b\r\r",
		want: []Event{{Data: "a"}, {Data: "b"}},
	},
	{
		name: "mixed in one event",
		in:   "data: a\r\ndata: b\rdata: c\n\r\n",
		want: []Event{{Data: "a\nb\nc"}},
	},
	{
		name: "lf cr is two line ends",
		in:   "data: a\n\rdata: b\n\n",
		want: []Event{{Data: "a"}, {Data: "b"}},
	},
	{
		name: "cr cr lf is two line ends",
		in:   "data: a\r\r\ndata: b\n\n",
		want: []Event{{Data: "a"}, {Data: "b"}},
	},
	{
		name: "crlf crlf crlf",
		in:   "data: a\r\n\r\n\r\ndata: b\r\n\r\n",
		want: []Event{{Data: "a"}, {Data: "b"}},
	},
	{
		name: "cr inside data line ends it",
		in:   "data: a\rb\n\n",
		want: []Event{{Data: "a"}}, // "b" is a field with an empty value
	},

	// Fields and values.
	{
		name: "data without colon",
		in:   "data\n\n",
		want: []Event{{Data: ""}}, // data buffer "\n", then its final LF is removed
	},
	{
		name: "two data without colon",
		in:   "data\ndata\n\n",
		want: []Event{{Data: "\n"}},
	},
	{
		name: "data with empty value",
		in:   "data:\n\n",
		want: []Event{{Data: ""}},
	},
	{
		name: "no space after colon",
		in:   "data:a\n\n",
		want: []Event{{Data: "a"}},
	},
	{
		name: "only one space removed",
		in:   "data:  a\n\n",
		want: []Event{{Data: " a"}},
	},
	{
		name: "tab not removed",
		in:   "data:\ta\n\n",
		want: []Event{{Data: "\ta"}},
	},
	{
		name: "trailing space kept",
		in:   "data: a \n\n",
		want: []Event{{Data: "a "}},
	},
	{
		name: "colons in value",
		in:   "data: a:b\ndata::c\n\n",
		want: []Event{{Data: "a:b\n:c"}},
	},
	{
		name: "space before colon is part of name",
		in:   "data : a\n\ndata: b\n\n",
		want: []Event{{Data: "b"}},
	},
	{
		name: "leading space is part of name",
		in:   " data: a\n\ndata: b\n\n",
		want: []Event{{Data: "b"}},
	},
	{
		name: "comments ignored",
		in:   ":hi\ndata: a\n: there\n:\n\n",
		want: []Event{{Data: "a"}},
	},
	{
		name: "comments only",
		in:   ": keep-alive\n\n: keep-alive\n\n",
	},
	{
		name: "data lines joined with lf",
		in:   "data: a\ndata: b\ndata: c\n\n",
		want: []Event{{Data: "a\nb\nc"}},
	},
	{
		name: "only final lf removed",
		in:   "data: a\ndata:\n\n",
		want: []Event{{Data: "a\n"}},
	},
	{
		name: "leading empty data line",
		in:   "data:\ndata: a\n\n",
		want: []Event{{Data: "\na"}},
	},
	{
		name: "unknown fields ignored",
		in:   "foo: bar\ndata: a\nfoo\ndatadata: x\ndatax: y\ndat: z\n\n",
		want: []Event{{Data: "a"}},
	},
	{
		name: "field names case-sensitive",
		in:   "Data: a\n\nDATA: b\nEvent: t\nID: 1\nRetry: 5\ndata: c\n\n",
		want: []Event{{Data: "c"}},
	},
	{
		name: "nul in data kept",
		in:   "data: a\x00b\n\n",
		want: []Event{{Data: "a\x00b"}},
	},
	{
		name: "blank lines only",
		in:   "\n\n\r\n\r",
	},
	{
		name: "empty stream",
		in:   "",
	},

	// Dispatch.
	{
		name: "unterminated last event discarded",
		in:   "data: a\n\ndata: b\n",
		want: []Event{{Data: "a"}},
	},
	{
		name: "unterminated last line discarded",
		in:   "data: a\n\ndata: b",
		want: []Event{{Data: "a"}},
	},
	{
		name:   "unterminated id line not processed",
		in:     "id: 1\n\nid: 2",
		lastID: "1",
	},
	{
		name: "undispatched id not the last event id",
		in:   "data: a\n\nid: 2\n",
		want: []Event{{Data: "a"}},
	},
	{
		name: "spec example three events",
		in:   ": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n",
		want: []Event{
			{Data: "first event", ID: "1"},
			{Data: "second event"},
			{Data: " third event"},
		},
	},
	{
		name: "spec example empty data",
		in:   "data\n\ndata\ndata\n\ndata:",
		want: []Event{{Data: ""}, {Data: "\n"}},
	},

	// Event type.
	{
		name: "event type",
		in:   "event: add\ndata: 73857293\n\nevent: remove\ndata: 2153\n\n",
		want: []Event{{Type: "add", Data: "73857293"}, {Type: "remove", Data: "2153"}},
	},
	{
		name: "type empty means message",
		in:   "data: a\n\nevent:\ndata: b\n\nevent\ndata: c\n\n",
		want: []Event{{Data: "a"}, {Data: "b"}, {Data: "c"}},
	},
	{
		name: "type reset after dispatch",
		in:   "event: add\ndata: a\n\ndata: b\n\n",
		want: []Event{{Type: "add", Data: "a"}, {Data: "b"}},
	},
	{
		name: "type without data not dispatched",
		in:   "event: add\n\ndata: b\n\n",
		want: []Event{{Data: "b"}},
	},
	{
		name: "last type wins",
		in:   "event: a\nevent: b\ndata: x\n\n",
		want: []Event{{Type: "b", Data: "x"}},
	},
	{
		name: "type after data",
		in:   "data: x\nevent: late\n\n",
		want: []Event{{Type: "late", Data: "x"}},
	},
	{
		name: "nul in type kept",
		in:   "event: a\x00b\ndata: x\n\n",
		want: []Event{{Type: "a\x00b", Data: "x"}},
	},

	// Last event ID.
	{
		name:   "id without data counts",
		in:     "id: 1\n\ndata: a\n\n",
		want:   []Event{{ID: "1", Data: "a"}},
		lastID: "1",
	},
	{
		name:   "id persists",
		in:     "id: 1\ndata: a\n\ndata: b\n\n",
		want:   []Event{{ID: "1", Data: "a"}, {ID: "1", Data: "b"}},
		lastID: "1",
	},
	{
		name: "empty id resets",
		in:   "id: 1\ndata: a\n\nid\ndata: b\n\nid: 2\ndata: c\n\nid:\ndata: d\n\n",
		want: []Event{{ID: "1", Data: "a"}, {Data: "b"}, {ID: "2", Data: "c"}, {Data: "d"}},
	},
	{
		name:   "id with nul ignored",
		in:     "id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n",
		want:   []Event{{ID: "1", Data: "a"}, {ID: "1", Data: "b"}},
		lastID: "1",
	},
	{
		name:   "last id wins",
		in:     "id: 1\nid: 2\ndata: a\n\n",
		want:   []Event{{ID: "2", Data: "a"}},
		lastID: "2",
	},
	{
		name:   "id after data",
		in:     "data: a\nid: 7\n\n",
		want:   []Event{{ID: "7", Data: "a"}},
		lastID: "7",
	},
	{
		name:   "id keeps spaces",
		in:     "id:  1 \ndata: a\n\n",
		want:   []Event{{ID: " 1 ", Data: "a"}},
		lastID: " 1 ",
	},
	{
		name:   "initial last event id",
		in:     "data: a\n\nid: 9\ndata: b\n\n",
		initID: "8",
		want:   []Event{{ID: "8", Data: "a"}, {ID: "9", Data: "b"}},
		lastID: "9",
	},
	{
		name:   "initial last event id reset by empty id",
		in:     "id\n\ndata: a\n\n",
		initID: "8",
		want:   []Event{{Data: "a"}},
	},

	// Reconnection time: ASCII digits only, in milliseconds, effective at
	// once whether or not the event is dispatched.
	{
		name:     "retry",
		in:       "retry: 1500\ndata: a\n\n",
		want:     []Event{{Data: "a", Retry: 1500 * time.Millisecond}},
		retry:    1500 * time.Millisecond,
		retrySet: true,
	},
	{
		name:     "retry belongs to its event only",
		in:       "retry: 5\ndata: a\n\ndata: b\n\n",
		want:     []Event{{Data: "a", Retry: 5 * time.Millisecond}, {Data: "b"}},
		retry:    5 * time.Millisecond,
		retrySet: true,
	},
	{
		name:     "retry without dispatch",
		in:       "retry: 300\n",
		retry:    300 * time.Millisecond,
		retrySet: true,
	},
	{
		name:     "retry zero",
		in:       "retry: 0\n\n",
		retrySet: true,
	},
	{
		name:     "retry leading zeros",
		in:       "retry: 007\n\n",
		retry:    7 * time.Millisecond,
		retrySet: true,
	},
	{
		name:     "retry largest duration",
		in:       "retry: 9223372036854\n\n",
		retry:    9223372036854 * time.Millisecond,
		retrySet: true,
	},
	{
		name: "retry too large ignored",
		in:   "retry: 9223372036855\n\nretry: 99999999999999999999\n\n",
	},
	{
		name:     "retry invalid ignored",
		in:       "retry: 100\n\nretry: 1a\nretry:  200\nretry: -1\nretry: 1.5\nretry: 300 \nretry: +4\nretry: \nretry\ndata: a\n\n",
		want:     []Event{{Data: "a"}},
		retry:    100 * time.Millisecond,
		retrySet: true,
	},
	{
		name: "retry unterminated line not processed",
		in:   "retry: 100",
	},

	// UTF-8 decoding: each maximal subpart of an invalid sequence becomes
	// one U+FFFD (WHATWG Encoding, "UTF-8 decoder").
	{
		name: "valid utf-8",
		in:   "data: \xE2\x82\xAC \xF0\x9F\x98\x80\n\n",
		want: []Event{{Data: "€ 😀"}},
	},
	{
		name: "truncated sequence is one replacement",
		in:   "data: \xE2\x82\n\ndata: \xF0\x9F\x98x\n\n",
		want: []Event{{Data: "\uFFFD"}, {Data: "\uFFFDx"}},
	},
	{
		name: "overlong nul is two replacements",
		in:   "data: \xC0\x80\n\n",
		want: []Event{{Data: "\uFFFD\uFFFD"}},
	},
	{
		name: "surrogate is three replacements",
		in:   "data: \xED\xA0\x80\n\n",
		want: []Event{{Data: "\uFFFD\uFFFD\uFFFD"}},
	},
	{
		name: "bad bytes",
		in:   "data: a\xFFb\x80c\xF5\n\n",
		want: []Event{{Data: "a\uFFFDb\uFFFDc\uFFFD"}},
	},
	{
		name: "sequence cut by line end",
		in:   "data:\xE2\ndata:\x82\xAC\n\n",
		want: []Event{{Data: "\uFFFD\n\uFFFD\uFFFD"}},
	},
	{
		name: "sequence across data and type",
		in:   "event:\xAC\ndata:\xE2\x82\n\n",
		want: []Event{{Type: "\uFFFD", Data: "\uFFFD"}},
	},
	{
		name:   "sequence across type and id",
		in:     "id:\xAC\nevent:\xE2\x82\ndata: a\n\n",
		want:   []Event{{ID: "\uFFFD", Type: "\uFFFD", Data: "a"}},
		lastID: "\uFFFD",
	},
	{
		name:   "invalid id",
		in:     "id: \xFF1\ndata: a\n\ndata: b\n\n",
		want:   []Event{{ID: "\uFFFD1", Data: "a"}, {ID: "\uFFFD1", Data: "b"}},
		lastID: "\uFFFD1",
	},

	// Size limits.
	{
		name:   "event at max",
		in:     "id: 12\nevent: 345\ndata: 67\ndata: 890\n\n",
		max:    11, // "12" + "345" + "67\n890"
		want:   []Event{{ID: "12", Type: "345", Data: "67\n890"}},
		lastID: "12",
	},
	{
		name: "event over max by data lines",
		in:   "data: a\n\n" + strings.Repeat("data: 0123\n", 5) + "\n",
		max:  16,
		want: []Event{{Data: "a"}},
		err:  ErrEventTooLarge,
	},
	{
		name: "data at max",
		in:   "data: 0123456789\nevent: 012345\n\n",
		max:  16,
		want: []Event{{Type: "012345", Data: "0123456789"}},
	},
	{
		name: "event over max by id",
		in:   "data: 0123456789\nid: 0123456\n\n",
		max:  16,
		err:  ErrEventTooLarge,
	},
	{
		name: "event over max by type",
		in:   "id: 0123456\nevent: 0123456789\n\n",
		max:  16,
		err:  ErrEventTooLarge,
	},
	{
		name: "long line without line end",
		in:   "data: a\n\ndata: " + strings.Repeat("x", 100),
		max:  16,
		want: []Event{{Data: "a"}},
		err:  ErrEventTooLarge,
	},
	{
		name: "comment line of max+15 bytes",
		in:   ":" + strings.Repeat("x", 30) + "\ndata: a\n\n",
		max:  16,
		want: []Event{{Data: "a"}},
	},
	{
		name: "comment line of max+16 bytes",
		in:   ":" + strings.Repeat("x", 31) + "\ndata: a\n\n",
		max:  16,
		err:  ErrEventTooLarge,
	},
	{
		name: "replacement characters count",
		in:   "data: \xFF\xFF\xFF\xFF\xFF\xFF\n\n",
		max:  16, // 6 bytes in, 18 out
		err:  ErrEventTooLarge,
	},
	{
		name: "replacement characters in id count",
		in:   "id: \xFF\xFF\xFF\xFF\xFF\xFF\n\n",
		max:  16,
		err:  ErrEventTooLarge,
	},
	{
		name: "event after too large not decoded",
		in:   "data:01234\ndata:56789\n\ndata:x\n\n",
		max:  10,
		err:  ErrEventTooLarge,
	},
	{
		name:   "long event with default max",
		in:     "id: 1\ndata: " + strings.Repeat("0123456789", 5000) + "\n\n",
		want:   []Event{{ID: "1", Data: strings.Repeat("0123456789", 5000)}},
		lastID: "1",
	},
}

// decodeResult is everything a Decoder reports about a stream.
type decodeResult struct {
	events   []Event
	err      error
	lastID   string
	retry    time.Duration
	retrySet bool
}

func (r decodeResult) String() string {
	var b strings.Builder
	b.WriteString("events [")
	for i, ev := range r.events {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "{ID:%q Type:%q Data:%q Retry:%v}", ev.ID, ev.Type, ev.Data, ev.Retry)
	}
	fmt.Fprintf(&b, "], err %v, LastEventID %q, Retry %v %v", r.err, r.lastID, r.retry, r.retrySet)
	return b.String()
}

// decodeAll decodes r to its end. It checks that the ending error is
// sticky, and returns a failure description if not.
func decodeAll(r io.Reader, c *decodeCase) (decodeResult, string) {
	d := NewDecoder(r)
	d.SetMaxEventSize(c.max)
	if c.initID != "" {
		d.SetLastEventID(c.initID)
	}
	// Start from a stale event, to check that Decode sets every field.
	ev := Event{ID: "stale", Type: "stale", Data: "stale", Retry: time.Hour, Comment: "stale"}
	var res decodeResult
	for {
		if err := d.Decode(&ev); err != nil {
			res.err = err
			break
		}
		res.events = append(res.events, ev)
	}
	res.lastID = d.LastEventID()
	res.retry, res.retrySet = d.Retry()
	if err := d.Decode(&ev); err != res.err {
		return res, fmt.Sprintf("Decode after %v = %v; want the same error again", res.err, err)
	}
	return res, ""
}

// chunkReader returns its chunks in order, one per Read at most (less when
// p is short): a stream whose reads are split at chosen offsets.
type chunkReader struct {
	chunks []string
	err    error // returned after the last chunk; io.EOF if nil
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.chunks) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		return 0, io.EOF
	}
	n := copy(p, r.chunks[0])
	if n == len(r.chunks[0]) {
		r.chunks = r.chunks[1:]
	} else {
		r.chunks[0] = r.chunks[0][n:]
	}
	return n, nil
}

// splitOffsets returns where TestDecode splits an input of n bytes in two:
// every offset for a short input, and for a long one the offsets near each
// end plus an even spread between.
func splitOffsets(n int) []int {
	if n <= 2048 {
		offs := make([]int, n+1)
		for i := range offs {
			offs[i] = i
		}
		return offs
	}
	var offs []int
	for i := 0; i <= n; i++ {
		if i < 64 || i > n-64 || i%97 == 0 {
			offs = append(offs, i)
		}
	}
	return offs
}

func TestDecode(t *testing.T) {
	if len(decodeCases) < 45 {
		t.Fatalf("%d decode cases; want at least 45", len(decodeCases))
	}
	for _, c := range decodeCases {
		t.Run(c.name, func(t *testing.T) {
			want := decodeResult{
				events:   c.want,
				err:      c.err,
				lastID:   c.lastID,
				retry:    c.retry,
				retrySet: c.retrySet,
			}
			if want.err == nil {
				want.err = io.EOF
			}
			// The expectations were written from the standard; check them
			// against its plain transcription too.
			if c.max == 0 {
				if ref := specDecode([]byte(c.in), c.initID); !reflect.DeepEqual(ref, want) {
					t.Errorf("reference decoder on %.200q:\ngot  %.500v\nwant %.500v", c.in, ref, want)
				}
			}
			check := func(how string, r io.Reader) bool {
				t.Helper()
				got, msg := decodeAll(r, &c)
				if msg != "" {
					t.Errorf("%s: %s", how, msg)
					return false
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("decoding %.200q %s:\ngot  %.500v\nwant %.500v", c.in, how, got, want)
					return false
				}
				return true
			}
			check("whole", strings.NewReader(c.in))
			check("one byte per read", iotest.OneByteReader(strings.NewReader(c.in)))
			check("with EOF on the last read", iotest.DataErrReader(strings.NewReader(c.in)))
			for _, i := range splitOffsets(len(c.in)) {
				r := &chunkReader{chunks: []string{c.in[:i], c.in[i:]}}
				if !check(fmt.Sprintf("split at %d", i), r) {
					break // one split is enough to show
				}
			}
		})
	}
}

// TestDecodeReturnsBeforeNextRead checks that a line ended by a CR at the
// end of a read is processed at once: the decoder must not wait for the
// next read to see whether an LF follows.
func TestDecodeReturnsBeforeNextRead(t *testing.T) {
	errTooFar := errors.New("read past the event")
	tests := []struct {
		name  string
		first string
	}{
		{"lf", "data: a\n\n"},
		{"crlf", "data: a\r\n\r\n"},
		{"cr", "data: a\r\r"},
		{"bom", "\xEF\xBB\xBFdata: a\r\r"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := NewDecoder(&chunkReader{chunks: []string{tt.first}, err: errTooFar})
			var ev Event
			if err := d.Decode(&ev); err != nil || ev.Data != "a" {
				t.Fatalf("Decode = %v, Data %q; want nil, %q", err, ev.Data, "a")
			}
			if err := d.Decode(&ev); err != errTooFar {
				t.Errorf("second Decode = %v; want %v", err, errTooFar)
			}
		})
	}
}

// TestDecodeCRLFSplit checks that a CR ending one read and an LF starting
// the next are one line end, not two.
func TestDecodeCRLFSplit(t *testing.T) {
	r := &chunkReader{chunks: []string{"data: a\r", "\ndata: b\r", "\n\r", "\n"}}
	got, msg := decodeAll(r, &decodeCase{})
	if msg != "" {
		t.Fatal(msg)
	}
	want := []Event{{Data: "a\nb"}}
	if !reflect.DeepEqual(got.events, want) || got.err != io.EOF {
		t.Errorf("got %v; want events %v, io.EOF", got, want)
	}
}

// errReader returns n bytes of its data, then err.
type errReader struct {
	data string
	err  error
}

func (r *errReader) Read(p []byte) (int, error) {
	if r.data == "" {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	if r.data == "" {
		return n, r.err // the data and the error together
	}
	return n, nil
}

// zeroReader returns no data and no error, forever.
type zeroReader struct{}

func (zeroReader) Read([]byte) (int, error) { return 0, nil }

func TestDecodeReaderErrors(t *testing.T) {
	errNet := errors.New("connection reset")
	tests := []struct {
		name string
		r    io.Reader
		want []Event
		err  error
	}{
		{"error at once", iotest.ErrReader(errNet), nil, errNet},
		{"error with data", &errReader{"data: a\n\ndata: b\n\ndata: c\n", errNet},
			[]Event{{Data: "a"}, {Data: "b"}}, errNet},
		{"error after data", io.MultiReader(strings.NewReader("data: a\n\n"), iotest.ErrReader(errNet)),
			[]Event{{Data: "a"}}, errNet},
		{"timeout", iotest.TimeoutReader(strings.NewReader("data: a\n\ndata: b\n\n")),
			[]Event{{Data: "a"}, {Data: "b"}}, iotest.ErrTimeout},
		{"no progress", zeroReader{}, nil, io.ErrNoProgress},
		{"no progress after data", io.MultiReader(strings.NewReader("data: a\n\n"), zeroReader{}),
			[]Event{{Data: "a"}}, io.ErrNoProgress},
		{"unexpected EOF", &errReader{"data: a\n\ndata: b\n", io.ErrUnexpectedEOF},
			[]Event{{Data: "a"}}, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, msg := decodeAll(tt.r, &decodeCase{})
			if msg != "" {
				t.Fatal(msg)
			}
			if !reflect.DeepEqual(got.events, tt.want) || got.err != tt.err {
				t.Errorf("got %v; want events %v, error %v", got, tt.want, tt.err)
			}
		})
	}
}

func TestDecoderReset(t *testing.T) {
	d := NewDecoder(strings.NewReader("retry: 2000\nid: 5\ndata: a\n\nid: 6\nevent: t\ndata: partial\n"))
	var ev Event
	if err := d.Decode(&ev); err != nil {
		t.Fatalf("Decode = %v; want nil", err)
	}
	if err := d.Decode(&ev); err != io.EOF {
		t.Fatalf("Decode = %v; want io.EOF", err)
	}

	// A reconnection: the partial event and its id are dropped, the last
	// event ID and the retry delay are kept, and the new stream may start
	// with a BOM again.
	d.Reset(strings.NewReader("\xEF\xBB\xBFdata: b\n\n"))
	if got := d.LastEventID(); got != "5" {
		t.Errorf("LastEventID() after Reset = %q; want %q", got, "5")
	}
	if got, ok := d.Retry(); got != 2*time.Second || !ok {
		t.Errorf("Retry() after Reset = %v, %v; want 2s, true", got, ok)
	}
	if err := d.Decode(&ev); err != nil {
		t.Fatalf("Decode after Reset = %v; want nil", err)
	}
	want := Event{ID: "5", Data: "b"}
	if ev != want {
		t.Errorf("Decode after Reset = %+v; want %+v", ev, want)
	}

	// Reset also clears a sticky error.
	d.SetMaxEventSize(8)
	d.Reset(strings.NewReader("data: 0123456789\n\n"))
	if err := d.Decode(&ev); err != ErrEventTooLarge {
		t.Fatalf("Decode = %v; want %v", err, ErrEventTooLarge)
	}
	d.Reset(strings.NewReader("data: c\n\n"))
	if err := d.Decode(&ev); err != nil || ev.Data != "c" {
		t.Errorf("Decode after Reset = %v, %+v; want nil, Data %q", err, ev, "c")
	}
}

// benchEvent is event i of benchStream as Decode returns it.
func benchEvent(i int) Event {
	return Event{ID: strconv.Itoa(i), Type: "update", Data: string(benchJSON(i))}
}

// TestDecodeLongStream decodes the benchmark stream, with each kind of line
// end and with reads of varied sizes, so that lines cross the read buffer's
// boundaries in every way.
func TestDecodeLongStream(t *testing.T) {
	stream := benchStream()
	ends := []struct{ name, eol string }{{"lf", "\n"}, {"crlf", "\r\n"}, {"cr", "\r"}}
	readers := []struct {
		name string
		r    func([]byte) io.Reader
	}{
		{"whole", func(b []byte) io.Reader { return bytes.NewReader(b) }},
		{"varied reads", func(b []byte) io.Reader {
			var chunks []string
			for n := 1; len(b) > 0; n = (n*7 + 3) % 9001 {
				k := min(n, len(b))
				chunks = append(chunks, string(b[:k]))
				b = b[k:]
			}
			return &chunkReader{chunks: chunks}
		}},
	}
	for _, e := range ends {
		in := bytes.ReplaceAll(stream, []byte("\n"), []byte(e.eol))
		for _, rd := range readers {
			t.Run(e.name+"/"+rd.name, func(t *testing.T) {
				d := NewDecoder(rd.r(in))
				var ev Event
				for i := range benchStreamEvents {
					if err := d.Decode(&ev); err != nil {
						t.Fatalf("event %d: Decode = %v; want nil", i, err)
					}
					if want := benchEvent(i); ev != want {
						t.Fatalf("event %d: Decode = %+v; want %+v", i, ev, want)
					}
				}
				if err := d.Decode(&ev); err != io.EOF {
					t.Fatalf("Decode at end = %v; want io.EOF", err)
				}
			})
		}
	}
}

func TestDecodeAllocs(t *testing.T) {
	stream := benchStream()
	r := bytes.NewReader(stream)
	d := NewDecoder(r)
	var ev Event
	run := func() {
		r.Reset(stream)
		d.Reset(r)
		for d.Decode(&ev) == nil {
		}
	}
	run() // grow the buffers
	if got := testing.AllocsPerRun(5, run) / benchStreamEvents; got > 1 {
		t.Errorf("Decode makes %.3f allocations per event; want at most 1", got)
	}
}

func TestIsASCII(t *testing.T) {
	for n := 0; n <= 80; n++ {
		b := bytes.Repeat([]byte{0x7F}, n)
		if !isASCII(b) {
			t.Fatalf("isASCII(%q) = false; want true", b)
		}
		for i := range n {
			b[i] = 0x80
			if isASCII(b) {
				t.Fatalf("isASCII(%q) = true; want false", b)
			}
			b[i] = 0x7F
		}
	}
}
