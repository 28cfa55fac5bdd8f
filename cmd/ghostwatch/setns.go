package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ghostwatch/ghostwatch/tracer/container"
	"github.com/ghostwatch/ghostwatch/tracer/event"
	"github.com/ghostwatch/ghostwatch/tracer/setns"
)

func setnsCommand() *cli.Command {
	return &cli.Command{
		Name:  "setns",
		Usage: "namespace entry and creation: setns (nsfs fd or pidfd), unshare, clone/clone3 with CLONE_NEW*",
		Flags: append(traceFlags(), containerFlags(true)...),
		Action: func(c *cli.Context) error {
			o, err := parseTraceFlags(c)
			if err != nil {
				return err
			}
			co, err := parseContainerFlags(c)
			if err != nil {
				return err
			}
			ctx, cancel := traceContext(c.Context, o.duration)
			defer cancel()
			stderr := c.App.ErrWriter

			coll := container.NewCollection()
			o.filter.MntNS = co.mntnsMode()
			tr, err := setns.New(o.filter, coll)
			if err != nil {
				return err
			}
			defer tr.Close()
			filterContainers(coll, co, tr.SetMntNS, stderr)
			watchContainers(ctx, coll, co, stderr)
			warnNoMatch(coll, co, stderr)
			fmt.Fprintf(stderr, "ghostwatch: tracing setns (attach: %s); Ctrl-C to stop\n", attachLine(tr.Choices()))

			p := newPrinter(o.format, c.App.Writer, setnsColumns...)
			start := time.Now()
			var events uint64
			var printErr error
			err = tr.Run(ctx, func(ev *setns.Event) {
				events++
				if printErr == nil {
					printErr = p.print(ev, setnsRow(ev))
				}
			}, lostWarning(stderr))
			if err != nil {
				return err
			}
			if printErr != nil {
				return fmt.Errorf("writing output: %w", printErr)
			}
			lost, err := tr.Lost()
			if err != nil {
				return err
			}
			return printSummary(p, stderr, summary{
				Gadget: setns.Type, Events: events, Lost: lost,
				Duration: time.Since(start).Round(time.Millisecond).String(), Attach: tr.Choices(),
			})
		},
	}
}

var setnsColumns = []column{{"TIME", 12}, {"CONTAINER", 16}, {"PID", 7}, {"COMM", 15}, {"SYSCALL", 7},
	{"FD", 9}, {"TARGETS", 36}, {"TARGET CONTAINER", 16}, {"RESULT", 0}}

// containerLabel is how a table names a container: its name (pod/name in a pod), else its short id.
func containerLabel(c *event.Container) string {
	switch {
	case c == nil:
		return "-"
	case c.Pod != "" && c.Name != "":
		return c.Pod + "/" + c.Name
	case c.Name != "":
		return c.Name
	case c.Pod != "":
		return c.Pod
	case len(c.ID) > 12:
		return c.ID[:12]
	}
	return c.ID
}

func setnsRow(ev *setns.Event) []string {
	d := ev.Setns
	fd := "-"
	if d.FD != nil {
		fd = fmt.Sprintf("%d/%s", *d.FD, d.FDKind)
	}
	targets := make([]string, 0, len(d.NSTypes))
	for _, name := range d.NSTypes {
		targets = append(targets, fmt.Sprintf("%s:%d", name, d.Targets[name]))
	}
	if len(targets) == 0 {
		targets = append(targets, "-")
	}
	result := d.Result
	if d.Ret > 0 {
		result = fmt.Sprintf("ok (child %d)", d.Ret)
	}
	return []string{
		ev.Time.Format("15:04:05.000"), containerLabel(ev.Container), fmt.Sprint(ev.Proc.PID), ev.Proc.Comm,
		d.Syscall, fd, strings.Join(targets, ","), containerLabel(d.TargetContainer), result,
	}
}
