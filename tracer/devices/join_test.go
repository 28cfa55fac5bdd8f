package devices

import (
	"fmt"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ghostwatch/ghostwatch/tracer/event"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
)

func rules(t *testing.T, allow bool, list ...string) []Rule {
	t.Helper()
	var out []Rule
	for _, s := range list {
		r, err := ParseRule(s, allow)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func TestParseRule(t *testing.T) {
	for in, want := range map[string]string{"a": "a *:* rwm", "c 1:9 rwm": "c 1:9 rwm", "b *:* m": "b *:* m",
		"c 136:* rw\n": "c 136:* rw", "c 1:3 mwr": "c 1:3 rwm"} {
		r, err := ParseRule(in, true)
		if err != nil || r.String() != want {
			t.Errorf("%q: %v %v, want %s", in, r, err, want)
		}
	}
	for _, in := range []string{"", "x 1:3 r", "c 1:3", "c1:3 r", "c 1 r", "c 1:3 rx", "c -1:3 r"} {
		if r, err := ParseRule(in, true); err == nil {
			t.Errorf("%q parsed as %v", in, r)
		}
	}
}

// The kernel's rules: under a default of deny an exception must cover the whole access; under a
// default of allow, an exception touching any of it denies.
func TestStateAllows(t *testing.T) {
	deny := State{Read: true, Exceptions: rules(t, true, "c 1:9 rw", "c 136:* rwm", "b *:* m")}
	allow := State{Read: true, DefaultAllow: true, Exceptions: rules(t, false, "c 1:9 w")}
	for _, c := range []struct {
		s            *State
		typ          int
		major, minor int64
		access       int
		want         bool
		name         string
	}{
		{&deny, TypeChar, 1, 9, AccRead, true, "covered"},
		{&deny, TypeChar, 1, 9, AccRead | AccMknod, false, "partly covered"},
		{&deny, TypeChar, 136, 4, AccWrite, true, "wildcard minor"},
		{&deny, TypeBlock, 8, 0, AccMknod, true, "wildcard type major minor"},
		{&deny, TypeBlock, 8, 0, AccRead, false, "not listed"},
		{&allow, TypeChar, 1, 9, AccRead, true, "other access"},
		{&allow, TypeChar, 1, 9, AccRead | AccWrite, false, "touching the exception"},
		{&allow, TypeChar, 1, 3, AccWrite, true, "other device"},
	} {
		if got := c.s.Allows(c.typ, c.major, c.minor, c.access); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func write(t *testing.T, at time.Time, pid uint32, file, rule string, before, after State) *RuleWrite {
	t.Helper()
	w := &RuleWrite{Header: event.Header{Time: at, Proc: event.Proc{PID: pid, Comm: "runc"}}, File: file, Written: rule,
		Result: "ok", Cgroup: Cgroup{ID: 7, Path: "/k8s.io/db"}, Before: before, After: after}
	w.Removed = removed(&w.Before, &w.After)
	return w
}

func deniedOpen(at time.Time, major, minor int64) *Denied {
	return &Denied{Header: event.Header{Time: at, Proc: event.Proc{PID: 99, Comm: "db"}}, Path: "/dev/x", Known: true,
		Type: TypeChar, Major: major, Minor: minor, Access: AccRead, DecidedBy: ByKernel, DevCgroup: Cgroup{ID: 7}}
}

// A window opens when a write removes what was allowed, collects the denials in it, and closes with
// the write after which everything is allowed again; a set-up from allow-all opens none and makes
// the policy.
func TestWindowAndCauses(t *testing.T) {
	j := NewJoin(nil)
	var out []gadget.Event
	emit := func(ev gadget.Event) { out = append(out, ev.Clone()) }
	t0 := time.Unix(1000, 0)
	all := State{Read: true, DefaultAllow: true}
	none := State{Read: true}
	policy := State{Read: true, Exceptions: rules(t, true, "c 1:3 rwm", "c 1:9 rwm")}
	half := State{Read: true, Exceptions: rules(t, true, "c 1:3 rwm")}

	j.Process(write(t, t0, 1, "devices.deny", "a", all, none), emit)
	j.Process(write(t, t0.Add(time.Millisecond), 1, "devices.allow", "c 1:3 rwm", none, half), emit)
	j.Process(write(t, t0.Add(2*time.Millisecond), 1, "devices.allow", "c 1:9 rwm", half, policy), emit)
	j.Process(deniedOpen(t0.Add(time.Second), 1, 5), emit) // never allowed: the policy
	update := t0.Add(10 * time.Second)
	j.Process(write(t, update, 42, "devices.deny", "a", policy, none), emit)
	j.Process(deniedOpen(update.Add(100*time.Millisecond), 1, 9), emit)
	j.Process(deniedOpen(update.Add(200*time.Millisecond), 1, 9), emit)
	j.Process(write(t, update.Add(300*time.Millisecond), 42, "devices.allow", "c 1:3 rwm", none, half), emit)
	j.Process(write(t, update.Add(301*time.Millisecond), 42, "devices.allow", "c 1:9 rwm", half, policy), emit)
	j.Flush(update.Add(time.Hour), true, emit)

	var got []string
	for _, ev := range out {
		switch e := ev.(type) {
		case *RuleWrite:
			got = append(got, "rule "+e.Written)
		case *Denied:
			got = append(got, fmt.Sprintf("denied %s cause %s", e.Device(), e.Cause.Label()))
		case *Window:
			got = append(got, fmt.Sprintf("window %v deny-all %v denied %d closed by %s", e.Closed.Sub(e.Opened), e.DenyAll, e.Denied, e.ClosedBy.Rule))
		}
	}
	want := []string{
		"rule a", "rule c 1:3 rwm", "rule c 1:9 rwm",
		"denied c 1:5 cause policy 1s before by runc (pid 1): cgroup_version=1 rules=c 1:3 rwm, c 1:9 rwm",
		"rule a",
		"denied c 1:9 cause rule 100ms before by runc (pid 42): file=devices.deny rule=a",
		"denied c 1:9 cause rule 200ms before by runc (pid 42): file=devices.deny rule=a",
		"rule c 1:3 rwm", "rule c 1:9 rwm",
		"window 301ms deny-all true denied 2 closed by c 1:9 rwm",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got\n%s\nwant\n%s", fmt.Sprint(got), fmt.Sprint(want))
	}
}

// A window never closed is emitted at stop, still open.
func TestWindowStillOpenAtStop(t *testing.T) {
	j := NewJoin(nil)
	var out []gadget.Event
	emit := func(ev gadget.Event) { out = append(out, ev.Clone()) }
	t0 := time.Unix(1000, 0)
	policy := State{Read: true, Exceptions: rules(t, true, "c 1:9 rwm")}
	j.Process(write(t, t0, 1, "devices.deny", "c 1:9 w", policy, State{Read: true, Exceptions: rules(t, true, "c 1:9 rm")}), emit)
	j.Flush(t0.Add(time.Second), false, emit)
	if len(out) != 1 {
		t.Fatalf("%d events before stop, want the write only", len(out))
	}
	j.Flush(t0.Add(5*time.Second), true, emit)
	w, ok := out[len(out)-1].(*Window)
	if !ok || !w.StillOpen || w.DenyAll || w.duration() != 5*time.Second || fmt.Sprint(w.Removed) != "[c 1:9 rwm]" {
		t.Errorf("at stop: %#v", out[len(out)-1])
	}
}

// At the syscall, EPERM from mknod without CAP_MKNOD, and from an open of something that is not
// a device node, are not the device cgroup's. A device the kernel found at the syscall is taken
// as found; a path that can no longer be looked up is a denial of an unresolved device.
func TestFindDecides(t *testing.T) {
	mk := func(syscall, path string, capMknod uint32) *Denied {
		d := &Denied{Path: path, Syscall: syscall, DecidedBy: BySyscall}
		d.rec.CapMknod = capMknod
		d.rec.Flags = 0o020600 // S_IFCHR
		d.rec.Dev = 1<<8 | 5
		return d
	}
	j := NewJoin(nil)
	j.stat = func(pid uint32, dirfd int32, path string) (int, int64, int64, error) {
		switch path {
		case "/dev/null":
			return TypeChar, 1, 3, nil
		case "/tmp/gone", "/tmp/sda":
			return 0, 0, 0, unix.ENOENT
		}
		return 0, 0, 0, errNotDevice
	}
	inKernel := mk("openat", "/tmp/sda", 1)
	inKernel.Known, inKernel.Type, inKernel.Major, inKernel.Minor = true, TypeBlock, 8, 0
	for _, c := range []struct {
		d    *Denied
		want bool
		dev  string
	}{
		{mk("mknodat", "/tmp/zero", 0), false, ""},
		{mk("mknodat", "/tmp/zero", 1), true, "c 1:5"},
		{mk("openat", "/etc/shadow", 1), false, ""},
		{mk("openat", "/dev/null", 1), true, "c 1:3"},
		{mk("openat", "/tmp/gone", 1), true, ""},
		{inKernel, true, "b 8:0"},
	} {
		if got := j.find(c.d); got != c.want || c.d.Device() != c.dev {
			t.Errorf("%s %s: %v %q, want %v %q", c.d.Syscall, c.d.Path, got, c.d.Device(), c.want, c.dev)
		}
	}
}

// Open windows are bounded: one more than maxWindows emits the oldest still open, and counts it
// forgotten.
func TestWindowsAreBounded(t *testing.T) {
	var forgot uint64
	j := NewJoin(func(n uint64) { forgot += n })
	var dropped []*Window
	emit := func(ev gadget.Event) {
		if w, ok := ev.(*Window); ok {
			dropped = append(dropped, w)
		}
	}
	t0 := time.Unix(1000, 0)
	policy := State{Read: true, Exceptions: rules(t, true, "c 1:3 rwm")}
	for i := range maxWindows + 1 {
		w := write(t, t0.Add(time.Duration(i)*time.Millisecond), 42, "devices.deny", "a", policy, State{Read: true})
		w.Cgroup.ID = uint64(100 + i)
		j.Process(w, emit)
	}
	if len(j.windows) != maxWindows || forgot != 1 || len(dropped) != 1 || !dropped[0].StillOpen || dropped[0].Cgroup.ID != 100 {
		t.Errorf("%d windows open, %d forgotten, dropped %+v: want %d open, the first emitted still open and counted", len(j.windows), forgot, dropped, maxWindows)
	}
}
