package caps

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// FileCaps is a decoded security.capability xattr (struct vfs_cap_data / vfs_ns_cap_data).
type FileCaps struct {
	Version     int // 1, 2 or 3
	RootID      uint32
	Permitted   set
	Inheritable set
	Effective   bool
}

const (
	capRevisionMask   = 0xff000000
	capFlagsEffective = 0x000001
	capRevision1      = 0x01000000
	capRevision2      = 0x02000000
	capRevision3      = 0x03000000
)

// ParseFileCaps decodes the xattr as the kernel does (get_vfs_caps_from_disk).
func ParseFileCaps(b []byte) (FileCaps, error) {
	if len(b) < 4 {
		return FileCaps{}, fmt.Errorf("security.capability of %d bytes", len(b))
	}
	magic := binary.LittleEndian.Uint32(b)
	fc := FileCaps{Effective: magic&capFlagsEffective != 0}
	words := 2
	switch magic & capRevisionMask {
	case capRevision1:
		fc.Version, words = 1, 1
		if len(b) != 12 {
			return fc, fmt.Errorf("v1 security.capability of %d bytes, want 12", len(b))
		}
	case capRevision2:
		fc.Version = 2
		if len(b) != 20 {
			return fc, fmt.Errorf("v2 security.capability of %d bytes, want 20", len(b))
		}
	case capRevision3:
		fc.Version = 3
		if len(b) != 24 {
			return fc, fmt.Errorf("v3 security.capability of %d bytes, want 24", len(b))
		}
		fc.RootID = binary.LittleEndian.Uint32(b[20:])
	default:
		return fc, fmt.Errorf("security.capability of unknown revision %#x", magic&capRevisionMask)
	}
	for i := 0; i < words; i++ {
		fc.Permitted |= set(binary.LittleEndian.Uint32(b[4+8*i:])) << (32 * i)
		fc.Inheritable |= set(binary.LittleEndian.Uint32(b[8+8*i:])) << (32 * i)
	}
	return fc, nil
}

// errNoCaps is a file without file capabilities.
var errNoCaps = errors.New("no security.capability")

// fileID is what the kernel said of the exec'd file: the xattr is read only from a file that is
// this one.
type fileID struct {
	dev        uint32 // the kernel's encoding: major << 20 | minor
	ino        uint64
	pid, ppid  uint32
	path       string // as exec'd
	sameMounts bool   // the actor's mount namespace is ours: path means the same here
}

// readFileCaps reads the xattr of the exec'd file: through /proc/PID/exe while the process lives;
// failing that, through the exec'd path in its parent's root (a container's short-lived process
// whose shell still runs) or here when the path means the same here. Only from a file whose device
// and inode are the exec'd file's, never by trusting a path. how says which.
func readFileCaps(id fileID) (b []byte, how string, err error) {
	try := func(path string) ([]byte, error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		var st unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &st); err != nil {
			return nil, err
		}
		if st.Ino != id.ino || st.Dev != unix.Mkdev(id.dev>>20, id.dev&0xfffff) {
			return nil, fmt.Errorf("%s is another file now", path)
		}
		buf := make([]byte, 64)
		n, err := unix.Fgetxattr(int(f.Fd()), "security.capability", buf)
		if errors.Is(err, unix.ENODATA) {
			return nil, errNoCaps
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
	b, err = try("/proc/" + strconv.Itoa(int(id.pid)) + "/exe")
	if err == nil || errors.Is(err, errNoCaps) {
		return b, "exe", err
	}
	if len(id.path) > 0 && id.path[0] == '/' {
		if b, perr := try("/proc/" + strconv.Itoa(int(id.ppid)) + "/root" + id.path); perr == nil || errors.Is(perr, errNoCaps) {
			return b, "parent's root", perr
		}
		if id.sameMounts {
			if b, perr := try(id.path); perr == nil || errors.Is(perr, errNoCaps) {
				return b, "path", perr
			}
		}
	}
	return nil, "", fmt.Errorf("the process exited and its file could not be found again: %w", err)
}

// Encode writes the xattr as setcap does: v1, v2, or v3 with the rootid (setcap -n).
func (fc FileCaps) Encode() []byte {
	magic, size := uint32(capRevision2), 20
	switch fc.Version {
	case 1:
		magic, size = capRevision1, 12
	case 3:
		magic, size = capRevision3, 24
	}
	if fc.Effective {
		magic |= capFlagsEffective
	}
	b := make([]byte, size)
	binary.LittleEndian.PutUint32(b, magic)
	for i := 0; 4+8*i+8 <= min(size, 20); i++ {
		binary.LittleEndian.PutUint32(b[4+8*i:], uint32(fc.Permitted>>(32*i)))
		binary.LittleEndian.PutUint32(b[8+8*i:], uint32(fc.Inheritable>>(32*i)))
	}
	if fc.Version == 3 {
		binary.LittleEndian.PutUint32(b[20:], fc.RootID)
	}
	return b
}
