package natsstore

// DropCache empties the Store's cache of decoded batches, so that a
// benchmark measures reads from the server.
func (s *Store) DropCache() { s.cache.drop() }

// NoCache stops the Store from caching batches.
func (s *Store) NoCache() {
	s.cache.mu.Lock()
	defer s.cache.mu.Unlock()
	s.cache.max = 0
}
