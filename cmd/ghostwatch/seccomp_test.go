package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/ghostwatch/ghostwatch/tracer/container/containertest"
	"github.com/ghostwatch/ghostwatch/tracer/seccomp"
	"github.com/ghostwatch/ghostwatch/tracer/testutil"
)

// permissive is a profile that allows (nearly) everything, so that runc installs a filter where
// it will install the recorded one, and the recording starts there.
var permissive = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: []specs.Arch{specs.ArchX86_64},
	Syscalls: []specs.LinuxSyscall{{Names: []string{"kexec_load"}, Action: specs.ActErrno}}}

const workload = "echo hello > /tmp/f && cat /tmp/f && ls / > /dev/null"

// waitStderr waits for a line of ghostwatch's stderr that contains s.
func (tr *tracing) waitStderr(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(testutil.Wait)
	for !strings.Contains(tr.stderr.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q on stderr within %v:\n%s", s, testutil.Wait, tr.stderr)
		}
		time.Sleep(20 * time.Millisecond) // stderr is read by another goroutine
	}
}

// Record a container from its start, then run it under the profile: it starts and works, and a
// syscall outside the profile is denied with EPERM.
func TestSeccompRecordFromStartThenEnforce(t *testing.T) {
	testutil.RequirePrivileged(t)
	d := containertest.Start(t)
	for _, nnp := range []bool{false, true} { // runc installs the filter early, or just before exec
		name := map[bool]string{false: "early", true: "late"}[nnp]
		t.Run("filter installed "+name, func(t *testing.T) {
			dir := t.TempDir()
			tr := startTracingWith(t, "recording syscalls", "seccomp", "record", "--new", "--container", name,
				"-o", dir, "--containerd-socket", d.Socket)
			code, out := d.RunToExit(t, containertest.Options{Name: name, Args: []string{"sh", "-c", workload},
				Seccomp: permissive, NoNewPrivileges: nnp})
			if code != 0 || !strings.Contains(out, "hello") {
				t.Fatalf("recorded run: exit %d: %s", code, out)
			}
			path := filepath.Join(dir, name+".json")
			tr.waitStderr(t, "wrote "+path)
			profile, data := readProfile(t, path)
			if strings.Contains(string(data), `"mkdir"`) {
				t.Fatalf("the workload never called mkdir, yet the profile allows it:\n%s", data)
			}
			enforced := &profile.LinuxSeccomp

			code, out = d.RunToExit(t, containertest.Options{Name: name + "-enforced", Args: []string{"sh", "-c", workload},
				Seccomp: enforced, NoNewPrivileges: nnp})
			if code != 0 || !strings.Contains(out, "hello") {
				t.Fatalf("under its profile the container failed: exit %d: %s\nprofile:\n%s", code, out, data)
			}
			more := workload + " && mkdir /tmp/d"
			code, out = d.RunToExit(t, containertest.Options{Name: name + "-control", Args: []string{"sh", "-c", more}, NoNewPrivileges: nnp})
			if code != 0 {
				t.Fatalf("without a profile the longer workload fails: exit %d: %s", code, out)
			}
			code, out = d.RunToExit(t, containertest.Options{Name: name + "-denied", Args: []string{"sh", "-c", more},
				Seccomp: enforced, NoNewPrivileges: nnp})
			if code == 0 || !strings.Contains(out, "Operation not permitted") {
				t.Fatalf("mkdir outside the profile was not denied with EPERM: exit %d: %s", code, out)
			}
			tr.cmd.Process.Signal(os.Interrupt)
			if code := tr.wait(t); code != 0 {
				t.Errorf("record exited %d: %s", code, tr.stderr)
			}
		})
	}
}

// readProfile reads a profile ghostwatch wrote, and its bytes.
func readProfile(t *testing.T, path string) (*seccomp.Profile, []byte) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("no profile written: %v", err)
	}
	profile, err := seccomp.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	return profile, data
}

// denying is the workload and a socket(2) it never made while recorded: busybox's ifconfig opens
// one first.
const denying = workload + " && busybox ifconfig"

// checkEnforced runs a workload under a profile: it must work, and denying must fail on socket(2)
// with EPERM.
func checkEnforced(t *testing.T, run func(args ...string) (int, string), data []byte) {
	t.Helper()
	if code, out := run("sh", "-c", workload); code != 0 || !strings.Contains(out, "hello") {
		t.Fatalf("under its profile the container failed: exit %d: %s\nprofile:\n%s", code, out, data)
	}
	if code, out := run("sh", "-c", denying); code == 0 || !strings.Contains(out, "socket: Operation not permitted") {
		t.Fatalf("socket(2) outside the profile was not denied with EPERM: exit %d: %s", code, out)
	}
}

// Recorded the way containers are run, with no seccomp profile (the recording then begins at the
// workload's exec): the profile gets the runtime's start-up, so the container starts under it,
// with runc and crun, noNewPrivileges or not.
func TestSeccompRecordWithoutFilterThenEnforce(t *testing.T) {
	testutil.RequirePrivileged(t)
	d := containertest.StartCgroup2(t) // crun runs only in cgroup v2 mode here
	for _, rt := range []string{"runc", "crun"} {
		for _, nnp := range []bool{false, true} {
			name := fmt.Sprintf("%s-nnp-%v", rt, nnp)
			t.Run(name, func(t *testing.T) {
				dir := t.TempDir()
				tr := startTracingWith(t, "recording syscalls", "seccomp", "record", "--new", "--container", name,
					"-o", dir, "--containerd-socket", d.Socket)
				code, out := d.RunToExit(t, containertest.Options{Name: name, Args: []string{"sh", "-c", workload},
					NoNewPrivileges: nnp, NewPrivileges: !nnp, Runtime: rt})
				if code != 0 || !strings.Contains(out, "hello") {
					t.Fatalf("recorded run: exit %d: %s", code, out)
				}
				path := filepath.Join(dir, name+".json")
				tr.waitStderr(t, "wrote "+path)
				tr.cmd.Process.Signal(os.Interrupt)
				if code := tr.wait(t); code != 0 {
					t.Errorf("record exited %d: %s", code, tr.stderr)
				}
				if strings.Contains(tr.stderr.String(), "warning: "+name) {
					t.Errorf("the runtime's start-up is not known: %s", tr.stderr)
				}
				profile, data := readProfile(t, path)
				if len(profile.RuntimeBase) != 1 || !strings.HasPrefix(profile.RuntimeBase[0], rt+" ") ||
					!strings.HasSuffix(profile.RuntimeBase[0], fmt.Sprintf("noNewPrivileges %v", nnp)) {
					t.Errorf("the profile names runtime start-ups %q, want %s's with noNewPrivileges %v", profile.RuntimeBase, rt, nnp)
				}
				checkEnforced(t, func(args ...string) (int, string) {
					return d.RunToExit(t, containertest.Options{Name: name + "-enforced", Args: args, NoNewPrivileges: nnp,
						NewPrivileges: !nnp, Runtime: rt, Seccomp: &profile.LinuxSeccomp})
				}, data)
			})
		}
	}
}

// A running container is recorded from now on, with a warning, until it exits.
func TestSeccompRecordRunningUntilExit(t *testing.T) {
	testutil.RequirePrivileged(t)
	d := containertest.Start(t)
	db := d.Run(t, containertest.Options{Name: "db"})
	out := filepath.Join(t.TempDir(), "db.json")
	tr := startTracingWith(t, "recording syscalls", "seccomp", "record", "--container", "db", "-o", out, "--containerd-socket", d.Socket)
	if !strings.Contains(tr.stderr.String(), "runs already: syscalls made at its start are not in the profile") {
		t.Errorf("no warning about the missed start: %s", tr.stderr)
	}
	db.Exec(t, d, "mkdir", "/tmp/made-while-recorded")
	db.Remove(d)
	if code := tr.wait(t); code != 0 {
		t.Fatalf("record exited %d when the container ended: %s", code, tr.stderr)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `"mkdir"`) {
		t.Errorf("the exec'd mkdir is not in the profile:\n%s", data)
	}
}

func TestSeccompMergeCLI(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.json"), filepath.Join(dir, "b.json")
	os.WriteFile(a, []byte(`{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64"],"syscalls":[{"names":["write","read"],"action":"SCMP_ACT_ALLOW"}]}`), 0o644)
	os.WriteFile(b, []byte(`{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86"],"syscalls":[{"names":["close"],"action":"SCMP_ACT_ALLOW"}]}`), 0o644)
	merge := func(args ...string) (int, string, string) {
		var stdout, stderr strings.Builder
		code := run(append([]string{"ghostwatch", "seccomp", "merge"}, args...), &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	_, ab, _ := merge(a, b)
	_, ba, _ := merge(b, a)
	if ab != ba || !strings.Contains(ab, `"close",`) || !strings.Contains(ab, "SCMP_ARCH_X86\"") {
		t.Errorf("merge a b:\n%s\nmerge b a:\n%s", ab, ba)
	}
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"archMap": []}`), 0o644)
	code, _, stderr := merge(a, bad)
	if code != 1 {
		t.Errorf("merging a non-profile: exit %d", code)
	}
	oneLineError(t, stderr, "bad.json: not an OCI seccomp profile")
}
