package vmtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// arm64Packages are Debian's arm64 packages whose programs arm64 guests run: busybox for the
// shell and the small tools (Programs), bpftool with the libraries it links.
var arm64Packages = []string{"busybox-static", "bpftool", "libc6", "libelf1", "zlib1g", "libcap2", "libzstd1", "libbpf1"}

// Arm64Root unpacks arm64Packages into cache once (through the arm64 apt configuration of its own)
// and returns the directory.
func Arm64Root(cache string) (string, error) {
	root := filepath.Join(cache, "arm64-root")
	if _, err := os.Stat(filepath.Join(root, "bin", "busybox")); err == nil {
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
	if err := os.Rename(tmp, root); err != nil {
		return "", err
	}
	return root, nil
}

// addArm64Programs packs busybox with a link per program of Programs it provides, bpftool, and
// the dynamic loader and libraries from root (Arm64Root).
func (r *Initramfs) addArm64Programs(root string) error {
	r.AddFile("/bin/busybox", filepath.Join(root, "bin", "busybox"), 0o755)
	for _, p := range Programs {
		if p != "busybox" && p != "bpftool" {
			r.AddSymlink("/bin/"+p, "busybox")
		}
	}
	r.AddFile("/bin/bpftool", filepath.Join(root, "usr", "sbin", "bpftool"), 0o755)
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
