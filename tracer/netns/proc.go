package netns

import (
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ghostwatch/ghostwatch/tracer/procfs"
)

// fromProc reads what the iterators read from /proc: each task's network namespace link, and
// each fd's link ("net:[N]" for an nsfs file, "socket:[N]" for a socket, whose namespace is asked
// of the socket itself through a duplicate of it).
func fromProc() ([]record, error) {
	dir, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	sockets := map[uint64]sockInfo{} // by socket inode: a socket shared by processes is asked once
	var out []record
	for _, e := range dir {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		out = append(out, procRecords(pid, sockets)...)
	}
	return out, nil
}

type sockInfo struct {
	netns uint32
	name  string
	ok    bool
}

func procRecords(pid int, sockets map[uint64]sockInfo) []record {
	base := "/proc/" + strconv.Itoa(pid)
	st, ok := procfs.ReadStat(pid)
	if !ok || st.KernelThread() {
		return nil // gone, or a kernel thread (as the iterator, left out)
	}
	leader := Proc{PID: uint32(pid), TID: uint32(pid), Comm: st.Comm, MntNS: nsInode(base + "/ns/mnt")}
	own := nsInode(base + "/ns/net")
	var out []record
	if own != 0 {
		out = append(out, record{kind: KindMember, netns: own, proc: leader, fd: -1, own: own})
	}
	// A thread may live in another namespace than its leader (setns on one thread).
	if tasks, err := os.ReadDir(base + "/task"); err == nil && len(tasks) > 1 {
		for _, t := range tasks {
			if ns := nsInode(base + "/task/" + t.Name() + "/ns/net"); ns != 0 && ns != own {
				tid, _ := strconv.Atoi(t.Name())
				p := leader
				p.TID = uint32(tid)
				out = append(out, record{kind: KindMember, netns: ns, proc: p, fd: -1, own: own})
			}
		}
	}
	fds, err := os.ReadDir(base + "/fd")
	if err != nil {
		return out
	}
	pidfd := -1
	defer func() {
		if pidfd >= 0 {
			unix.Close(pidfd)
		}
	}()
	for _, f := range fds {
		target, err := os.Readlink(base + "/fd/" + f.Name())
		if err != nil {
			continue
		}
		fd, _ := strconv.Atoi(f.Name())
		switch {
		case strings.HasPrefix(target, "net:["):
			out = append(out, record{kind: KindFD, netns: bracketed(target), proc: leader, fd: fd, own: own})
		case strings.HasPrefix(target, "socket:["):
			ino := uint64(bracketed(target))
			info, seen := sockets[ino]
			if !seen {
				if pidfd < 0 {
					if pidfd, err = unix.PidfdOpen(pid, 0); err != nil {
						return out
					}
				}
				info = askSocket(pidfd, fd)
				sockets[ino] = info
			}
			if info.ok && info.netns != own {
				out = append(out, record{kind: KindSocket, netns: info.netns, proc: leader, fd: fd, own: own, sock: info.name})
			}
		}
	}
	return out
}

// askSocket duplicates a process's socket and asks it its namespace (SIOCGSKNS) and kind.
func askSocket(pidfd, fd int) sockInfo {
	dup, ns, err := dupSocket(pidfd, fd)
	if err != nil {
		return sockInfo{}
	}
	defer unix.Close(dup)
	defer unix.Close(ns)
	var st unix.Stat_t
	if unix.Fstat(ns, &st) != nil {
		return sockInfo{}
	}
	family, _ := unix.GetsockoptInt(dup, unix.SOL_SOCKET, unix.SO_DOMAIN)
	typ, _ := unix.GetsockoptInt(dup, unix.SOL_SOCKET, unix.SO_TYPE)
	proto, _ := unix.GetsockoptInt(dup, unix.SOL_SOCKET, unix.SO_PROTOCOL)
	return sockInfo{netns: uint32(st.Ino), name: SocketName(family, typ, proto), ok: true}
}

// nsInode is the inode of a namespace link ("net:[4026531840]"), 0 if it cannot be read.
func nsInode(path string) uint32 {
	target, err := os.Readlink(path)
	if err != nil {
		return 0
	}
	return bracketed(target)
}

func bracketed(s string) uint32 {
	_, n, _ := strings.Cut(s, "[")
	v, _ := strconv.ParseUint(strings.TrimSuffix(n, "]"), 10, 32)
	return uint32(v)
}
