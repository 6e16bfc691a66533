package daemon

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionLine(t *testing.T) {
	platform := " " + runtime.GOOS + "/" + runtime.GOARCH
	const rev = "0123456789abcdef0123456789abcdef01234567"
	tests := []struct {
		name string
		bi   *debug.BuildInfo
		ok   bool
		want string
	}{
		{"no build info", nil, false, "ssehub (devel) (unknown revision) " + runtime.Version() + platform},
		{"go run", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Path: "github.com/ssehub/ssehub", Version: "(devel)"}},
			true, "ssehub (devel) (unknown revision) go1.26.0" + platform},
		{"test binary", &debug.BuildInfo{GoVersion: "go1.26.0"}, true, "ssehub (devel) (unknown revision) go1.26.0" + platform},
		{"go install @version", &debug.BuildInfo{GoVersion: "go1.26.1", Main: debug.Module{Version: "v1.2.3"}},
			true, "ssehub v1.2.3 (unknown revision) go1.26.1" + platform},
		{"go build in a clone", &debug.BuildInfo{GoVersion: "go1.26.0",
			Main: debug.Module{Version: "v0.0.0-20260102030405-0123456789ab"},
			Settings: []debug.BuildSetting{
				{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev},
				{Key: "vcs.time", Value: "2026-01-02T03:04:05Z"}, {Key: "vcs.modified", Value: "false"},
			}}, true, "ssehub v0.0.0-20260102030405-0123456789ab (revision " + rev + ", 2026-01-02T03:04:05Z) go1.26.0" + platform},
		{"go build with changes", &debug.BuildInfo{GoVersion: "go1.26.0",
			Main: debug.Module{Version: "v0.0.0-20260102030405-0123456789ab+dirty"},
			Settings: []debug.BuildSetting{
				{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: "true"},
			}}, true, "ssehub v0.0.0-20260102030405-0123456789ab+dirty (revision " + rev + ", modified) go1.26.0" + platform},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := versionLine(tt.bi, tt.ok); got != tt.want {
				t.Errorf("versionLine = %q; want %q", got, tt.want)
			}
		})
	}
}

// TestVersionCommand: "ssehub version" and "ssehub --version" print the
// running binary's version line.
func TestVersionCommand(t *testing.T) {
	want := versionLine(debug.ReadBuildInfo()) + "\n"
	for _, args := range [][]string{{"version"}, {"--version"}, {"-version"}} {
		code, stdout, stderr := runMain(t, args...)
		if code != exitOK || stdout != want || stderr != "" {
			t.Errorf("ssehub %q: status %d, stdout %q, stderr %q; want 0, %q and nothing", args, code, stdout, stderr, want)
		}
	}
	checkFails(t, []string{"version", "extra"}, exitUsage, `unexpected argument "extra"`)
	checkFails(t, []string{"--version", "--json"}, exitUsage, "-json")
	code, stdout, _ := runMain(t, "version", "-h")
	if code != exitOK || !strings.Contains(stdout, "Usage: ssehub version") {
		t.Errorf("ssehub version -h: status %d, stdout %q; want 0 and the usage", code, stdout)
	}
	if code, stdout, _ := runMain(t, "help"); code != exitOK || !strings.Contains(stdout, "  version ") {
		t.Errorf("ssehub help: status %d, stdout %q; want the version command listed", code, stdout)
	}
}

// TestVersionBinary checks "ssehub version" in a binary built by go build
// against what "go version -m" reads from the same binary: the module
// version, and the VCS revision when the build recorded one (a build in
// a git clone does; in a git worktree, or with -buildvcs=false, it does
// not, and the line says "unknown revision").
func TestVersionBinary(t *testing.T) {
	bin := buildSSEHub(t)
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	info, err := exec.Command(gobin, "version", "-m", bin).Output()
	if err != nil {
		t.Fatalf("go version -m: %v", err)
	}
	modVersion := regexp.MustCompile(`(?m)^\s+mod\s+github\.com/ssehub/ssehub\s+(\S+)`).FindSubmatch(info)
	if modVersion == nil {
		t.Fatalf("go version -m names no main module:\n%s", info)
	}
	wantRev := "(unknown revision)"
	if m := regexp.MustCompile(`(?m)^\s+build\s+vcs\.revision=(\S+)`).FindSubmatch(info); m != nil {
		wantRev = "(revision " + string(m[1])
	}
	want := "ssehub " + string(modVersion[1]) + " " + wantRev
	for _, arg := range []string{"version", "--version"} {
		out, err := exec.Command(bin, arg).Output()
		if err != nil {
			t.Fatalf("ssehub %s: %v", arg, err)
		}
		if got := string(out); !strings.HasPrefix(got, want) || strings.Count(got, "\n") != 1 {
			t.Errorf("ssehub %s printed %q; want one line starting %q (from go version -m)", arg, got, want)
		}
	}
}
