package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/ghostwatch/ghostwatch/gen/syscalls"
	"github.com/ghostwatch/ghostwatch/tracer/ociruntime"
	"github.com/ghostwatch/ghostwatch/tracer/seccomp"
	"github.com/ghostwatch/ghostwatch/tracer/testutil"
)

// probeExit is the probe workload's only syscall, left out of what a runtime is recorded doing.
const probeExit = "exit"

// probe is a static x86-64 executable whose only syscall is exit(0): run as the container's
// workload, everything recorded but that one call is the runtime's.
func probe() []byte {
	return testutil.Executable([]byte{
		0xb8, 60, 0, 0, 0, // mov eax, 60 (exit)
		0x31, 0xff, // xor edi, edi
		0x0f, 0x05, // syscall
	}, true)
}

// permissive makes the runtime install a filter where it would install a container's profile,
// and the recorder begin there, while denying nothing the runtime does.
var permissive = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: []specs.Arch{specs.ArchX86_64},
	Syscalls: []specs.LinuxSyscall{{Names: []string{"kexec_load"}, Action: specs.ActErrno}}}

// record runs a container with the runtime rt (a binary in PATH: runc, crun) runs times, under a
// permissive profile and with noNewPrivileges nnp, its workload a probe that only exits, and
// returns the names of the syscalls recorded from the filter's install on, the probe's exit left
// out: the runtime's steps between installing a filter and the workload's exec.
func record(ctx context.Context, rt string, nnp bool, runs int) ([]string, error) {
	rec, err := seccomp.New(seccomp.Options{New: true})
	if err != nil {
		return nil, err
	}
	defer rec.Close()
	// Each runtime command runs in a mount namespace of its own (ociruntime.RunCgroup2), which
	// begins recording at its exec: those end at once; the containers' filter installs are kept.
	armed := make(chan seccomp.Armed, 1)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- rec.Run(ctx, func(a seccomp.Armed) {
			if a.Reason != seccomp.ArmSeccomp {
				rec.Stop(a.MntNS)
				return
			}
			select {
			case armed <- a:
			case <-ctx.Done():
			}
		}, nil)
	}()

	dir, err := os.MkdirTemp("", "gw-runtimebase")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if err := writeBundle(dir, nnp); err != nil {
		return nil, err
	}
	var names []string
	for i := range runs {
		got, err := recordOnce(ctx, rec, armed, rt, dir, fmt.Sprintf("gw-base-%d-%d", os.Getpid(), i))
		if err != nil {
			return nil, fmt.Errorf("%s (noNewPrivileges %v), run %d: %w", rt, nnp, i+1, err)
		}
		names = append(names, got...)
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		return nil, err
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

func recordOnce(ctx context.Context, rec *seccomp.Recorder, armed <-chan seccomp.Armed, rt, bundle, id string) ([]string, error) {
	// Created, then started, as containerd's shim and CRI-O run containers: the workload's exec
	// waits for start, and how it waits is part of the runtime's start-up.
	if err := runContainer(rt, bundle, id); err != nil {
		return nil, err
	}
	// The container has exited: its recording began (at its filter's install) and ended.
	var a seccomp.Armed
	select {
	case a = <-armed:
	case <-time.After(5 * time.Second):
		return nil, errors.New("the runtime installed no seccomp filter in a new mount namespace")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	s, err := rec.Stop(a.MntNS)
	if err != nil {
		return nil, err
	}
	if len(s.Compat) > 0 || len(s.X32) > 0 || s.OutOfRange > 0 {
		return nil, fmt.Errorf("the runtime made non-native syscalls: %+v", s)
	}
	var names []string
	for _, n := range s.Native {
		name, ok := syscalls.Names["x86_64"][n]
		if !ok {
			return nil, fmt.Errorf("syscall %d has no name", n)
		}
		if name != probeExit {
			names = append(names, name)
		}
	}
	return names, nil
}

// runContainer creates and starts a container, waits for its end and deletes it.
func runContainer(rt, bundle, id string) error {
	if out, err := ociruntime.RunCgroup2(rt, "create", "--bundle", bundle, id); err != nil {
		return fmt.Errorf("%s create: %v: %s", rt, err, out)
	}
	defer ociruntime.RunCgroup2(rt, "delete", "-f", id)
	if out, err := ociruntime.RunCgroup2(rt, "start", id); err != nil {
		return fmt.Errorf("%s start: %v: %s", rt, err, out)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		out, err := ociruntime.RunCgroup2(rt, "state", id)
		var st specs.State
		if err != nil || json.Unmarshal(out, &st) != nil {
			return fmt.Errorf("%s state: %v: %s", rt, err, out)
		}
		if st.Status == specs.StateStopped {
			return nil
		}
	}
	return fmt.Errorf("container %s did not stop", id)
}

// writeBundle writes a bundle whose rootfs holds only the probe.
func writeBundle(dir string, nnp bool) error {
	rootfs := filepath.Join(dir, "rootfs")
	if err := os.MkdirAll(rootfs, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(rootfs, "probe"), probe(), 0o755); err != nil {
		return err
	}
	if out, err := exec.Command("runc", "spec", "--bundle", dir).CombinedOutput(); err != nil {
		return fmt.Errorf("runc spec: %v: %s", err, out)
	}
	path := filepath.Join(dir, "config.json")
	var spec specs.Spec
	data, err := os.ReadFile(path)
	if err == nil {
		err = json.Unmarshal(data, &spec)
	}
	if err != nil {
		return err
	}
	spec.Process.Terminal = false
	spec.Process.Args = []string{"/probe"}
	spec.Process.NoNewPrivileges = nnp
	spec.Root.Readonly = false
	spec.Linux.Seccomp = permissive
	data, _ = json.Marshal(&spec)
	return os.WriteFile(path, data, 0o644)
}
