// Package vmtest runs test binaries inside VMs booted on other kernels: Debian's kernel packages,
// unpacked (never installed), booted with qemu under TCG with an initramfs built here that holds
// the test binary, the tools it runs and a small Go init.
package vmtest

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// Initramfs is the content of a newc cpio archive: paths (without the leading /) to host files or
// to literal contents.
type Initramfs struct {
	files map[string]fileSource
}

type fileSource struct {
	hostPath string
	data     []byte
	mode     uint32 // permissions; 0o120777 with data, a symbolic link to data
}

// NewInitramfs returns an archive with the directories every guest needs.
func NewInitramfs() *Initramfs {
	return &Initramfs{files: map[string]fileSource{}}
}

// AddFile copies a host file (following symlinks) to guestPath.
func (r *Initramfs) AddFile(guestPath, hostPath string, mode uint32) {
	r.files[strings.TrimPrefix(guestPath, "/")] = fileSource{hostPath: hostPath, mode: mode}
}

// AddData puts literal contents at guestPath.
func (r *Initramfs) AddData(guestPath string, data []byte, mode uint32) {
	r.files[strings.TrimPrefix(guestPath, "/")] = fileSource{data: data, mode: mode}
}

// AddSymlink makes guestPath a symbolic link to target.
func (r *Initramfs) AddSymlink(guestPath, target string) {
	r.files[strings.TrimPrefix(guestPath, "/")] = fileSource{data: []byte(target), mode: 0o120777}
}

// AddTree copies a host directory tree to guestDir in the guest.
func (r *Initramfs) AddTree(hostDir, guestDir string) error {
	return filepath.Walk(hostDir, func(p string, info os.FileInfo, err error) error {
		if err != nil || !info.Mode().IsRegular() {
			return err
		}
		rel, err := filepath.Rel(hostDir, p)
		if err != nil {
			return err
		}
		r.AddFile(path.Join(guestDir, filepath.ToSlash(rel)), p, uint32(info.Mode().Perm()))
		return nil
	})
}

// AddProgram copies a dynamically linked host program and the shared libraries ldd says it needs,
// at the same paths, so that it runs in the guest as it does on the host. name may be a path or
// looked up in PATH; it is placed in /bin.
func (r *Initramfs) AddProgram(name string) error {
	p, err := exec.LookPath(name)
	if err != nil {
		return fmt.Errorf("packing %s: %w", name, err)
	}
	r.AddFile("/bin/"+path.Base(name), p, 0o755)
	r.addLibraries(p)
	return nil
}

// AddFileWithLibraries packs a program at its own path, with its shared libraries.
func (r *Initramfs) AddFileWithLibraries(p string) error {
	if _, err := os.Stat(p); err != nil {
		return fmt.Errorf("packing %s: %w", p, err)
	}
	r.AddFile(p, p, 0o755)
	r.addLibraries(p)
	return nil
}

// addLibraries packs the shared libraries ldd lists for a program (none for a static one).
func (r *Initramfs) addLibraries(p string) {
	out, err := exec.Command("ldd", p).Output()
	if err != nil {
		return // static: "not a dynamic executable"
	}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		// "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
		fields := strings.Fields(sc.Text())
		for _, f := range fields {
			if strings.HasPrefix(f, "/") {
				r.AddFile(f, f, 0o755)
				break
			}
		}
	}
}

// Write writes the archive in the newc format the kernel unpacks, uncompressed.
func (r *Initramfs) Write(w io.Writer) error {
	bw := bufio.NewWriter(w)
	names := make([]string, 0, len(r.files))
	for n := range r.files {
		names = append(names, n)
	}
	sort.Strings(names)
	dirs := map[string]bool{}
	ino := uint32(1)
	entry := func(name string, mode uint32, data []byte) {
		ino++
		hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
			ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name)+1, 0)
		bw.WriteString(hdr)
		bw.WriteString(name)
		bw.WriteByte(0)
		pad(bw, len(hdr)+len(name)+1)
		bw.Write(data)
		pad(bw, len(data))
	}
	for _, d := range []string{"bin", "dev", "proc", "sys", "tmp", "run", "etc", "root"} {
		dirs[d] = true
		entry(d, 0o040755, nil)
	}
	for _, n := range names {
		for _, d := range parents(n) {
			if !dirs[d] {
				dirs[d] = true
				entry(d, 0o040755, nil)
			}
		}
		f := r.files[n]
		data := f.data
		if f.hostPath != "" {
			var err error
			if data, err = os.ReadFile(f.hostPath); err != nil {
				return err
			}
		}
		mode := 0o100000 | f.mode
		if f.mode&0o170000 != 0 {
			mode = f.mode // a link
		}
		entry(n, mode, data)
	}
	entry("TRAILER!!!", 0, nil)
	return bw.Flush()
}

func parents(name string) []string {
	var out []string
	for d := path.Dir(name); d != "." && d != "/"; d = path.Dir(d) {
		out = append([]string{d}, out...)
	}
	return out
}

func pad(w *bufio.Writer, n int) {
	for ; n%4 != 0; n++ {
		w.WriteByte(0)
	}
}
