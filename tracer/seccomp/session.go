package seccomp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ghostwatch/ghostwatch/tracer/container"
	"github.com/ghostwatch/ghostwatch/tracer/outfile"
	"github.com/ghostwatch/ghostwatch/tracer/seccomp/runtimebase"
)

// Session records containers into profiles, one per mount namespace: the running ones it is told
// of, and (with a recorder made with New) the ones the kernel starts recording by itself, kept
// when they belong to a wanted container. Each recording ends when its container's process exits,
// or when the session stops, and its profile is written then.
type Session struct {
	rec  *Recorder
	coll *container.Collection
	sel  container.Selector
	// Out is where profiles go: "" for Stdout, a .json file, or a directory (one per container).
	out    string
	base   *Profile
	log    io.Writer
	stdout io.Writer

	mu      sync.Mutex
	targets map[uint32]*target
	err     error
	wake    chan struct{}

	// Goroutines the session started: those resolving recordings the kernel started, and those
	// waiting on a container's exit, which also wait on stop so that Close ends them.
	armedWG, watchWG sync.WaitGroup
	stopR, stopW     int // a pipe: closing stopW wakes every watcher
	closeOnce        sync.Once
}

// SessionOptions configure a Session.
type SessionOptions struct {
	Selector container.Selector // which containers the kernel's own recordings are kept for
	Out      string             // "" (Stdout), FILE.json, or a directory
	Base     *Profile           // merged into every profile, if not nil
	Log      io.Writer          // progress and warnings, one line each
	Stdout   io.Writer          // where a profile goes when Out is ""
}

// target is one recording.
type target struct {
	key   uint32 // the recording's key: a mount namespace, or a process tree's root pid
	name  string // the profile's file name, without .json
	pid   uint32 // watched: its exit ends the recording
	start *runtimebase.Start
}

// containerTarget is the recording of a container, with its runtime's start-up, so that the
// container can start under its profile; a warning says when that start-up is not known.
func (s *Session) containerTarget(c *container.Container) *target {
	t := &target{key: c.NS["mnt"], name: ProfileName(c), pid: c.Pid}
	var warn string
	if t.start, warn = runtimebase.For(c.OCIRuntime, c.NoNewPrivileges); warn != "" {
		fmt.Fprintf(s.log, "ghostwatch: warning: %s: %s\n", t.name, warn)
	}
	return t
}

// NewSession makes a session on a loaded recorder; coll attributes namespaces to containers.
func NewSession(rec *Recorder, coll *container.Collection, o SessionOptions) *Session {
	s := &Session{rec: rec, coll: coll, sel: o.Selector, out: o.Out, base: o.Base, log: o.Log, stdout: o.Stdout,
		targets: map[uint32]*target{}, wake: make(chan struct{}, 1), stopR: -1, stopW: -1}
	var p [2]int
	if unix.Pipe2(p[:], unix.O_CLOEXEC) == nil {
		s.stopR, s.stopW = p[0], p[1]
	}
	return s
}

// Close ends the goroutines that wait on containers' exits (Run calls it; call it when Run is not
// called). Recordings not finished stay unwritten.
func (s *Session) Close() {
	s.closeOnce.Do(func() {
		if s.stopW >= 0 {
			unix.Close(s.stopW)
		}
		s.watchWG.Wait()
		if s.stopR >= 0 {
			unix.Close(s.stopR)
		}
	})
}

// StartPID records a running process and its descendants (those running and those it starts),
// not the rest of its mount namespace; what it did before is not in the profile.
func (s *Session) StartPID(pid uint32) error {
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
		return fmt.Errorf("no process %d", pid)
	}
	if err := s.rec.StartTree(pid); err != nil {
		return err
	}
	s.add(&target{key: pid, name: "pid-" + strconv.Itoa(int(pid)), pid: pid})
	fmt.Fprintf(s.log, "ghostwatch: warning: process %d runs already: what it did before now is not in the profile; it and its descendants are recorded\n", pid)
	return nil
}

// StartRunning records the running containers the selector matches and returns how many.
func (s *Session) StartRunning() (int, error) {
	n := 0
	for _, c := range s.coll.List() {
		if !s.sel.Matches(c) || c.NS["mnt"] == 0 {
			continue
		}
		if err := s.rec.Start(c.NS["mnt"]); err != nil {
			return n, err
		}
		s.add(s.containerTarget(c))
		n++
		fmt.Fprintf(s.log, "ghostwatch: warning: container %s runs already: syscalls made at its start are not in the profile (use --new)\n", ProfileName(c))
	}
	return n, nil
}

// Names lists the recordings under way by profile name.
func (s *Session) Names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	for _, t := range s.targets {
		names = append(names, t.name)
	}
	return names
}

// Run records until ctx is done or, if untilEmpty, until the last recording has ended; then it
// writes the profiles of those still under way. The error says if any profile was not written.
func (s *Session) Run(ctx context.Context, untilEmpty bool, onLost func(uint64)) error {
	defer s.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	runErr := make(chan error, 1)
	go func() {
		runErr <- s.rec.Run(ctx, func(a Armed) {
			s.armedWG.Add(1)
			go func() { defer s.armedWG.Done(); s.armed(ctx, a) }()
		}, onLost)
	}()
	for {
		select {
		case <-s.wake:
			if !untilEmpty || len(s.Names()) > 0 {
				continue
			}
		case <-ctx.Done():
		}
		cancel()
		err := <-runErr
		s.armedWG.Wait() // none adds a recording after this
		s.finishAll()
		if n := s.rec.NotRecorded(); n > 0 {
			fmt.Fprintf(s.log, "ghostwatch: warning: %d containers or processes were not recorded: the recorder's tables were full\n", n)
			err = errors.Join(err, errors.New("some recordings were not made"))
		}
		return errors.Join(err, s.failed())
	}
}

func (s *Session) failed() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *Session) add(t *target) {
	s.mu.Lock()
	s.targets[t.key] = t
	s.mu.Unlock()
	if t.pid != 0 {
		s.watchWG.Add(1)
		go func() { defer s.watchWG.Done(); s.watchExit(t) }()
	}
}

// watchExit finishes a recording when its process (the container's init) exits, or returns when
// the session closes.
func (s *Session) watchExit(t *target) {
	if exited, _ := waitExit(t.pid, s.stopR); !exited {
		return // the session closed (or no pidfd): Run finishes what is left
	}
	s.finish(t)
	select {
	case s.wake <- struct{}{}:
	default: // a wake-up is pending already; Run counts what is left when it wakes
	}
}

// armedWait is how long a namespace the kernel started recording may take to be known as a
// container: containerd's task event may come a moment after the kernel saw the container start.
const armedWait = 10 * time.Second

// armed handles a recording the kernel started: keep it if it is a wanted container, else drop it.
func (s *Session) armed(ctx context.Context, a Armed) {
	deadline := time.Now().Add(armedWait)
	for ctx.Err() == nil {
		c := s.coll.ByMntNS(a.MntNS)
		if c == nil {
			// The task that arms is the container's init (it installs the filter, or execs the
			// workload), so a container that ran and exited before its namespaces could be read
			// is still found.
			c = s.coll.ByInit(a.Proc.PID)
		}
		if c != nil {
			if s.sel.Active() && !s.sel.Matches(c) {
				s.rec.Stop(a.MntNS)
				return
			}
			how := "its first seccomp filter"
			if a.Reason == ArmExec {
				how = "its first exec (no seccomp filter was installed: its runtime's start-up is added from ghostwatch's recordings of it)"
			}
			fmt.Fprintf(s.log, "ghostwatch: recording %s from %s\n", ProfileName(c), how)
			t := s.containerTarget(c)
			t.key = a.MntNS
			s.add(t)
			return
		}
		if time.Now().After(deadline) {
			s.rec.Stop(a.MntNS) // a mount namespace of no container
			return
		}
		time.Sleep(50 * time.Millisecond) // waiting for the runtime's event: nothing to block on
	}
}

// finish stops one recording and writes its profile.
func (s *Session) finish(t *target) {
	s.mu.Lock()
	if s.targets[t.key] != t {
		s.mu.Unlock()
		return
	}
	delete(s.targets, t.key)
	s.mu.Unlock()
	sc, err := s.rec.Stop(t.key)
	if err == nil {
		err = s.write(t, sc)
	}
	if err != nil {
		fmt.Fprintf(s.log, "ghostwatch: %s: %v\n", t.name, err)
		s.mu.Lock()
		s.err = errors.New("some profiles were not written")
		s.mu.Unlock()
	}
}

func (s *Session) finishAll() {
	s.mu.Lock()
	var ts []*target
	for _, t := range s.targets {
		ts = append(ts, t)
	}
	s.mu.Unlock()
	for _, t := range ts {
		s.finish(t)
	}
}

func (s *Session) write(t *target, sc Syscalls) error {
	p := Build(sc)
	if t.start != nil {
		p.AddRuntimeBase(t.start.Label, t.start.Names)
	}
	if sc.OutOfRange > 0 {
		fmt.Fprintf(s.log, "ghostwatch: warning: %s made %d calls with numbers past the recorder's tables\n", t.name, sc.OutOfRange)
	}
	if s.base != nil {
		var err error
		if p, err = Merge(s.base, p); err != nil {
			return err
		}
	}
	data, err := p.Marshal()
	if err != nil {
		return err
	}
	switch {
	case s.out == "":
		_, err = s.stdout.Write(data)
		return err
	case strings.HasSuffix(s.out, ".json"):
		return outfile.WriteFile(s.out, data)
	}
	if err := os.MkdirAll(s.out, 0o755); err != nil {
		return err
	}
	path := filepath.Join(s.out, t.name+".json")
	if err := outfile.WriteFile(path, data); err != nil {
		return err
	}
	fmt.Fprintf(s.log, "ghostwatch: wrote %s (%d syscalls)\n", path, len(sc.Native)+len(sc.Compat)+len(sc.X32))
	return nil
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// ProfileName names a container's profile file: pod_container, name, or id.
func ProfileName(c *container.Container) string {
	name := c.ID
	switch {
	case c.Pod != "" && c.Name != "":
		name = c.Pod + "_" + c.Name
	case c.Name != "":
		name = c.Name
	}
	return unsafeName.ReplaceAllString(name, "_")
}

// ReadProfile reads and checks an OCI seccomp profile.
func ReadProfile(path string) (*Profile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	p, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}
