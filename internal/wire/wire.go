// Package wire reads the stores' compact binary records: unsigned and
// signed varints and length-prefixed byte strings, as encoding/binary
// writes them (AppendUvarint, AppendVarint). store/boltstore and
// store/natsstore encode their records with it.
package wire

import (
	"encoding/binary"
	"errors"
)

// ErrShort is the error of a Decoder that ran out of bytes, or read a
// varint that does not fit in 64 bits.
var ErrShort = errors.New("truncated")

// A Decoder reads from a byte slice and remembers its first error: after
// one, every read returns the zero value, so a caller checks Err once at
// the end.
type Decoder struct {
	b   []byte
	err error
}

// NewDecoder returns a Decoder of b.
func NewDecoder(b []byte) *Decoder { return &Decoder{b: b} }

// Err returns the first error met, or nil.
func (d *Decoder) Err() error { return d.err }

// Fail records err as the Decoder's error, unless it has one already.
func (d *Decoder) Fail(err error) {
	if d.err == nil {
		d.err = err
	}
}

// Rest returns the bytes not read yet.
func (d *Decoder) Rest() []byte { return d.b }

// Byte reads one byte.
func (d *Decoder) Byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.err = ErrShort
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

// Uvarint reads an unsigned varint.
func (d *Decoder) Uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	x, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = ErrShort
		return 0
	}
	d.b = d.b[n:]
	return x
}

// Varint reads a signed varint.
func (d *Decoder) Varint() int64 {
	if d.err != nil {
		return 0
	}
	x, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = ErrShort
		return 0
	}
	d.b = d.b[n:]
	return x
}

// Count reads the number of items that follow, each at least a byte
// long: a count larger than the bytes left is ErrShort, so that a
// corrupt count cannot make the caller allocate for it.
func (d *Decoder) Count() uint64 {
	n := d.Uvarint()
	if d.err == nil && n > uint64(len(d.b)) {
		d.err = ErrShort
		return 0
	}
	return n
}

// Bytes reads a length-prefixed byte string. The result shares the
// Decoder's slice, and its capacity ends with it.
func (d *Decoder) Bytes() []byte {
	n := d.Uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = ErrShort
		return nil
	}
	b := d.b[:n:n]
	d.b = d.b[n:]
	return b
}

// Text reads a length-prefixed byte string as a string (a copy).
func (d *Decoder) Text() string { return string(d.Bytes()) }
