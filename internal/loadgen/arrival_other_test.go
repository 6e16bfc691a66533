//go:build !linux

package loadgen

import "testing"

// arrivalTimesAvailable reports false: only the Linux epoll I/O times
// arrivals.
func arrivalTimesAvailable(*testing.T) bool { return false }
