package seccomp

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/ghostwatch/ghostwatch/tracer/container"
	"github.com/ghostwatch/ghostwatch/tracer/kernel"
	"github.com/ghostwatch/ghostwatch/tracer/seccomp/runtimebase"
)

// HookAnnotation asks for a recording, in the syntax of oci-seccomp-bpf-hook:
// "of:/abs/out.json" or "if:/abs/base.json;of:/abs/out.json".
const HookAnnotation = "io.containers.trace-syscall"

// HookRunDir holds, per container, the socket of its detached recorder and the result it leaves
// for the poststop hook. Only root may enter it.
const HookRunDir = "/run/ghostwatch/seccomp"

// hookRequest is a validated hook invocation.
type hookRequest struct {
	State specs.State
	Out   string // of:PATH
	In    string // if:PATH, or ""
}

var validID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// readHookState reads the runtime's state (stdin of an OCI hook); ok is false when the container
// asks for nothing (the hook may be configured for every container). Paths the annotation names
// are checked (CheckPath); the output must be below outputRoot when it is not empty.
func readHookState(r io.Reader, outputRoot string) (req hookRequest, ok bool, err error) {
	data, err := io.ReadAll(io.LimitReader(r, 1<<20))
	if err != nil {
		return req, false, fmt.Errorf("reading the container state on stdin: %w", err)
	}
	if err := json.Unmarshal(data, &req.State); err != nil {
		return req, false, fmt.Errorf("the container state on stdin is not OCI state JSON: %v", err)
	}
	value, asked := req.State.Annotations[HookAnnotation]
	if !asked {
		return req, false, nil
	}
	if !validID.MatchString(req.State.ID) {
		return req, false, fmt.Errorf("container id %q is not one ghostwatch can name files after", req.State.ID)
	}
	for _, part := range strings.Split(value, ";") {
		kind, path, _ := strings.Cut(strings.TrimSpace(part), ":")
		switch kind {
		case "of":
			req.Out = path
		case "if":
			req.In = path
		default:
			return req, false, fmt.Errorf("annotation %s=%q: %q is neither of:PATH nor if:PATH", HookAnnotation, value, part)
		}
	}
	if req.Out == "" {
		return req, false, fmt.Errorf("annotation %s=%q names no output (of:PATH)", HookAnnotation, value)
	}
	if err := CheckPath(req.Out, outputRoot); err != nil {
		return req, false, fmt.Errorf("output %w", err)
	}
	if req.In != "" {
		if err := CheckPath(req.In, ""); err != nil {
			return req, false, fmt.Errorf("input %w", err)
		}
	}
	return req, true, nil
}

// CheckPath refuses what an annotation, written by whoever starts the container, must not name:
// relative paths, paths with . or .. or through symlinks, and paths outside root when one is set.
func CheckPath(path, root string) error {
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
// path changed after CheckPath cannot redirect a write.
func openNoSymlinks(path string, flags int) (*os.File, error) {
	fd, err := unix.Openat2(unix.AT_FDCWD, path, &unix.OpenHow{
		Flags: uint64(flags | unix.O_CLOEXEC | unix.O_NOFOLLOW), Mode: 0o644, Resolve: unix.RESOLVE_NO_SYMLINKS,
	})
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// HookOptions configure the OCI hooks.
type HookOptions struct {
	OutputRoot string // profiles may only be written below it; "": anywhere
	Overwrite  bool   // the annotation may name an existing file, which is replaced
	// Timeout is the longest a hook holds the container up: the prestart hook waiting for its
	// recorder to be ready, the poststop hook for the profile to be written.
	Timeout time.Duration
	// Recorder is the command that runs RunHookRecorder (the CLI's hidden `seccomp hook record`),
	// which the prestart hook starts detached, to outlive it.
	Recorder []string
	Warn     func(string) // told, in a line, what the profile will lack
}

// Prestart is the OCI prestart hook: given the runtime's state (the hook's stdin), it starts a
// recorder of the container that outlives the hook, and returns once that records, or with why it
// cannot, within the timeout. A container that asks for nothing is left alone.
func Prestart(state io.Reader, o HookOptions) error {
	req, ok, err := readHookState(state, o.OutputRoot)
	if err != nil || !ok {
		return err
	}
	// Said first: the recorder would fail for want of them, less clearly, after a warning.
	if err := kernel.CheckPrivileges(); err != nil {
		return err
	}
	if !o.Overwrite {
		if _, err := os.Lstat(req.Out); err == nil {
			return fmt.Errorf("output %s exists: refusing to overwrite it (the hook's --overwrite allows it)", req.Out)
		}
	}
	h := hookRecording{Pid: uint32(req.State.Pid), ID: req.State.ID, Out: req.Out, In: req.In, Overwrite: o.Overwrite}
	// The profile gets the runtime's start-up, so that the container starts under it.
	h.Runtime, h.NoNewPrivileges = hookRuntime(req.State)
	if _, warn := runtimebase.For(h.Runtime, h.NoNewPrivileges); warn != "" && o.Warn != nil {
		o.Warn(fmt.Sprintf("container %s: %s", h.ID, warn))
	}
	return spawnRecorder(h, o.Recorder, o.Timeout)
}

// spawnRecorder starts the recorder detached (its own session, so the runtime's end of the hook
// does not end it), its job as JSON on its stdin and a pipe as its fd 3, on which it answers
// "ready" or why not; one that does not answer in time is killed.
func spawnRecorder(h hookRecording, command []string, timeout time.Duration) error {
	if len(command) == 0 {
		return errors.New("no command to start the recorder with")
	}
	job, err := json.Marshal(h)
	if err != nil {
		return err
	}
	jobR, jobW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer jobR.Close()
	// A pipe holds a job this small whole: written before the recorder starts, it cannot block.
	_, err = jobW.Write(job)
	if cerr := jobW.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("handing the recorder its job: %w", err)
	}
	ready, readyW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer ready.Close()
	cmd := exec.Command(command[0], command[1:]...)
	cmd.Stdin = jobR
	cmd.ExtraFiles = []*os.File{readyW} // fd 3
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	readyW.Close() // the recorder's copy is the only writer: its exit is the answer's end
	if err != nil {
		return fmt.Errorf("starting the recorder: %w", err)
	}
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
		return cmd.Process.Release()
	case <-time.After(timeout):
		cmd.Process.Kill()
		cmd.Wait()
		return fmt.Errorf("the recorder was not ready within %v: container %s not recorded", timeout, h.ID)
	}
}

// RunHookRecorder is the recorder the prestart hook leaves behind: it reads its job (a
// hookRecording, as JSON) from job, tells ready "ready" once it records or why it cannot, in a
// line, closes ready, and records (recordHook).
func RunHookRecorder(job io.Reader, ready io.WriteCloser) error {
	tell := func(err error) {
		line := "ready"
		if err != nil {
			line = err.Error()
		}
		fmt.Fprintln(ready, line)
		ready.Close()
	}
	var h hookRecording
	if err := json.NewDecoder(io.LimitReader(job, 1<<20)).Decode(&h); err != nil {
		err = fmt.Errorf("the recorder's job: %w", err)
		tell(err)
		return err
	}
	return recordHook(h, tell)
}

// Poststop is the OCI poststop hook: given the runtime's state, it has the container's recorder
// write the profile and returns how that went (stopHook).
func Poststop(state io.Reader, o HookOptions) error {
	req, ok, err := readHookState(state, o.OutputRoot)
	if err != nil || !ok {
		return err
	}
	return stopHook(req.State.ID, o.Timeout)
}

// hookRecording is what the prestart hook asks its detached recorder to do.
type hookRecording struct {
	Pid       uint32 // the container's init
	ID        string // the container's id (checked by readHookState)
	Out, In   string
	Overwrite bool
	// Runtime is the runtime binary running the container, whose start-up the profile gets
	// (runtimebase.For), with the container's noNewPrivileges.
	Runtime         string
	NoNewPrivileges bool
}

// hookRuntime tells, in a prestart hook, which runtime runs the container (the hook's parent:
// runtimes run hooks themselves) and whether its process has noNewPrivileges (its bundle's
// config.json); runtimebase.For says what that start-up is.
func hookRuntime(state specs.State) (binary string, nnp bool) {
	binary, _ = os.Readlink(fmt.Sprintf("/proc/%d/exe", os.Getppid()))
	var spec struct {
		Process *struct {
			NoNewPrivileges bool `json:"noNewPrivileges"`
		} `json:"process"`
	}
	if f, err := os.Open(filepath.Join(state.Bundle, "config.json")); err == nil {
		if json.NewDecoder(io.LimitReader(f, 16<<20)).Decode(&spec) == nil && spec.Process != nil {
			nnp = spec.Process.NoNewPrivileges
		}
		f.Close()
	}
	return binary, nnp
}

func socketPath(id string) string { return filepath.Join(HookRunDir, id+".sock") }
func resultPath(id string) string { return filepath.Join(HookRunDir, id+".result") }

// hookStop is what the poststop hook sends on the recorder's socket.
const hookStop = "stop"

// recordHook records a container from its first seccomp filter (or exec) until its init exits or
// the poststop hook asks (stopHook), then writes the profile. ready is told nil once recording, or
// the error that prevented it. The link to the poststop hook is a unix socket in HookRunDir: the
// hook never signals a process found by pid, which a reused pid would make another process.
func recordHook(h hookRecording, ready func(error)) error {
	fail := func(err error) error { ready(err); return err }
	mnt := container.ProcNS(h.Pid)["mnt"]
	if mnt == 0 {
		return fail(fmt.Errorf("container init %d is gone", h.Pid))
	}
	var base *Profile
	if h.In != "" {
		f, err := openNoSymlinks(h.In, unix.O_RDONLY)
		if err != nil {
			return fail(fmt.Errorf("input profile: %w", err))
		}
		data, err := io.ReadAll(io.LimitReader(f, 16<<20))
		f.Close()
		if err == nil {
			base, err = Parse(data)
		}
		if err != nil {
			return fail(fmt.Errorf("input profile %s: %w", h.In, err))
		}
	}
	rec, err := New(Options{})
	if err != nil {
		return fail(err)
	}
	defer rec.Close()
	if err := rec.Expect(mnt); err != nil {
		return fail(err)
	}
	if err := os.MkdirAll(HookRunDir, 0o700); err != nil {
		return fail(err)
	}
	sock := socketPath(h.ID)
	os.Remove(sock) // a socket left by a recorder that died: nobody listens on it
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		return fail(fmt.Errorf("listening for the poststop hook: %w", err))
	}
	defer ln.Close()    // removes the socket file
	var stopWait [2]int // its writer closed: the wait for the container's exit ends
	if err := unix.Pipe2(stopWait[:], unix.O_CLOEXEC); err != nil {
		return fail(err)
	}
	// The same wait as a session's: only the init's exit ends it, never a signal's interruption.
	// Without a pidfd the recording ends at poststop.
	exited, waited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(waited)
		if gone, _ := waitExit(h.Pid, stopWait[0]); gone {
			close(exited)
		}
	}()
	defer func() {
		unix.Close(stopWait[1])
		<-waited
		unix.Close(stopWait[0])
	}()
	ready(nil)

	stop := make(chan *net.UnixConn, 1)
	go func() {
		for {
			c, err := ln.AcceptUnix()
			if err != nil {
				return
			}
			c.SetReadDeadline(time.Now().Add(time.Second))
			if line, _ := bufio.NewReader(c).ReadString('\n'); strings.TrimSpace(line) == hookStop {
				stop <- c
				return
			}
			c.Close()
		}
	}()
	var asker *net.UnixConn
	select {
	case <-exited:
	case asker = <-stop:
	}
	start, _ := runtimebase.For(h.Runtime, h.NoNewPrivileges) // the prestart hook said why not
	err = writeHookProfile(rec, mnt, base, start, h.Out, h.Overwrite)
	if asker == nil {
		select {
		case asker = <-stop: // poststop came while the profile was written
		default:
		}
	}
	result := "ok"
	if err != nil {
		result = err.Error()
	}
	if asker != nil {
		fmt.Fprintln(asker, result)
		asker.Close()
	} else {
		// The container ended by itself: poststop comes later and reads the result here.
		os.WriteFile(resultPath(h.ID), []byte(result), 0o600)
	}
	return err
}

func writeHookProfile(rec *Recorder, mnt uint32, base *Profile, start *runtimebase.Start, of string, overwrite bool) error {
	s, err := rec.Stop(mnt)
	if err != nil {
		return err
	}
	p := Build(s)
	if start != nil {
		p.AddRuntimeBase(start.Label, start.Names)
	}
	if base != nil {
		if p, err = Merge(base, p); err != nil {
			return err
		}
	}
	data, err := p.Marshal()
	if err != nil {
		return err
	}
	if err := writeNoSymlinks(of, data, overwrite); err != nil {
		return fmt.Errorf("writing the profile: %w", err)
	}
	return nil
}

// writeNoSymlinks writes a file whole or not at all, as outfile.WriteFile does (a temporary file in
// its directory, renamed into place; removed if anything fails, a full disk included), with the
// kernel refusing symlinks on the way (openNoSymlinks) and, unless overwrite, an existing file.
func writeNoSymlinks(path string, data []byte, overwrite bool) error {
	dfd, err := unix.Openat2(unix.AT_FDCWD, filepath.Dir(path), &unix.OpenHow{
		Flags: unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_NO_SYMLINKS})
	if err != nil {
		return &os.PathError{Op: "open", Path: filepath.Dir(path), Err: err}
	}
	defer unix.Close(dfd)
	name := filepath.Base(path)
	tmp := fmt.Sprintf(".%s.ghostwatch-%d", name, os.Getpid())
	fd, err := unix.Openat2(dfd, tmp, &unix.OpenHow{Flags: unix.O_WRONLY | unix.O_CREAT | unix.O_EXCL | unix.O_CLOEXEC | unix.O_NOFOLLOW,
		Mode: 0o644, Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_BENEATH})
	if err != nil {
		return &os.PathError{Op: "open", Path: filepath.Join(filepath.Dir(path), tmp), Err: err}
	}
	f := os.NewFile(uintptr(fd), filepath.Join(filepath.Dir(path), tmp))
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		flags := uint(unix.RENAME_NOREPLACE)
		if overwrite {
			flags = 0
		}
		if err = unix.Renameat2(dfd, tmp, dfd, name, flags); err == unix.EEXIST {
			err = fmt.Errorf("%s exists: refusing to overwrite it", path)
		} else if err != nil {
			err = &os.PathError{Op: "rename", Path: path, Err: err}
		}
	}
	if err != nil {
		unix.Unlinkat(dfd, tmp, 0)
	}
	return err
}

// stopHook asks a container's recorder to write its profile and returns how that went, waiting
// at most timeout. A recorder that finished already (its container's init exited) left its result
// in HookRunDir.
func stopHook(id string, timeout time.Duration) error {
	result, err := askRecorder(id, timeout)
	if err != nil {
		data, ferr := os.ReadFile(resultPath(id))
		if ferr != nil {
			return err
		}
		result = string(data)
	}
	os.Remove(resultPath(id))
	if result != "ok" {
		return fmt.Errorf("recording container %s: %s", id, result)
	}
	return nil
}

func askRecorder(id string, timeout time.Duration) (string, error) {
	c, err := net.DialTimeout("unix", socketPath(id), timeout)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("no recorder for container %s (did the prestart hook run?)", id)
		}
		return "", fmt.Errorf("the recorder of container %s: %w", id, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	fmt.Fprintln(c, hookStop)
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("the recorder of container %s did not finish within %v", id, timeout)
	}
	return strings.TrimSpace(line), nil
}
