package daemon

import (
	"regexp"
	"slices"
	"strings"
	"testing"
)

// envInHelp returns, for each variable that "ssehub CMD -h" names, the
// flags of CMD that read it.
func envInHelp(t *testing.T, cmd string) map[string][]string {
	t.Helper()
	code, stdout, _ := runMain(t, cmd, "-h")
	if code != exitOK {
		t.Fatalf("ssehub %s -h: status %d", cmd, code)
	}
	// PrintDefaults writes "  -flag type" then the indented usage, which
	// ends in [$VAR].
	flagRE := regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`)
	varRE := regexp.MustCompile(`\[\$(SSEHUB_[A-Z0-9_]+)\]`)
	vars := map[string][]string{}
	locs := flagRE.FindAllStringSubmatchIndex(stdout, -1)
	for i, loc := range locs {
		end := len(stdout)
		if i+1 < len(locs) {
			end = locs[i+1][0]
		}
		name := stdout[loc[2]:loc[3]]
		for _, m := range varRE.FindAllStringSubmatch(stdout[loc[0]:end], -1) {
			vars[m[1]] = append(vars[m[1]], name)
		}
	}
	return vars
}

// TestEnvMeansOneThing: a variable that several commands read is one of
// the shared settings, and every shared one is read by several commands;
// serve's variables are its own.
func TestEnvMeansOneThing(t *testing.T) {
	readers := map[string][]string{} // variable → "cmd --flag"
	for _, c := range commands() {
		for v, flags := range envInHelp(t, c.name) {
			if len(flags) != 1 {
				t.Errorf("%s -h shows %s on flags %q; want one flag", c.name, v, flags)
			}
			for _, f := range flags {
				readers[v] = append(readers[v], c.name+" --"+f)
			}
		}
	}
	for v, rs := range readers {
		if _, shared := sharedEnv[v]; len(rs) > 1 && !shared {
			t.Errorf("%s is read by %q: a variable read by several commands must be one of the shared settings", v, rs)
		}
	}
	for v := range sharedEnv {
		if len(readers[v]) < 2 {
			t.Errorf("the shared variable %s is read by %q; want several commands", v, readers[v])
		}
	}
	for _, tt := range []struct{ v, reader string }{
		{"SSEHUB_RETRY", "serve --retry"},
		{"SSEHUB_PUBLISH_RETRY", "publish --retry"},
		{"SSEHUB_PUBLISH_TYPE", "publish --type"},
		{"SSEHUB_TOKEN", "publish --token"},
		{"SSEHUB_CACERT", "listen --cacert"},
		{"SSEHUB_CACERT", "bench --cacert"},
		{"SSEHUB_JWT_SECRET_FILE", "token --secret-file"},
		{"SSEHUB_JWT_SECRET_FILE", "serve --jwt-secret-file"},
	} {
		if !slices.Contains(readers[tt.v], tt.reader) {
			t.Errorf("%s is read by %q; want %s among them", tt.v, readers[tt.v], tt.reader)
		}
	}
	if rs := readers["SSEHUB_RETRY"]; len(rs) != 1 {
		t.Errorf("SSEHUB_RETRY is read by %q; want serve --retry only", rs)
	}
	for v, rs := range readers {
		for _, r := range rs {
			if strings.HasSuffix(r, " --insecure") {
				t.Errorf("%s reads %s: --insecure must be given where it is used", r, v)
			}
		}
	}
}
