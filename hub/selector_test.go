package hub

import (
	"errors"
	"strings"
	"testing"
)

func TestParseSelector(t *testing.T) {
	tests := []struct {
		in     string
		ok     bool
		exact  bool
		prefix string
	}{
		{in: "a", ok: true, exact: true, prefix: "a"},
		{in: "chat/room-1", ok: true, exact: true, prefix: "chat/room-1"},
		{in: "a b/ünï ✓", ok: true, exact: true, prefix: "a b/ünï ✓"},
		{in: "a/**", ok: true, prefix: "a/"},
		{in: "**", ok: true, prefix: ""},
		{in: "*", ok: true, prefix: ""},
		{in: "*/a", ok: true, prefix: ""},
		{in: "a/*/c", ok: true, prefix: "a/"},
		{in: "a/b/*", ok: true, prefix: "a/b/"},
		{in: "a/*/**", ok: true, prefix: "a/"},
		{in: "*/**", ok: true, prefix: ""},

		{in: ""},
		{in: "/"},
		{in: "/a"},
		{in: "a/"},
		{in: "a//b"},
		{in: "**/a"},
		{in: "a/**/b"},
		{in: "a*"},
		{in: "*a"},
		{in: "a/b*c"},
		{in: "***"},
		{in: "a\nb"},
		{in: "a\rb"},
		{in: "a\x00b"},
		{in: "a\tb"},
		{in: "a\x7fb"},
		{in: "a/\x1b/b"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			sel, err := ParseSelector(tt.in)
			if !tt.ok {
				if err == nil {
					t.Fatalf("ParseSelector(%q) = %v, nil; want an error", tt.in, sel)
				}
				if !errors.Is(err, ErrInvalidSelector) {
					t.Errorf("ParseSelector(%q) error = %v; want it to wrap ErrInvalidSelector", tt.in, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseSelector(%q) error = %v; want nil", tt.in, err)
			}
			if got := sel.String(); got != tt.in {
				t.Errorf("String() = %q; want %q", got, tt.in)
			}
			if got := sel.Exact(); got != tt.exact {
				t.Errorf("Exact() = %v; want %v", got, tt.exact)
			}
			if got := sel.Prefix(); got != tt.prefix {
				t.Errorf("Prefix() = %q; want %q", got, tt.prefix)
			}
		})
	}
}

func TestSelectorMatch(t *testing.T) {
	tests := []struct {
		sel string
		yes []string
		no  []string
	}{
		{
			sel: "chat",
			yes: []string{"chat"},
			no:  []string{"", "cha", "chats", "chat/a", "a/chat"},
		},
		{
			sel: "chat/a",
			yes: []string{"chat/a"},
			no:  []string{"chat", "chat/a/b", "chat/ab", "chat/"},
		},
		{
			sel: "chat/**",
			yes: []string{"chat/a", "chat/a/b", "chat/a/b/c"},
			no:  []string{"chat", "chat/", "chats/a", "a/chat/b", ""},
		},
		{
			sel: "**",
			yes: []string{"a", "a/b", "a/b/c"},
			no:  []string{""},
		},
		{
			sel: "*",
			yes: []string{"a", "chat"},
			no:  []string{"", "a/b"},
		},
		{
			sel: "a/*/c",
			yes: []string{"a/b/c", "a/xyz/c"},
			no:  []string{"a/c", "a/b", "a/b/c/d", "a//c", "a/b/d", "x/b/c"},
		},
		{
			sel: "a/*",
			yes: []string{"a/b"},
			no:  []string{"a", "a/", "a/b/c"},
		},
		{
			sel: "*/b",
			yes: []string{"a/b", "x/b"},
			no:  []string{"b", "/b", "a/b/c", "a/c"},
		},
		{
			sel: "a/*/**",
			yes: []string{"a/b/c", "a/b/c/d"},
			no:  []string{"a", "a/b", "b/c/d"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.sel, func(t *testing.T) {
			sel, err := ParseSelector(tt.sel)
			if err != nil {
				t.Fatalf("ParseSelector(%q): %v", tt.sel, err)
			}
			for _, topic := range tt.yes {
				if !sel.Match(topic) {
					t.Errorf("%q.Match(%q) = false; want true", tt.sel, topic)
				}
			}
			for _, topic := range tt.no {
				if sel.Match(topic) {
					t.Errorf("%q.Match(%q) = true; want false", tt.sel, topic)
				}
			}
			// Prefix promises that every matched topic starts with it.
			for _, topic := range tt.yes {
				if p := sel.Prefix(); len(topic) < len(p) || topic[:len(p)] != p {
					t.Errorf("%q.Prefix() = %q, not a prefix of matched topic %q", tt.sel, p, topic)
				}
			}
		})
	}
}

func TestSelectorZeroValue(t *testing.T) {
	var sel Selector
	for _, topic := range []string{"", "a", "a/b"} {
		if sel.Match(topic) {
			t.Errorf("Selector{}.Match(%q) = true; want false", topic)
		}
	}
	if sel.Exact() {
		t.Errorf("Selector{}.Exact() = true; want false")
	}
	if got := sel.String(); got != "" {
		t.Errorf("Selector{}.String() = %q; want %q", got, "")
	}
	if MatchAny([]Selector{sel}, []string{"a"}) {
		t.Errorf("MatchAny([Selector{}], [a]) = true; want false")
	}
}

func TestValidTopic(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{"a", true},
		{"chat/room-1", true},
		{"a/b/c", true},
		{"", false},
		{"*", false},
		{"**", false},
		{"a/*", false},
		{"a/**", false},
		{"a//b", false},
		{"a/", false},
		{"a\nb", false},
		{"a*", false},
	}
	for _, tt := range tests {
		err := ValidTopic(tt.in)
		if tt.ok && err != nil {
			t.Errorf("ValidTopic(%q) = %v; want nil", tt.in, err)
		}
		if !tt.ok && !errors.Is(err, ErrInvalidSelector) {
			t.Errorf("ValidTopic(%q) = %v; want an error wrapping ErrInvalidSelector", tt.in, err)
		}
	}
}

func TestMatchAny(t *testing.T) {
	parse := func(ss ...string) []Selector {
		t.Helper()
		var sels []Selector
		for _, s := range ss {
			sel, err := ParseSelector(s)
			if err != nil {
				t.Fatalf("ParseSelector(%q): %v", s, err)
			}
			sels = append(sels, sel)
		}
		return sels
	}
	tests := []struct {
		name   string
		sels   []Selector
		topics []string
		want   bool
	}{
		{"no selectors", nil, []string{"a"}, false},
		{"no topics", parse("a"), nil, false},
		{"exact hit", parse("a"), []string{"a"}, true},
		{"exact miss", parse("a"), []string{"b"}, false},
		{"second selector", parse("x", "b/*"), []string{"b/c"}, true},
		{"second topic", parse("a/**"), []string{"b", "a/c"}, true},
		{"none of many", parse("a/*", "b"), []string{"a", "c", "a/b/c"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := MatchAny(tt.sels, tt.topics); got != tt.want {
				t.Errorf("MatchAny(%v, %q) = %v; want %v", tt.sels, tt.topics, got, tt.want)
			}
		})
	}
}

// TestParseSelectorNonASCIIControl checks that C1 controls and invalid
// UTF-8 are refused too, not only C0 controls and DEL.
func TestParseSelectorNonASCIIControl(t *testing.T) {
	for _, in := range []string{"a\u0085b", "a\u009bb", "a\xffb"} {
		if _, err := ParseSelector(in); err == nil {
			t.Errorf("ParseSelector(%q) = nil error; want ErrInvalidSelector", in)
		}
	}
}

func TestParseMercureSelector(t *testing.T) {
	tests := []struct {
		sel         string
		exact       bool
		prefix      string
		match, miss []string
	}{
		{sel: "*", prefix: "", match: []string{"*", "https://example.com/books/1", "chat/a", "x"}},
		{sel: "https://example.com/books/1", exact: true, prefix: "https://example.com/books/1",
			match: []string{"https://example.com/books/1"}, miss: []string{"https://example.com/books/10", "https://example.com/books/1/"}},
		{sel: "https://example.com/books/{id}", prefix: "https://example.com/books/",
			match: []string{"https://example.com/books/1", "https://example.com/books/%C3%A9", "https://example.com/books/{id}"},
			miss:  []string{"https://example.com/books/1/reviews", "https://example.com/authors/1", "http://example.com/books/1"}},
		{sel: "https://example.com/users/42/{?topic}", prefix: "https://example.com/users/42/",
			match: []string{"https://example.com/users/42/?topic=https%3A%2F%2Fexample.com%2Fbooks%2F1", "https://example.com/users/42/"},
			miss:  []string{"https://example.com/users/43/?topic=x"}},
		// Not a valid template: exact, as in Mercure.
		{sel: "/a/{b", exact: true, prefix: "/a/{b", match: []string{"/a/{b"}, miss: []string{"/a/x"}},
		// A native pattern is an opaque string here.
		{sel: "chat/*", exact: true, prefix: "chat/*", match: []string{"chat/*"}, miss: []string{"chat/a"}},
	}
	for _, tt := range tests {
		t.Run(tt.sel, func(t *testing.T) {
			s, err := ParseMercureSelector(tt.sel)
			if err != nil {
				t.Fatalf("ParseMercureSelector(%q): %v", tt.sel, err)
			}
			if s.Exact() != tt.exact || s.Prefix() != tt.prefix || s.String() != tt.sel {
				t.Errorf("Exact, Prefix, String = %v, %q, %q; want %v, %q, %q", s.Exact(), s.Prefix(), s.String(), tt.exact, tt.prefix, tt.sel)
			}
			for _, m := range tt.match {
				if !s.Match(m) {
					t.Errorf("Match(%q) = false; want true", m)
				}
				if !strings.HasPrefix(m, s.Prefix()) && m != tt.sel {
					t.Errorf("%q matches but lacks Prefix %q", m, s.Prefix())
				}
			}
			for _, m := range tt.miss {
				if s.Match(m) {
					t.Errorf("Match(%q) = true; want false", m)
				}
			}
		})
	}
	for _, bad := range []string{"", "a\nb", "a\x00", "x\u0085", "\xff"} {
		if _, err := ParseMercureSelector(bad); !errors.Is(err, ErrInvalidSelector) {
			t.Errorf("ParseMercureSelector(%q) = %v; want ErrInvalidSelector", bad, err)
		}
	}
	// The native dialect does not read Mercure's syntax: "*" there is a
	// one-segment pattern, and a template is refused or exact.
	n, _ := ParseSelector("*")
	if n.Match("a/b") {
		t.Error(`native "*" matches "a/b"`)
	}
}
