package seccomp

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ghostwatch/ghostwatch/tracer/outfile"
	"github.com/ghostwatch/ghostwatch/tracer/testutil"
)

// A profile that does not fit on its disk is not written at all, by the session (-o FILE or a
// directory) or by the OCI hook: the error says so, and no file is left, whole or in part.
func TestProfileOnAFullDisk(t *testing.T) {
	testutil.RequirePrivileged(t)
	dir := t.TempDir()
	// 32 KiB with 28 KiB taken: a 16 KiB profile starts to fit, then does not.
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=32k"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	if err := os.WriteFile(filepath.Join(dir, "filler"), make([]byte, 28<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	profile := bytes.Repeat([]byte("x"), 16<<10)
	for name, write := range map[string]func(path string) error{
		"session": func(path string) error { return outfile.WriteFile(path, profile) },
		"hook":    func(path string) error { return writeNoSymlinks(path, profile, false) },
	} {
		err := write(filepath.Join(dir, name+".json"))
		if !errors.Is(err, unix.ENOSPC) {
			t.Errorf("%s: writing a profile on a full disk: %v, want ENOSPC", name, err)
		}
		entries, _ := os.ReadDir(dir)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		if !slices.Equal(names, []string{"filler"}) {
			t.Errorf("%s: the full disk holds %v after the failed write, want only the filler", name, names)
		}
	}
}
