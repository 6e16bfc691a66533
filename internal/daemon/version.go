package daemon

import (
	"context"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
)

const versionUsage = `Usage: ssehub version

Prints the version of ssehub: the module version and the VCS revision it
was built from, as the Go toolchain recorded them, then the Go version and
platform. "ssehub --version" does the same.

A binary built by "go install ...@version" has a module version; one built
by "go build" in a git clone has a pseudo-version and the revision (with
"modified" when the tree had changes). "go run", and builds with
-buildvcs=false or outside a clone, record neither: the version is then
"(devel)" and the revision "unknown revision".
`

func runVersion(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), versionUsage) }
	pos, code, ok := parseFlags(fs, args, stdout, stderr)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		fmt.Fprintf(stderr, "ssehub version: unexpected argument %q (run 'ssehub version -h')\n", pos[0])
		return exitUsage
	}
	fmt.Fprintln(stdout, versionLine(debug.ReadBuildInfo()))
	return exitOK
}

// versionLine returns the line "ssehub version" prints, from the build
// information bi (ok false: there is none):
//
//	ssehub v1.2.3 (revision 0123456789abcdef0123456789abcdef01234567, 2026-01-02T03:04:05Z) go1.26.0 linux/amd64
//	ssehub (devel) (unknown revision) go1.26.0 linux/amd64
func versionLine(bi *debug.BuildInfo, ok bool) string {
	st := readStamp(bi, ok)
	rev := "unknown revision"
	if st.revision != "" {
		parts := []string{"revision " + st.revision}
		if st.time != "" {
			parts = append(parts, st.time)
		}
		if st.modified {
			parts = append(parts, "modified")
		}
		rev = strings.Join(parts, ", ")
	}
	return fmt.Sprintf("ssehub %s (%s) %s %s/%s", st.version, rev, st.goVersion, runtime.GOOS, runtime.GOARCH)
}

// A stamp is what the Go toolchain recorded about a build.
type stamp struct {
	version   string // the main module's version; "(devel)" when none
	revision  string // the VCS revision; empty when unknown
	time      string // the revision's commit time, RFC 3339; may be empty
	modified  bool   // the tree had uncommitted changes
	goVersion string
}

// readStamp reads the stamp of bi, the result of debug.ReadBuildInfo.
func readStamp(bi *debug.BuildInfo, ok bool) stamp {
	st := stamp{version: "(devel)", goVersion: runtime.Version()}
	if !ok {
		return st
	}
	if bi.Main.Version != "" {
		st.version = bi.Main.Version
	}
	if bi.GoVersion != "" {
		st.goVersion = bi.GoVersion
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			st.revision = s.Value
		case "vcs.time":
			st.time = s.Value
		case "vcs.modified":
			st.modified = s.Value == "true"
		}
	}
	return st
}

// buildStamp is the stamp of the running binary.
func buildStamp() stamp { return readStamp(debug.ReadBuildInfo()) }
