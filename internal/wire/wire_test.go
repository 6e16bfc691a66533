package wire_test

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/ssehub/ssehub/internal/wire"
)

func TestDecoder(t *testing.T) {
	var b []byte
	b = append(b, 7)
	b = binary.AppendUvarint(b, 300)
	b = binary.AppendVarint(b, -5)
	b = binary.AppendUvarint(b, 2) // a count of 2 strings
	b = binary.AppendUvarint(b, 3)
	b = append(b, "abc"...)
	b = binary.AppendUvarint(b, 0)
	b = append(b, "rest"...)
	d := wire.NewDecoder(b)
	if got := d.Byte(); got != 7 {
		t.Errorf("Byte = %d; want 7", got)
	}
	if got := d.Uvarint(); got != 300 {
		t.Errorf("Uvarint = %d; want 300", got)
	}
	if got := d.Varint(); got != -5 {
		t.Errorf("Varint = %d; want -5", got)
	}
	if got := d.Count(); got != 2 {
		t.Errorf("Count = %d; want 2", got)
	}
	bs := d.Bytes()
	if string(bs) != "abc" || cap(bs) != 3 {
		t.Errorf("Bytes = %q (cap %d); want abc (cap 3)", bs, cap(bs))
	}
	if got := d.Text(); got != "" {
		t.Errorf("Text = %q; want empty", got)
	}
	if got := string(d.Rest()); got != "rest" || d.Err() != nil {
		t.Errorf("Rest = %q, Err = %v; want rest, nil", got, d.Err())
	}
}

func TestDecoderShort(t *testing.T) {
	for name, read := range map[string]func(*wire.Decoder){
		"byte":          func(d *wire.Decoder) { d.Byte() },
		"uvarint":       func(d *wire.Decoder) { d.Uvarint() },
		"varint":        func(d *wire.Decoder) { d.Varint() },
		"bytes":         func(d *wire.Decoder) { d.Bytes() },
		"count too big": func(d *wire.Decoder) { d.Count() },
	} {
		t.Run(name, func(t *testing.T) {
			d := wire.NewDecoder([]byte{0x80}) // a varint cut short, or a length of 0x80 with nothing after
			if name == "count too big" || name == "bytes" {
				d = wire.NewDecoder([]byte{5, 'a'})
			}
			if name == "byte" {
				d = wire.NewDecoder(nil)
			}
			read(d)
			if !errors.Is(d.Err(), wire.ErrShort) {
				t.Errorf("Err = %v; want ErrShort", d.Err())
			}
			if d.Uvarint() != 0 || d.Text() != "" {
				t.Error("a read after the error returned a value")
			}
		})
	}
	d := wire.NewDecoder(nil)
	first := errors.New("first")
	d.Fail(first)
	d.Fail(errors.New("second"))
	if d.Err() != first {
		t.Errorf("Err = %v; want the first error given to Fail", d.Err())
	}
}
