// Command vminit is PID 1 in vmtest guests: it mounts what ghostwatch's tests expect of a node,
// loads the kernel modules its spec lists, runs the test binary with its output on the second serial port (on arm64, whose board has one,
// on the console's port with each line marked), reports the exit status there, and powers the VM
// off.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/ghostwatch/ghostwatch/vmtest"
)

var mounts = []struct{ source, target, fstype, data string }{
	{"proc", "/proc", "proc", ""},
	{"sysfs", "/sys", "sysfs", ""},
	{"devtmpfs", "/dev", "devtmpfs", ""},
	{"tmpfs", "/tmp", "tmpfs", ""},
	{"tmpfs", "/run", "tmpfs", ""},
	{"bpf", "/sys/fs/bpf", "bpf", ""},
	{"tracefs", "/sys/kernel/tracing", "tracefs", ""},
	{"debugfs", "/sys/kernel/debug", "debugfs", ""},
	{"securityfs", "/sys/kernel/security", "securityfs", ""},
	// cgroups as on the development machine: v1 controllers beside a v2 hierarchy.
	{"tmpfs", "/sys/fs/cgroup", "tmpfs", "mode=755"},
	{"cgroup2", "/sys/fs/cgroup/unified", "cgroup2", ""},
	{"cgroup", "/sys/fs/cgroup/devices", "cgroup", "devices"},
}

// resultPort is where the test's output and status go: the second serial port, or on arm64 the
// only one, shared with the kernel's console.
func resultPort() (io.WriteCloser, error) {
	if runtime.GOARCH == "arm64" {
		f, err := os.OpenFile("/dev/ttyAMA0", os.O_RDWR|unix.O_NOCTTY, 0)
		if err != nil {
			return nil, err
		}
		rawMode(f)
		return &marked{f: f}, nil
	}
	f, err := os.OpenFile("/dev/ttyS1", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	rawMode(f) // no \n to \r\n translation: the host reads what the test wrote
	return f, nil
}

// marked writes each whole line with vmtest.OutputMarker before it, in one write, so that the
// host tells it from the kernel's console lines.
type marked struct {
	mu      sync.Mutex
	f       *os.File
	partial []byte
}

func (m *marked) Write(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.partial = append(m.partial, p...)
	for {
		i := bytes.IndexByte(m.partial, '\n')
		if i < 0 {
			return len(p), nil
		}
		if _, err := m.f.Write(append([]byte(vmtest.OutputMarker), m.partial[:i+1]...)); err != nil {
			return 0, err
		}
		m.partial = m.partial[i+1:]
	}
}

func (m *marked) Close() error {
	if len(m.partial) > 0 {
		m.Write([]byte("\n"))
	}
	return m.f.Close()
}

func main() {
	status := run()
	if out, err := resultPort(); err == nil {
		fmt.Fprintf(out, "\n%s %d\n", vmtest.StatusMarker, status)
		out.Close()
	}
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
}

// loopbackUp brings lo up, as every node has it: tests serve and dial 127.0.0.1.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

func run() int {
	for _, m := range mounts {
		os.MkdirAll(m.target, 0o755)
		if err := unix.Mount(m.source, m.target, m.fstype, 0, m.data); err != nil {
			fmt.Fprintf(os.Stderr, "vminit: mounting %s on %s: %v\n", m.fstype, m.target, err)
			return 125
		}
	}
	if runtime.GOARCH == "arm64" {
		// The test's lines share the console's port: from here on, only errors and worse of
		// the kernel (an oops, an OOM kill) go there, rarely cutting a line. The boot's
		// messages went before, for the console log of a guest that fails.
		os.WriteFile("/proc/sys/kernel/printk", []byte("4"), 0)
	}
	out, err := resultPort()
	if err != nil {
		fmt.Fprintf(os.Stderr, "vminit: opening the result port: %v\n", err)
		return 125
	}
	defer out.Close()
	if err := loopbackUp(); err != nil {
		fmt.Fprintf(out, "vminit: bringing lo up: %v\n", err)
		return 125
	}

	var spec vmtest.Spec
	data, err := os.ReadFile(vmtest.SpecPath)
	if err == nil {
		err = json.Unmarshal(data, &spec)
	}
	if err != nil || len(spec.Args) == 0 {
		fmt.Fprintf(out, "vminit: no test to run in %s: %v\n", vmtest.SpecPath, err)
		return 125
	}
	for _, m := range spec.Modules {
		if err := loadModule(m.Name, m.Params); err != nil {
			fmt.Fprintf(out, "vminit: loading %s: %v\n", m.Name, err)
			return 125
		}
	}
	os.MkdirAll(spec.Dir, 0o755)
	cmd := exec.Command(spec.Args[0], spec.Args[1:]...)
	cmd.Env, cmd.Dir, cmd.Stdout, cmd.Stderr = spec.Env, spec.Dir, out, out
	if err := cmd.Run(); err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			if code := ee.ExitCode(); code >= 0 {
				return code
			}
			fmt.Fprintf(out, "vminit: %v\n", err)
			return 128
		}
		fmt.Fprintf(out, "vminit: running %v: %v\n", spec.Args, err)
		return 126
	}
	return 0
}

// loadModule loads a kernel module file with its parameters (finit_module); one already loaded is
// no error.
func loadModule(path, params string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.FinitModule(int(f.Fd()), params, 0); err != nil && err != unix.EEXIST {
		return err
	}
	return nil
}

func rawMode(f *os.File) {
	t, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	if err != nil {
		return
	}
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Iflag &^= unix.ICRNL | unix.IXON
	unix.IoctlSetTermios(int(f.Fd()), unix.TCSETS, t)
}
