package seccomp

import (
	"golang.org/x/sys/unix"
)

// waitExit waits until process pid exits (exited true) or stop, a file descriptor, becomes
// readable (a pipe's writer closed: exited false). A pidfd names the process itself, so a reused
// pid is never mistaken for it. Used wherever a recording ends with its process: the session's
// containers and the OCI hook's.
func waitExit(pid uint32, stop int) (exited bool, err error) {
	fd, err := unix.PidfdOpen(int(pid), 0)
	if err == unix.ESRCH {
		return true, nil // exited already: a short-lived container
	}
	if err != nil {
		return false, err
	}
	defer unix.Close(fd)
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}, {Fd: int32(stop), Events: unix.POLLIN}}
	for {
		// A signal delivered to this thread interrupts the poll: that is neither an exit nor a stop.
		if _, err := unix.Poll(fds, -1); err != unix.EINTR {
			if err != nil {
				return false, err
			}
			return fds[0].Revents != 0, nil
		}
	}
}
