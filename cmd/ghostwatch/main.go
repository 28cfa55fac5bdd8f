// Command ghostwatch traces what containers do to namespaces, capabilities, devices and syscalls,
// with eBPF, on the node, with no compiler and no kernel headers.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ghostwatch/ghostwatch/tracer/gadget"
)

func main() {
	os.Exit(run(os.Args, os.Stdout, os.Stderr))
}

// usageError is a mistake in the command line: exit status 2. So is a gadget.OptionError, the
// tracer's word for a gadget's options it refuses.
type usageError struct{ error }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// run executes the command line and returns the exit status: 0, 1 (runtime) or 2 (usage).
func run(args []string, stdout, stderr io.Writer) int {
	// A write to a closed pipe returns EPIPE rather than killing the process, so that a trace
	// piped to `head` ends with its summary. Caught rather than ignored: children get the default.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	err := newApp(stdout, stderr).Run(args)
	if err == nil || outputClosed(err) { // the reader of the output had enough: no failure
		return 0
	}
	fmt.Fprintf(stderr, "ghostwatch: %v\n", err)
	if errors.As(err, new(usageError)) || errors.As(err, new(*gadget.OptionError)) || helpTopicUnknown(err) {
		return 2
	}
	return 1
}

// helpTopicUnknown tells urfave's refusal of `help NAME` for a NAME that is no command: exit code 3
// of a cli.ExitCoder, which no error of ghostwatch's own is.
func helpTopicUnknown(err error) bool {
	var exit cli.ExitCoder
	return errors.As(err, &exit) && exit.ExitCode() == 3
}

func newApp(stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:      "ghostwatch",
		Usage:     "eBPF tracing for containers: who entered which namespace, and why",
		Writer:    stdout,
		ErrWriter: stderr,
		Commands: slices.Concat([]*cli.Command{
			traceCommand(),
			agentCommand(),
			historyCommand(),
			psCommand(),
		}, snapshotCommands(), []*cli.Command{
			seccompCommand(),
			doctorCommand(),
			versionCommand(),
			completionCommand(),
			manCommand(),
		}),
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return usagef("unknown command %q: see 'ghostwatch help'", c.Args().First())
			}
			return cli.ShowAppHelp(c)
		},
		// Errors are printed once, by run, as one line.
		ExitErrHandler: func(*cli.Context, error) {},
	}
	app.OnUsageError = onUsageError
	for _, c := range app.Commands {
		setUsageErrors(c)
	}
	return app
}

func onUsageError(_ *cli.Context, err error, _ bool) error {
	return usageError{fmt.Errorf("%w (see --help)", err)}
}

// setUsageErrors makes every command's flag mistakes usage errors, and checks here, once for
// every command, what no flag of its kind may be: a duration is never negative. A command that
// only holds others gets groupAction; one that holds none and names no arguments (ArgsUsage)
// takes none.
func setUsageErrors(c *cli.Command) {
	c.OnUsageError = onUsageError
	switch action := c.Action; {
	case action == nil && len(c.Subcommands) > 0:
		c.Action = groupAction
	case action != nil && len(c.Subcommands) == 0 && c.ArgsUsage == "":
		c.Action = func(c *cli.Context) error {
			if c.Args().Present() {
				return usagef("unexpected argument %q", c.Args().First())
			}
			return action(c)
		}
	}
	for _, f := range c.Flags {
		if d, ok := f.(*cli.DurationFlag); ok && d.Action == nil {
			d.Action = nonNegative(d.Name)
		}
	}
	for _, sub := range c.Subcommands {
		setUsageErrors(sub)
	}
}

// nonNegative is the action of every duration flag: a wait, a window or a retention less than
// nothing means nothing, and is refused rather than taken as zero or as forever.
func nonNegative(name string) func(*cli.Context, time.Duration) error {
	return func(_ *cli.Context, d time.Duration) error {
		if d < 0 {
			return usagef("--%s must not be negative, got %v", name, d)
		}
		return nil
	}
}

// groupAction runs when a command that holds others is given none, or an unknown one: a usage
// error. urfave's default prints the help and exits 0 (or 1, "No help topic"): an OCI hook set up
// as `ghostwatch seccomp hook`, its verb missing, passed for one that ran.
func groupAction(c *cli.Context) error {
	var path []string // from the command up to the app's, left out (FullName misses a grandparent)
	for _, l := range c.Lineage() {
		if l.Command != nil && l.Command.Name != "" && l.Command.Name != c.App.Name {
			path = append([]string{l.Command.Name}, path...)
		}
	}
	name := strings.Join(path, " ")
	if c.Args().Present() {
		return usagef("unknown %s command %q: see 'ghostwatch %s --help'", name, c.Args().First(), name)
	}
	var subs []string
	for _, s := range c.Command.VisibleCommands() {
		if s.Name != "help" {
			subs = append(subs, s.Name)
		}
	}
	return usagef("name a %s command: %s", name, strings.Join(subs, ", "))
}
