package seccomp

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/ghostwatch/ghostwatch/tracer/container"
	"github.com/ghostwatch/ghostwatch/tracer/seccomp/runtimebase"
)

// HookAnnotation asks for a recording, in the syntax of oci-seccomp-bpf-hook:
// "of:/abs/out.json" or "if:/abs/base.json;of:/abs/out.json".
const HookAnnotation = "io.containers.trace-syscall"

// HookRunDir holds, per container, the socket of its detached recorder and the result it leaves
// for the poststop hook. Only root may enter it.
const HookRunDir = "/run/ghostwatch/seccomp"

// HookRequest is a validated hook invocation.
type HookRequest struct {
	State specs.State
	Out   string // of:PATH
	In    string // if:PATH, or ""
}

var validID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// ReadHookState reads the runtime's state (stdin of an OCI hook); ok is false when the container
// asks for nothing (the hook may be configured for every container). Paths the annotation names
// are checked (CheckPath); the output must be below outputRoot when it is not empty.
func ReadHookState(r io.Reader, outputRoot string) (req HookRequest, ok bool, err error) {
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

// HookRecording is what the prestart hook asks its detached recorder to do.
type HookRecording struct {
	Pid       uint32 // the container's init
	ID        string // the container's id (checked by ReadHookState)
	Out, In   string
	Overwrite bool
	// Runtime is the runtime binary running the container, whose start-up the profile gets
	// (runtimebase.For), with the container's noNewPrivileges.
	Runtime         string
	NoNewPrivileges bool
}

// HookRuntime tells, in a prestart hook, which runtime runs the container (the hook's parent:
// runtimes run hooks themselves) and whether its process has noNewPrivileges (its bundle's
// config.json); runtimebase.For says what that start-up is.
func HookRuntime(state specs.State) (binary string, nnp bool) {
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

// RecordHook records a container from its first seccomp filter (or exec) until its init exits or
// the poststop hook asks (StopHook), then writes the profile. ready is told nil once recording, or
// the error that prevented it. The link to the poststop hook is a unix socket in HookRunDir: the
// hook never signals a process found by pid, which a reused pid would make another process.
func RecordHook(h HookRecording, ready func(error)) error {
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
	defer ln.Close() // removes the socket file
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
	exited := make(chan struct{})
	go func() {
		if fd, err := unix.PidfdOpen(int(h.Pid), 0); err == nil {
			unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, -1)
			unix.Close(fd)
		}
		close(exited)
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

// StopHook asks a container's recorder to write its profile and returns how that went, waiting
// at most timeout. A recorder that finished already (its container's init exited) left its result
// in HookRunDir.
func StopHook(id string, timeout time.Duration) error {
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
