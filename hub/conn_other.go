//go:build !unix

package hub

// nonblockingIO is false where an ioBuffer cannot write to or read from
// a socket without blocking: every write to a taken-over connection is
// then made by a goroutine, and idle connections are not checked.
const nonblockingIO = false

func (b *ioBuffer) write(uintptr) bool { return true }
func (b *ioBuffer) read(uintptr) bool  { return true }
