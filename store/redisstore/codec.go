package redisstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ssehub/ssehub/hub"
)

// A record is a stream entry "<pos>-0" with four fields, the same in
// every entry (Redis then stores the field names once per listpack node):
//
//	ts  Time, decimal Unix microseconds, from Redis's clock
//	id  the publisher's ID; empty when the ID is the decimal position
//	tp  the topics, joined by NUL
//	r   the blob: the rest, encoded by appendBlob
//
// The scripts read ts, id and tp (Trim by age, and the indexes to clean
// up); only Go reads the blob.
//
// The blob:
//
//	byte    version (blobV1)
//	byte    flags: flagPrivate
//	varint  Retry in nanoseconds
//	uvarint length of Type, then its bytes
//	        Data: all remaining bytes
const (
	blobV1      = 1
	flagPrivate = 1 << 0
)

// errCorrupt is wrapped by the errors of entries this version cannot
// decode.
var errCorrupt = errors.New("corrupt entry")

func appendBlob(buf []byte, r *hub.Record) []byte {
	var flags byte
	if r.Private {
		flags |= flagPrivate
	}
	buf = append(buf, blobV1, flags)
	buf = binary.AppendVarint(buf, int64(r.Retry))
	buf = binary.AppendUvarint(buf, uint64(len(r.Type)))
	buf = append(buf, r.Type...)
	return append(buf, r.Data...)
}

// decodeEntry decodes the entry with stream ID sid and the given fields.
func decodeEntry(sid string, field func(name string) (string, bool)) (hub.Record, error) {
	pos, err := parseSID(sid)
	if err != nil {
		return hub.Record{}, err
	}
	ts, ok1 := field("ts")
	id, ok2 := field("id")
	tp, ok3 := field("tp")
	blob, ok4 := field("r")
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return hub.Record{}, fmt.Errorf("%w %s: missing field", errCorrupt, sid)
	}
	us, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return hub.Record{}, fmt.Errorf("%w %s: time %q", errCorrupt, sid, ts)
	}
	r := hub.Record{Pos: pos, ID: id, Time: time.UnixMicro(us)}
	if id == "" {
		r.ID = strconv.FormatUint(pos, 10)
	}
	if tp != "" {
		r.Topics = strings.Split(tp, "\x00")
	}
	if len(blob) < 2 || blob[0] != blobV1 {
		return hub.Record{}, fmt.Errorf("%w %s: blob version", errCorrupt, sid)
	}
	r.Private = blob[1]&flagPrivate != 0
	b := blob[2:]
	retry, n := varint(b)
	if n <= 0 {
		return hub.Record{}, fmt.Errorf("%w %s: retry", errCorrupt, sid)
	}
	b = b[n:]
	tl, n := uvarint(b)
	if n <= 0 || tl > uint64(len(b)-n) {
		return hub.Record{}, fmt.Errorf("%w %s: type", errCorrupt, sid)
	}
	b = b[n:]
	r.Retry = time.Duration(retry)
	r.Type, r.Data = b[:tl], b[tl:]
	return r, nil
}

// varint and uvarint are binary.Varint and Uvarint on a string, which
// saves copying the blob, and the Data in it, to a []byte.
func varint(s string) (int64, int) {
	ux, n := uvarint(s)
	x := int64(ux >> 1)
	if ux&1 != 0 {
		x = ^x
	}
	return x, n
}

func uvarint(s string) (uint64, int) {
	var x uint64
	var shift uint
	for i := 0; i < len(s) && i < binary.MaxVarintLen64; i++ {
		b := s[i]
		if b < 0x80 {
			if i == binary.MaxVarintLen64-1 && b > 1 {
				return 0, -1
			}
			return x | uint64(b)<<shift, i + 1
		}
		x |= uint64(b&0x7f) << shift
		shift += 7
	}
	return 0, 0
}

// parseSID returns the position of the stream ID "<pos>-0".
func parseSID(sid string) (uint64, error) {
	p, ok := strings.CutSuffix(sid, "-0")
	if !ok {
		return 0, fmt.Errorf("%w: stream id %q", errCorrupt, sid)
	}
	pos, err := strconv.ParseUint(p, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: stream id %q", errCorrupt, sid)
	}
	return pos, nil
}

// decodeValues decodes an entry as go-redis returns XREAD's.
func decodeValues(sid string, vals map[string]any) (hub.Record, error) {
	return decodeEntry(sid, func(name string) (string, bool) {
		v, ok := vals[name].(string)
		return v, ok
	})
}

// decodeScriptEntry decodes an entry as a script returns it: a list of
// its ID and a flat list of field names and values.
func decodeScriptEntry(v any) (hub.Record, error) {
	e, ok := v.([]any)
	if !ok || len(e) != 2 {
		return hub.Record{}, fmt.Errorf("%w: reply %v", errCorrupt, v)
	}
	sid, ok1 := e[0].(string)
	fs, ok2 := e[1].([]any)
	if !ok1 || !ok2 {
		return hub.Record{}, fmt.Errorf("%w: reply %v", errCorrupt, v)
	}
	return decodeEntry(sid, func(name string) (string, bool) {
		for i := 0; i+1 < len(fs); i += 2 {
			if fs[i] == name {
				s, ok := fs[i+1].(string)
				return s, ok
			}
		}
		return "", false
	})
}
