package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/ghostwatch/ghostwatch/tracer/container"
	"github.com/ghostwatch/ghostwatch/tracer/seccomp"
)

// HookAnnotation asks for a recording, in the syntax of oci-seccomp-bpf-hook:
// "of:/abs/out.json" or "if:/abs/base.json;of:/abs/out.json".
const HookAnnotation = "io.containers.trace-syscall"

// hookRunDir holds, per container, the recorder's pid and its result for the poststop hook.
const hookRunDir = "/run/ghostwatch/seccomp"

func hookCommand() *cli.Command {
	flags := []cli.Flag{
		&cli.BoolFlag{Name: "overwrite", Usage: "let the annotation name an existing file, which is replaced"},
		&cli.StringFlag{Name: "output-root", Usage: "profiles may only be written below this directory"},
		&cli.DurationFlag{Name: "timeout", Value: 5 * time.Second, Usage: "longest the hook may hold up the container"},
	}
	return &cli.Command{
		Name:  "hook",
		Usage: "OCI hook: prestart starts recording the container, poststop writes its profile (state on stdin)",
		Subcommands: []*cli.Command{
			{Name: "prestart", Flags: flags, Action: hookPrestart, Usage: "start recording (OCI prestart hook)"},
			{Name: "poststop", Flags: flags, Action: hookPoststop, Usage: "write the profile (OCI poststop hook)"},
			{Name: "record", Hidden: true, Flags: append(flags,
				&cli.UintFlag{Name: "pid"}, &cli.StringFlag{Name: "of"}, &cli.StringFlag{Name: "if"}, &cli.StringFlag{Name: "id"}),
				Action: hookRecord},
		},
	}
}

// hookRequest is a validated hook invocation.
type hookRequest struct {
	state  specs.State
	of, in string
}

var validID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// readHookState reads the runtime's state from stdin; ok is false when the container asks for
// nothing (the hook may be configured for every container).
func readHookState(c *cli.Context) (req hookRequest, ok bool, err error) {
	data, err := io.ReadAll(io.LimitReader(os.Stdin, 1<<20))
	if err != nil {
		return req, false, fmt.Errorf("reading the container state on stdin: %w", err)
	}
	if err := json.Unmarshal(data, &req.state); err != nil {
		return req, false, fmt.Errorf("the container state on stdin is not OCI state JSON: %v", err)
	}
	value, asked := req.state.Annotations[HookAnnotation]
	if !asked {
		return req, false, nil
	}
	if !validID.MatchString(req.state.ID) {
		return req, false, fmt.Errorf("container id %q is not one ghostwatch can name files after", req.state.ID)
	}
	for _, part := range strings.Split(value, ";") {
		kind, path, _ := strings.Cut(strings.TrimSpace(part), ":")
		switch kind {
		case "of":
			req.of = path
		case "if":
			req.in = path
		default:
			return req, false, fmt.Errorf("annotation %s=%q: %q is neither of:PATH nor if:PATH", HookAnnotation, value, part)
		}
	}
	if req.of == "" {
		return req, false, fmt.Errorf("annotation %s=%q names no output (of:PATH)", HookAnnotation, value)
	}
	if err := checkPath(req.of, c.String("output-root")); err != nil {
		return req, false, fmt.Errorf("output %w", err)
	}
	if req.in != "" {
		if err := checkPath(req.in, ""); err != nil {
			return req, false, fmt.Errorf("input %w", err)
		}
	}
	return req, true, nil
}

// checkPath refuses what an annotation, written by whoever starts the container, must not name:
// relative paths, paths with . or .. or through symlinks, and paths outside root when one is set.
func checkPath(path, root string) error {
	if !filepath.IsAbs(path) || filepath.Clean(path) != path {
		return fmt.Errorf("path %q must be absolute and clean", path)
	}
	if root != "" && !strings.HasPrefix(path, filepath.Clean(root)+"/") {
		return fmt.Errorf("path %q is outside %s", path, root)
	}
	for p := filepath.Dir(path); p != "/"; p = filepath.Dir(p) {
		st, err := os.Lstat(p)
		if err != nil {
			return fmt.Errorf("path %q: %v", path, err)
		}
		if st.Mode()&os.ModeSymlink != 0 {
			return fmt.Errorf("path %q goes through the symlink %s", path, p)
		}
	}
	if st, err := os.Lstat(path); err == nil && st.Mode()&os.ModeSymlink != 0 {
		return fmt.Errorf("path %q is a symlink", path)
	}
	return nil
}

// openNoSymlinks opens path with the kernel refusing any symlink on the way (openat2), so that a
// path changed after checkPath cannot redirect a write.
func openNoSymlinks(path string, flags int) (*os.File, error) {
	fd, err := unix.Openat2(unix.AT_FDCWD, path, &unix.OpenHow{
		Flags: uint64(flags | unix.O_CLOEXEC | unix.O_NOFOLLOW), Mode: 0o644, Resolve: unix.RESOLVE_NO_SYMLINKS,
	})
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

func hookPrestart(c *cli.Context) error {
	req, ok, err := readHookState(c)
	if err != nil || !ok {
		return err
	}
	if !c.Bool("overwrite") {
		if _, err := os.Lstat(req.of); err == nil {
			return fmt.Errorf("output %s exists: refusing to overwrite it (the hook's --overwrite allows it)", req.of)
		}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	args := []string{"seccomp", "hook", "record", "--pid", strconv.Itoa(req.state.Pid), "--id", req.state.ID, "--of", req.of}
	if req.in != "" {
		args = append(args, "--if", req.in)
	}
	if c.Bool("overwrite") {
		args = append(args, "--overwrite")
	}
	ready, readyW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer ready.Close()
	cmd := exec.Command(self, args...)
	cmd.Env = os.Environ()
	cmd.ExtraFiles = []*os.File{readyW}                  // fd 3
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // outlives the hook
	if err := cmd.Start(); err != nil {
		readyW.Close()
		return fmt.Errorf("starting the recorder: %w", err)
	}
	readyW.Close()
	answer := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(ready).ReadString('\n')
		answer <- strings.TrimSpace(line)
	}()
	select {
	case line := <-answer:
		if line != "ready" {
			cmd.Wait()
			if line == "" {
				line = "the recorder exited before it was ready"
			}
			return errors.New(line)
		}
		cmd.Process.Release()
		return nil
	case <-time.After(c.Duration("timeout")):
		cmd.Process.Kill()
		cmd.Wait()
		return fmt.Errorf("the recorder was not ready within %v: container %s not recorded", c.Duration("timeout"), req.state.ID)
	}
}

// hookRecord is the recorder the prestart hook leaves behind: it records the container from its
// first seccomp filter (or exec) until its init exits or poststop says so, then writes the profile.
func hookRecord(c *cli.Context) error {
	readyPipe := os.NewFile(3, "ready")
	fail := func(err error) error {
		fmt.Fprintln(readyPipe, err.Error())
		return err
	}
	pid, id := uint32(c.Uint("pid")), c.String("id")
	mnt := container.ProcNS(pid)["mnt"]
	if mnt == 0 {
		return fail(fmt.Errorf("container init %d is gone", pid))
	}
	var base *seccomp.Profile
	if in := c.String("if"); in != "" {
		f, err := openNoSymlinks(in, unix.O_RDONLY)
		if err != nil {
			return fail(fmt.Errorf("input profile: %w", err))
		}
		data, err := io.ReadAll(io.LimitReader(f, 16<<20))
		f.Close()
		if err == nil {
			base, err = seccomp.Parse(data)
		}
		if err != nil {
			return fail(fmt.Errorf("input profile %s: %w", in, err))
		}
	}
	rec, err := seccomp.New(seccomp.Options{})
	if err != nil {
		return fail(err)
	}
	defer rec.Close()
	if err := rec.Expect(mnt); err != nil {
		return fail(err)
	}
	if err := os.MkdirAll(hookRunDir, 0o700); err != nil {
		return fail(err)
	}
	pidFile := filepath.Join(hookRunDir, id+".pid")
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
		return fail(err)
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	fmt.Fprintln(readyPipe, "ready")
	readyPipe.Close()

	exited := make(chan struct{})
	go func() {
		if fd, err := unix.PidfdOpen(int(pid), 0); err == nil {
			unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, -1)
			unix.Close(fd)
		}
		close(exited)
	}()
	select {
	case <-exited:
	case <-stop:
	}
	err = writeHookProfile(rec, mnt, base, c.String("of"), c.Bool("overwrite"))
	result := "ok"
	if err != nil {
		result = err.Error()
	}
	os.WriteFile(filepath.Join(hookRunDir, id+".result"), []byte(result), 0o600)
	return err
}

func writeHookProfile(rec *seccomp.Recorder, mnt uint32, base *seccomp.Profile, of string, overwrite bool) error {
	s, err := rec.Stop(mnt)
	if err != nil {
		return err
	}
	p := seccomp.Build(s)
	if base != nil {
		if p, err = seccomp.Merge(base, p); err != nil {
			return err
		}
	}
	data, err := p.Marshal()
	if err != nil {
		return err
	}
	flags := unix.O_WRONLY | unix.O_CREAT | unix.O_EXCL
	if overwrite {
		flags = unix.O_WRONLY | unix.O_CREAT | unix.O_TRUNC
	}
	f, err := openNoSymlinks(of, flags)
	if err != nil {
		return fmt.Errorf("writing the profile: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("writing the profile: %w", err)
	}
	return f.Close()
}

// hookPoststop tells the recorder to write the profile and reports how that went.
func hookPoststop(c *cli.Context) error {
	req, ok, err := readHookState(c)
	if err != nil || !ok {
		return err
	}
	pidFile := filepath.Join(hookRunDir, req.state.ID+".pid")
	resultFile := filepath.Join(hookRunDir, req.state.ID+".result")
	defer os.Remove(pidFile)
	defer os.Remove(resultFile)
	data, err := os.ReadFile(pidFile)
	if err != nil {
		return fmt.Errorf("no recorder for container %s (did the prestart hook run?)", req.state.ID)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	if fd, err := unix.PidfdOpen(pid, 0); err == nil {
		unix.PidfdSendSignal(fd, unix.SIGTERM, nil, 0)
		n, _ := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, int(c.Duration("timeout").Milliseconds()))
		unix.Close(fd)
		if n == 0 {
			return fmt.Errorf("the recorder of container %s did not finish within %v", req.state.ID, c.Duration("timeout"))
		}
	}
	result, err := os.ReadFile(resultFile)
	if err != nil {
		return fmt.Errorf("the recorder of container %s left no result", req.state.ID)
	}
	if r := string(result); r != "ok" {
		return fmt.Errorf("recording container %s: %s", req.state.ID, r)
	}
	return nil
}
