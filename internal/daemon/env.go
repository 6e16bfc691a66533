package daemon

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

// applyEnv sets every flag of fs that was not given on the command line
// from its SSEHUB_* variable, if set: --data-dir reads SSEHUB_DATA_DIR.
// Flags win over the environment, and the environment over defaults.
func applyEnv(fs *flag.FlagSet) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || given[f.Name] {
			return
		}
		name := envName(f.Name)
		v := os.Getenv(name)
		if v == "" {
			return
		}
		if e := fs.Set(f.Name, v); e != nil {
			err = fmt.Errorf("%s=%q: %v", name, v, e)
		}
	})
	return err
}

// envName returns the variable that backs a flag: "data-dir" →
// "SSEHUB_DATA_DIR".
func envName(flagName string) string {
	return "SSEHUB_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// withEnvHelp appends each flag's variable to its usage text.
func withEnvHelp(fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		f.Usage += " [$" + envName(f.Name) + "]"
	})
}
