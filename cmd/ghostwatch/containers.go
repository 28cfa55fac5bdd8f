package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"

	"github.com/urfave/cli/v2"

	"github.com/ghostwatch/ghostwatch/tracer/container"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
)

// containerFlags say where containers come from, and which ones a trace wants.
func containerFlags(filters bool) []cli.Flag {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "containerd-socket", Value: container.DefaultContainerdSocket, Usage: "containerd's API socket"},
		&cli.StringSliceFlag{Name: "containerd-namespace", Value: cli.NewStringSlice(container.ContainerdNamespaces...),
			Usage: "containerd namespaces to watch (repeatable), or all"},
	}
	if !filters {
		return flags
	}
	return append(flags,
		&cli.StringSliceFlag{Name: "container", Aliases: []string{"c"}, Usage: "only events of this container: id prefix or name (repeatable)"},
		&cli.StringSliceFlag{Name: "pod", Usage: "only events of this pod's containers (repeatable)"},
		&cli.StringFlag{Name: "k8s-namespace", Usage: "only events of containers in this Kubernetes namespace"},
		&cli.BoolFlag{Name: "host", Usage: "only events of host processes (no container)"},
	)
}

// listFlags are the flags of commands that print what they find: -o and the container sources.
func listFlags(c *cli.Context) (string, containerOptions, error) {
	format, err := outputFormat(c)
	if err != nil {
		return "", containerOptions{}, err
	}
	co, err := parseContainerFlags(c)
	return format, co, err
}

type containerOptions struct {
	sel        container.Selector
	socket     string
	namespaces []string // nil: all
}

func parseContainerFlags(c *cli.Context) (containerOptions, error) {
	o := containerOptions{socket: c.String("containerd-socket"), namespaces: c.StringSlice("containerd-namespace")}
	if slices.Contains(o.namespaces, "all") {
		o.namespaces = nil
	}
	if o.socket == "" {
		return o, usagef("--containerd-socket must not be empty")
	}
	// A socket the user named must be there: a wrong path is a mistake to say, not a node without
	// containerd to fall back from (the default socket may well be absent).
	if c.IsSet("containerd-socket") {
		if fi, err := os.Stat(o.socket); errors.Is(err, fs.ErrNotExist) {
			return o, usagef("--containerd-socket %s: no such file", o.socket)
		} else if err == nil && fi.Mode().Type() != fs.ModeSocket {
			return o, usagef("--containerd-socket %s is not a socket", o.socket)
		}
	}
	if c.IsSet("container") || c.IsSet("pod") || c.IsSet("k8s-namespace") || c.IsSet("host") {
		o.sel = container.Selector{Containers: c.StringSlice("container"), Pods: c.StringSlice("pod"),
			K8sNamespace: c.String("k8s-namespace"), Host: c.Bool("host")}
	}
	if err := o.sel.Validate(); err != nil {
		return o, usageError{err}
	}
	return o, nil
}

// mntnsMode is how the kernel applies the selector's list of mount namespaces.
func (o containerOptions) mntnsMode() gadget.MntNSMode {
	switch {
	case o.sel.Host:
		return gadget.MntNSExcept
	case o.sel.Active():
		return gadget.MntNSOnly
	}
	return gadget.MntNSOff
}

// watchContainers fills coll from containerd or, failing it, from cgroup paths, and says which
// in one line on stderr. The watcher must be stopped before what its changes reach is closed.
func watchContainers(ctx context.Context, coll *container.Collection, o containerOptions, stderr io.Writer) *container.Watcher {
	return container.Watch(ctx, coll, o.socket, o.namespaces, func(err error) {
		fmt.Fprintf(stderr, "ghostwatch: warning: %v\n", err)
	})
}

// filterContainers keeps the gadget's kernel filter current until stop is called.
func filterContainers(coll *container.Collection, o containerOptions, set func(uint32, bool) error, stderr io.Writer) (stop func()) {
	if o.mntnsMode() == gadget.MntNSOff {
		return func() {}
	}
	return container.SyncFilter(coll, o.sel, set, func(err error) {
		fmt.Fprintf(stderr, "ghostwatch: warning: %v\n", err)
	})
}

// warnNoMatch says when container filters match nothing running yet.
func warnNoMatch(coll *container.Collection, o containerOptions, stderr io.Writer) {
	if !o.sel.Active() {
		return
	}
	for _, c := range coll.List() {
		if o.sel.Matches(c) {
			return
		}
	}
	fmt.Fprintln(stderr, "ghostwatch: warning: no running container matches the filters yet; waiting for one to start")
}
