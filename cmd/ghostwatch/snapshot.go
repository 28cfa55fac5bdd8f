package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/ghostwatch/ghostwatch/tracer/container"
	"github.com/ghostwatch/ghostwatch/tracer/encode"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
	"github.com/ghostwatch/ghostwatch/tracer/registry"
)

// snapshotCommands are `ghostwatch GROUP NAME` for every snapshot gadget: a command per group,
// a subcommand per snapshot.
func snapshotCommands() []*cli.Command {
	var groups []*cli.Command
	names := map[string][]string{}
	for _, d := range registry.Snapshots() {
		i := slices.IndexFunc(groups, func(c *cli.Command) bool { return c.Name == d.Group })
		if i < 0 {
			groups = append(groups, &cli.Command{Name: d.Group})
			i = len(groups) - 1
		}
		groups[i].Subcommands = append(groups[i].Subcommands, snapshotCommand(d))
		names[d.Group] = append(names[d.Group], d.Name)
	}
	for _, g := range groups {
		g.Usage = "read once what the " + g.Name + " gadget's iterators find: " + strings.Join(names[g.Name], ", ")
	}
	return groups
}

// snapshotCommand reads a snapshot gadget once and prints its items: -o, --source, the gadget's
// own options as flags, and the container sources that name owners.
func snapshotCommand(d *gadget.Descriptor) *cli.Command {
	flags := []cli.Flag{outputFlag, &cli.StringFlag{Name: "source", Value: gadget.SourceAuto,
		Usage: "auto (BPF iterators where they load, else /proc), iterators or proc"}}
	for _, p := range d.Params {
		flags = append(flags, paramFlag(p))
	}
	return &cli.Command{
		Name:  d.Name,
		Usage: d.Summary,
		Flags: append(flags, containerFlags(false)...),
		Action: func(c *cli.Context) error {
			format, co, err := listFlags(c)
			if err != nil {
				return err
			}
			source := c.String("source")
			if !slices.Contains(gadget.Sources, source) {
				return usagef("--source %q: want %s", source, strings.Join(gadget.Sources, ", "))
			}
			return snapshot(c, d, format, source, co, paramValues(c, d))
		},
	}
}

func snapshot(c *cli.Context, d *gadget.Descriptor, format, source string, co containerOptions, params gadget.Params) error {
	stderr := c.App.ErrWriter
	g, err := gadget.Open(d, gadget.Options{Params: params, Source: source})
	if err != nil {
		return err
	}
	defer g.Close()
	coll := container.NewCollection()
	defer watchContainers(c.Context, coll, co, stderr).Stop()
	for _, ch := range g.Choices() {
		if ch.Chosen == "" && source != gadget.SourceProc {
			var why []string
			for _, r := range ch.Rejected {
				why = append(why, r.Candidate+": "+r.Reason)
			}
			fmt.Fprintf(stderr, "ghostwatch: warning: %s: the iterators did not load (%s): %s\n", d.Name, strings.Join(why, "; "), ch.Without)
		}
	}
	items, err := g.Snapshot(coll)
	if err != nil {
		return err
	}
	var out []byte
	if format == "json" {
		var j encode.JSON
		for _, it := range items {
			it.AppendJSON(&j)
			j.B = append(j.B, '\n')
		}
		out = j.B
	} else if len(items) > 0 {
		r := encode.Row{Columns: d.Columns}
		r.Header()
		out = append(out, r.B...)
		for _, it := range items {
			r.Start()
			it.AppendRow(&r)
			r.End()
			out = append(out, r.B...)
		}
	}
	if _, err := c.App.Writer.Write(out); err != nil {
		return fmt.Errorf("writing output: %w", err)
	}
	return nil
}
