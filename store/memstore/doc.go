// Package memstore is a hub.Log held in memory: for tests, and for users
// who accept losing history on restart. It is safe for concurrent use.
//
//	s := memstore.New()
//	defer s.Close()
//	h := hub.New(s, nil) // the Hub does not close s
//
// It passes the contract suite in hub/logtest, and is the reference for
// what a backend does: dense positions from 1, assigned IDs that are the
// decimal position (an ID of digits from a publisher is refused with
// hub.ErrDuplicateID, as it could collide with one), duplicate IDs
// refused per batch, and Tail woken by each Append.
package memstore
