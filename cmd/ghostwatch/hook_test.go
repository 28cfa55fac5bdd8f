package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/ghostwatch/ghostwatch/tracer/container/containertest"
	"github.com/ghostwatch/ghostwatch/tracer/seccomp"
	"github.com/ghostwatch/ghostwatch/tracer/testutil"
)

// runcBundle writes a bundle whose container runs args with ghostwatch as its prestart and
// poststop hooks, asked by annotation to record into annotation's path.
func runcBundle(t *testing.T, annotation string, profile *specs.LinuxSeccomp, args ...string) string {
	return runcBundleWith(t, nil, annotation, profile, args...)
}

// runcBundleWith is runcBundle with extra arguments for the hooks.
func runcBundleWith(t *testing.T, hookArgs []string, annotation string, profile *specs.LinuxSeccomp, args ...string) string {
	t.Helper()
	dir := t.TempDir()
	if err := containertest.WriteRootfs(filepath.Join(dir, "rootfs")); err != nil {
		t.Fatal(err)
	}
	containertest.RuncSpec(t, dir, func(spec *specs.Spec) {
		spec.Root.Readonly = false
		spec.Process.Args = args
		spec.Linux.Seccomp = profile
		hook := func(stage string) specs.Hook {
			return specs.Hook{Path: binary, Args: append([]string{"ghostwatch", "seccomp", "hook", stage}, hookArgs...),
				Env: []string{"GHOSTWATCH_TEST_AS_CLI=1", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}, Timeout: intPtr(30)}
		}
		spec.Hooks = &specs.Hooks{Prestart: []specs.Hook{hook("prestart")}, Poststop: []specs.Hook{hook("poststop")}}
		if annotation != "" {
			spec.Annotations = map[string]string{"io.containers.trace-syscall": annotation}
		}
	})
	return dir
}

func intPtr(n int) *int { return &n }

// runcRun runs a bundle to its end with a runc state root of the test's own.
func runcRun(t *testing.T, bundle string) (int, string) {
	t.Helper()
	id := fmt.Sprintf("gw-hook-%d", time.Now().UnixNano())
	cmd := exec.Command("runc", "--root", filepath.Join(bundle, "state"), "run", "--bundle", bundle, id)
	out, _ := cmd.CombinedOutput()
	exec.Command("runc", "--root", filepath.Join(bundle, "state"), "delete", "-f", id).Run()
	return cmd.ProcessState.ExitCode(), string(out)
}

// recordWithHooks runs the workload with runc under profile (nil: none) with the hooks asked to
// record into out, and returns the profile they wrote.
func recordWithHooks(t *testing.T, out string, profile *specs.LinuxSeccomp) (*seccomp.Profile, []byte) {
	t.Helper()
	code, output := runcRun(t, runcBundle(t, "of:"+out, profile, "sh", "-c", workload))
	if code != 0 || !strings.Contains(output, "hello") {
		t.Fatalf("runc run with the hooks: exit %d: %s", code, output)
	}
	return readProfile(t, out)
}

func TestSeccompHookWithRunc(t *testing.T) {
	testutil.RequirePrivileged(t)
	containertest.SkipInVM(t)
	outDir := t.TempDir()
	out := filepath.Join(outDir, "profile.json")
	profile, data := recordWithHooks(t, out, permissive)
	// The profile lets the same container run under runc.
	code, output := runcRun(t, runcBundle(t, "", &profile.LinuxSeccomp, "sh", "-c", workload))
	if code != 0 || !strings.Contains(output, "hello") {
		t.Fatalf("under the hook's profile: exit %d: %s\n%s", code, output, data)
	}

	// Recorded with no linux.seccomp, as containers are run: the profile still starts the container.
	t.Run("no filter at recording", func(t *testing.T) {
		profile, data := recordWithHooks(t, filepath.Join(t.TempDir(), "profile.json"), nil)
		if len(profile.RuntimeBase) != 1 || !strings.HasPrefix(profile.RuntimeBase[0], "runc ") {
			t.Errorf("the profile names runtime start-ups %q, want runc's", profile.RuntimeBase)
		}
		checkEnforced(t, func(args ...string) (int, string) {
			return runcRun(t, runcBundle(t, "", &profile.LinuxSeccomp, args...))
		}, data)
	})

	// What the annotation may not name: each is refused by the prestart hook, in one line, and
	// the container does not start.
	link := filepath.Join(outDir, "link")
	if err := os.Symlink(t.TempDir(), link); err != nil {
		t.Fatal(err)
	}
	// However the recorder fares, the hook holds the container up no longer than its timeout.
	t.Run("timeout", func(t *testing.T) {
		start := time.Now()
		code, output := runcRun(t, runcBundleWith(t, []string{"--timeout", "1ms"}, "of:"+filepath.Join(outDir, "late.json"), permissive, "true"))
		if code == 0 || !strings.Contains(output, "was not ready within 1ms") {
			t.Errorf("exit %d, want the hook to give up after 1ms: %s", code, output)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("runc took %v", took)
		}
	})
	for _, tc := range []struct{ annotation, why string }{
		{"of:relative/profile.json", "must be absolute"},
		{"of:" + outDir + "/../x.json", "must be absolute and clean"},
		{"of:" + link + "/profile.json", "goes through the symlink"},
		{"of:" + out, "exists: refusing to overwrite"},
		{"if:/nonexistent/base.json", "names no output"},
	} {
		t.Run(tc.annotation, func(t *testing.T) {
			code, output := runcRun(t, runcBundle(t, tc.annotation, permissive, "true"))
			if code == 0 || !strings.Contains(output, tc.why) {
				t.Errorf("annotation %q: exit %d, want a refusal saying %q: %s", tc.annotation, code, tc.why, output)
			}
		})
	}
}
