//go:build !linux

package loadgen

import "errors"

// epollAvailable says whether IOEpoll can be used.
const epollAvailable = false

func newEpoll(*run) (ioModel, error) { return nil, errors.New("loadgen: epoll I/O needs Linux") }
