package netns

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// interfaces reads a namespace's interfaces and addresses inside it, entered through a
// reference one of its holders has (never by guessing which namespace a name means).
func interfaces(n *Namespace) ([]Interface, error) {
	fd, err := openNS(n)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	type result struct {
		ifs []Interface
		err error
	}
	done := make(chan result)
	go func() {
		// The thread enters the namespace; it goes back before being unlocked, or dies with
		// the goroutine if it cannot.
		runtime.LockOSThread()
		self, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: err}
			return
		}
		defer unix.Close(self)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("entering netns %d: %w", n.Inode, err)}
			return
		}
		ifs, err := readInterfaces()
		if unix.Setns(self, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		done <- result{ifs, err}
	}()
	r := <-done
	return r.ifs, r.err
}

func readInterfaces() ([]Interface, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	out := make([]Interface, 0, len(ifs))
	for _, i := range ifs {
		addrs, err := i.Addrs()
		if err != nil {
			return nil, err
		}
		it := Interface{Name: i.Name, Addrs: []string{}}
		for _, a := range addrs {
			it.Addrs = append(it.Addrs, a.String())
		}
		out = append(out, it)
	}
	return out, nil
}

// openNS opens the namespace through the first reference that opens, and checks that it is the
// namespace wanted.
func openNS(n *Namespace) (int, error) {
	var errs []error
	try := func(open func() (int, error)) (int, bool) {
		fd, err := open()
		if err == nil {
			var st unix.Stat_t
			if err = unix.Fstat(fd, &st); err == nil && st.Ino != uint64(n.Inode) {
				err = fmt.Errorf("it is now netns %d", st.Ino)
			}
			if err == nil {
				return fd, true
			}
			unix.Close(fd)
		}
		errs = append(errs, err)
		return -1, false
	}
	path := func(p string) func() (int, error) {
		return func() (int, error) { return unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0) }
	}
	for _, p := range n.Sample {
		if fd, ok := try(path(fmt.Sprintf("/proc/%d/task/%d/ns/net", p.PID, p.TID))); ok {
			return fd, nil
		}
	}
	for _, h := range n.Holders {
		var open func() (int, error)
		switch h.Kind {
		case KindFD:
			open = path("/proc/" + strconv.Itoa(int(h.PID)) + "/fd/" + strconv.Itoa(h.FD))
		case KindMount:
			open = path(filepath.Join("/proc", strconv.Itoa(int(h.PID)), "root", h.Mount))
		case KindSocket:
			open = func() (int, error) { return socketNS(h.PID, h.FD) }
		}
		if fd, ok := try(open); ok {
			return fd, nil
		}
	}
	if len(errs) == 0 {
		return -1, errors.New("no reference to it was found")
	}
	return -1, fmt.Errorf("no reference to it could be opened: %w", errors.Join(errs...))
}

// socketNS opens the namespace of a process's socket.
func socketNS(pid uint32, fd int) (int, error) {
	pidfd, err := unix.PidfdOpen(int(pid), 0)
	if err != nil {
		return -1, os.NewSyscallError("pidfd_open", err)
	}
	defer unix.Close(pidfd)
	dup, ns, err := dupSocket(pidfd, fd)
	if err != nil {
		return -1, err
	}
	unix.Close(dup)
	return ns, nil
}

// dupSocket duplicates a process's socket (pidfd_getfd) and opens its namespace (SIOCGSKNS).
func dupSocket(pidfd, fd int) (dup, ns int, err error) {
	if dup, err = unix.PidfdGetfd(pidfd, fd, 0); err != nil {
		return -1, -1, os.NewSyscallError("pidfd_getfd", err)
	}
	if ns, err = unix.IoctlRetInt(dup, unix.SIOCGSKNS); err != nil {
		unix.Close(dup)
		return -1, -1, os.NewSyscallError("SIOCGSKNS", err)
	}
	return dup, ns, nil
}
