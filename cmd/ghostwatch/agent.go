package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ghostwatch/ghostwatch/tracer/agent"
	"github.com/ghostwatch/ghostwatch/tracer/flightrec"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
	"github.com/ghostwatch/ghostwatch/tracer/metrics"
	"github.com/ghostwatch/ghostwatch/tracer/registry"
)

// Agent defaults: see the README's agent section for what each costs.
const (
	defaultRetain      = "1GiB"
	defaultRetainFor   = 24 * time.Hour
	defaultMetricsAddr = "127.0.0.1:9659" // not 9090, Prometheus' own: docs/agent.md#metrics
)

func agentCommand() *cli.Command {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "gadgets", Value: "all", Usage: "the gadgets to record: all, or a list such as setns,caps,devices,netns"},
		dataDirFlag,
		&cli.StringFlag{Name: "retain", Value: defaultRetain, Usage: "the most the flight record keeps on disk (e.g. 1GiB, 500M): the oldest events go first"},
		&cli.DurationFlag{Name: "retain-for", Value: defaultRetainFor, Usage: "events older than this are deleted (0: only --retain bounds the record)"},
		&cli.DurationFlag{Name: "flush-every", Value: flightrec.DefaultFlushEvery, Usage: "the longest an event waits in memory before it is written: what a killed agent can lose (counted by the next one)"},
		&cli.StringFlag{Name: "metrics-addr", Value: defaultMetricsAddr, Usage: "where /metrics, /healthz and /readyz are served (\"\": nowhere)"},
		&cli.BoolFlag{Name: "metrics-k8s-namespace-label", Usage: "label the event counter by Kubernetes namespace (one series per namespace, kind and gadget)"},
		&cli.StringFlag{Name: "buffer-size", Usage: "each gadget's ring buffer: a power of two from 64K to 1G (e.g. 8M); default 1M"},
	}
	flags = append(flags, containerFlags(false)...)
	for _, d := range registry.Streams() {
		for _, p := range d.Params {
			if v, ok := agent.Defaults[d.Name][p.Name]; ok {
				p.Default = v
			}
			name := p.Name
			p.Name = d.Name + "-" + name
			// Its usage may tell of the option by trace's name for it.
			p.Usage = d.Name + ": " + strings.ReplaceAll(p.Usage, "--"+name, "--"+p.Name)
			flags = append(flags, paramFlag(p))
		}
	}
	return &cli.Command{
		Name:  "agent",
		Usage: "record every gadget's events into a flight record on disk, with Prometheus metrics, until SIGTERM or Ctrl-C",
		Flags: flags,
		Action: func(c *cli.Context) error {
			o, err := agentOptions(c)
			if err != nil {
				return err
			}
			return runAgent(c, o)
		},
	}
}

func agentOptions(c *cli.Context) (agent.Options, error) {
	var o agent.Options
	streams := map[string]*gadget.Descriptor{}
	var names []string
	for _, d := range registry.Streams() {
		streams[d.Name] = d
		names = append(names, d.Name)
	}
	if g := c.String("gadgets"); g == "all" {
		o.Gadgets = registry.Streams()
	} else {
		for _, name := range strings.Split(g, ",") {
			d, ok := streams[strings.TrimSpace(name)]
			if !ok {
				return o, usagef("--gadgets: unknown gadget %q: all, or some of %s", name, strings.Join(names, ","))
			}
			if !slices.Contains(o.Gadgets, d) {
				o.Gadgets = append(o.Gadgets, d)
			}
		}
	}
	o.Params = map[string]gadget.Params{}
	for _, d := range o.Gadgets {
		o.Params[d.Name] = gadget.Params{}
		for _, p := range d.Params {
			if name := d.Name + "-" + p.Name; c.IsSet(name) {
				o.Params[d.Name][p.Name] = c.Value(name)
			}
		}
	}
	retain, err := gadget.ParseSize(c.String("retain"))
	if err != nil {
		return o, usagef("--retain %v", err)
	}
	if retain < flightrec.MinRetain {
		return o, usagef("--retain %s is less than the least the record needs, %dMiB", c.String("retain"), flightrec.MinRetain>>20)
	}
	o.Record = flightrec.Options{Retain: int64(retain), RetainFor: c.Duration("retain-for"), FlushEvery: c.Duration("flush-every")}
	if o.Record.FlushEvery == 0 {
		return o, usagef("--flush-every must be more than 0")
	}
	o.DataDir = c.String("data-dir")
	if c.IsSet("buffer-size") {
		if o.BufferSize, err = gadget.ParseBufferSize(c.String("buffer-size")); err != nil {
			return o, usagef("--buffer-size %v", err)
		}
	}
	o.MetricsAddr = c.String("metrics-addr")
	o.Metrics = metrics.Options{K8sNamespaceLabel: c.Bool("metrics-k8s-namespace-label"), Version: versionString()}
	co, err := parseContainerFlags(c)
	if err != nil {
		return o, err
	}
	o.ContainerdSocket, o.ContainerdNamespaces = co.socket, co.namespaces
	return o, nil
}

func runAgent(c *cli.Context, o agent.Options) error {
	stderr := c.App.ErrWriter
	o.Warn = func(s string) { fmt.Fprintf(stderr, "ghostwatch: warning: %s\n", s) }
	ctx, stop := traceContext(c.Context)
	defer stop()
	a, err := agent.Start(ctx, o)
	if err != nil {
		return err
	}
	where := "no metrics"
	if addr := a.MetricsAddr(); addr != "" {
		where = "metrics at http://" + addr + "/metrics"
	}
	fmt.Fprintf(stderr, "ghostwatch: agent recording %s into %s (retain %s, %v); %s; SIGTERM or Ctrl-C to stop\n",
		strings.Join(a.Gadgets(), ", "), o.DataDir, size(o.Record.Retain), o.Record.RetainFor, where)
	choices := a.Choices()
	for _, name := range slices.Sorted(maps.Keys(choices)) {
		fmt.Fprintf(stderr, "ghostwatch: %s attach: %s\n", name, attachLine(choices[name]))
	}
	printAgentSummary(stderr, a.Run(ctx))
	return nil
}

func printAgentSummary(w io.Writer, s agent.Summary) {
	var events []string
	var total uint64
	for _, name := range slices.Sorted(maps.Keys(s.Events)) {
		events = append(events, fmt.Sprintf("%s %d", name, s.Events[name]))
		total += s.Events[name]
	}
	lost := "0 lost"
	if len(s.Lost) > 0 {
		var parts []string
		var n uint64
		for _, l := range s.Lost {
			parts = append(parts, fmt.Sprintf("%s %s %d", l.Gadget, l.Cause, l.Count))
			n += l.Count
		}
		lost = fmt.Sprintf("%d lost (%s)", n, strings.Join(parts, ", "))
	}
	fmt.Fprintf(w, "ghostwatch: agent: %d events (%s), %s, %s; record %s", total, strings.Join(events, ", "), lost,
		s.Duration.Round(time.Millisecond), size(s.Record.Bytes))
	if !s.Record.Oldest.IsZero() {
		fmt.Fprintf(w, " since %s", s.Record.Oldest.Format(time.RFC3339))
	}
	fmt.Fprintln(w)
	for _, name := range slices.Sorted(maps.Keys(s.Failed)) {
		fmt.Fprintf(w, "ghostwatch: agent: %s was not recorded: %s\n", name, s.Failed[name])
	}
}

// size writes bytes in the largest binary unit that keeps a whole number, as --retain takes them.
func size(n int64) string {
	for _, u := range []struct {
		shift uint
		name  string
	}{{40, "TiB"}, {30, "GiB"}, {20, "MiB"}, {10, "KiB"}} {
		if n >= 1<<u.shift && n%(1<<u.shift) == 0 {
			return fmt.Sprintf("%d%s", n>>u.shift, u.name)
		}
	}
	if n >= 1<<20 {
		return fmt.Sprintf("%.1fMiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%dB", n)
}
