// Package boltstore is a hub.Log kept in one bbolt file: the hub's
// embedded, durable default.
//
//	s, err := boltstore.Open(filepath.Join(dataDir, "ssehub.db"), nil)
//	if err != nil {
//		return err
//	}
//	defer s.Close()
//	h := hub.New(s, nil) // the Hub does not close s
//
// # Group commit
//
// Append does not write itself. It queues its records and waits; the
// Store's committer goroutine takes every queued Append (up to
// Options.MaxBatch records) into one bbolt transaction, so that many
// concurrent publishers share one fsync instead of paying one each. Each
// Append is checked on its own inside that transaction: one whose ID is
// taken gets hub.ErrDuplicateID and uses no position, and the others
// commit. Stats reports how many Appends the commits carried.
//
// # Layout
//
// The file holds four buckets:
//
//	meta    "format" → 1; "last" → the newest position ever assigned
//	        (8 bytes, big-endian), kept through Trim so positions are
//	        never reused; "indexed" → the position up to which the
//	        topics bucket is complete
//	recs    position (8 bytes, big-endian) → the record, encoded compactly
//	        with a leading version byte (see codec.go)
//	topics  topic, NUL, position → empty: the per-topic index, one entry
//	        per record and topic, so a topic's entries are adjacent and in
//	        position order
//	ids     publisher's ID → position: the ID index for Lookup and
//	        duplicate detection; IDs assigned by Append are the decimal
//	        position and need no entry
//
// The index entries of the newest records, up to 4096, are held in
// memory and written to the topics bucket together, sorted, by the commit
// that reaches that number: a commit of events on many topics then
// rewrites no index page, and each index page is rewritten once per 4096
// entries rather than once per commit. Open rebuilds the memory part from
// the records after "indexed" (see index.go).
//
// Read with exact selectors walks only their topics' index entries, on
// disk and in memory; patterns list the topics under their
// Selector.Prefix; the topics are merged in position order, and a record
// on several of them is delivered once. Trim removes the oldest records
// with their index entries, a batch per transaction.
//
// A Store holds the file's lock while open; a second Store or process
// cannot open the same file until Close.
package boltstore
