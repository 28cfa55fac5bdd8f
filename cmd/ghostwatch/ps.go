package main

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/ghostwatch/ghostwatch/tracer/container"
)

func psCommand() *cli.Command {
	return &cli.Command{
		Name:  "ps",
		Usage: "list the containers ghostwatch knows, with their init pid and namespace inodes",
		Flags: append([]cli.Flag{outputFlag,
			&cli.BoolFlag{Name: "pods", Usage: "by pod: which namespaces each container shares with the sandbox, another container or the host"},
		}, containerFlags(false)...),
		Action: func(c *cli.Context) error {
			format, co, err := listFlags(c)
			if err != nil {
				return err
			}
			coll := container.NewCollection()
			defer watchContainers(c.Context, coll, co, c.App.ErrWriter).Stop()
			if c.Bool("pods") {
				return printPods(newPrinter(format, c.App.Writer, podColumns...), coll.Pods())
			}
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

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func psRow(c *container.Container) []string {
	id := c.ID
	if len(id) > 12 {
		id = id[:12]
	}
	name := c.Name
	if c.Sandbox {
		name = "(sandbox)"
	}
	return []string{id, dash(name), dash(c.Pod), dash(c.K8sNamespace), c.Runtime, dash(c.Image),
		fmt.Sprint(c.Pid), fmt.Sprint(c.NS["mnt"]), fmt.Sprint(c.NS["net"]), fmt.Sprint(c.NS["pid"])}
}

// podColumns: the pod, then one row per container, with one column per namespace type saying
// whose it is in.
var podColumns = func() []column {
	cols := []column{{"NAMESPACE", 12}, {"POD", 16}, {"CONTAINER", 16}, {"PID", 7}}
	for _, ty := range container.PodNamespaces {
		cols = append(cols, column{strings.ToUpper(ty), 9})
	}
	return append(cols, column{"FLAGS", 0})
}()

// printPods writes a pod per JSON object, or a row per container of each pod, whose namespace
// columns name the container (a bare name in the table) whose namespace it is in.
func printPods(p *printer, pods []container.Pod) error {
	for _, pod := range pods {
		if p.json != nil {
			if err := p.print(pod, nil); err != nil {
				return fmt.Errorf("writing output: %w", err)
			}
			continue
		}
		for _, m := range pod.Members {
			name := m.Name
			if m.Sandbox {
				name = "(sandbox)"
			}
			row := []string{pod.K8sNamespace, pod.Pod, dash(name), fmt.Sprint(m.Pid)}
			for _, ty := range container.PodNamespaces {
				row = append(row, dash(strings.TrimPrefix(m.Shares[ty], container.ContainerShare)))
			}
			if err := p.print(nil, append(row, dash(strings.Join(m.Flags, ",")))); err != nil {
				return fmt.Errorf("writing output: %w", err)
			}
		}
	}
	return nil
}
