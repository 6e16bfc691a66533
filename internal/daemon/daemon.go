// Package daemon is the ssehub command: it parses flags and SSEHUB_*
// variables into a validated configuration and runs a subcommand. It is
// internal so that the command line, not this Go API, is what ssehub
// promises.
package daemon

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// Exit statuses.
const (
	exitOK    = 0
	exitFail  = 1 // the command ran and failed
	exitUsage = 2 // bad flags or arguments
)

// A command is one subcommand of ssehub.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int
}

// commands lists the subcommands in the order "ssehub help" shows them.
func commands() []command {
	return []command{
		{"serve", "run the hub (the default when no command is given)", runServe},
		{"publish", "publish events to a hub", runPublish},
		{"listen", "connect to an SSE stream and print what an EventSource observes", runListen},
		{"bench", "measure a hub: connections, deliveries/s, latency, loss, memory", runBench},
		{"token", "mint a signed token for development: its topics, subject and expiry", runToken},
		{"version", "print the version and the VCS revision ssehub was built from (also --version)", runVersion},
	}
}

// Main runs the ssehub command line with args (without the program name)
// and returns the process exit status. It returns when the command is done
// or ctx is cancelled.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 && (args[0] == "--version" || args[0] == "-version") {
		return runVersion(ctx, args[1:], stdin, stdout, stderr)
	}
	if len(args) == 0 || (strings.HasPrefix(args[0], "-") && !isHelp(args[0])) {
		return runServe(ctx, args, stdin, stdout, stderr) // serve is the default
	}
	name := args[0]
	if name == "help" || isHelp(name) {
		usage(stdout)
		return exitOK
	}
	for _, c := range commands() {
		if c.name == name {
			return c.run(ctx, args[1:], stdin, stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "ssehub: unknown command %q (run 'ssehub help')\n", name)
	return exitUsage
}

func isHelp(arg string) bool { return arg == "-h" || arg == "-help" || arg == "--help" }

func usage(w io.Writer) {
	fmt.Fprintln(w, "ssehub is a Server-Sent Events toolkit and hub.")
	fmt.Fprintln(w, "\nUsage:\n  ssehub [command] [flags] [arguments]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'ssehub <command> -h' for a command's flags.")
}

// parseInterspersed parses args with fs, allowing flags after positional
// arguments ("ssehub listen URL --json"), as users type them. It returns
// the positional arguments.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		// fs.Parse stopped at a positional argument: keep it, go on.
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// parseFlags parses a subcommand's flags and reports problems as one line
// on stderr. It returns the positional arguments, or an exit status when
// the command should stop (help asked for, or bad flags).
func parseFlags(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) ([]string, int, bool) {
	fs.SetOutput(io.Discard)
	pos, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		fs.SetOutput(stdout)
		fs.Usage()
		return nil, exitOK, false
	}
	if err != nil {
		fmt.Fprintf(stderr, "ssehub %s: %v (run 'ssehub %s -h')\n", fs.Name(), err, fs.Name())
		return nil, exitUsage, false
	}
	return pos, 0, true
}
