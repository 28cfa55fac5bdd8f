package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ghostwatch/ghostwatch/tracer/attach"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
)

func traceCommand() *cli.Command {
	return &cli.Command{
		Name:  "trace",
		Usage: "stream events of one gadget until Ctrl-C or --duration, then print a summary",
		Subcommands: []*cli.Command{
			setnsCommand(),
		},
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return usagef("unknown gadget %q: see 'ghostwatch trace --help'", c.Args().First())
			}
			return usagef("name a gadget: ghostwatch trace setns")
		},
	}
}

// traceFlags are the flags every trace gadget takes.
func traceFlags() []cli.Flag {
	return []cli.Flag{
		outputFlag,
		&cli.DurationFlag{Name: "duration", Aliases: []string{"d"}, Usage: "stop after this long (e.g. 30s); default: until Ctrl-C"},
		&cli.UintFlag{Name: "pid", Usage: "only events caused by this process (thread group id)"},
		&cli.StringFlag{Name: "comm", Usage: "only events caused by processes with this command name (at most 15 characters)"},
	}
}

// traceOptions are the validated common trace flags.
type traceOptions struct {
	format   string
	duration time.Duration
	filter   gadget.Filter
}

func parseTraceFlags(c *cli.Context) (traceOptions, error) {
	if c.Args().Present() {
		return traceOptions{}, usagef("unexpected argument %q", c.Args().First())
	}
	format, err := outputFormat(c)
	if err != nil {
		return traceOptions{}, err
	}
	o := traceOptions{format: format, duration: c.Duration("duration")}
	if o.duration < 0 {
		return o, usagef("--duration must be positive, got %v", o.duration)
	}
	pid := c.Uint("pid")
	if pid > 1<<22 { // PID_MAX_LIMIT
		return o, usagef("--pid %d is not a valid process id", pid)
	}
	o.filter.PID = uint32(pid)
	o.filter.Comm = c.String("comm")
	if len(o.filter.Comm) > gadget.MaxComm {
		return o, usagef("--comm %q is longer than the kernel's %d characters", o.filter.Comm, gadget.MaxComm)
	}
	return o, nil
}

// traceContext ends on SIGINT, SIGTERM or after the duration.
func traceContext(parent context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
	if d <= 0 {
		return ctx, stop
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	return ctx, func() { cancel(); stop() }
}

// summary is printed when tracing stops: on stderr for people, and as a last JSON line.
type summary struct {
	Type     string          `json:"type"` // "summary"
	Gadget   string          `json:"gadget"`
	Events   uint64          `json:"events"`
	Lost     uint64          `json:"lost"`
	Duration string          `json:"duration"`
	Attach   []attach.Choice `json:"attach"`
}

func attachLine(choices []attach.Choice) string {
	parts := make([]string, len(choices))
	for i, c := range choices {
		kind := c.Kind
		if kind == "" {
			kind = "none"
		}
		parts[i] = c.Hook + "=" + kind
	}
	return strings.Join(parts, " ")
}

func lostWarning(stderr io.Writer) func(uint64) {
	return func(total uint64) {
		fmt.Fprintf(stderr, "ghostwatch: warning: %d events lost so far (ring buffer full): narrow with --pid or --comm\n", total)
	}
}

func printSummary(p *printer, stderr io.Writer, s summary) error {
	fmt.Fprintf(stderr, "ghostwatch: %s: %d events, %d lost, %s; attach: %s\n",
		s.Gadget, s.Events, s.Lost, s.Duration, attachLine(s.Attach))
	if p.json != nil {
		s.Type = "summary"
		return p.print(s, nil)
	}
	return nil
}
