package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ghostwatch/ghostwatch/tracer/setns"
)

func setnsCommand() *cli.Command {
	return &cli.Command{
		Name:  "setns",
		Usage: "namespace entry and creation: setns (nsfs fd or pidfd), unshare, clone/clone3 with CLONE_NEW*",
		Flags: traceFlags(),
		Action: func(c *cli.Context) error {
			o, err := parseTraceFlags(c)
			if err != nil {
				return err
			}
			ctx, cancel := traceContext(c.Context, o.duration)
			defer cancel()

			tr, err := setns.New(o.filter)
			if err != nil {
				return err
			}
			defer tr.Close()
			stderr := c.App.ErrWriter
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

var setnsColumns = []column{{"TIME", 12}, {"PID", 7}, {"COMM", 15}, {"SYSCALL", 7}, {"FD", 9}, {"TARGETS", 40}, {"RESULT", 0}}

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
		ev.Time.Format("15:04:05.000"), fmt.Sprint(ev.Proc.PID), ev.Proc.Comm, d.Syscall, fd,
		strings.Join(targets, ","), result,
	}
}
