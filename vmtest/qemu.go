package vmtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Machine is a VM to boot once.
type Machine struct {
	Arch      string        // amd64 (the default) or arm64
	Kernel    string        // Debian's /boot/vmlinuz-*
	Initramfs string        // a newc cpio archive with /init
	Memory    int           // MiB
	CPUs      int           //
	Timeout   time.Duration // from boot to power-off
	Output    io.Writer     // what the guest writes to its second serial port, live
}

// DefaultCmdline boots quietly into our init with the bpf LSM enabled (it is built into Debian's
// kernels but not active by default).
const DefaultCmdline = "rdinit=/init panic=-1 oops=panic loglevel=6 lsm=lockdown,capability,landlock,yama,bpf"

// ErrNoStatus is returned when the guest stopped, or was stopped, without reporting a status.
var ErrNoStatus = errors.New("the guest reported no exit status")

// Run boots the machine under TCG (KVM may open here but not run guests) and returns the exit
// status the guest reported. A guest that panics, stops without a status, or outlives Timeout is an
// error whose text ends with the guest's console log. A guest ctx interrupts is killed, and an error.
func (m Machine) Run(ctx context.Context) (int, error) {
	dir, err := os.MkdirTemp("", "vmtest")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	console := filepath.Join(dir, "console.log")
	ctx, cancel := context.WithTimeout(ctx, m.Timeout)
	defer cancel()
	// Single-threaded TCG: with one host thread per vCPU, the kernel's live patching of its own
	// code (static keys, int3) races across vCPUs and 6.12 can oops at boot.
	qemu, cpu := "qemu-system-x86_64", "max"
	args := []string{"-append", "console=ttyS0 " + DefaultCmdline, "-serial", "file:" + console, "-serial", "stdio"}
	var consoleOut *os.File
	if m.Arch == "arm64" {
		// The virt board has one serial port (PL011): the console and the test's marked lines
		// share it. Without -nic none qemu looks for a network card's boot ROM it lacks.
		qemu, args = "qemu-system-aarch64", []string{"-M", "virt", "-nic", "none", "-append", "console=ttyAMA0 " + DefaultCmdline, "-serial", "stdio"}
		// Debian's arm64 kernels sign every return address (pointer authentication), and TCG
		// emulates the architected algorithm (QARMA) slowly, its implementation-defined one fast.
		cpu = "max,pauth-impdef=on"
		if consoleOut, err = os.Create(console); err != nil {
			return 0, err
		}
		defer consoleOut.Close()
	}
	cmd := exec.CommandContext(ctx, qemu, append([]string{
		"-accel", "tcg,thread=single", "-cpu", cpu, "-smp", strconv.Itoa(m.CPUs), "-m", strconv.Itoa(m.Memory),
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-kernel", m.Kernel, "-initrd", m.Initramfs}, args...)...)
	cmd.WaitDelay = 5 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("starting %s (tools/setup.sh installs it): %w", qemu, err)
	}
	status := -1
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		line := strings.TrimSuffix(sc.Text(), "\r")
		if consoleOut != nil {
			out, ok := IsOutput(line)
			if !ok {
				fmt.Fprintln(consoleOut, line)
				continue
			}
			line = out
		}
		if rest, ok := strings.CutPrefix(line, StatusMarker); ok {
			if n, err := strconv.Atoi(strings.TrimSpace(rest)); err == nil {
				status = n
			}
			continue
		}
		fmt.Fprintln(m.Output, line)
	}
	waitErr := cmd.Wait()
	switch {
	case ctx.Err() == context.DeadlineExceeded:
		return 0, fmt.Errorf("the guest did not finish within %v and was killed\n%s", m.Timeout, consoleLog(console))
	case ctx.Err() != nil:
		return 0, fmt.Errorf("interrupted: the guest was killed")
	case status < 0:
		return 0, fmt.Errorf("%w (qemu: %v %s)\n%s", ErrNoStatus, waitErr, strings.TrimSpace(stderr.String()), consoleLog(console))
	}
	return status, nil
}

// consoleLog returns the end of the guest's kernel console, which says why a guest died.
func consoleLog(path string) string {
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > 80 {
		lines = append([]string{"[...]"}, lines[len(lines)-80:]...)
	}
	return "--- guest console ---\n" + strings.Join(lines, "\n") + "\n--- end of guest console ---"
}
