package boltstore

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"time"

	"github.com/ssehub/ssehub/hub"
	"github.com/ssehub/ssehub/internal/wire"
)

// A stored record is the value under its position key in the records
// bucket:
//
//	byte    version (recordV1)
//	8 bytes Time as Unix nanoseconds, big-endian (fixed offset, so Trim by
//	        age reads it without decoding the rest)
//	byte    flags: flagPrivate, flagPosID
//	varint  Retry in nanoseconds
//	        the ID, as uvarint length + bytes, unless flagPosID says it is
//	        the decimal position
//	uvarint number of topics, then each as uvarint length + bytes
//	uvarint length of Type, then its bytes
//	        Data: all remaining bytes
const (
	recordV1    = 1
	headerLen   = 1 + 8 + 1
	flagPrivate = 1 << 0
	flagPosID   = 1 << 1 // the ID is the decimal position and is not stored
)

// appendRecord appends the encoding of r, whose Pos, ID and Time are
// already assigned, to buf.
func appendRecord(buf []byte, r *hub.Record, posID bool) []byte {
	buf = append(buf, recordV1)
	buf = binary.BigEndian.AppendUint64(buf, uint64(r.Time.UnixNano()))
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
	return append(buf, r.Data...)
}

func appendString(buf []byte, s string) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(s)))
	return append(buf, s...)
}

// view is a stored record parsed in place: its byte slices point into the
// value, valid only for the transaction that read it.
type view struct {
	time    int64
	flags   byte
	retry   int64
	id      []byte // nil when flags has flagPosID
	topics  [][]byte
	typ     []byte
	data    []byte
	topicsA [4][]byte // backing store for topics of most records
}

// recordTime returns the Time of the encoded record v.
func recordTime(v []byte) (int64, bool) {
	if len(v) < headerLen || v[0] != recordV1 {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(v[1:9])), true
}

// parse parses v, the record stored at pos, into w.
func (w *view) parse(pos uint64, v []byte) error {
	if len(v) < headerLen {
		return fmt.Errorf("%w: record %d: %d bytes", ErrCorrupt, pos, len(v))
	}
	if v[0] != recordV1 {
		return fmt.Errorf("%w: record %d: unknown version %d", ErrCorrupt, pos, v[0])
	}
	w.time = int64(binary.BigEndian.Uint64(v[1:9]))
	w.flags = v[9]
	d := wire.NewDecoder(v[headerLen:])
	w.retry = d.Varint()
	w.id = nil
	if w.flags&flagPosID == 0 {
		w.id = d.Bytes()
		if w.id == nil {
			w.id = []byte{}
		}
	}
	n := d.Count() // each topic takes a byte at least
	w.topics = w.topicsA[:0]
	for i := uint64(0); i < n && d.Err() == nil; i++ {
		w.topics = append(w.topics, d.Bytes())
	}
	w.typ = d.Bytes()
	w.data = d.Rest()
	if err := d.Err(); err != nil {
		return fmt.Errorf("%w: record %d: %v", ErrCorrupt, pos, err)
	}
	return nil
}

// idEquals reports whether the record's ID, at position pos, is id.
func (w *view) idEquals(pos uint64, id string) bool {
	if w.flags&flagPosID != 0 {
		return strconv.FormatUint(pos, 10) == id
	}
	return string(w.id) == id
}

// matches reports whether one of the record's topics matches one of sels.
func (w *view) matches(sels []hub.Selector) bool {
	for _, t := range w.topics {
		topic := string(t)
		for _, s := range sels {
			if s.Match(topic) {
				return true
			}
		}
	}
	return false
}

// record copies w out of the transaction's memory.
func (w *view) record(pos uint64) hub.Record {
	r := hub.Record{
		Pos:     pos,
		Topics:  make([]string, len(w.topics)),
		Type:    string(w.typ),
		Data:    string(w.data),
		Retry:   time.Duration(w.retry),
		Private: w.flags&flagPrivate != 0,
		Time:    time.Unix(0, w.time),
	}
	if w.flags&flagPosID != 0 {
		r.ID = strconv.FormatUint(pos, 10)
	} else {
		r.ID = string(w.id)
	}
	for i, t := range w.topics {
		r.Topics[i] = string(t)
	}
	return r
}

// decode decodes the record stored at pos.
func decode(pos uint64, v []byte) (hub.Record, error) {
	var w view
	if err := w.parse(pos, v); err != nil {
		return hub.Record{}, err
	}
	return w.record(pos), nil
}

// posKey returns the 8-byte big-endian key of a position.
func posKey(pos uint64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), pos)
}

// topicKey appends the per-topic index key of (topic, pos) to buf:
// the topic, a NUL (which topics never contain), then the position, so
// one topic's entries are adjacent and in position order.
func appendTopicKey(buf []byte, topic string, pos uint64) []byte {
	buf = append(buf, topic...)
	buf = append(buf, 0)
	return binary.BigEndian.AppendUint64(buf, pos)
}
