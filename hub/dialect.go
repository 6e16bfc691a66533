package hub

import (
	"strconv"
	"strings"
)

// A dialect is what one front-end of the hub makes of the core's terms:
// the native API at /events, or Mercure at /.well-known/mercure. The
// core (the Log, the fan-out, replay) is the same for both, and a record
// is dialect-free; a dialect says how a subscription's selectors read,
// which private records a subscriber may receive, and how IDs are shown.
// A dialect belongs to an endpoint, never to a string.
type dialect struct {
	name string
	// slot indexes the dialect's encoding of a record among those the
	// fan-out makes (see frames).
	slot int
	// parse reads a selector.
	parse func(string) (Selector, error)
	// validTopic checks a topic to publish to.
	validTopic func(string) error
	// anyTopicGrant is the authorisation rule for private records: when
	// false (native), the subscriber's grant must allow a topic of the
	// record that its subscription also selects; when true (Mercure), it
	// must allow any topic of the record, canonical or alternate, which
	// is how Mercure applications build per-user access lists.
	anyTopicGrant bool
	// idPrefix is shown before an ID the Log assigned (a position):
	// "urn:ssehub:" makes it an IRI, as Mercure wants IDs to be.
	idPrefix string
	// earliest, if not empty, is the cursor that asks for all the
	// history held.
	earliest string
	// cursorHeader: a subscription given a cursor is answered with a
	// Last-Event-ID header, the ID of the position its replay starts
	// after (Mercure).
	cursorHeader bool
}

// numDialects is how many dialects there are: the fan-out encodes a
// record at most once for each.
const numDialects = 2

var (
	nativeDialect  = &dialect{name: "native", slot: 0, parse: ParseSelector, validTopic: ValidTopic}
	mercureDialect = &dialect{name: "mercure", slot: 1, parse: ParseMercureSelector, validTopic: ValidMercureTopic, anyTopicGrant: true, idPrefix: positionIRI, earliest: "earliest", cursorHeader: true}
)

// positionIRI begins the IRI form of a position, as the Mercure endpoint
// shows the IDs the Log assigns: "urn:ssehub:42" is position 42. Both
// forms are accepted as a Last-Event-ID on both endpoints, and no
// publisher may give an ID beginning with it.
const positionIRI = "urn:ssehub:"

// showID returns the ID of a record as d shows it.
func (d *dialect) showID(id string) string {
	if d.idPrefix == "" || !allDigits(id) {
		return id
	}
	return d.idPrefix + id
}

// showPos returns position p as an ID, as d shows it.
func (d *dialect) showPos(p uint64) string {
	return d.idPrefix + strconv.FormatUint(p, 10)
}

// cursorPos reads id as a position, in either form: digits, or
// positionIRI and digits.
func cursorPos(id string) (uint64, bool) {
	return parsePos(strings.TrimPrefix(id, positionIRI))
}

// mayReceive reports whether s may receive rec: any subscriber may
// receive a public record; a private one goes only to a subscriber with
// a grant, under the rule of its dialect (see dialect.anyTopicGrant).
func (s *subscriber) mayReceive(rec *Record) bool {
	if !rec.Private {
		return true
	}
	if s.grant == nil {
		return false
	}
	if s.d.anyTopicGrant {
		return MatchAny(s.grant.Subscribe, rec.Topics)
	}
	for _, t := range rec.Topics {
		topic := []string{t}
		if MatchAny(s.sels, topic) && MatchAny(s.grant.Subscribe, topic) {
			return true
		}
	}
	return false
}
