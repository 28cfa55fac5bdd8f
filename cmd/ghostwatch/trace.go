package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ghostwatch/ghostwatch/tracer/attach"
	"github.com/ghostwatch/ghostwatch/tracer/container"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
	"github.com/ghostwatch/ghostwatch/tracer/kernel"
	"github.com/ghostwatch/ghostwatch/tracer/registry"
	"github.com/ghostwatch/ghostwatch/tracer/report"
)

func traceCommand() *cli.Command {
	var subs []*cli.Command
	var names []string
	for _, d := range registry.Streams() {
		subs = append(subs, gadgetCommand(d))
		names = append(names, d.Name)
	}
	return &cli.Command{
		Name:        "trace",
		Usage:       "stream events of one gadget until Ctrl-C or --duration, then print a summary",
		Subcommands: subs,
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return usagef("unknown gadget %q: see 'ghostwatch trace --help'", c.Args().First())
			}
			return usagef("name a gadget: ghostwatch trace %s", strings.Join(names, "|"))
		},
	}
}

// gadgetCommand is `trace NAME` for any streaming gadget: the common flags, the gadget's own
// options as flags, and one loop that prints its events.
func gadgetCommand(d *gadget.Descriptor) *cli.Command {
	flags := append(traceFlags(), containerFlags(true)...)
	for _, p := range d.Params {
		flags = append(flags, paramFlag(p))
	}
	return &cli.Command{
		Name:  d.Name,
		Usage: d.Summary,
		Flags: flags,
		Action: func(c *cli.Context) error {
			o, err := parseTraceFlags(c)
			if err != nil {
				return err
			}
			co, err := parseContainerFlags(c)
			if err != nil {
				return err
			}
			opts := gadget.Options{Filter: o.filter, Params: paramValues(c, d), BufferSize: o.bufferSize}
			opts.Filter.MntNS = co.mntnsMode()
			// Before anything is made (the report's file, the kernel's objects).
			if err := d.Check(opts); err != nil {
				return err
			}
			return traceGadget(c, d, o, co, opts)
		},
	}
}

// paramValues are the gadget's options set on the command line.
func paramValues(c *cli.Context, d *gadget.Descriptor) gadget.Params {
	params := gadget.Params{}
	for _, p := range d.Params {
		if c.IsSet(p.Name) {
			params[p.Name] = c.Value(p.Name)
		}
	}
	return params
}

// paramFlag makes a flag of a gadget option; its default's type is its type.
func paramFlag(p gadget.Param) cli.Flag {
	switch v := p.Default.(type) {
	case bool:
		return &cli.BoolFlag{Name: p.Name, Usage: p.Usage, Value: v}
	case time.Duration:
		return &cli.DurationFlag{Name: p.Name, Usage: p.Usage, Value: v}
	case uint64:
		return &cli.Uint64Flag{Name: p.Name, Usage: p.Usage, Value: v}
	case string:
		return &cli.StringFlag{Name: p.Name, Usage: p.Usage, Value: v}
	}
	// gadget.Descriptor.Validate rules this out for every registered gadget (a shared test).
	panic(fmt.Sprintf("gadget option %s has a default of unsupported type %T", p.Name, p.Default))
}

func traceGadget(c *cli.Context, d *gadget.Descriptor, o traceOptions, co containerOptions, opts gadget.Options) error {
	ctx, cancel := traceContext(c.Context) // --duration counts from the attach, below
	defer cancel()
	stderr := c.App.ErrWriter

	// The report's file is made first, so that a path it cannot be written to fails at once.
	var rec *report.Recorder
	if o.report != "" {
		var err error
		if rec, err = report.NewRecorder(o.report); err != nil {
			return err
		}
		defer rec.Close()
	}
	coll := container.NewCollection()
	g, err := gadget.Open(d, opts)
	if err != nil {
		return err
	}
	// Deferred in this order, the watcher stops, then the filter's subscription, then the gadget
	// closes: a container event late at exit must not update a closed kernel filter.
	defer g.Close()
	defer filterContainers(coll, co, g.SetMntNS, stderr)()
	defer watchContainers(ctx, coll, co, stderr).Stop()
	warnNoMatch(coll, co, stderr)
	fallbacks := featureList(g.Fallbacks)
	fmt.Fprintf(stderr, "ghostwatch: tracing %s (attach: %s%s); Ctrl-C to stop\n", d.Name, attachLine(g.Choices()), fallbackLine(fallbacks))
	if o.duration > 0 {
		// From here: loading takes seconds on a slow machine (a minute in vmtest's guests), and
		// that time came out of the trace's, all of it for a short --duration.
		var stop context.CancelFunc
		ctx, stop = context.WithTimeout(ctx, o.duration)
		defer stop()
	}

	w := newEventWriter(o.format, c.App.Writer, d.TableColumns())
	w.onError = cancel // nothing more can be written: tracing on would only count
	start := time.Now()
	var events uint64
	runErr := g.Run(ctx, coll, func(ev gadget.Event) {
		events++
		w.write(ev)
		if rec != nil {
			rec.Add(ev)
		}
	}, w.idle, lostWarning(stderr, g.Lost))
	// However the run ended, what it decoded (and what its joins held, which Run emits at
	// its end) is written, and the summary is printed with the drops; then the first error.
	writeErr := w.flush()
	lost, lostErr := g.Lost()
	sum := summary{Type: "summary", Gadget: d.Name, Events: events, Unwritten: w.unwritten, Lost: lost.Total(), LostByCause: lost.ByName(),
		Duration: time.Since(start).Round(time.Millisecond).String(), Attach: g.Choices(), Fallbacks: fallbacks}
	sumErr := printSummary(w, stderr, sum)
	var reportErr error
	if rec != nil {
		reportErr = writeReport(rec, sum, "ghostwatch trace "+d.Name, o.report, stderr)
	}
	switch {
	case runErr != nil:
		return runErr
	case writeErr != nil:
		return fmt.Errorf("writing output: %w", writeErr)
	case lostErr != nil:
		return lostErr
	case sumErr != nil:
		return sumErr
	}
	return reportErr
}

// writeReport ends a report with the summary line and writes it, titled with the node's name.
func writeReport(rec *report.Recorder, sum any, title, path string, stderr io.Writer) error {
	line, err := json.Marshal(sum)
	if err != nil {
		return err
	}
	rec.AddLine(line)
	if host, err := os.Hostname(); err == nil {
		title += " on " + host
	}
	if err := rec.Write(report.Options{Title: title}); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "ghostwatch: report in %s\n", path)
	return nil
}

// traceFlags are the flags every trace gadget takes.
func traceFlags() []cli.Flag {
	return []cli.Flag{
		outputFlag,
		&cli.DurationFlag{Name: "duration", Aliases: []string{"d"}, Usage: "stop after this long (e.g. 30s); default: until Ctrl-C"},
		&cli.UintFlag{Name: "pid", Usage: "only events caused by this process (thread group id)"},
		&cli.StringFlag{Name: "comm", Usage: "only events caused by processes with this command name (at most 15 characters)"},
		&cli.StringFlag{Name: "buffer-size", Usage: "the kernel's ring buffer for events: a power of two from 64K to 1G (e.g. 8M); default 1M"},
		&cli.StringFlag{Name: "report", Usage: "when tracing stops, also write the events as a timeline in one self-contained HTML file here"},
	}
}

// traceOptions are the validated common trace flags.
type traceOptions struct {
	format     string
	duration   time.Duration
	filter     gadget.Filter
	bufferSize uint32
	report     string // a path for the HTML report, if any
}

func parseTraceFlags(c *cli.Context) (traceOptions, error) {
	format, err := outputFormat(c)
	if err != nil {
		return traceOptions{}, err
	}
	o := traceOptions{format: format, duration: c.Duration("duration"), report: c.String("report")}
	pid := c.Uint("pid")
	if pid > 1<<22 { // PID_MAX_LIMIT
		return o, usagef("--pid %d is not a valid process id", pid)
	}
	o.filter.PID = uint32(pid)
	o.filter.Comm = c.String("comm")
	if len(o.filter.Comm) > gadget.MaxComm {
		return o, usagef("--comm %q is longer than the kernel's %d characters", o.filter.Comm, gadget.MaxComm)
	}
	if c.IsSet("buffer-size") {
		if o.bufferSize, err = gadget.ParseBufferSize(c.String("buffer-size")); err != nil {
			return o, usagef("--buffer-size %v", err)
		}
	}
	return o, nil
}

// traceContext ends on SIGINT or SIGTERM.
func traceContext(parent context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
}

// summary is printed when tracing stops: on stderr for people, and as a last JSON line.
type summary struct {
	Type   string `json:"type"` // "summary"
	Gadget string `json:"gadget"`
	Events uint64 `json:"events"`
	// Unwritten are the events the output did not take (closed early, a write error): decoded,
	// and counted here, but not delivered.
	Unwritten uint64 `json:"unwritten,omitempty"`
	Lost      uint64 `json:"lost"`
	// LostByCause splits Lost (gadget.LossCauses): only the causes with losses.
	LostByCause map[string]uint64 `json:"lost_by_cause,omitempty"`
	Duration    string            `json:"duration"`
	Attach      []attach.Choice   `json:"attach"`
	// Fallbacks are the kernel features this kernel lacks whose fallbacks run (doctor says what each does).
	Fallbacks []string `json:"fallbacks,omitempty"`
}

func featureList(fs []kernel.Feature) []string {
	var names []string
	for _, f := range fs {
		names = append(names, f.Name)
	}
	return names
}

func fallbackLine(names []string) string {
	if len(names) == 0 {
		return ""
	}
	return "; fallbacks: " + strings.Join(names, ",")
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

// lostWarning warns of losses as they grow, by cause (lost reads them; nil: the total alone).
func lostWarning(stderr io.Writer, lost func() (gadget.Lost, error)) func(uint64) {
	return func(total uint64) {
		why := "the ring buffer was full"
		if lost != nil {
			if l, err := lost(); err == nil {
				why = l.String()
			}
		}
		fmt.Fprintf(stderr, "ghostwatch: warning: %d events lost so far (%s): narrow with --pid or --comm\n", total, why)
	}
}

// lostLine is " (lost: ring_full 3, forgotten 1; forgotten: ...)" when anything was lost: the
// causes that name no buffer are said in words.
func lostLine(by map[string]uint64) string {
	var l gadget.Lost
	for _, c := range gadget.LossCauses {
		l[c] = by[c.String()]
	}
	if l.Total() == 0 {
		return ""
	}
	line := " (lost: " + l.String()
	if l[gadget.LostTableFull] > 0 {
		line += "; table_full: a kernel table of calls in flight or processes followed was full, so their events were not written"
	}
	if l[gadget.LostForgotten] > 0 {
		line += "; forgotten: a join's or a kernel table's state was full, so later events may lack their cause"
	}
	return line + ")"
}

func printSummary(w *eventWriter, stderr io.Writer, s summary) error {
	unwritten := ""
	if s.Unwritten > 0 {
		why := "the output failed"
		if outputClosed(w.err) {
			why = "the output was closed"
		}
		unwritten = fmt.Sprintf(" (%d not written: %s)", s.Unwritten, why)
	}
	fmt.Fprintf(stderr, "ghostwatch: %s: %d events%s, %d lost, %s%s; attach: %s%s\n",
		s.Gadget, s.Events, unwritten, s.Lost, s.Duration, lostLine(s.LostByCause), attachLine(s.Attach), fallbackLine(s.Fallbacks))
	if !w.isJSON || w.err != nil { // the output takes no more
		return nil
	}
	return newPrinter("json", w.out).print(s, nil)
}
