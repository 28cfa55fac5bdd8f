package main

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/urfave/cli/v2"

	"github.com/ghostwatch/ghostwatch/tracer/container"
	"github.com/ghostwatch/ghostwatch/tracer/encode"
	"github.com/ghostwatch/ghostwatch/tracer/netns"
)

func netnsCommand() *cli.Command {
	return &cli.Command{
		Name:  "netns",
		Usage: "network namespaces: who keeps each one alive",
		Subcommands: []*cli.Command{{
			Name:  "holders",
			Usage: "every live network namespace, the processes in it, and what else holds it (fds, sockets, bind mounts)",
			Flags: append([]cli.Flag{outputFlag,
				&cli.BoolFlag{Name: "orphans", Usage: "only namespaces no process lives in"},
				&cli.StringFlag{Name: "netns", Usage: "only the namespace of this inode"},
				&cli.StringFlag{Name: "source", Value: "auto", Usage: "auto (BPF iterators where they load, else /proc), iterators or proc"},
			}, containerFlags(false)...),
			Action: holdersAction,
		}},
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return usagef("unknown netns command %q: see 'ghostwatch netns --help'", c.Args().First())
			}
			return usagef("name a netns command: holders")
		},
	}
}

func holdersAction(c *cli.Context) error {
	format, co, err := listFlags(c)
	if err != nil {
		return err
	}
	o := netns.Options{Orphans: c.Bool("orphans")}
	switch s := c.String("source"); s {
	case "auto":
	case netns.SourceIterators, netns.SourceProc:
		o.Source = s
	default:
		return usagef("--source %q: want auto, iterators or proc", s)
	}
	if s := c.String("netns"); s != "" {
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil || n == 0 {
			return usagef("--netns %q: want a namespace inode number, as in /proc/PID/ns/net's net:[INODE]", s)
		}
		o.NetNS = uint32(n)
	}
	coll := container.NewCollection()
	defer watchContainers(c.Context, coll, co, c.App.ErrWriter).Stop()
	o.Resolver = coll
	snap, err := netns.Take(o)
	if err != nil {
		return fmt.Errorf("reading namespaces: %w", err)
	}
	if snap.IteratorError != "" {
		fmt.Fprintf(c.App.ErrWriter, "ghostwatch: warning: BPF iterators did not load (%s); read /proc instead\n", snap.IteratorError)
	}
	if o.NetNS != 0 && len(snap.Namespaces) == 0 {
		return fmt.Errorf("netns %d: no process, open file, socket or mount refers to it: it is gone, or only the kernel holds it", o.NetNS)
	}
	p := newPrinter(format, c.App.Writer, holdersColumns...)
	for _, n := range snap.Namespaces {
		owner := "-"
		if n.Container != nil {
			owner = n.Container.Label()
		}
		var j encode.JSON
		n.AppendJSON(&j)
		if err := p.print(json.RawMessage(j.B), []string{strconv.Itoa(int(n.Inode)), owner, n.HeldBy() + "; " + n.Addresses()}); err != nil {
			return fmt.Errorf("writing output: %w", err)
		}
	}
	return nil
}

var holdersColumns = []column{{"NETNS", 10}, {"CONTAINER", 16}, {"HOLDERS", 0}}
