package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/ghostwatch/ghostwatch/tracer/container"
	"github.com/ghostwatch/ghostwatch/tracer/outfile"
	"github.com/ghostwatch/ghostwatch/tracer/seccomp"
)

func seccompCommand() *cli.Command {
	return &cli.Command{
		Name:  "seccomp",
		Usage: "record containers' syscalls into OCI seccomp profiles",
		Subcommands: []*cli.Command{
			recordCommand(),
			mergeCommand(),
			hookCommand(),
		},
	}
}

func recordCommand() *cli.Command {
	return &cli.Command{
		Name:  "record",
		Usage: "record running containers (--container/--pod/--pid) or new ones from their start (--new)",
		Flags: append([]cli.Flag{
			&cli.BoolFlag{Name: "new", Usage: "record containers that start from now on, from their first instruction"},
			&cli.UintFlag{Name: "pid", Usage: "record this process and its descendants (not the rest of its mount namespace)"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "a directory (one profile per container), or a .json file for one container; default: stdout for one container"},
			&cli.StringFlag{Name: "base", Usage: "an OCI seccomp profile the recording is merged into"},
			&cli.DurationFlag{Name: "duration", Aliases: []string{"d"}, Usage: "stop after this long; default: when the recorded containers exit, or Ctrl-C"},
		}, containerFlags(true)...),
		Action: record,
	}
}

func record(c *cli.Context) error {
	co, err := parseContainerFlags(c)
	if err != nil {
		return err
	}
	newMode, pid := c.Bool("new"), uint32(c.Uint("pid"))
	switch {
	case co.sel.Host:
		return usagef("--host cannot be recorded: profiles are per container")
	case newMode && pid != 0:
		return usagef("--new and --pid exclude each other: a process that runs already is not new")
	case !newMode && pid == 0 && !co.sel.Active():
		return usagef("say what to record: --container, --pod, --k8s-namespace, --pid, or --new")
	}
	out := c.String("output")
	if newMode && (out == "" || strings.HasSuffix(out, ".json")) {
		return usagef("--new writes a profile per container: -o must name a directory")
	}
	var base *seccomp.Profile
	if path := c.String("base"); path != "" {
		if base, err = seccomp.ReadProfile(path); err != nil {
			return err
		}
	}
	stderr := c.App.ErrWriter
	ctx, cancel := traceContext(c.Context) // --duration counts from the recording's start, below
	defer cancel()

	rec, err := seccomp.New(seccomp.Options{New: newMode})
	if err != nil {
		return err
	}
	defer rec.Close()
	coll := container.NewCollection()
	s := seccomp.NewSession(rec, coll, seccomp.SessionOptions{Selector: co.sel, Out: out, Base: base, Log: stderr, Stdout: c.App.Writer})
	defer s.Close()
	defer watchContainers(ctx, coll, co, stderr).Stop() // before the session and recorder close

	what := "containers started from now on, into " + out
	if !newMode {
		if pid != 0 {
			if err := s.StartPID(pid); err != nil {
				return err
			}
		}
		if co.sel.Active() {
			if _, err := s.StartRunning(); err != nil {
				return err
			}
		}
		names := s.Names()
		switch {
		case len(names) == 0:
			return fmt.Errorf("no running container matches the filters")
		case len(names) > 1 && (out == "" || strings.HasSuffix(out, ".json")):
			return usagef("%d containers match: -o must name a directory", len(names))
		}
		what = strings.Join(names, ", ")
	}
	fmt.Fprintf(stderr, "ghostwatch: recording syscalls (%s); Ctrl-C to stop\n", what)
	if d := c.Duration("duration"); d > 0 { // as trace's: loading is not recording
		var stop context.CancelFunc
		ctx, stop = context.WithTimeout(ctx, d)
		defer stop()
	}
	return s.Run(ctx, !newMode, lostWarning(stderr, nil))
}

func mergeCommand() *cli.Command {
	return &cli.Command{
		Name:      "merge",
		Usage:     "union of OCI seccomp profiles",
		ArgsUsage: "PROFILE.json PROFILE.json...",
		Flags:     []cli.Flag{&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write here instead of stdout"}},
		Action: func(c *cli.Context) error {
			if c.NArg() < 2 {
				return usagef("merge needs at least two profiles")
			}
			var merged *seccomp.Profile
			for _, path := range c.Args().Slice() {
				p, err := seccomp.ReadProfile(path)
				if err != nil {
					return err
				}
				if merged == nil {
					merged = p
				} else if merged, err = seccomp.Merge(merged, p); err != nil {
					return err
				}
			}
			data, err := merged.Marshal()
			if err != nil {
				return err
			}
			if out := c.String("output"); out != "" {
				return outfile.WriteFile(out, data)
			}
			_, err = c.App.Writer.Write(data)
			return err
		},
	}
}
