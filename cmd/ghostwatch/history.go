package main

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ghostwatch/ghostwatch/tracer/container"
	"github.com/ghostwatch/ghostwatch/tracer/encode"
	"github.com/ghostwatch/ghostwatch/tracer/flightrec"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
	"github.com/ghostwatch/ghostwatch/tracer/registry"
	"github.com/ghostwatch/ghostwatch/tracer/report"
)

// defaultDataDir is where the agent keeps its flight record unless told otherwise.
const defaultDataDir = "/var/lib/ghostwatch"

var dataDirFlag = &cli.StringFlag{Name: "data-dir", Value: defaultDataDir, Usage: "the agent's data directory, which holds its flight record",
	Action: func(_ *cli.Context, dir string) error {
		if dir == "" { // not taken for the working directory
			return usagef("--data-dir must not be empty")
		}
		return nil
	}}

func historyCommand() *cli.Command {
	return &cli.Command{
		Name:  "history",
		Usage: "read the agent's flight record: the events of a time range, as trace prints them, and its gaps",
		Flags: []cli.Flag{
			outputFlag,
			dataDirFlag,
			&cli.DurationFlag{Name: "since", Usage: "events of this long before now (e.g. 10m)"},
			&cli.StringFlag{Name: "from", Usage: "events from this time: RFC 3339, 'YYYY-MM-DD HH:MM[:SS]', or HH:MM[:SS] (the last such time, local)"},
			&cli.StringFlag{Name: "to", Usage: "events before this time (same forms as --from)"},
			&cli.StringSliceFlag{Name: "gadget", Aliases: []string{"g"}, Usage: "only this gadget's events (repeatable)"},
			&cli.StringSliceFlag{Name: "kind", Usage: "only events of this kind, e.g. denied, window (repeatable)"},
			&cli.StringSliceFlag{Name: "container", Aliases: []string{"c"}, Usage: "only events of or about this container: id prefix or name (repeatable)"},
			&cli.StringSliceFlag{Name: "pod", Usage: "only events of or about this pod's containers (repeatable)"},
			&cli.StringFlag{Name: "k8s-namespace", Usage: "only events of or about containers in this Kubernetes namespace"},
			&cli.BoolFlag{Name: "host", Usage: "only events of host processes (no container)"},
			&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "then wait for new events, until Ctrl-C"},
			&cli.StringFlag{Name: "report", Usage: "also write the events as a timeline in one self-contained HTML file here"},
		},
		Action: history,
	}
}

func history(c *cli.Context) error {
	format, err := outputFormat(c)
	if err != nil {
		return err
	}
	q, err := historyQuery(c, time.Now())
	if err != nil {
		return err
	}
	var rec *report.Recorder
	if path := c.String("report"); path != "" {
		if rec, err = report.NewRecorder(path); err != nil {
			return err
		}
		defer rec.Close()
	}
	r, err := flightrec.NewReader(c.String("data-dir"))
	if err != nil {
		return fmt.Errorf("%w (is an agent writing there? see --data-dir)", err)
	}
	defer r.Close()

	w := newHistoryWriter(format, c.App.Writer, q.Gadgets)
	q.JSON, q.Rows = w.isJSON || rec != nil, !w.isJSON
	write, writeFlushed := w.write, w.writeFlushed
	if rec != nil {
		write = func(e *flightrec.Entry) error {
			rec.AddLine(bytes.TrimSuffix(e.JSON, []byte("\n")))
			return w.write(e)
		}
		writeFlushed = func(e *flightrec.Entry) error {
			if err := write(e); err != nil {
				return err
			}
			return w.flush()
		}
	}
	var sum flightrec.Summary
	if c.Bool("follow") {
		ctx, stop := traceContext(c.Context)
		defer stop()
		sum, err = r.Follow(ctx, q, 250*time.Millisecond, writeFlushed)
	} else {
		sum, err = r.Scan(c.Context, q, write)
	}
	if err == nil {
		err = w.flush()
	}
	if err != nil {
		return err
	}
	if err := w.summary(c.App.ErrWriter, sum); err != nil || rec == nil {
		return err
	}
	return writeReport(rec, historySummary{Type: "summary", Summary: sum}, "ghostwatch history", c.String("report"), c.App.ErrWriter)
}

// historyQuery reads the query flags.
func historyQuery(c *cli.Context, now time.Time) (flightrec.Query, error) {
	var q flightrec.Query
	if c.IsSet("since") && (c.IsSet("from") || c.IsSet("to")) {
		return q, usagef("--since cannot be combined with --from or --to")
	}
	if c.IsSet("since") {
		if c.Duration("since") <= 0 {
			return q, usagef("--since must be positive, got %v", c.Duration("since"))
		}
		q.From = now.Add(-c.Duration("since"))
	}
	for _, f := range []struct {
		name string
		dst  *time.Time
	}{{"from", &q.From}, {"to", &q.To}} {
		if !c.IsSet(f.name) {
			continue
		}
		t, err := parseTime(c.String(f.name), now)
		if err != nil {
			return q, usagef("--%s: %v", f.name, err)
		}
		*f.dst = t
	}
	if !q.From.IsZero() && !q.To.IsZero() && !q.From.Before(q.To) {
		return q, usagef("--from %s is not before --to %s", q.From.Format(time.RFC3339), q.To.Format(time.RFC3339))
	}
	gadgets := map[string]*gadget.Descriptor{}
	var names []string
	for _, d := range registry.Streams() {
		gadgets[d.Name] = d
		names = append(names, d.Name)
	}
	var kinds []string
	for _, g := range c.StringSlice("gadget") {
		d, ok := gadgets[g]
		if !ok {
			return q, usagef("unknown gadget %q: one of %s", g, strings.Join(names, ", "))
		}
		q.Gadgets = append(q.Gadgets, g)
		kinds = append(kinds, kindNames(d)...)
	}
	if len(q.Gadgets) == 0 {
		for _, d := range gadgets {
			kinds = append(kinds, kindNames(d)...)
		}
	}
	for _, k := range c.StringSlice("kind") {
		if !slices.Contains(kinds, k) {
			slices.Sort(kinds)
			return q, usagef("unknown kind %q: one of %s", k, strings.Join(slices.Compact(kinds), ", "))
		}
		q.Kinds = append(q.Kinds, k)
	}
	q.Select = container.Selector{Containers: c.StringSlice("container"), Pods: c.StringSlice("pod"),
		K8sNamespace: c.String("k8s-namespace"), Host: c.Bool("host")}
	if err := q.Select.Validate(); err != nil {
		return q, usageError{err}
	}
	return q, nil
}

// kindNames are the kinds a gadget's events have in JSON ("" for a gadget with one kind).
func kindNames(d *gadget.Descriptor) []string {
	kinds := d.Emitted()
	if len(kinds) < 2 {
		return nil
	}
	var out []string
	for _, k := range kinds {
		out = append(out, k.Name)
	}
	return out
}

// parseTime reads a time as --from and --to take it: RFC 3339, a local date and time, or a local
// time of day, which means its last occurrence (02:10 at 09:00 is today's, at 01:00 yesterday's).
func parseTime(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02 15:04:05", "2006-01-02T15:04:05", "2006-01-02 15:04", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, now.Location()); err == nil {
			return t, nil
		}
	}
	for _, layout := range []string{"15:04:05", "15:04"} {
		if t, err := time.ParseInLocation(layout, s, now.Location()); err == nil {
			y, m, d := now.Date()
			at := time.Date(y, m, d, t.Hour(), t.Minute(), t.Second(), 0, now.Location())
			if at.After(now) {
				at = at.AddDate(0, 0, -1)
			}
			return at, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a time: use RFC 3339 (2026-03-01T02:10:00Z), 'YYYY-MM-DD HH:MM[:SS]' or HH:MM[:SS]", s)
}

// historyWriter writes history's events: the JSON lines as kept, or table rows laid out as trace
// lays out the gadget's (with a GADGET column when several gadgets may be shown).
type historyWriter struct {
	out     io.Writer
	isJSON  bool
	buf     []byte
	row     encode.Row
	mixed   bool
	columns map[string][]encode.Column
	header  bool
	err     error
}

// gadgetColumn names each row's gadget in a table of several.
var gadgetColumn = encode.Column{Name: "GADGET", Width: 8}

func newHistoryWriter(format string, out io.Writer, gadgets []string) *historyWriter {
	w := &historyWriter{out: out, isJSON: format == "json", mixed: len(gadgets) != 1, columns: map[string][]encode.Column{}}
	for _, d := range registry.Streams() {
		cols := d.TableColumns()
		if w.mixed {
			cols = slices.Insert(cols, len(gadget.CommonColumns), gadgetColumn)
		}
		w.columns[d.Name] = cols
	}
	if !w.mixed {
		w.row.Columns = w.columns[gadgets[0]]
	}
	return w
}

func (w *historyWriter) write(e *flightrec.Entry) error {
	if w.isJSON {
		w.buf = append(w.buf, e.JSON...)
	} else {
		if !w.header {
			w.header = true
			if w.mixed {
				w.row.Columns = slices.Concat(gadget.CommonColumns, []encode.Column{gadgetColumn, {Name: "WHAT"}})
			}
			w.row.Header()
			w.buf = append(w.buf, w.row.B...)
		}
		if w.mixed {
			w.row.Columns = w.columns[e.Gadget]
		}
		flightrec.AppendRow(&w.row, e, w.mixed)
		w.buf = append(w.buf, w.row.B...)
	}
	if len(w.buf) >= flushAt {
		return w.flush()
	}
	return nil
}

// writeFlushed writes an event and flushes it: --follow shows each as it comes.
func (w *historyWriter) writeFlushed(e *flightrec.Entry) error {
	if err := w.write(e); err != nil {
		return err
	}
	return w.flush()
}

func (w *historyWriter) flush() error {
	if w.err == nil && len(w.buf) > 0 {
		if _, err := w.out.Write(w.buf); err != nil {
			w.err = fmt.Errorf("writing output: %w", err)
		}
	}
	w.buf = w.buf[:0]
	return w.err
}

// historySummary is history's last JSON line.
type historySummary struct {
	Type string `json:"type"` // "summary"
	flightrec.Summary
}

func (w *historyWriter) summary(stderr io.Writer, s flightrec.Summary) error {
	fmt.Fprintf(stderr, "ghostwatch: history: %s\n", summaryLine(s))
	if !w.isJSON {
		return nil
	}
	if s.Gaps == nil {
		s.Gaps = []flightrec.Gap{}
	}
	return newPrinter("json", w.out).print(historySummary{Type: "summary", Summary: s}, nil)
}

// summaryLine says what history saw in one line: events, their time range, and the gaps.
func summaryLine(s flightrec.Summary) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d events", s.Events)
	if s.Events > 0 {
		fmt.Fprintf(&b, " from %s to %s", stamp(s.First), stamp(s.Last))
	}
	if !s.Since.IsZero() {
		fmt.Fprintf(&b, " (record kept since %s)", stamp(s.Since))
	} else {
		b.WriteString(" (the record is empty)")
	}
	if len(s.Gaps) == 0 {
		b.WriteString("; no gaps")
	}
	for i, g := range s.Gaps {
		if i == 0 {
			b.WriteString("; gaps: ")
		} else {
			b.WriteString(", ")
		}
		switch g.Reason {
		case flightrec.GapStopped:
			fmt.Fprintf(&b, "no agent %s", span(g.From, g.To))
		case flightrec.GapKilled:
			fmt.Fprintf(&b, "agent killed, down %s", span(g.From, g.To))
		default:
			fmt.Fprintf(&b, "lost %s", span(g.From, g.To))
		}
		if len(g.Lost) > 0 {
			b.WriteString(" (")
			for j, l := range g.Lost {
				if j > 0 {
					b.WriteString(", ")
				}
				fmt.Fprintf(&b, "%d %s %s", l.Count, l.Gadget, strings.ReplaceAll(l.Cause, "_", " "))
			}
			b.WriteString(")")
		}
	}
	if s.Skipped > 0 {
		fmt.Fprintf(&b, "; %d bytes of corrupt record skipped", s.Skipped)
	}
	return b.String()
}

// stamp is a time in a summary: local, to the millisecond.
func stamp(t time.Time) string { return t.Local().Format("2006-01-02 15:04:05.000") }

// span is a time range in a summary, its date written once when it is one day's.
func span(from, to time.Time) string {
	if from.Local().Format(time.DateOnly) == to.Local().Format(time.DateOnly) {
		return stamp(from) + "-" + to.Local().Format("15:04:05.000")
	}
	return stamp(from) + " to " + stamp(to)
}
