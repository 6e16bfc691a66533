//go:build unix

package hub

import "syscall"

// nonblockingIO is true where an ioBuffer can write to and read from a
// socket without blocking.
const nonblockingIO = true

// write is the RawConn.Write callback of tryWrite: one write(2) on the
// non-blocking socket. It never asks to wait: a full socket buffer
// leaves b.n short of len(b.p), which the shard hands to a goroutine.
func (b *ioBuffer) write(fd uintptr) bool {
	for {
		n, err := syscall.Write(int(fd), b.p)
		switch err {
		case nil:
			b.n = n
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			b.n = 0
		default:
			b.err = err
		}
		return true
	}
}

// read is the RawConn.Read callback of readGone: one read(2) on the
// non-blocking socket. It sets b.n to what was read, 0 when nothing was
// there, and -1 at end of file; and b.err when the connection failed.
func (b *ioBuffer) read(fd uintptr) bool {
	for {
		n, err := syscall.Read(int(fd), b.p)
		switch err {
		case nil:
			b.n = n
			if n == 0 {
				b.n = -1
			}
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			b.n = 0
		default:
			b.err = err
		}
		return true
	}
}
