//go:build !linux

package loadgen

import "syscall"

// dialControl is nil: the system's bind chooses the local port.
var dialControl func(network, address string, rc syscall.RawConn) error
