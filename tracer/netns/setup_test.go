package netns_test

import (
	"context"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ghostwatch/ghostwatch/tracer/gadget"
	"github.com/ghostwatch/ghostwatch/tracer/netns"
	"github.com/ghostwatch/ghostwatch/tracer/testutil"
)

// What a trace of namespaces cannot do without at its start, it does not do without quietly: the
// census of the tasks already in namespaces (without it, a namespace's first leaver would make it
// look empty), and, where the teardown is not traced, the namespace id notifications (without
// them no namespace is ever reported destroyed). Each failure ends the run with an error that
// says which. The run's context is done already: only the set-up runs.
func TestRunFailsWithoutItsSetUp(t *testing.T) {
	testutil.RequirePrivileged(t)
	done, cancel := context.WithCancel(context.Background())
	cancel()
	run := func(t *testing.T, breakIt func(g *gadget.Gadget) func()) error {
		t.Helper()
		g, err := gadget.Open(&netns.Gadget, gadget.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		restore := breakIt(g)
		err = g.Run(done, nil, func(gadget.Event) {}, nil, nil)
		restore()
		return err
	}
	t.Run("census", func(t *testing.T) {
		err := run(t, func(g *gadget.Gadget) func() {
			if err := g.Set().Detach(netns.HookCensus); err != nil {
				t.Fatal(err)
			}
			return func() {}
		})
		if err == nil || !strings.Contains(err.Error(), "counting the tasks in each namespace") {
			t.Errorf("Run without its census = %v, want the census's error", err)
		}
	})
	t.Run("no file descriptor", func(t *testing.T) {
		var teardown bool
		err := run(t, func(g *gadget.Gadget) func() {
			teardown = g.Kind(netns.HookDestroyed) != ""
			return noMoreFiles(t)
		})
		// The notifications are set up first, where they are needed; the census needs a file too.
		want := "counting the tasks in each namespace"
		if !teardown {
			want = "namespace id notifications"
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Run with no file descriptor to open = %v, want an error with %q", err, want)
		}
	})
}

// noMoreFiles lowers the limit on open files to the lowest free descriptor, so that the next
// file, socket or iterator this process opens fails with EMFILE, and returns what restores it.
func noMoreFiles(t *testing.T) func() {
	t.Helper()
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: uint64(fd), Max: old.Max}); err != nil {
		t.Fatal(err)
	}
	return func() {
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &old); err != nil {
			t.Fatal(err)
		}
	}
}
