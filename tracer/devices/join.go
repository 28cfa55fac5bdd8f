package devices

import (
	"bufio"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/ghostwatch/ghostwatch/tracer/container"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
	"github.com/ghostwatch/ghostwatch/tracer/lru"
)

// Join keeps, per cgroup, the device rules in force (v1 from the kernel's lists in rule events,
// v2 from the programs attached) and the writes that removed access; it finds the device of a
// denial seen at the syscall, decides whether the device cgroup refused it, gives it its cause, and
// makes windows.
type Join struct {
	v1 *lru.Cache[uint64, *v1Cgroup] // by kernfs node id in the devices hierarchy
	v2 *lru.Cache[uint64, *v2Cgroup] // by cgroup id
	// windows are the open windows, by v1 cgroup: few, and each is emitted once; at most maxWindows.
	windows map[uint64]*Window
	forgot  gadget.Forget
	// What the join asks the system, replaced in tests.
	stat        func(pid uint32, dirfd int32, path string) (typ int, major, minor int64, err error)
	readList    func(path string) (State, error)
	loadProgram func(id uint32) (Program, error)
}

type v1Cgroup struct {
	state State // after the last write seen, or as read from devices.list
	// listTried: devices.list was read, or could not be (the cgroup is gone): not asked again
	// for each denial.
	listTried bool
	// removals are the recent writes that removed access, newest last.
	removals []removal
}

type removal struct {
	at      time.Time
	writer  Writer
	before  State
	after   State
	removed []Rule
}

// maxRemovals bounds the writes remembered per cgroup.
const maxRemovals = 16

type v2Cgroup struct {
	programs []attachment // in force
	earlier  []attachment // detached or replaced, newest last, bounded like removals
}

type attachment struct {
	id   uint32
	prog *Program // nil: not decoded
	at   time.Time
	pid  uint32
	comm string
}

const (
	joinSize = 4096
	joinAge  = time.Hour
	// maxWindows bounds the windows open at once: past it, the oldest is emitted still open, and
	// the denials that would have fallen in it lose their cause.
	maxWindows = 1024
)

// NewJoin makes the user-space half of one run; forgot counts the cgroups and windows it drops for
// want of room.
func NewJoin(forgot gadget.Forget) *Join {
	return &Join{v1: lru.New[uint64, *v1Cgroup](joinSize, joinAge), v2: lru.New[uint64, *v2Cgroup](joinSize, joinAge),
		windows: map[uint64]*Window{}, forgot: forgot, stat: statDevice, readList: readDevicesList, loadProgram: loadProgram}
}

// Process handles one event in order.
func (j *Join) Process(ev gadget.Event, emit func(gadget.Event)) {
	switch e := ev.(type) {
	case *RuleWrite:
		closed, dropped := j.rule(e)
		emit(e)
		for _, w := range []*Window{closed, dropped} {
			if w != nil {
				emit(w)
			}
		}
	case *ProgramChange:
		j.program(e)
		emit(e)
	case *Denied:
		if j.denied(e) {
			emit(e)
		}
	default:
		emit(ev)
	}
}

// Flush emits, at stop, the windows still open.
func (j *Join) Flush(now time.Time, final bool, emit func(gadget.Event)) {
	if !final {
		return
	}
	for _, id := range slices.Sorted(maps.Keys(j.windows)) {
		w := j.windows[id]
		w.StillOpen = true
		w.Header.Time = now
		delete(j.windows, id)
		emit(w)
	}
}

func (j *Join) v1Cgroup(id uint64) *v1Cgroup {
	cg, ok := j.v1.Get(id)
	if !ok {
		cg = &v1Cgroup{}
		j.forgot.Count(j.v1.Put(id, cg))
	}
	return cg
}

// rule applies a write: the state after it, a window opened or closed (returned when closed). A
// window opened when maxWindows are open drops the oldest, returned still open.
func (j *Join) rule(e *RuleWrite) (closed, dropped *Window) {
	if e.Ret < 0 || !e.After.Read {
		return nil, nil // nothing changed, or nothing to know
	}
	cg := j.v1Cgroup(e.Cgroup.ID)
	cg.state = e.After.clone()
	writer := Writer{PID: e.Proc.PID, Comm: e.Proc.Comm, File: e.File, Rule: e.Written}
	if len(e.Removed) > 0 {
		cg.removals = append(cg.removals, removal{at: e.Time, writer: writer, before: e.Before.clone(),
			after: e.After.clone(), removed: e.Removed})
		if len(cg.removals) > maxRemovals {
			cg.removals = cg.removals[1:]
		}
	}
	if w := j.windows[e.Cgroup.ID]; w != nil {
		w.DenyAll = w.DenyAll || e.After.denyAll()
		if len(removed(&w.before, &e.After)) > 0 {
			return nil, nil // still short of what was allowed
		}
		w.Closed, w.Header.Time, w.ClosedBy = e.Time, e.Time, &writer
		delete(j.windows, e.Cgroup.ID)
		return w, nil
	}
	if len(e.Removed) > 0 && !e.Before.allowsAll() {
		// Restricting a cgroup that allowed everything is setting a policy up (runtimes do so
		// for every new container), not a window to be closed again.
		w := &Window{Header: e.Header, Cgroup: e.Cgroup, Opened: e.Time, DenyAll: e.After.denyAll(),
			OpenedBy: writer, Removed: e.Removed, before: e.Before.clone()}
		w.Header.Kind = "window"
		if len(j.windows) >= maxWindows {
			dropped = j.dropOldestWindow(e.Time)
		}
		j.windows[e.Cgroup.ID] = w
	}
	return nil, dropped
}

// dropOldestWindow forgets the window open longest, to be emitted still open at now.
func (j *Join) dropOldestWindow(now time.Time) *Window {
	var oldest *Window
	for _, w := range j.windows {
		if oldest == nil || w.Opened.Before(oldest.Opened) {
			oldest = w
		}
	}
	delete(j.windows, oldest.Cgroup.ID)
	oldest.StillOpen, oldest.Header.Time = true, now
	j.forgot.Count(1)
	return oldest
}

// program records what a cgroup's device programs allow.
func (j *Join) program(e *ProgramChange) {
	if e.Ret < 0 {
		return
	}
	cg, ok := j.v2.Get(e.Cgroup.ID)
	if !ok {
		cg = &v2Cgroup{}
		j.forgot.Count(j.v2.Put(e.Cgroup.ID, cg))
	}
	if !e.attaches() {
		cg.detach(func(a attachment) bool { return e.ProgramID == 0 || a.id == e.ProgramID })
		return
	}
	a := attachment{id: e.ProgramID, at: e.Time, pid: e.Proc.PID, comm: e.Proc.Comm}
	if p, err := j.loadProgram(e.ProgramID); err != nil {
		e.NotDecoded = err.Error()
	} else {
		e.Program, a.prog = &p, &p
	}
	if e.Op == "replace" || e.Flags&flagAllowMulti == 0 {
		// Without BPF_F_ALLOW_MULTI an attach replaces what the cgroup had.
		cg.detach(func(b attachment) bool { return e.Op != "replace" || b.id == e.ReplacedID })
	}
	cg.programs = append(cg.programs, a)
}

func (cg *v2Cgroup) detach(match func(attachment) bool) {
	cg.programs = slices.DeleteFunc(cg.programs, func(a attachment) bool {
		if match(a) {
			cg.earlier = append(cg.earlier, a)
			if len(cg.earlier) > maxRemovals {
				cg.earlier = cg.earlier[1:]
			}
			return true
		}
		return false
	})
}

// denied finds the device of a denial seen at the syscall and decides whether the device cgroup
// refused it; false: it did not (the event is not emitted). It then gives the denial its cause.
func (j *Join) denied(d *Denied) bool {
	if d.DecidedBy == BySyscall && !j.find(d) {
		return false
	}
	var v1 *v1Cgroup
	window := j.windows[d.DevCgroup.ID]
	if d.DevCgroup.ID != 0 {
		v1 = j.v1Cgroup(d.DevCgroup.ID)
		if !v1.state.Read && !v1.listTried {
			v1.listTried = true
			if s, err := j.readList(d.DevCgroup.Path); err == nil {
				v1.state = s
			}
		}
	}
	var v2 *v2Cgroup
	if cg, ok := j.v2.Get(d.NS.CgroupID); ok {
		v2 = cg
	}
	d.Cause = j.cause(d, v1, window, v2)
	if d.DecidedBy == BySyscall {
		switch {
		case !d.Known:
			d.How = "the syscall returned EPERM, but its path could not be looked up (in the kernel's dentry cache at the syscall, nor in the process's root since): the device is not known"
		case d.Cause != nil:
			d.How = "the syscall returned EPERM on a device node, and the device rules in force deny this access (this kernel's device check itself cannot be traced)"
		default:
			d.How = "the syscall returned EPERM on a device node, but the device rules ghostwatch knows allow this access: another check (an LSM, seccomp) may have refused it"
		}
	}
	return true
}

// find sets the device and access of a denial seen at the syscall, and says whether it can be
// the device cgroup's: mknod of a device by a task with CAP_MKNOD, or an open of a device node,
// or of a path that could not be looked up (shown unresolved: never dropped).
func (j *Join) find(d *Denied) bool {
	switch d.Syscall {
	case "mknod", "mknodat":
		if d.rec.CapMknod == 0 {
			return false // refused for want of CAP_MKNOD, before the device cgroup is asked
		}
		d.Type = TypeChar
		if d.rec.Flags&unix.S_IFMT == unix.S_IFBLK {
			d.Type = TypeBlock
		}
		d.Major, d.Minor, d.Access, d.Known = int64(unix.Major(uint64(d.rec.Dev))), int64(unix.Minor(uint64(d.rec.Dev))), AccMknod, true
		return true
	}
	d.Access = openAccess(d.rec.Flags)
	if d.Known {
		return true // found in the kernel at the syscall
	}
	typ, major, minor, err := j.stat(d.Proc.PID, d.rec.Dirfd, d.Path)
	if err != nil && !errors.Is(err, errNotDevice) && filepath.IsAbs(d.Path) && sameMountNS(d.Proc.PPID, d.NS.Mnt) {
		// The process is gone (a failed open often ends it): its parent sees the same files.
		typ, major, minor, err = j.stat(d.Proc.PPID, unix.AT_FDCWD, d.Path)
	}
	switch {
	case err == nil:
		d.Type, d.Major, d.Minor, d.Known = typ, major, minor, true
	case errors.Is(err, errNotDevice):
		return false
	}
	// Otherwise the process is gone, or the path with it: unresolved.
	return true
}

// openAccess is what an open asks of the device cgroup (O_ACCMODE: read, write, both).
func openAccess(flags uint32) int {
	switch flags & unix.O_ACCMODE {
	case unix.O_WRONLY:
		return AccWrite
	case unix.O_RDWR:
		return AccRead | AccWrite
	}
	return AccRead
}

// cause is what removed the access, or the policy that never allowed it, or nil when no rule
// ghostwatch knows denies it.
func (j *Join) cause(d *Denied, v1 *v1Cgroup, w *Window, v2 *v2Cgroup) *gadget.Cause {
	if !d.Known {
		if w != nil { // a device in /dev whose node is gone, in a window
			return inWindow(d, w)
		}
		return nil
	}
	if v1 != nil && !v1.state.Allows(d.Type, d.Major, d.Minor, d.Access) {
		if w != nil && w.before.Allows(d.Type, d.Major, d.Minor, d.Access) {
			return inWindow(d, w)
		}
		policy := &gadget.Cause{Kind: "policy", Attrs: []gadget.Attr{{Key: "cgroup_version", Value: "1"},
			{Key: "rules", Value: rulesText(v1.state.allowed())}}}
		for i := len(v1.removals) - 1; i >= 0; i-- {
			r := &v1.removals[i]
			if !r.before.Allows(d.Type, d.Major, d.Minor, d.Access) || r.after.Allows(d.Type, d.Major, d.Minor, d.Access) {
				continue
			}
			if r.before.allowsAll() {
				// Restricting a cgroup that allowed everything (as a new one inherits) is how
				// runtimes set a container's rules up: the policy, set by this write.
				policy.Time, policy.Before, policy.PID, policy.Comm = r.at, d.Time.Sub(r.at), r.writer.PID, r.writer.Comm
				return policy
			}
			return ruleCause(d, r.at, &r.writer)
		}
		return policy
	}
	if v2 == nil {
		return nil
	}
	for _, a := range v2.programs {
		if a.prog == nil || a.prog.Allows(d.Type, d.Major, d.Minor, d.Access) {
			continue
		}
		kind := "policy"
		for _, e := range v2.earlier {
			if e.prog != nil && e.prog.Allows(d.Type, d.Major, d.Minor, d.Access) {
				kind = "program" // an earlier program of this cgroup allowed it
			}
		}
		return &gadget.Cause{Time: a.at, Kind: kind, Before: d.Time.Sub(a.at), PID: a.pid, Comm: a.comm,
			Attrs: []gadget.Attr{{Key: "cgroup_version", Value: "2"}, {Key: "program_id", Value: strconv.FormatUint(uint64(a.id), 10)},
				{Key: "rules", Value: rulesText(a.prog.Rules) + "; else " + verdict(a.prog.Default)}}}
	}
	return nil
}

func inWindow(d *Denied, w *Window) *gadget.Cause {
	w.Denied++
	if len(w.Paths) < maxWindowPaths && !slices.Contains(w.Paths, d.Path) {
		w.Paths = append(w.Paths, d.Path)
	}
	return ruleCause(d, w.Opened, &w.OpenedBy)
}

func ruleCause(d *Denied, at time.Time, w *Writer) *gadget.Cause {
	return &gadget.Cause{Time: at, Kind: "rule", Before: d.Time.Sub(at), PID: w.PID, Comm: w.Comm,
		Attrs: []gadget.Attr{{Key: "file", Value: w.File}, {Key: "rule", Value: w.Rule}}}
}

func sameMountNS(pid, mntns uint32) bool {
	return pid != 0 && container.ProcNS(pid)["mnt"] == mntns
}

// errNotDevice: the path is not a device node.
var errNotDevice = errors.New("not a device node")

// statDevice finds the device a process named, in its own mount namespace: an absolute path below
// its root (symbolic links resolved there too), a relative one from its working directory or dirfd.
func statDevice(pid uint32, dirfd int32, path string) (typ int, major, minor int64, err error) {
	base := fmt.Sprintf("/proc/%d/root", pid)
	resolve := uint64(unix.RESOLVE_IN_ROOT)
	if !filepath.IsAbs(path) {
		base, resolve = fmt.Sprintf("/proc/%d/cwd", pid), 0
		if dirfd != unix.AT_FDCWD {
			base = fmt.Sprintf("/proc/%d/fd/%d", pid, dirfd)
		}
	}
	dir, err := unix.Open(base, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, 0, 0, err
	}
	defer unix.Close(dir)
	fd, err := unix.Openat2(dir, path, &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: resolve})
	if err != nil {
		return 0, 0, 0, err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, 0, 0, err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFCHR:
		typ = TypeChar
	case unix.S_IFBLK:
		typ = TypeBlock
	default:
		return 0, 0, 0, errNotDevice
	}
	return typ, int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev)), nil
}

// devicesRoot is where the v1 devices hierarchy is mounted.
const devicesRoot = "/sys/fs/cgroup/devices"

// readDevicesList reads a v1 device cgroup's rules from its devices.list: "a *:* rwm" alone
// is a default of allow; anything else lists what is allowed over a default of deny.
func readDevicesList(path string) (State, error) {
	f, err := os.Open(filepath.Join(devicesRoot, path, "devices.list"))
	if err != nil {
		return State{}, err
	}
	defer f.Close()
	s := State{Read: true}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		r, err := ParseRule(sc.Text(), true)
		if err != nil {
			return State{}, fmt.Errorf("%s: %w", path, err)
		}
		if r.Type == TypeAll && r.Major == Any && r.Minor == Any && r.Access == AccAll {
			s.DefaultAllow = true
			continue
		}
		s.Exceptions = append(s.Exceptions, r)
	}
	return s, sc.Err()
}

// loadProgram fetches an attached program's instructions by id and decodes its rules.
func loadProgram(id uint32) (Program, error) {
	prog, err := ebpf.NewProgramFromID(ebpf.ProgramID(id))
	if err != nil {
		return Program{}, fmt.Errorf("fetching program %d: %w", id, err)
	}
	defer prog.Close()
	info, err := prog.Info()
	if err != nil {
		return Program{}, fmt.Errorf("program %d: %w", id, err)
	}
	insns, err := info.Instructions()
	if err != nil {
		return Program{}, fmt.Errorf("program %d's instructions: %w", id, err)
	}
	return DecodeProgram(insns)
}
