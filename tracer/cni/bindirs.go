package cni

import (
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	gen "github.com/ghostwatch/ghostwatch/gen/cni"
)

// BinDirs returns the kernel's keys of the directories a plugin of these bin dirs is exec'd from:
// each dir, and the directories its symbolic links point into (the kernel sees the file a link
// resolves to). Dirs that do not exist are left out.
func BinDirs(dirs []string) []gen.CniInodeKey {
	seen := map[gen.CniInodeKey]bool{}
	var out []gen.CniInodeKey
	add := func(dir string) {
		if k, ok := dirKey(dir); ok && !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	for _, d := range dirs {
		if d == "" {
			continue
		}
		add(d)
		entries, err := os.ReadDir(d)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if e.Type()&os.ModeSymlink == 0 {
				continue
			}
			if target, err := filepath.EvalSymlinks(filepath.Join(d, e.Name())); err == nil {
				add(filepath.Dir(target))
			}
		}
	}
	return out
}

// dirKey is a directory's key in the kernel's bin_dirs map.
func dirKey(dir string) (gen.CniInodeKey, bool) {
	k, mode, ok := inodeKey(dir)
	return k, ok && mode == unix.S_IFDIR
}

// inodeKey is the kernel's key of the inode at path (followed): its number, and its device as the
// kernel writes dev_t (major << 20 | minor); and its type.
func inodeKey(path string) (gen.CniInodeKey, uint32, bool) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return gen.CniInodeKey{}, 0, false
	}
	return gen.CniInodeKey{Ino: st.Ino, Dev: unix.Major(st.Dev)<<20 | unix.Minor(st.Dev)}, st.Mode & unix.S_IFMT, true
}

// procOut is a running process's entry in the kernel's tree: its stdout and stderr are the files
// its fd 1 and 2 are now (ino 0 where one is closed, as the kernel records it).
func procOut(root, pid uint32) gen.CniCniProc {
	p := gen.CniCniProc{Root: root}
	for i := range p.Out {
		p.Out[i], _, _ = inodeKey("/proc/" + strconv.Itoa(int(pid)) + "/fd/" + strconv.Itoa(i+1))
	}
	return p
}
