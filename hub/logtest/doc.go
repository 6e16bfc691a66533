// Package logtest is the contract suite that every hub.Log backend passes.
//
// A backend joins it with one test function:
//
//	func TestLog(t *testing.T) {
//		logtest.Run(t, func(t *testing.T) hub.Log { return memstore.New() })
//	}
//
// A durable backend, one that keeps its records across Close and a new
// Open on the same directory, uses RunDurable instead, which runs Run and
// then the reopen checks:
//
//	func TestLog(t *testing.T) {
//		logtest.RunDurable(t, func(t *testing.T, dir string) hub.Log {
//			s, err := boltstore.Open(filepath.Join(dir, "log.db"), &boltstore.Options{NoSync: true})
//			if err != nil {
//				t.Fatal(err)
//			}
//			return s
//		})
//	}
//
// The suite checks the promises written in hub/log.go: dense global
// positions, assigned and publisher IDs, duplicate detection, Read with
// exact and pattern selectors, Tail as a gap-free bus under concurrent
// appenders, Lookup, Bounds, Trim by count and by age, Read reporting
// with ErrTrimmed the records a Trim removed before it reached them (also
// during the Read), and ErrLogClosed after Close. It also checks two
// things a Log user relies on that hub/log.go implies: Append keeps no
// reference to the caller's slices, and the records passed to Read's and
// Tail's fn may be retained.
//
// Under concurrent appenders it checks what Bounds, Read and Tail
// guarantee one another (hub/log.go): a Read that starts after Bounds
// returned last delivers every matching record up to last, read right
// after each commit becomes visible (ReadAfterBounds); an Append's
// records are visible everywhere once it returns (AppendVisible); and
// Tail never hands fn a record Bounds does not report yet
// (TailWithinBounds). Then HubResume runs a hub.Hub over the Log, over
// HTTP/1.1 and HTTP/2, and resumes 300 subscriptions (exact, pattern and
// several selectors) a few events behind the newest while publishers
// post without pause: every resumption must get every matching event
// after its Last-Event-ID, none missing and none twice. A failure names
// the subscription and the first ID missing, repeated or out of place.
//
// Trim by age is checked in real time: the suite waits a quarter of a
// second between two appends and derives MaxAge from the Time values the
// backend stored, so a backend whose clock is not the test's (a remote
// server) passes as long as it keeps time at the usual rate.
//
// Run it with the race detector; it takes about ten seconds for an
// in-process backend.
package logtest
