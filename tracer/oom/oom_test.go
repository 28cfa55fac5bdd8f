package oom_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/ghostwatch/ghostwatch/tracer/event"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
	"github.com/ghostwatch/ghostwatch/tracer/gadget/gadgettest"
	"github.com/ghostwatch/ghostwatch/tracer/oom"
	"github.com/ghostwatch/ghostwatch/tracer/testutil"
)

func open(t *testing.T, r event.Resolver) *gadgettest.Collector[*oom.Event] {
	t.Helper()
	testutil.RequirePrivileged(t)
	tr, err := gadget.OpenTracer[*oom.Event](&oom.Gadget, gadget.Options{}, r)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return gadgettest.Collect(t, func(ctx context.Context, emit func(*oom.Event)) error {
		return tr.Run(ctx, emit, nil)
	})
}

// memcg is a memory cgroup of the test's own: v1 where the memory controller is mounted there
// (this machine), else v2 (vmtest's guests).
type memcg struct {
	dir  string // in the file system
	path string // below its hierarchy's root, as events show it
	v1   bool
}

func newMemcg(t *testing.T, parent *memcg, name string, limit int64) *memcg {
	t.Helper()
	m := &memcg{}
	switch {
	case parent != nil:
		m.dir, m.path, m.v1 = filepath.Join(parent.dir, name), parent.path+"/"+name, parent.v1
	case dirExists("/sys/fs/cgroup/memory"):
		m.dir, m.path, m.v1 = "/sys/fs/cgroup/memory/"+name, "/"+name, true
	default:
		root := "/sys/fs/cgroup/unified"
		m.dir, m.path = filepath.Join(root, name), "/"+name
	}
	if !m.v1 {
		write(t, filepath.Join(filepath.Dir(m.dir), "cgroup.subtree_control"), "+memory")
	}
	if err := os.Mkdir(m.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.Remove(m.dir); err != nil {
			t.Errorf("removing %s: %v", m.dir, err)
		}
	})
	if limit > 0 {
		if m.v1 {
			write(t, filepath.Join(m.dir, "memory.limit_in_bytes"), strconv.FormatInt(limit, 10))
		} else {
			write(t, filepath.Join(m.dir, "memory.max"), strconv.FormatInt(limit, 10))
			write(t, filepath.Join(m.dir, "memory.swap.max"), "0")
		}
	}
	return m
}

func dirExists(p string) bool { st, err := os.Stat(p); return err == nil && st.IsDir() }

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// run starts script in the memory cgroup (the shell moves itself in, then runs it), and returns
// the process once it has printed its first line: script must print one when it is ready.
func (m *memcg) run(t *testing.T, script string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sh", "-c", `echo $$ > "$MEMCG/cgroup.procs" || exit 1; `+script)
	cmd.Env = append(os.Environ(), "MEMCG="+m.dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	in, err := cmd.StdinPipe() // open until cleanup: a script may wait on it
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); in.Close() })
	if _, err := bufio.NewReader(out).ReadString('\n'); err != nil {
		t.Fatalf("%s: no first line: %v", script, err)
	}
	return cmd
}

// killed waits for the process to end and fails unless SIGKILL ended it.
func killed(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(testutil.Wait):
		t.Fatalf("%v was not killed within %v", cmd.Args, testutil.Wait)
	}
	if st := cmd.ProcessState.Sys().(syscall.WaitStatus); !st.Signaled() || st.Signal() != syscall.SIGKILL {
		t.Fatalf("%v ended with %v, want SIGKILL", cmd.Args, err)
	}
}

const mib = 1 << 20

// allocate grows a shell string without end: the shell allocates until it is killed.
const allocate = `echo go; a=x; while :; do a=$a$a; done`

func TestOOMKills(t *testing.T) {
	events := open(t, nil)
	type want struct {
		victim, trigger int
		memcg           *memcg
		limit           uint64
	}
	cases := []struct {
		name     string
		generate func(t *testing.T) want
	}{
		{"the victim's memcg is at its limit", func(t *testing.T) want {
			m := newMemcg(t, nil, fmt.Sprintf("gw-oom-%d", os.Getpid()), 16*mib)
			p := m.run(t, allocate)
			killed(t, p)
			return want{victim: p.Process.Pid, trigger: p.Process.Pid, memcg: m, limit: 16 * mib}
		}},
		{"a parent's limit is hit from a child without one", func(t *testing.T) want {
			parent := newMemcg(t, nil, fmt.Sprintf("gw-oom-parent-%d", os.Getpid()), 16*mib)
			child := newMemcg(t, parent, "child", 0)
			p := child.run(t, allocate)
			killed(t, p)
			return want{victim: p.Process.Pid, trigger: p.Process.Pid, memcg: parent, limit: 16 * mib}
		}},
		{"the victim is not the task that ran out", func(t *testing.T) want {
			m := newMemcg(t, nil, fmt.Sprintf("gw-oom-other-%d", os.Getpid()), 16*mib)
			// With the highest oom_score_adj and a few MiB of its own it is chosen first: the badness
			// of each is its pages, plus adj/1000 of the limit's.
			holder := m.run(t, `echo 1000 > /proc/self/oom_score_adj && a=x i=0 && while [ $i -lt 21 ]; do a=$a$a i=$((i+1)); done && echo ready && read _`)
			p := m.run(t, allocate)
			killed(t, holder)
			killed(t, p) // then it runs out again, and is killed itself
			return want{victim: holder.Process.Pid, trigger: p.Process.Pid, memcg: m, limit: 16 * mib}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := tc.generate(t)
			ev := events.Next(t, fmt.Sprintf("the kill of %d", w.victim), func(e *oom.Event) bool {
				return int(e.Proc.PID) == w.victim
			}, nil)
			d := ev.OOM
			if d.Constraint != "memcg" {
				t.Errorf("constraint %q (from %s), want memcg", d.Constraint, d.ConstraintFrom)
			}
			if d.Memcg.Path != w.memcg.path || d.Memcg.Limit != w.limit {
				t.Errorf("memcg %s with limit %d, want %s with limit %d", d.Memcg.Path, d.Memcg.Limit, w.memcg.path, w.limit)
			}
			if !d.Memcg.AtLimit || d.Memcg.Usage > w.limit || d.Memcg.Usage < w.limit-mib {
				t.Errorf("memcg usage %d (at limit: %v), want within 1 MiB of %d", d.Memcg.Usage, d.Memcg.AtLimit, w.limit)
			}
			if int(d.Trigger.PID) != w.trigger || d.Trigger.Same != (w.trigger == w.victim) || d.Trigger.Comm != "sh" {
				t.Errorf("trigger %d %s (same %v), want %d sh", d.Trigger.PID, d.Trigger.Comm, d.Trigger.Same, w.trigger)
			}
			if ev.Proc.Comm != "sh" || d.Victim.TotalVM == 0 {
				t.Errorf("victim %s with memory %+v", ev.Proc.Comm, d.Victim)
			}
			// The allocating shell's string is most of the limit; the holder has next to nothing.
			if w.victim == w.trigger && (d.Victim.AnonRSS < w.limit/4 || d.Victim.RSS() > w.limit+4*mib) {
				t.Errorf("victim rss %d (anon %d), want most of the limit %d", d.Victim.RSS(), d.Victim.AnonRSS, w.limit)
			}
		})
	}
}
