package hub

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ErrInvalidSelector is wrapped by the errors of ParseSelector.
var ErrInvalidSelector = errors.New("hub: invalid topic selector")

// A Selector matches topics. Topics are "/"-separated, non-empty
// segments. In a selector, a "*" segment matches exactly one segment, and a
// final "**" matches one or more: "chat/**" matches "chat/a" and
// "chat/a/b" but not "chat". A selector without wildcards matches one
// topic. The zero value matches nothing; use ParseSelector.
type Selector struct {
	raw  string
	segs []string // nil for an exact selector
}

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

// String returns the selector as parsed.
func (s Selector) String() string { return s.raw }

// Exact reports whether s matches exactly one topic, String().
func (s Selector) Exact() bool { return s.raw != "" && s.segs == nil }

// Prefix returns the literal start of s before its first wildcard, ending
// in "/" when s has a wildcard: every topic s matches starts with it.
// Backends use it to find candidate topics in an index.
func (s Selector) Prefix() string {
	if s.segs == nil {
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
		return s.raw != "" && t == s.raw
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
