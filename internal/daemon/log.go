package daemon

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
)

// logFlags are the flags that choose how "ssehub serve" logs.
type logFlags struct {
	format string // "text" or "json"
	level  string // "debug", "info", "warn" or "error"
}

// logLevels maps the words --log-level takes to their slog levels.
var logLevels = map[string]slog.Level{
	"debug": slog.LevelDebug,
	"info":  slog.LevelInfo,
	"warn":  slog.LevelWarn,
	"error": slog.LevelError,
}

// register adds --log-format and --log-level to fs, with their defaults.
func (f *logFlags) register(fs *flag.FlagSet) {
	f.format, f.level = "text", "info"
	fs.Var(&wordValue{p: &f.format, words: []string{"text", "json"}}, "log-format",
		"write log lines to stderr in this `format`: text (key=value pairs) or json (one object a line)")
	fs.Var(&wordValue{p: &f.level, words: []string{"debug", "info", "warn", "error"}}, "log-level",
		"least `level` logged: debug (also one line per publish and per subscription start and end), info, warn or error")
}

// logger returns the logger f describes, writing to w.
func (f *logFlags) logger(w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: logLevels[f.level]}
	if f.format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// A wordValue is a flag.Value that takes one of a few words, in any case.
// The zero value is not usable.
type wordValue struct {
	p     *string
	words []string // the words allowed, lower case
}

func (v *wordValue) String() string {
	if v == nil || v.p == nil {
		return ""
	}
	return *v.p
}

func (v *wordValue) Set(s string) error {
	w := strings.ToLower(strings.TrimSpace(s))
	if !slices.Contains(v.words, w) {
		return fmt.Errorf("want %s", orList(v.words))
	}
	*v.p = w
	return nil
}

// orList returns "a, b or c".
func orList(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}
