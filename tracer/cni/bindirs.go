package cni

import (
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	gen "github.com/ghostwatch/ghostwatch/gen/cni"
)

// BinDirs returns the kernel's keys of the directories a plugin of these bin dirs is exec'd from:
// each dir, and the directories its symbolic links point into (the kernel sees the file a link
// resolves to). Dirs that do not exist are left out.
func BinDirs(dirs []string) []gen.CniDirKey {
	seen := map[gen.CniDirKey]bool{}
	var out []gen.CniDirKey
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

// dirKey is a directory's key in the kernel's bin_dirs map: its inode, and its device as the
// kernel writes dev_t (major << 20 | minor).
func dirKey(dir string) (gen.CniDirKey, bool) {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return gen.CniDirKey{}, false
	}
	return gen.CniDirKey{Ino: st.Ino, Dev: unix.Major(st.Dev)<<20 | unix.Minor(st.Dev)}, true
}
