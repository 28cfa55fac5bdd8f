package main

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/urfave/cli/v2"

	"github.com/ghostwatch/ghostwatch/tracer/container"
)

func psCommand() *cli.Command {
	return &cli.Command{
		Name:  "ps",
		Usage: "list the containers ghostwatch knows, with their init pid and namespace inodes",
		Flags: append([]cli.Flag{outputFlag}, containerFlags(false)...),
		Action: func(c *cli.Context) error {
			format, co, err := listFlags(c)
			if err != nil {
				return err
			}
			coll := container.NewCollection()
			defer watchContainers(c.Context, coll, co, c.App.ErrWriter).Stop()
			list := coll.List()
			slices.SortFunc(list, func(a, b *container.Container) int {
				return cmp.Or(cmp.Compare(a.K8sNamespace, b.K8sNamespace), cmp.Compare(a.Pod, b.Pod),
					cmp.Compare(a.Name, b.Name), cmp.Compare(a.ID, b.ID))
			})
			p := newPrinter(format, c.App.Writer, psColumns...)
			for _, ct := range list {
				if err := p.print(ct, psRow(ct)); err != nil {
					return fmt.Errorf("writing output: %w", err)
				}
			}
			return nil
		},
	}
}

var psColumns = []column{{"CONTAINER ID", 13}, {"NAME", 16}, {"POD", 16}, {"NAMESPACE", 12}, {"RUNTIME", 10},
	{"IMAGE", 30}, {"PID", 7}, {"MNTNS", 10}, {"NETNS", 10}, {"PIDNS", 0}}

func psRow(c *container.Container) []string {
	id := c.ID
	if len(id) > 12 {
		id = id[:12]
	}
	name := c.Name
	if c.Sandbox {
		name = "(sandbox)"
	}
	dash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	return []string{id, dash(name), dash(c.Pod), dash(c.K8sNamespace), c.Runtime, dash(c.Image),
		fmt.Sprint(c.Pid), fmt.Sprint(c.NS["mnt"]), fmt.Sprint(c.NS["net"]), fmt.Sprint(c.NS["pid"])}
}
