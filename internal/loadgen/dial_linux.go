package loadgen

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// dialControl lets connect, not bind, choose the local port of a socket
// bound to a source address, so that a port is needed per destination
// rather than per address.
func dialControl(network, address string, rc syscall.RawConn) error {
	return rc.Control(func(fd uintptr) {
		unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
	})
}
