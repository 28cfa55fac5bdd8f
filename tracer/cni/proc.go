package cni

import (
	"bytes"
	"cmp"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/ghostwatch/ghostwatch/tracer/event"
	"github.com/ghostwatch/ghostwatch/tracer/procfs"
)

// Blocked is where a running process of an invocation waits, read from /proc.
type Blocked struct {
	PID, TID uint32
	Comm     string
	// Syscall is the syscall its most telling thread is in, "running" when it runs in user space
	// or "?" when /proc did not say.
	Syscall string
	// Target is what the syscall's fd is, for one that takes an fd first: "/run/xtables.lock",
	// "socket:[1234]".
	Target string
	Wchan  string
	Stack  []string // kernel functions, innermost first
}

// Where is the blocked place in a few words: "flock on /run/xtables.lock in kernel
// locks_lock_inode_wait".
func (b *Blocked) Where() string {
	s := b.Syscall
	if b.Target != "" {
		s += " on " + b.Target
	}
	switch {
	case len(b.Stack) > 0:
		s += " at " + strings.Join(b.Stack[:min(len(b.Stack), 3)], " < ")
	case b.Wchan != "":
		s += " at " + b.Wchan
	}
	return s
}

// fdFirst are the syscalls whose first argument is a file descriptor worth naming when blocked.
var fdFirst = map[string]bool{
	"read": true, "write": true, "readv": true, "writev": true, "pread64": true, "pwrite64": true,
	"recvmsg": true, "recvfrom": true, "sendmsg": true, "sendto": true, "connect": true,
	"accept": true, "accept4": true, "flock": true, "fcntl": true, "ioctl": true, "fsync": true,
}

// idle are syscalls a thread waits in when it has nothing to do (a Go runtime's spare threads):
// a thread in another one tells more of where a process is stuck.
var idle = map[string]bool{
	"futex": true, "epoll_wait": true, "epoll_pwait": true, "epoll_pwait2": true, "nanosleep": true,
	"sched_yield": true, "restart_syscall": true, "rt_sigsuspend": true,
}

// blockedOf reads where a process waits: the thread in a syscall that is not an idle one, else
// its main thread. ok is false when the process is gone.
func blockedOf(pid uint32) (Blocked, bool) {
	dir := "/proc/" + strconv.Itoa(int(pid))
	st, ok := procfs.ReadStat(int(pid))
	if !ok {
		return Blocked{}, false
	}
	b := Blocked{PID: pid, TID: pid, Comm: st.Comm, Syscall: "?"}
	tids, _ := os.ReadDir(dir + "/task")
	best := -1
	for _, t := range tids {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		name, args := threadSyscall(dir + "/task/" + t.Name())
		score := 0
		switch {
		case name != "" && name != "running" && !idle[name]:
			score = 2
		case tid == int(pid):
			score = 1
		}
		if score <= best {
			continue
		}
		best = score
		b.TID, b.Syscall, b.Target = uint32(tid), name, ""
		if name == "" {
			b.Syscall = "?"
		}
		if fdFirst[name] && len(args) > 0 {
			if fd, err := strconv.ParseUint(strings.TrimPrefix(args[0], "0x"), 16, 32); err == nil {
				b.Target, _ = os.Readlink(dir + "/fd/" + strconv.FormatUint(fd, 10))
			}
		}
	}
	tdir := dir + "/task/" + strconv.Itoa(int(b.TID))
	if w, err := os.ReadFile(tdir + "/wchan"); err == nil && string(w) != "0" {
		b.Wchan = string(w)
	}
	b.Stack = kernelStack(tdir + "/stack")
	return b, true
}

// threadSyscall reads /proc/PID/task/TID/syscall: "NR arg... sp pc" in a syscall, "-1 sp pc"
// outside one (blocked in the kernel otherwise), "running". The name is "" when unreadable.
func threadSyscall(dir string) (name string, args []string) {
	data, err := os.ReadFile(dir + "/syscall")
	if err != nil {
		return "", nil
	}
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return "", nil
	}
	if f[0] == "running" {
		return "running", nil
	}
	nr, err := strconv.Atoi(f[0])
	if err != nil {
		return "", nil
	}
	if nr < 0 {
		return "-", nil
	}
	return event.SyscallName(int32(nr)), f[1:]
}

// kernelStack reads /proc/PID/task/TID/stack ("[<0>] do_wait+0x1c4/0x2f0"): the function names,
// innermost first, without the syscall entry's own frames. Empty when unreadable (it needs
// CAP_SYS_ADMIN).
func kernelStack(path string) []string {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		if i := strings.IndexByte(line, ']'); i >= 0 {
			line = line[i+1:]
		}
		fn, _, _ := strings.Cut(strings.TrimSpace(line), "+")
		if fn == "" || strings.HasPrefix(fn, "entry_SYSCALL") || strings.HasPrefix(fn, "do_syscall") ||
			strings.HasPrefix(fn, "__x64_sys") || strings.HasPrefix(fn, "__arm64_sys") || strings.HasPrefix(fn, "el0") {
			continue
		}
		out = append(out, fn)
		if len(out) == 16 {
			break
		}
	}
	return out
}

// Running is an invocation running now, found in /proc: a process with CNI_COMMAND in its
// environment whose parent has none.
type Running struct {
	PID       uint32
	Comm      string
	File      string // its executable
	Call      Call
	StartBoot uint64   // when it started, boot-time clock ns
	Procs     []uint32 // it and its descendants, parents first
}

// FindRunning lists the CNI invocations running now, from /proc (every process's environment:
// it needs root).
func FindRunning() []Running {
	entries, _ := os.ReadDir("/proc")
	type proc struct {
		stat procfs.Stat
		env  []byte
		cni  bool
	}
	procs := map[uint32]*proc{}
	children := map[uint32][]uint32{}
	for _, e := range entries {
		pid, err := strconv.ParseUint(e.Name(), 10, 32)
		if err != nil {
			continue
		}
		st, ok := procfs.ReadStat(int(pid))
		if !ok || st.KernelThread() {
			continue
		}
		p := &proc{stat: st}
		if env, err := os.ReadFile("/proc/" + e.Name() + "/environ"); err == nil {
			p.env = env
			p.cni = bytes.HasPrefix(env, []byte("CNI_COMMAND=")) || bytes.Contains(env, []byte("\x00CNI_COMMAND="))
		}
		procs[uint32(pid)] = p
		children[st.PPid] = append(children[st.PPid], uint32(pid))
	}
	var out []Running
	for pid, p := range procs {
		if !p.cni || (procs[p.stat.PPid] != nil && procs[p.stat.PPid].cni) {
			continue
		}
		r := Running{PID: pid, Comm: p.stat.Comm, Call: parseEnv(p.env), StartBoot: p.stat.StartBootNs(), Procs: []uint32{pid}}
		r.File = procFile(pid)
		for i := 0; i < len(r.Procs) && len(r.Procs) < maxChain; i++ {
			r.Procs = append(r.Procs, children[r.Procs[i]]...)
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Running) int { return cmp.Compare(a.StartBoot, b.StartBoot) })
	return out
}

// Blocked is where the invocation waits: its deepest process still running (a plugin waits on
// the IPAM plugin it ran, which waits on what it ran). ok is false when all have exited.
func (r *Running) Blocked() (Blocked, bool) {
	for i := len(r.Procs) - 1; i >= 0; i-- {
		if b, ok := blockedOf(r.Procs[i]); ok {
			return b, true
		}
	}
	return Blocked{}, false
}

// procFile is the file a process exec'd: its executable, or for a script (whose executable is its
// interpreter) the script, which the kernel put after the interpreter in its arguments.
func procFile(pid uint32) string {
	dir := "/proc/" + strconv.Itoa(int(pid))
	exe, _ := os.Readlink(dir + "/exe")
	cmdline, err := os.ReadFile(dir + "/cmdline")
	if err != nil {
		return exe
	}
	args := strings.Split(string(cmdline), "\x00")
	if len(args) < 2 || !strings.HasPrefix(args[1], "/") {
		return exe
	}
	f, err := os.Open(args[1])
	if err != nil {
		return exe
	}
	defer f.Close()
	head := make([]byte, 2)
	if n, _ := f.Read(head); n == 2 && string(head) == "#!" {
		return args[1]
	}
	return exe
}
