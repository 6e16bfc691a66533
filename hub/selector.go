package hub

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/yosida95/uritemplate/v3"
)

// ErrInvalidSelector is wrapped by the errors of ParseSelector.
var ErrInvalidSelector = errors.New("hub: invalid topic selector")

// A Selector matches topics. It is read in one of two dialects, chosen
// by the endpoint that received it and never guessed from the string:
//
//   - Native (ParseSelector, the /events API): topics are "/"-separated,
//     non-empty segments. A "*" segment matches exactly one segment, and
//     a final "**" matches one or more: "chat/**" matches "chat/a" and
//     "chat/a/b" but not "chat". A selector without wildcards matches one
//     topic.
//   - Mercure (ParseMercureSelector, the /.well-known/mercure API, after
//     draft-dunglas-mercure-07): topics are opaque strings, IRIs as a
//     rule. "*" matches every topic; any selector matches the topic equal
//     to it; and a selector that is an RFC 6570 URI template with at least
//     one expression also matches the topics it could expand to.
//
// Both kinds match any topic, whichever endpoint published it. A
// Selector is a small value, safe to copy and to use from many
// goroutines. The zero value matches nothing.
type Selector struct {
	raw  string
	segs []string // native wildcards, split; nil otherwise
	// re is a Mercure URI template's, compiled once and shared (see
	// templates), or matchAll for Mercure's "*"; nil otherwise.
	re *regexp.Regexp
}

// matchAll stands for Mercure's "*" in Selector.re: it is never run.
var matchAll = new(regexp.Regexp)

// ParseSelector parses s. It refuses an empty selector, an empty segment,
// a "**" that is not the last segment, a segment that mixes "*" with other
// characters, invalid UTF-8 and any control character (C0, DEL and C1).
func ParseSelector(s string) (Selector, error) {
	if s == "" {
		return Selector{}, fmt.Errorf("%w: empty", ErrInvalidSelector)
	}
	wild := false
	segs := strings.Split(s, "/")
	for i, seg := range segs {
		switch {
		case seg == "":
			return Selector{}, fmt.Errorf("%w %q: empty segment", ErrInvalidSelector, s)
		case seg == "**" && i != len(segs)-1:
			return Selector{}, fmt.Errorf("%w %q: ** must be the last segment", ErrInvalidSelector, s)
		case seg == "*" || seg == "**":
			wild = true
		case strings.Contains(seg, "*"):
			return Selector{}, fmt.Errorf("%w %q: * must be a whole segment", ErrInvalidSelector, s)
		case !utf8.ValidString(seg):
			return Selector{}, fmt.Errorf("%w %q: invalid UTF-8", ErrInvalidSelector, s)
		case strings.ContainsFunc(seg, unicode.IsControl):
			return Selector{}, fmt.Errorf("%w %q: control character", ErrInvalidSelector, s)
		}
	}
	if !wild {
		segs = nil
	}
	return Selector{raw: s, segs: segs}, nil
}

// ValidTopic reports whether t is a topic that can be published to: a
// selector without wildcards.
func ValidTopic(t string) error {
	sel, err := ParseSelector(t)
	if err != nil {
		return err
	}
	if !sel.Exact() {
		return fmt.Errorf("%w %q: a topic has no wildcards", ErrInvalidSelector, t)
	}
	return nil
}

// ErrInvalidTopic is wrapped by the errors of ValidMercureTopic.
var ErrInvalidTopic = errors.New("hub: invalid topic")

// mercureAll is the Mercure selector that matches every topic.
const mercureAll = "*"

// ParseMercureSelector parses s as a Mercure selector (see Selector): "*",
// a URI template, or any other string, which matches only itself. It
// refuses what ValidMercureTopic refuses. A string that is not a valid
// URI template ("{" unbalanced) is an exact selector, as in Mercure.
// Templates are compiled once and cached, so that parsing the same one
// again costs a map lookup.
func ParseMercureSelector(s string) (Selector, error) {
	if err := ValidMercureTopic(s); err != nil {
		return Selector{}, fmt.Errorf("%w: %s", ErrInvalidSelector, trimTopicErr(err))
	}
	if s == mercureAll {
		return Selector{raw: s, re: matchAll}, nil
	}
	if !strings.Contains(s, "{") {
		return Selector{raw: s}, nil
	}
	return Selector{raw: s, re: templates.get(s)}, nil
}

// ValidMercureTopic reports whether t may be a topic or selector on the
// Mercure endpoint: a non-empty string of valid UTF-8 without control
// characters (C0, DEL and C1), which could break a stream or a log line.
// Nothing else is required of it; it need not be an IRI.
func ValidMercureTopic(t string) error {
	switch {
	case t == "":
		return fmt.Errorf("%w: empty", ErrInvalidTopic)
	case !utf8.ValidString(t):
		return fmt.Errorf("%w %q: invalid UTF-8", ErrInvalidTopic, t)
	case strings.ContainsFunc(t, unicode.IsControl):
		return fmt.Errorf("%w %q: control character", ErrInvalidTopic, t)
	}
	return nil
}

// trimTopicErr returns the text of an error of ValidMercureTopic without
// its sentinel's.
func trimTopicErr(err error) string {
	return strings.TrimPrefix(strings.TrimPrefix(err.Error(), ErrInvalidTopic.Error()), ": ")
}

// maxTemplates bounds the cache of compiled URI templates: when it is
// full, it is emptied, and the templates in use are compiled again as
// they are next parsed. A subscription keeps its own compiled copy.
const maxTemplates = 4096

// templates caches compiled Mercure URI templates, by their text.
var templates = templateCache{m: make(map[string]*regexp.Regexp)}

type templateCache struct {
	mu sync.Mutex // guards m
	m  map[string]*regexp.Regexp
}

// get returns the compiled template s, or nil when s is not a URI
// template with at least one expression.
func (c *templateCache) get(s string) *regexp.Regexp {
	c.mu.Lock()
	re, ok := c.m[s]
	c.mu.Unlock()
	if ok {
		return re
	}
	if t, err := uritemplate.New(s); err == nil && len(t.Varnames()) > 0 {
		re = t.Regexp()
	}
	c.mu.Lock()
	if len(c.m) >= maxTemplates {
		clear(c.m)
	}
	c.m[s] = re
	c.mu.Unlock()
	return re
}

// String returns the selector as parsed.
func (s Selector) String() string { return s.raw }

// Exact reports whether s matches exactly one topic, String().
func (s Selector) Exact() bool { return s.raw != "" && s.segs == nil && s.re == nil }

// Prefix returns a literal start of every topic s matches: the start of
// s before its first wildcard, ending in "/", for a native pattern; the
// text before the first expression for a URI template; "" for "*".
// Backends use it to find candidate topics in an index.
func (s Selector) Prefix() string {
	switch {
	case s.re == matchAll:
		return ""
	case s.re != nil:
		i := strings.IndexByte(s.raw, '{')
		return s.raw[:i]
	case s.segs == nil:
		return s.raw
	}
	var b strings.Builder
	for _, seg := range s.segs {
		if seg == "*" || seg == "**" {
			break
		}
		b.WriteString(seg)
		b.WriteByte('/')
	}
	return b.String()
}

// Match reports whether topic t matches s.
func (s Selector) Match(t string) bool {
	if s.segs == nil {
		switch {
		case t == s.raw:
			return s.raw != ""
		case s.re == matchAll:
			return true
		case s.re != nil:
			return s.re.MatchString(t)
		}
		return false
	}
	for i, seg := range s.segs {
		if seg == "**" {
			return t != "" // one or more segments remain
		}
		j := strings.IndexByte(t, '/')
		head := t
		if j < 0 {
			head, t = t, ""
		} else {
			head, t = t[:j], t[j+1:]
		}
		if head == "" || (seg != "*" && seg != head) {
			return false
		}
		if j < 0 {
			return i == len(s.segs)-1
		}
	}
	return false // topic has more segments than s
}

// MatchAny reports whether any topic of topics matches any of sels.
func MatchAny(sels []Selector, topics []string) bool {
	for _, t := range topics {
		for _, s := range sels {
			if s.Match(t) {
				return true
			}
		}
	}
	return false
}
