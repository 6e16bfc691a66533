package daemon

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/ssehub/ssehub/eventsource"
	"github.com/ssehub/ssehub/sse"
)

// listenBinaryUsage is the part of listen's usage about binary events.
const listenBinaryUsage = `Binary events (see docs/BINARY.md) are shown by their media type and size,
not their base64. With --out DIR, each one's bytes are written to a file in
DIR, which is created if missing, named after the event's ID: letters,
digits, '-', '_' and '.' (not first) are kept, every other byte becomes
%XX (its hex, upper case), so that distinct IDs give distinct names and no
name leaves DIR; an ID of more than 200 bytes is cut to 180 and ends in
'-' and 16 hex digits of its SHA-256; an event without an ID is written to
=noid-N, N counting them from 1. A file of the same name is replaced, as
a replayed event brings the same bytes: each file is written under a
temporary name and renamed, so no file is ever half written. A binary
event that cannot be decoded is reported and skipped.

With --json, a binary event's line has "binary":true, "media", "encoding"
and "size" (the payload's bytes) in place of "data", and "file" (the path
written) with --out, or "error" when it cannot be decoded. Use --out for
the bytes.
`

// maxListenBinaryEvent is the largest event listen --out holds by
// default: the base64 of the largest payload sse decodes, with room for
// the first line.
const maxListenBinaryEvent = sse.MaxBinaryBytes/3*4 + 4<<10

// An outDir writes the payloads of binary events to files in a directory
// (listen --out). It is not safe for concurrent use: listen's loop owns
// it. Close releases the directory.
type outDir struct {
	root *os.Root
	dir  string
	noID int // events written without an ID
}

// openOutDir opens dir for --out, creating it if missing, and refuses a
// path that exists and is not a directory.
func openOutDir(dir string) (*outDir, error) {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("--out: %w", err)
		}
	case err != nil:
		return nil, fmt.Errorf("--out: %w", err)
	case !fi.IsDir():
		return nil, fmt.Errorf("--out: %s exists and is not a directory", dir)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("--out: %w", err)
	}
	return &outDir{root: root, dir: dir}, nil
}

// Close releases the directory.
func (o *outDir) Close() error { return o.root.Close() }

// write writes b to the file named after id, replacing any, and returns
// its path. The bytes go to a temporary file first, renamed when
// complete; the os.Root keeps every step inside the directory, and the
// rename replaces a symbolic link of that name rather than follow it.
func (o *outDir) write(id string, b []byte) (string, error) {
	name := idFileName(id)
	if name == "" {
		o.noID++
		name = "=noid-" + strconv.Itoa(o.noID)
	}
	tmp := ".tmp-" + name
	f, err := o.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return "", fmt.Errorf("--out: %w", err)
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = o.root.Rename(tmp, name)
	}
	if err != nil {
		o.root.Remove(tmp)
		return "", fmt.Errorf("--out: write %s: %w", name, err)
	}
	return filepath.Join(o.dir, name), nil
}

// Bounds of a file name made from an event ID.
const (
	maxIDName = 200
	cutIDName = 180
)

// idFileName returns the file name of the payload of the event with ID
// id, or "" for an empty ID: see listenBinaryUsage. The name never
// contains a path separator, never starts with '.', and is at most
// maxIDName bytes.
func idFileName(id string) string {
	const hexDigits = "0123456789ABCDEF"
	b := make([]byte, 0, len(id))
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.' && i > 0:
			b = append(b, c)
		default:
			b = append(b, '%', hexDigits[c>>4], hexDigits[c&15])
		}
	}
	if len(b) <= maxIDName {
		return string(b)
	}
	cut := cutIDName
	for i := cut - 2; i < cut; i++ {
		if b[i] == '%' { // do not split an escape
			cut = i
		}
	}
	sum := sha256.Sum256([]byte(id))
	return string(b[:cut]) + "-" + hex.EncodeToString(sum[:8])
}

// A binaryView is what listen shows of a binary event.
type binaryView struct {
	header sse.BinaryHeader // zero when the first line is malformed
	file   string           // written with --out
	err    error            // the event could not be decoded, or not written
}

// viewBinary decodes ev, a binary event, and writes its payload to out
// when not nil. A write error is returned as fatal; a malformed event is
// in the view.
func viewBinary(ev eventsource.Event, out *outDir) (binaryView, error) {
	var v binaryView
	v.header, _, v.err = sse.ParseBinaryHeader(ev.Data)
	if v.err != nil || out == nil {
		return v, nil
	}
	b, err := ev.Bytes()
	if err != nil {
		v.err = err
		return v, nil
	}
	v.file, err = out.write(ev.LastEventID, b)
	return v, err
}
