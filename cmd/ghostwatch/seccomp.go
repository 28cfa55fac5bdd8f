package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/ghostwatch/ghostwatch/tracer/container"
	"github.com/ghostwatch/ghostwatch/tracer/seccomp"
)

func seccompCommand() *cli.Command {
	return &cli.Command{
		Name:  "seccomp",
		Usage: "record containers' syscalls into OCI seccomp profiles",
		Subcommands: []*cli.Command{
			recordCommand(),
			mergeCommand(),
			hookCommand(),
		},
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return usagef("unknown seccomp command %q: see 'ghostwatch seccomp --help'", c.Args().First())
			}
			return usagef("name a seccomp command: record, merge or hook")
		},
	}
}

func recordCommand() *cli.Command {
	return &cli.Command{
		Name:  "record",
		Usage: "record running containers (--container/--pod/--pid) or new ones from their start (--new)",
		Flags: append([]cli.Flag{
			&cli.BoolFlag{Name: "new", Usage: "record containers that start from now on, from their first instruction"},
			&cli.UintFlag{Name: "pid", Usage: "record the mount namespace of this process"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "a directory (one profile per container), or a .json file for one container; default: stdout for one container"},
			&cli.StringFlag{Name: "base", Usage: "an OCI seccomp profile the recording is merged into"},
			&cli.DurationFlag{Name: "duration", Aliases: []string{"d"}, Usage: "stop after this long; default: when the recorded containers exit, or Ctrl-C"},
		}, containerFlags(true)...),
		Action: record,
	}
}

// target is one recording.
type target struct {
	mntns uint32
	name  string // the profile's file name, without .json
	pid   uint32 // watched: its exit ends the recording
}

func record(c *cli.Context) error {
	if c.Args().Present() {
		return usagef("unexpected argument %q", c.Args().First())
	}
	co, err := parseContainerFlags(c)
	if err != nil {
		return err
	}
	newMode, pid := c.Bool("new"), uint32(c.Uint("pid"))
	switch {
	case co.sel.Host:
		return usagef("--host cannot be recorded: profiles are per container")
	case newMode && pid != 0:
		return usagef("--new and --pid exclude each other: a process that runs already is not new")
	case !newMode && pid == 0 && !co.sel.Active():
		return usagef("say what to record: --container, --pod, --k8s-namespace, --pid, or --new")
	case c.Duration("duration") < 0:
		return usagef("--duration must be positive")
	}
	out := c.String("output")
	if newMode && (out == "" || strings.HasSuffix(out, ".json")) {
		return usagef("--new writes a profile per container: -o must name a directory")
	}
	var base *seccomp.Profile
	if path := c.String("base"); path != "" {
		if base, err = readProfile(path); err != nil {
			return err
		}
	}
	stderr := c.App.ErrWriter
	ctx, cancel := traceContext(c.Context, c.Duration("duration"))
	defer cancel()

	rec, err := seccomp.New(seccomp.Options{New: newMode})
	if err != nil {
		return err
	}
	defer rec.Close()
	coll := container.NewCollection()
	if newMode {
		// Whatever runs now is not new: only namespaces made from now on record by themselves.
		for _, mnt := range allMountNamespaces() {
			if err := rec.Ignore(mnt); err != nil {
				return err
			}
		}
	}
	watchContainers(ctx, coll, co, stderr)

	r := &recording{rec: rec, out: out, base: base, stderr: stderr, targets: map[uint32]*target{}, done: make(chan struct{}, 64)}
	if !newMode {
		if err := r.startRunning(coll, co.sel, pid); err != nil {
			return err
		}
		if len(r.targets) > 1 && (out == "" || strings.HasSuffix(out, ".json")) {
			return usagef("%d containers match: -o must name a directory", len(r.targets))
		}
	}
	fmt.Fprintf(stderr, "ghostwatch: recording syscalls (%s); Ctrl-C to stop\n", r.describe(newMode))

	runErr := make(chan error, 1)
	go func() {
		runErr <- rec.Run(ctx, func(a seccomp.Armed) { r.armed(ctx, coll, co.sel, a) }, lostWarning(stderr))
	}()
	for {
		select {
		case <-r.done:
			if !newMode && r.count() == 0 {
				cancel()
				<-runErr
				return r.err
			}
		case <-ctx.Done():
			err := <-runErr
			r.finishAll()
			if err != nil {
				return err
			}
			return r.err
		}
	}
}

// recording is the state of a record command.
type recording struct {
	rec     *seccomp.Recorder
	out     string
	base    *seccomp.Profile
	stderr  io.Writer
	mu      sync.Mutex
	targets map[uint32]*target
	done    chan struct{}
	err     error
}

func (r *recording) describe(newMode bool) string {
	if newMode {
		return "containers started from now on, into " + r.out
	}
	var names []string
	for _, t := range r.targets {
		names = append(names, t.name)
	}
	return strings.Join(names, ", ")
}

func (r *recording) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.targets)
}

// startRunning records what is running now; what it did before is not in the profile.
func (r *recording) startRunning(coll *container.Collection, sel container.Selector, pid uint32) error {
	if pid != 0 {
		mnt := container.ProcNS(pid)["mnt"]
		if mnt == 0 {
			return fmt.Errorf("no process %d", pid)
		}
		if err := r.rec.Start(mnt); err != nil {
			return err
		}
		r.add(&target{mntns: mnt, name: "pid-" + strconv.Itoa(int(pid)), pid: pid})
		fmt.Fprintf(r.stderr, "ghostwatch: warning: process %d runs already: what it did before now is not in the profile; the whole mount namespace %d is recorded\n", pid, mnt)
	}
	if sel.Active() {
		for _, c := range coll.List() {
			if !sel.Matches(c) || c.NS["mnt"] == 0 {
				continue
			}
			if err := r.rec.Start(c.NS["mnt"]); err != nil {
				return err
			}
			r.add(&target{mntns: c.NS["mnt"], name: profileName(c), pid: c.Pid})
			fmt.Fprintf(r.stderr, "ghostwatch: warning: container %s runs already: syscalls made at its start are not in the profile (use --new)\n", profileName(c))
		}
	}
	if len(r.targets) == 0 {
		return fmt.Errorf("no running container matches the filters")
	}
	return nil
}

func (r *recording) add(t *target) {
	r.mu.Lock()
	r.targets[t.mntns] = t
	r.mu.Unlock()
	if t.pid != 0 {
		go r.watchExit(t)
	}
}

// watchExit finishes a recording when its process (the container's init) exits.
func (r *recording) watchExit(t *target) {
	fd, err := unix.PidfdOpen(int(t.pid), 0)
	switch {
	case err == unix.ESRCH: // exited already: a short-lived container
	case err != nil:
		return // no pidfd: the recording ends with the command
	default:
		for {
			if _, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, -1); err != unix.EINTR {
				break
			}
		}
		unix.Close(fd)
	}
	r.finish(t)
	r.done <- struct{}{}
}

// armed handles a recording the kernel started: keep it if it is a wanted container, else drop it.
func (r *recording) armed(ctx context.Context, coll *container.Collection, sel container.Selector, a seccomp.Armed) {
	go func() {
		// containerd's task event may come a moment after the kernel saw the container start.
		deadline := time.Now().Add(10 * time.Second)
		for ctx.Err() == nil {
			if c := coll.ByMntNS(a.MntNS); c != nil {
				if sel.Active() && !sel.Matches(c) {
					r.rec.Stop(a.MntNS)
					return
				}
				how := "its first seccomp filter"
				if a.Reason == seccomp.ArmExec {
					how = "its first exec (no seccomp filter was installed: the runtime's steps after it installs one at enforcement are not recorded)"
				}
				fmt.Fprintf(r.stderr, "ghostwatch: recording %s from %s\n", profileName(c), how)
				r.add(&target{mntns: a.MntNS, name: profileName(c), pid: c.Pid})
				return
			}
			if time.Now().After(deadline) {
				r.rec.Stop(a.MntNS) // a mount namespace of no container
				return
			}
			time.Sleep(50 * time.Millisecond) // waiting for the runtime's event: nothing to block on
		}
	}()
}

// finish stops one recording and writes its profile.
func (r *recording) finish(t *target) {
	r.mu.Lock()
	if r.targets[t.mntns] != t {
		r.mu.Unlock()
		return
	}
	delete(r.targets, t.mntns)
	r.mu.Unlock()
	s, err := r.rec.Stop(t.mntns)
	if err == nil {
		err = r.write(t, s)
	}
	if err != nil {
		fmt.Fprintf(r.stderr, "ghostwatch: %s: %v\n", t.name, err)
		r.mu.Lock()
		r.err = fmt.Errorf("some profiles were not written")
		r.mu.Unlock()
	}
}

func (r *recording) finishAll() {
	r.mu.Lock()
	var ts []*target
	for _, t := range r.targets {
		ts = append(ts, t)
	}
	r.mu.Unlock()
	for _, t := range ts {
		r.finish(t)
	}
}

func (r *recording) write(t *target, s seccomp.Syscalls) error {
	p := seccomp.Build(s)
	if s.OutOfRange > 0 {
		fmt.Fprintf(r.stderr, "ghostwatch: warning: %s made %d calls with numbers past the recorder's tables\n", t.name, s.OutOfRange)
	}
	if r.base != nil {
		var err error
		if p, err = seccomp.Merge(r.base, p); err != nil {
			return err
		}
	}
	data, err := p.Marshal()
	if err != nil {
		return err
	}
	switch {
	case r.out == "":
		_, err = os.Stdout.Write(data)
		return err
	case strings.HasSuffix(r.out, ".json"):
		return writeFileAtomic(r.out, data)
	}
	if err := os.MkdirAll(r.out, 0o755); err != nil {
		return err
	}
	path := filepath.Join(r.out, t.name+".json")
	if err := writeFileAtomic(path, data); err != nil {
		return err
	}
	fmt.Fprintf(r.stderr, "ghostwatch: wrote %s (%d syscalls)\n", path, len(s.Native)+len(s.Compat)+len(s.X32))
	return nil
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// profileName names a container's profile file: pod_container, name, or id.
func profileName(c *container.Container) string {
	name := c.ID
	switch {
	case c.Pod != "" && c.Name != "":
		name = c.Pod + "_" + c.Name
	case c.Name != "":
		name = c.Name
	}
	return unsafeName.ReplaceAllString(name, "_")
}

func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".ghostwatch-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func readProfile(path string) (*seccomp.Profile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	p, err := seccomp.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// allMountNamespaces lists the mount namespaces processes are in now.
func allMountNamespaces() []uint32 {
	entries, _ := os.ReadDir("/proc")
	seen := map[uint32]bool{}
	var out []uint32
	for _, e := range entries {
		pid, err := strconv.ParseUint(e.Name(), 10, 32)
		if err != nil {
			continue
		}
		if mnt := container.ProcNS(uint32(pid))["mnt"]; mnt != 0 && !seen[mnt] {
			seen[mnt] = true
			out = append(out, mnt)
		}
	}
	return out
}

func mergeCommand() *cli.Command {
	return &cli.Command{
		Name:      "merge",
		Usage:     "union of OCI seccomp profiles",
		ArgsUsage: "PROFILE.json PROFILE.json...",
		Flags:     []cli.Flag{&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write here instead of stdout"}},
		Action: func(c *cli.Context) error {
			if c.NArg() < 2 {
				return usagef("merge needs at least two profiles")
			}
			var merged *seccomp.Profile
			for _, path := range c.Args().Slice() {
				p, err := readProfile(path)
				if err != nil {
					return err
				}
				if merged == nil {
					merged = p
				} else if merged, err = seccomp.Merge(merged, p); err != nil {
					return err
				}
			}
			data, err := merged.Marshal()
			if err != nil {
				return err
			}
			if out := c.String("output"); out != "" {
				return writeFileAtomic(out, data)
			}
			_, err = c.App.Writer.Write(data)
			return err
		},
	}
}
