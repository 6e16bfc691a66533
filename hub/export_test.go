package hub

import "time"

// SetNodeTiming sets the timing of Mercure's active subscriptions for
// the Hubs made afterwards, and returns a func that restores it. Tests
// that call it must not run in parallel with others that use them.
func SetNodeTiming(heartbeat, deadAfter, grace time.Duration) (restore func()) {
	h, d, g := nodeHeartbeat, nodeDeadAfter, syncGrace
	nodeHeartbeat, nodeDeadAfter, syncGrace = heartbeat, deadAfter, grace
	return func() { nodeHeartbeat, nodeDeadAfter, syncGrace = h, d, g }
}
