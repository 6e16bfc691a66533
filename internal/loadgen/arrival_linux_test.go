package loadgen

import (
	"encoding/binary"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// arrivalTimesAvailable reports whether sockets here can give the
// arrival time of what they read.
func arrivalTimesAvailable(t *testing.T) bool {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS_NEW, 1) == nil
}

func TestArrivalTime(t *testing.T) {
	ts := make([]byte, 16) // 1s 2ns
	binary.NativeEndian.PutUint64(ts, 1)
	binary.NativeEndian.PutUint64(ts[8:], 2)
	other := unix.CmsgSpace(4)
	tests := []struct {
		name string
		oob  []byte
		want int64
	}{
		{"none", nil, 0},
		{"timestamp", cmsg(unix.SOL_SOCKET, unix.SO_TIMESTAMPNS_NEW, ts), 1_000_000_002},
		{"after another", append(cmsg(unix.SOL_SOCKET, unix.SCM_RIGHTS, []byte{1, 2, 3, 4})[:other], cmsg(unix.SOL_SOCKET, unix.SO_TIMESTAMPNS_NEW, ts)...), 1_000_000_002},
		{"old format ignored", cmsg(unix.SOL_SOCKET, unix.SO_TIMESTAMPNS_OLD, ts), 0},
		{"truncated", cmsg(unix.SOL_SOCKET, unix.SO_TIMESTAMPNS_NEW, ts)[:unix.CmsgLen(8)], 0},
	}
	for _, tt := range tests {
		if got := arrivalTime(tt.oob); got != tt.want {
			t.Errorf("%s: arrivalTime = %d; want %d", tt.name, got, tt.want)
		}
	}
}

// cmsg builds one control message.
func cmsg(level, typ int, data []byte) []byte {
	b := make([]byte, unix.CmsgSpace(len(data)))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = int32(level), int32(typ)
	h.SetLen(unix.CmsgLen(len(data)))
	copy(b[unix.CmsgLen(0):], data)
	return b
}
