package vmtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// arm64Packages are Debian's arm64 packages whose programs arm64 guests run: the same programs
// the amd64 guests copy from this machine (Programs: dash as sh, coreutils, util-linux's nsenter
// and unshare, iproute2's ip with netns, hostname), busybox, bpftool, Debian's CNI plugins
// (Files), and the libraries they link.
var arm64Packages = []string{
	"dash", "coreutils", "util-linux", "iproute2", "hostname", "busybox-static", "bpftool", "containernetworking-plugins",
	"libc6", "libselinux1", "libpcre2-8-0", "libacl1", "libattr1", "libmnl0", "libbsd0", "libmd0",
	"libelf1", "zlib1g", "libcap2", "libzstd1", "libbpf1",
}

// arm64Stamp lists, in an unpacked root, the packages it holds: a root unpacked from another
// list is unpacked again.
const arm64Stamp = ".packages"

// Arm64Root unpacks arm64Packages into cache once (through the arm64 apt configuration of its own)
// and returns the directory.
func Arm64Root(cache string) (string, error) {
	root := filepath.Join(cache, "arm64-root")
	want := strings.Join(arm64Packages, "\n") + "\n"
	if have, err := os.ReadFile(filepath.Join(root, arm64Stamp)); err == nil && string(have) == want {
		return root, nil
	}
	a := Apt{Dir: filepath.Join(cache, "apt-bookworm-arm64"), Suite: "bookworm", Arch: "arm64"}
	dl, err := os.MkdirTemp(cache, "download")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dl)
	tmp := root + ".partial"
	os.RemoveAll(tmp)
	for _, p := range arm64Packages {
		deb, err := a.Download(p, dl)
		if err != nil {
			return "", err
		}
		if out, err := exec.Command("dpkg-deb", "-x", deb, tmp).CombinedOutput(); err != nil {
			return "", fmt.Errorf("dpkg-deb -x %s: %v: %s", deb, err, out)
		}
	}
	os.RemoveAll(filepath.Join(tmp, "usr", "share"))
	if err := os.WriteFile(filepath.Join(tmp, arm64Stamp), []byte(want), 0o644); err != nil {
		return "", err
	}
	os.RemoveAll(root)
	if err := os.Rename(tmp, root); err != nil {
		return "", err
	}
	return root, nil
}

// addArm64Programs packs each of Programs and Files from root (Arm64Root) at the path the amd64
// guests have them, with the dynamic loader and the libraries.
func (r *Initramfs) addArm64Programs(root string) error {
	for _, p := range Programs {
		found := ""
		for _, dir := range []string{"bin", "usr/bin", "sbin", "usr/sbin"} {
			if _, err := os.Stat(filepath.Join(root, dir, p)); err == nil {
				found = filepath.Join(root, dir, p)
				break
			}
		}
		if found == "" {
			return fmt.Errorf("no arm64 %s in %s: add its package to vmtest's arm64Packages", p, root)
		}
		r.AddFile("/bin/"+p, found, 0o755)
	}
	for _, f := range Files {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			return fmt.Errorf("no arm64 %s in %s: add its package to vmtest's arm64Packages", f, root)
		}
		r.AddFile(f, filepath.Join(root, f), 0o755)
	}
	for _, dir := range []string{"lib", "usr/lib"} {
		libs, _ := filepath.Glob(filepath.Join(root, dir, "aarch64-linux-gnu", "*.so*"))
		for _, l := range libs {
			r.AddFile("/lib/aarch64-linux-gnu/"+filepath.Base(l), l, 0o755)
		}
	}
	ld := filepath.Join(root, "lib", "ld-linux-aarch64.so.1")
	if _, err := os.Stat(ld); err != nil {
		return fmt.Errorf("no arm64 dynamic loader in %s: %w", root, err)
	}
	r.AddFile("/lib/ld-linux-aarch64.so.1", ld, 0o755)
	return nil
}

// OutputMarker starts each line of the test's output on a guest with one serial port (arm64's
// PL011), which the kernel's console shares: the host keeps the marked lines as the test's output
// and the others as the console log.
const OutputMarker = "@@vmtest@@ "

// IsOutput reports whether a line from a single-port guest is the test's, and returns it.
func IsOutput(line string) (string, bool) {
	return strings.CutPrefix(line, OutputMarker)
}
