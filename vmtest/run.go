package vmtest

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"encoding/json"
)

// Programs are the host tools ghostwatch's tests run, packed into every guest with their libraries.
var Programs = []string{"sh", "cat", "true", "readlink", "nsenter", "unshare", "bpftool", "cp", "busybox", "mkdir", "rmdir", "ip", "hostname", "sleep"}

// Files are host programs the tests run by their path, packed at the same path with their
// libraries: Debian's CNI plugins (trace cni).
var Files = []string{"/usr/lib/cni/bridge", "/usr/lib/cni/host-local", "/usr/lib/cni/loopback"}

// Env lists the host variables passed on to the guest test.
func guestEnv() []string {
	env := []string{"PATH=/bin:/usr/bin:/sbin:/usr/sbin", "HOME=/root", "TMPDIR=/tmp", "GHOSTWATCH_VMTEST=1"}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "GHOSTWATCH_") && !strings.HasPrefix(kv, "GHOSTWATCH_VMTEST=") {
			env = append(env, kv)
		}
	}
	return env
}

// guestDir is where a test runs in the guest, with its package's testdata.
const guestDir = "/pkg"

// Options configure RunTest.
type Options struct {
	Arch    string // amd64 (the default) or arm64
	Root    string // arm64: Arm64Root's directory, whose programs the guest gets
	Kernel  string // bzImage, or arm64's Image
	Init    string // the static vminit binary
	Timeout time.Duration
	Output  io.Writer
}

// RunTest boots a guest that runs binary with args as go test would in dir (the package's
// directory, whose testdata/ goes along), once GuestModules of the kernel (ModulesDir) are loaded,
// and returns its exit status.
func RunTest(ctx context.Context, o Options, dir, binary string, args ...string) (int, error) {
	rd := NewInitramfs()
	rd.AddFile("/init", o.Init, 0o755)
	guestBinary := "/test/" + filepath.Base(binary)
	rd.AddFile(guestBinary, binary, 0o755)
	if o.Arch == "arm64" {
		if err := rd.addArm64Programs(o.Root); err != nil {
			return 0, err
		}
	} else {
		for _, p := range Programs {
			if err := rd.AddProgram(p); err != nil {
				return 0, err
			}
		}
		for _, p := range Files {
			if err := rd.AddFileWithLibraries(p); err != nil {
				return 0, err
			}
		}
	}
	// The package's directory is /pkg in the guest: its host path may be under /tmp, which the
	// guest mounts a tmpfs over.
	if st, err := os.Stat(filepath.Join(dir, "testdata")); err == nil && st.IsDir() {
		if err := rd.AddTree(filepath.Join(dir, "testdata"), guestDir+"/testdata"); err != nil {
			return 0, err
		}
	}
	modules, err := rd.addModules(ModulesDir(o.Kernel), GuestModules)
	if err != nil {
		return 0, fmt.Errorf("packing the guest's modules: %w", err)
	}
	spec, err := json.Marshal(Spec{Args: append([]string{guestBinary}, args...), Env: guestEnv(), Dir: guestDir, Modules: modules})
	if err != nil {
		return 0, err
	}
	rd.AddData(SpecPath, spec, 0o644)

	f, err := os.CreateTemp("", "vmtest-initramfs")
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name())
	if err := rd.Write(f); err != nil {
		f.Close()
		return 0, fmt.Errorf("writing initramfs: %w", err)
	}
	if err := f.Close(); err != nil {
		return 0, err
	}
	// Two vCPUs on single-threaded TCG's one host thread: a guest takes one host core whatever its
	// vCPUs, so rows running side by side (vmtest's VMTEST_JOBS) need no fewer.
	m := Machine{Arch: o.Arch, Kernel: o.Kernel, Initramfs: f.Name(), Memory: 2048, CPUs: 2, Timeout: o.Timeout, Output: o.Output}
	return m.Run(ctx)
}
