package main

import (
	"fmt"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ghostwatch/ghostwatch/tracer/seccomp"
)

func hookCommand() *cli.Command {
	flags := []cli.Flag{
		&cli.BoolFlag{Name: "overwrite", Usage: "let the annotation name an existing file, which is replaced"},
		&cli.StringFlag{Name: "output-root", Usage: "profiles may only be written below this directory"},
		&cli.DurationFlag{Name: "timeout", Value: 5 * time.Second, Usage: "longest the hook may hold up the container"},
	}
	return &cli.Command{
		Name:  "hook",
		Usage: "OCI hook: prestart starts recording the container, poststop writes its profile (state on stdin)",
		Subcommands: []*cli.Command{
			{Name: "prestart", Flags: flags, Action: hookPrestart, Usage: "start recording (OCI prestart hook)"},
			{Name: "poststop", Flags: flags, Action: hookPoststop, Usage: "write the profile (OCI poststop hook)"},
			// The recorder the prestart hook leaves behind: its job on stdin, its answer on fd 3.
			{Name: "record", Hidden: true, Action: func(*cli.Context) error {
				return seccomp.RunHookRecorder(os.Stdin, os.NewFile(3, "ready"))
			}},
		},
	}
}

func hookOptions(c *cli.Context) seccomp.HookOptions {
	return seccomp.HookOptions{OutputRoot: c.String("output-root"), Overwrite: c.Bool("overwrite"), Timeout: c.Duration("timeout"),
		Warn: func(s string) { fmt.Fprintf(c.App.ErrWriter, "ghostwatch: warning: %s\n", s) }}
}

func hookPrestart(c *cli.Context) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	o := hookOptions(c)
	o.Recorder = []string{self, "seccomp", "hook", "record"}
	return seccomp.Prestart(os.Stdin, o)
}

func hookPoststop(c *cli.Context) error {
	return seccomp.Poststop(os.Stdin, hookOptions(c))
}
