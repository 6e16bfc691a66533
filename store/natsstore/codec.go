package natsstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/ssehub/ssehub/hub"
)

// The payload of a batch message (subject "<stream>.batch") is
//
//	byte    version (batchV1)
//	8 bytes Time of every record, Unix nanoseconds, big-endian
//	        then each record:
//	byte    flags: flagPrivate, flagPosID
//	varint  Retry in nanoseconds
//	        the ID, as uvarint length + bytes, unless flagPosID says it is
//	        the decimal position
//	uvarint number of topics, then each as uvarint length + bytes
//	uvarint length of Type, then its bytes
//	uvarint length of Data, then its bytes
//
// Its headers hdrFirst and hdrCount give the position of its first record
// and how many it holds.
const (
	batchV1     = 1
	flagPrivate = 1 << 0
	flagPosID   = 1 << 1
)

// Header names of the messages.
const (
	hdrFirst = "Ssehub-First" // batch: the position of its first record
	hdrCount = "Ssehub-Count" // batch: how many records it holds
	hdrFloor = "Ssehub-Floor" // trim marker: the oldest position kept
)

var errCorrupt = errors.New("natsstore: corrupt message")

// appendRecord appends the encoding of r, whose Pos and ID are assigned,
// to buf.
func appendRecord(buf []byte, r *hub.Record) []byte {
	posID := r.ID == strconv.FormatUint(r.Pos, 10)
	var flags byte
	if r.Private {
		flags |= flagPrivate
	}
	if posID {
		flags |= flagPosID
	}
	buf = append(buf, flags)
	buf = binary.AppendVarint(buf, int64(r.Retry))
	if !posID {
		buf = appendString(buf, r.ID)
	}
	buf = binary.AppendUvarint(buf, uint64(len(r.Topics)))
	for _, t := range r.Topics {
		buf = appendString(buf, t)
	}
	buf = appendString(buf, r.Type)
	return appendString(buf, r.Data)
}

// batchHeader starts the payload of a batch whose records are stamped t.
func batchHeader(buf []byte, t time.Time) []byte {
	buf = append(buf, batchV1)
	return binary.BigEndian.AppendUint64(buf, uint64(t.UnixNano()))
}

func appendString(buf []byte, s string) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(s)))
	return append(buf, s...)
}

// decodeBatch decodes the payload of a batch message whose first record
// is at position first and that holds count records.
func decodeBatch(first uint64, count int, b []byte) ([]hub.Record, error) {
	if len(b) < 9 || b[0] != batchV1 {
		return nil, fmt.Errorf("%w: batch at %d: bad header", errCorrupt, first)
	}
	if count <= 0 || count > len(b) { // each record takes a few bytes
		return nil, fmt.Errorf("%w: batch at %d: count %d", errCorrupt, first, count)
	}
	t := time.Unix(0, int64(binary.BigEndian.Uint64(b[1:9])))
	d := decoder{b: b[9:]}
	recs := make([]hub.Record, count)
	for i := range recs {
		r := &recs[i]
		r.Pos, r.Time = first+uint64(i), t
		flags := d.byte()
		r.Private = flags&flagPrivate != 0
		r.Retry = time.Duration(d.varint())
		if flags&flagPosID != 0 {
			r.ID = strconv.FormatUint(r.Pos, 10)
		} else {
			r.ID = d.string()
		}
		n := d.uvarint()
		if d.err == nil && n > uint64(len(d.b)) {
			d.err = errShort
		}
		if d.err != nil {
			break
		}
		r.Topics = make([]string, n)
		for j := range r.Topics {
			r.Topics[j] = d.string()
		}
		r.Type = d.string()
		r.Data = d.string()
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return nil, fmt.Errorf("%w: batch at %d: %v", errCorrupt, first, d.err)
	}
	return recs, nil
}

var errShort = errors.New("truncated")

// decoder reads varints and length-prefixed strings, remembering the
// first error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.err = errShort
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	x, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.b = d.b[n:]
	return x
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	x, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.b = d.b[n:]
	return x
}

func (d *decoder) string() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) {
		d.err = errShort
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}
