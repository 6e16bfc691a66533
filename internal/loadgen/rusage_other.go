//go:build !unix

package loadgen

import "time"

func selfCPU() time.Duration { return 0 }

func maxRSS() int64 { return 0 }

// RaiseOpenFiles does nothing where there is no such limit, and reports
// the limit as unknown (0).
func RaiseOpenFiles() (uint64, error) { return 0, nil }

func openFileLimit() uint64 { return 0 }
