package natsstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/ssehub/ssehub/hub"
	"github.com/ssehub/ssehub/internal/wire"
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
	d := wire.NewDecoder(b[9:])
	recs := make([]hub.Record, count)
	for i := range recs {
		r := &recs[i]
		r.Pos, r.Time = first+uint64(i), t
		flags := d.Byte()
		r.Private = flags&flagPrivate != 0
		r.Retry = time.Duration(d.Varint())
		if flags&flagPosID != 0 {
			r.ID = strconv.FormatUint(r.Pos, 10)
		} else {
			r.ID = d.Text()
		}
		n := d.Count()
		if d.Err() != nil {
			break
		}
		r.Topics = make([]string, n)
		for j := range r.Topics {
			r.Topics[j] = d.Text()
		}
		r.Type = d.Text()
		r.Data = d.Text()
	}
	if len(d.Rest()) != 0 {
		d.Fail(fmt.Errorf("%d trailing bytes", len(d.Rest())))
	}
	if err := d.Err(); err != nil {
		return nil, fmt.Errorf("%w: batch at %d: %v", errCorrupt, first, err)
	}
	return recs, nil
}
