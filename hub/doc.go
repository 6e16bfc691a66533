// Package hub is the ssehub hub: topics, subscriptions, fan-out and replay
// over a Log, served as an http.Handler.
//
// The Log interface is defined here, where it is consumed; its backends
// live in store/ (memstore, boltstore) and pass the contract suite in
// hub/logtest.
package hub
