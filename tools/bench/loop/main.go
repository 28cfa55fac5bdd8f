//go:build amd64

// Command loop is the workload of `make bench`: after "go" on stdin it makes N syscalls and prints
// the nanoseconds they took. Usage: loop getppid|mix|setuid|write|fork|forknet|exec|dgram|unshare|capsdev|kill0|sigself|sigchild|execfail N
// It makes x86-64's syscalls (open and stat, which arm64 does not have), compared with earlier
// runs of the same calls: make bench runs on amd64.
package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: loop getppid|mix|setuid|write|fork|forknet|exec|dgram|unshare|capsdev|kill0|sigself|sigchild|execfail N")
		os.Exit(2)
	}
	n, err := strconv.Atoi(os.Args[2])
	if err != nil || n <= 0 {
		fmt.Fprintln(os.Stderr, "loop: N must be a positive number")
		os.Exit(2)
	}
	if os.Args[1] == "forknet" {
		// The children live in a network namespace of their own, as a pod's processes do.
		if err := syscall.Unshare(syscall.CLONE_NEWNET); err != nil {
			fmt.Fprintln(os.Stderr, "loop:", err)
			os.Exit(1)
		}
	}
	var child *exec.Cmd
	if os.Args[1] == "sigchild" {
		child = exec.Command("sleep", "1000")
		if err := child.Start(); err != nil {
			fmt.Fprintln(os.Stderr, "loop:", err)
			os.Exit(1)
		}
		defer func() { child.Process.Kill(); child.Wait() }()
	}
	fmt.Println("ready")
	if line, _ := bufio.NewReader(os.Stdin).ReadString('\n'); line != "go\n" {
		os.Exit(1)
	}
	path := []byte("/proc/self/stat\x00")
	buf := make([]byte, 512)
	var st syscall.Stat_t
	start := time.Now()
	switch os.Args[1] {
	case "getppid":
		for i := 0; i < n; i++ {
			syscall.RawSyscall(syscall.SYS_GETPPID, 0, 0, 0)
		}
	case "mix": // open, read, close, stat: four syscalls an iteration
		for i := 0; i < n/4; i++ {
			fd, _, _ := syscall.RawSyscall(syscall.SYS_OPEN, uintptr(unsafePointer(path)), syscall.O_RDONLY, 0)
			syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafePointer(buf)), uintptr(len(buf)))
			syscall.RawSyscall(syscall.SYS_CLOSE, fd, 0, 0)
			syscall.RawSyscall(syscall.SYS_STAT, uintptr(unsafePointer(path)), uintptr(unsafePointerStat(&st)), 0)
		}
	case "setuid": // as root, setuid(0) is a capability check (CAP_SETUID) that changes nothing
		for i := 0; i < n; i++ {
			syscall.RawSyscall(syscall.SYS_SETUID, 0, 0, 0)
		}
	case "write": // one byte to /dev/null: a write that no cgroup file filter wants
		null, err := os.OpenFile("/dev/null", os.O_WRONLY, 0)
		if err != nil {
			fmt.Fprintln(os.Stderr, "loop:", err)
			os.Exit(1)
		}
		for i := 0; i < n; i++ {
			syscall.RawSyscall(syscall.SYS_WRITE, null.Fd(), uintptr(unsafePointer(buf)), 1)
		}
	case "fork", "forknet": // a process created and ended: a child that exits at once
		for i := 0; i < n; i++ {
			// CLONE_VM|CLONE_VFORK: the child shares our memory and exits before we go on, so it
			// runs no Go code; the kernel still creates and reaps a whole process.
			pid, _, errno := syscall.RawSyscall6(syscall.SYS_CLONE, syscall.CLONE_VM|syscall.CLONE_VFORK|uintptr(syscall.SIGCHLD), 0, 0, 0, 0, 0)
			if errno != 0 {
				fmt.Fprintln(os.Stderr, "loop: clone:", errno)
				os.Exit(1)
			}
			if pid == 0 {
				syscall.RawSyscall(syscall.SYS_EXIT, 0, 0, 0)
			}
			var ws syscall.WaitStatus
			syscall.Wait4(int(pid), &ws, 0, nil)
		}
	case "exec": // fork and exec of /bin/true: the execs a node makes, none of them a CNI plugin
		argv := []string{"/bin/true"}
		for i := 0; i < n; i++ {
			pid, err := syscall.ForkExec("/bin/true", argv, &syscall.ProcAttr{})
			if err != nil {
				fmt.Fprintln(os.Stderr, "loop: exec:", err)
				os.Exit(1)
			}
			var ws syscall.WaitStatus
			syscall.Wait4(pid, &ws, 0, nil)
		}
	case "dgram": // a byte written to a unix datagram socket pair and read: a read that copies a
		// socket buffer, as TCP's, unix sockets' and netlink's do (UDP's linear datagrams do not)
		fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_DGRAM, 0)
		if err != nil {
			fmt.Fprintln(os.Stderr, "loop:", err)
			os.Exit(1)
		}
		for i := 0; i < n; i++ {
			syscall.Write(fds[0], buf[:1])
			syscall.Read(fds[1], buf)
		}
	case "unshare": // the storm: each call a namespace change that trace setns reports
		for i := 0; i < n; i++ {
			if _, _, errno := syscall.RawSyscall(syscall.SYS_UNSHARE, syscall.CLONE_NEWUTS, 0, 0); errno != 0 {
				fmt.Fprintln(os.Stderr, "loop: unshare:", errno)
				os.Exit(1)
			}
		}
	case "execfail": // an execve of a file that is not there: the exec hooks' cost without the exec's
		missing := []byte("/nonexistent/gw-bench\x00")
		argv := []uintptr{uintptr(unsafePointer(missing)), 0}
		for i := 0; i < n; i++ {
			if _, _, errno := syscall.RawSyscall(syscall.SYS_EXECVE, uintptr(unsafePointer(missing)), uintptr(unsafePointerArgv(argv)), 0); errno != syscall.ENOENT {
				fmt.Fprintln(os.Stderr, "loop: execve:", errno)
				os.Exit(1)
			}
		}
	case "capsdev": // the agent's storm: N slices of 10 ms, each 1000 setuid(0) checks and 100 opens
		// of /dev/null that the device cgroup refuses (the bench puts the loop in one that denies
		// all): 100k capability checks and 10k device denials a second.
		null := []byte("/dev/null\x00")
		for i := 0; i < n; i++ {
			end := start.Add(time.Duration(i+1) * 10 * time.Millisecond)
			for range 1000 {
				syscall.RawSyscall(syscall.SYS_SETUID, 0, 0, 0)
			}
			for range 100 {
				fd, _, errno := syscall.RawSyscall(syscall.SYS_OPEN, uintptr(unsafePointer(null)), syscall.O_RDONLY, 0)
				if errno != syscall.EPERM {
					fmt.Fprintf(os.Stderr, "loop: open /dev/null: %v (fd %d), want EPERM: not in a cgroup denying it\n", errno, fd)
					os.Exit(1)
				}
			}
			time.Sleep(time.Until(end))
		}
	case "kill0": // kill(self, 0): an existence check that succeeds; no signal is generated
		self := uintptr(os.Getpid())
		for i := 0; i < n; i++ {
			syscall.RawSyscall(syscall.SYS_KILL, self, 0, 0)
		}
	case "sigself": // SIGWINCH to its own process: generated and delivered to the Go runtime, which drops it
		self := uintptr(os.Getpid())
		for i := 0; i < n; i++ {
			syscall.RawSyscall(syscall.SYS_KILL, self, uintptr(syscall.SIGWINCH), 0)
		}
	case "sigchild": // SIGWINCH to a child in the same namespaces, which ignores it
		pid := uintptr(child.Process.Pid)
		for i := 0; i < n; i++ {
			syscall.RawSyscall(syscall.SYS_KILL, pid, uintptr(syscall.SIGWINCH), 0)
		}
	default:
		fmt.Fprintln(os.Stderr, "loop: unknown mode", os.Args[1])
		os.Exit(2)
	}
	fmt.Println(time.Since(start).Nanoseconds())
}
