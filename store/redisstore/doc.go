// Package redisstore is a hub.Log on Redis 7 Streams: the shared history
// and bus of a cluster of hub nodes.
package redisstore
