package hub

import (
	"context"
	"errors"
	"time"
)

// Errors of the Log contract. Backends return them, wrapped or not;
// callers compare with errors.Is.
var (
	// ErrDuplicateID is returned by Append when an event's ID is already in
	// the Log. Nothing of that batch is appended.
	ErrDuplicateID = errors.New("hub: duplicate event id")
	// ErrNotFound is returned by Lookup for an ID the Log does not hold,
	// because it never did or because retention removed it.
	ErrNotFound = errors.New("hub: event id not found")
	// ErrLogClosed is returned by a Log's methods after Close.
	ErrLogClosed = errors.New("hub: log closed")
	// ErrTrimmed is returned by Read when records after the position it
	// was asked to read after, which it had not reached yet, are no longer
	// held: Trim removed them, before the Read or during it.
	ErrTrimmed = errors.New("hub: records trimmed")
)

// ReservedID reports whether id has the form of the IDs Append assigns,
// the decimal position: one or more ASCII digits. A publisher may not
// give such an ID, so it never collides with an assigned one; a Log
// refuses it with ErrDuplicateID.
func ReservedID(id string) bool { return allDigits(id) }

// A Record is one event as the Log stores it.
type Record struct {
	// Pos is the record's global position, assigned by Append: positions
	// start at 1 and increase by one per record across all topics, so one
	// position resumes a subscription to any set of topics.
	Pos uint64
	// ID is the event ID sent to subscribers. Append assigns the decimal
	// Pos when it is empty; IDs made only of ASCII digits are reserved for
	// that, so a publisher's ID never collides with an assigned one.
	ID string
	// Topics are the topics the event is published to; at least one.
	Topics []string
	// Type is the event type; empty means "message".
	Type string
	// Data is the payload.
	Data string
	// Retry, when positive, is sent to subscribers as the event's retry
	// field.
	Retry time.Duration
	// Private events go only to subscribers authorised for one of the
	// topics (enforced once auth exists).
	Private bool
	// Time is when Append stored the record; retention by age uses it.
	Time time.Time
}

// Retention bounds the history a Log keeps. A zero field means no bound
// of that kind; the daemon never passes a zero Retention unless told to.
type Retention struct {
	MaxCount int           // keep at most this many records, the newest
	MaxAge   time.Duration // drop records stored longer ago than this
}

// A Log is the hub's history and its bus: publishers append to it, and
// every hub node tails it. Implementations live in store/ and pass the
// contract suite in hub/logtest. A Log is safe for concurrent use.
//
// # What the methods guarantee one another
//
// A subscriber that resumes is served in two parts that must meet
// exactly: the hub registers it for live records, asks Bounds for last,
// replays with Read the matching records up to last, and lets the live
// queue deliver only the records after last. Nothing is lost or repeated
// only if the methods agree on which records exist:
//
//   - Bounds then Read: once Bounds has returned last, a Read that starts
//     afterwards delivers every held record at or below last that matches
//     its selectors. A backend that makes a record visible in steps (the
//     record, then an index) must not let Bounds report its position
//     before the last step.
//   - Append then everything: once Append has returned, Bounds reports a
//     last at or beyond the batch's positions, Read delivers its records,
//     Lookup finds their IDs, and every Tail will deliver them.
//   - Tail and Bounds: Tail delivers every record that Bounds has reported
//     or ever will, in position order, exactly once (but see Tail on
//     records trimmed before it reached them). It may deliver a record
//     some time after Bounds first reported it, but never before: a
//     Bounds call that begins after Tail handed a record to fn reports a
//     last at or beyond it. Otherwise a subscriber registering meanwhile
//     would get the record neither from the fan-out, which has passed it,
//     nor from its replay, which stops at last.
//   - Lookup may find an ID before Bounds reports its position (a
//     concurrent Append); the position it returns never changes, and the
//     record at it is one that Read and Tail deliver once Bounds reports it.
//
// Positions are never reused, and a record never changes once appended.
type Log interface {
	// Append stores recs durably and in order, as one batch of
	// consecutive positions: it assigns each record's Pos and Time, and
	// its ID when empty, and returns only once all of them are durable.
	// It returns an error wrapping ErrDuplicateID when an ID is already
	// taken, also within the batch, or is made only of ASCII digits (those
	// are reserved for assigned IDs). When Append returns an error,
	// nothing of recs was appended, with one exception: a Log on another
	// machine (Redis, NATS) that loses its connection, or whose ctx ends,
	// while the batch is in flight cannot know whether the server stored
	// it, and the batch is then appended whole or not at all. A caller
	// that retries with publisher IDs learns which from ErrDuplicateID.
	// Concurrent Appends may be committed together. Append keeps no
	// reference to recs.
	Append(ctx context.Context, recs []Record) error

	// Read calls fn, in position order, for each record with Pos > after
	// that has a topic matching one of sels, until fn returns false or the
	// records held run out. Records appended during Read may or may not be
	// seen; every record at or below the last position a Bounds call that
	// returned before Read began reported is (see "What the methods
	// guarantee one another"). Backends may use sels to avoid scanning
	// other topics, and must not hold a transaction across calls of fn,
	// which may write to the network. fn may keep the records but must
	// not modify them. Read returns ctx's error when ctx ends.
	//
	// Read never skips a record silently: when records after after that
	// it has not yet reached are gone (the oldest record held is past
	// them), it returns an error wrapping ErrTrimmed, having called fn for
	// the records before them. It may also do so when only records of
	// other topics were removed, since it cannot tell. To read whatever is
	// held, read after Bounds' first-1.
	Read(ctx context.Context, after uint64, sels []Selector, fn func(*Record) bool) error

	// Tail calls fn, in position order and without gaps, with the records
	// appended after position after, in non-empty batches as they become
	// available, until ctx is done (then it returns ctx's error) or fn
	// returns an error (then it returns that). It is the bus: every record
	// reaches fn exactly once. The one exception is a Tail so far behind
	// that Trim removed its next records: it goes on from the oldest
	// record held.
	Tail(ctx context.Context, after uint64, fn func([]Record) error) error

	// Lookup returns the position of the record with the given ID, or an
	// error wrapping ErrNotFound.
	Lookup(ctx context.Context, id string) (uint64, error)

	// Bounds returns the positions of the oldest and newest records held,
	// or 0, last when the Log holds none (last is the newest position ever
	// assigned, 0 for a new Log). A record counts as assigned once it is
	// readable, by Read as by Tail: see "What the methods guarantee one
	// another". last never decreases.
	Bounds(ctx context.Context) (first, last uint64, err error)

	// Trim removes the oldest records beyond r and returns how many it
	// removed.
	Trim(ctx context.Context, r Retention) (int, error)

	// Close releases the Log. Tail calls in progress return ErrLogClosed.
	// Close is idempotent.
	Close() error
}
