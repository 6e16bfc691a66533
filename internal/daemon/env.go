package daemon

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

// The SSEHUB_* variables follow one rule: a variable names one setting,
// and it means the same to every command that reads it.
//
//   - serve's flags are the hub's settings: each reads SSEHUB_<FLAG>
//     (--data-dir reads SSEHUB_DATA_DIR). A new flag of serve gets its
//     variable by this rule.
//   - What publish sends is its own: the event's fields read
//     SSEHUB_PUBLISH_<FLAG>, so that SSEHUB_RETRY, serve's retry, does
//     not become every published event's retry field.
//   - A setting that means the same thing to several commands has one
//     variable, shared by all of them: sharedEnv lists these.
//   - A command's other flags read no variable: --insecure in
//     particular, which must be seen where it is used.
//
// envVars lists the variables of every command but serve: command → flag
// → variable.
var envVars = map[string]map[string]string{
	"publish": {
		"url":       "SSEHUB_URL",
		"token":     "SSEHUB_TOKEN",
		"cacert":    "SSEHUB_CACERT",
		"topic":     "SSEHUB_PUBLISH_TOPIC",
		"type":      "SSEHUB_PUBLISH_TYPE",
		"id":        "SSEHUB_PUBLISH_ID",
		"data":      "SSEHUB_PUBLISH_DATA",
		"retry":     "SSEHUB_PUBLISH_RETRY",
		"private":   "SSEHUB_PUBLISH_PRIVATE",
		"retry-for": "SSEHUB_PUBLISH_RETRY_FOR",
	},
	"listen": {
		"cacert": "SSEHUB_CACERT",
	},
	"bench": {
		"cacert": "SSEHUB_CACERT",
	},
	"token": {
		"secret":      "SSEHUB_JWT_SECRET",
		"secret-file": "SSEHUB_JWT_SECRET_FILE",
	},
}

// sharedEnv lists the variables that several commands read, with the one
// setting each names.
var sharedEnv = map[string]string{
	"SSEHUB_CACERT":          "the CA certificates a client trusts for the hub's https",
	"SSEHUB_JWT_SECRET":      "the HMAC secret: serve verifies tokens with it, token signs them",
	"SSEHUB_JWT_SECRET_FILE": "the file of the HMAC secret, for serve and token alike",
}

// envVar returns the variable that backs flag flagName of command cmd,
// or "" if it has none.
func envVar(cmd, flagName string) string {
	if cmd == "serve" {
		return envName(flagName)
	}
	return envVars[cmd][flagName]
}

// applyEnv sets every flag of fs that was not given on the command line
// from its SSEHUB_* variable (see envVars), if set and not empty; fs's
// name is the command's. Flags win over the environment, and the
// environment over defaults.
func applyEnv(fs *flag.FlagSet) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		name := envVar(fs.Name(), f.Name)
		if err != nil || given[f.Name] || name == "" {
			return
		}
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

// envName returns the variable that backs a flag of serve: "data-dir" →
// "SSEHUB_DATA_DIR".
func envName(flagName string) string {
	return "SSEHUB_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// withEnvHelp appends each flag's variable, if it has one, to its usage
// text.
func withEnvHelp(fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		if name := envVar(fs.Name(), f.Name); name != "" {
			f.Usage += " [$" + name + "]"
		}
	})
}
