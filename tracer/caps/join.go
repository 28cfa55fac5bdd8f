package caps

import (
	"fmt"
	"os"
	"time"

	"github.com/ghostwatch/ghostwatch/tracer/container"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
	"github.com/ghostwatch/ghostwatch/tracer/lru"
)

// Join reads the capabilities of exec'd files, diagnoses those the kernel did not apply, drops
// execs of files without any, and gives a denied check the exec that explains it: an exec of the
// same process, or of its parent, whose file grants the capability denied and was not applied.
type Join struct {
	notApplied *lru.Cache[uint32, *Exec] // by pid
	ourMntNS   uint32
	readCaps   func(fileID) ([]byte, string, error)
	forgot     gadget.Forget
}

// joinSize and joinAge bound what the join remembers.
const (
	joinSize = 4096
	joinAge  = 10 * time.Minute
)

// NewJoin makes the user-space half of one run of the gadget; forgot counts the execs it drops for
// want of room.
func NewJoin(forgot gadget.Forget) *Join {
	return &Join{notApplied: lru.New[uint32, *Exec](joinSize, joinAge),
		ourMntNS: container.ProcNS(uint32(os.Getpid()))["mnt"], readCaps: readFileCaps, forgot: forgot}
}

// Process handles one event in order.
func (j *Join) Process(ev gadget.Event, emit func(gadget.Event)) {
	switch e := ev.(type) {
	case *Exec:
		j.notApplied.Delete(e.Proc.PID) // a new program: what the old one was refused is moot
		b, _, err := j.readCaps(fileID{dev: e.rec.Dev, ino: e.rec.Ino, pid: e.Proc.PID, ppid: e.Proc.PPID, path: e.File,
			sameMounts: e.NS.Mnt == j.ourMntNS})
		switch {
		case err == errNoCaps:
			return // no file capabilities: nothing to tell
		case err != nil:
			e.XattrErr = err.Error()
		default:
			fc, err := ParseFileCaps(b)
			if err != nil {
				e.XattrErr = err.Error()
				break
			}
			e.Caps = &fc
			Diagnose(e)
			if !e.Applied {
				j.forgot.Count(j.notApplied.Put(e.Proc.PID, e.Clone().(*Exec)))
			}
		}
		emit(e)
	case *Check:
		if e.Denied {
			e.Cause = j.cause(e)
		}
		emit(e)
	default:
		emit(ev)
	}
}

// cause is the exec of this process or its parent that was refused the capability denied.
func (j *Join) cause(c *Check) *gadget.Cause {
	for _, pid := range []uint32{c.Proc.PID, c.Proc.PPID} {
		x, ok := j.notApplied.Get(pid)
		if !ok || x.Missing&(1<<c.Cap) == 0 {
			continue
		}
		return &gadget.Cause{Time: x.Time, Kind: "exec", Before: c.Time.Sub(x.Time), PID: x.Proc.PID, Comm: x.Proc.Comm,
			Attrs: []gadget.Attr{{Key: "file", Value: x.File}, {Key: "cap", Value: capName(c.Cap)},
				{Key: "ignored_because", Value: x.Because}}}
	}
	return nil
}

// Flush has nothing due: every event is emitted as it comes.
func (j *Join) Flush(time.Time, bool, func(gadget.Event)) {}

// Diagnose sets whether the file's capabilities were applied, judged from the credentials the
// kernel installed, and when not, the reason by the kernel's rules (cap_bprm_creds_from_file,
// get_vfs_caps_from_disk): the first that holds of nosuid, rootid, bounding_set, no_new_privs.
func Diagnose(e *Exec) {
	fc, in := e.Caps, e.rec.Caps
	want := fc.Permitted
	e.Missing = want &^ set(in.Permitted)
	if fc.Effective {
		e.Missing |= want &^ set(in.Effective)
	}
	e.Applied = e.Missing == 0
	if e.Applied {
		return
	}
	switch {
	case e.rec.Euid == 0 || e.rec.Suid == 0:
		e.Because = "setuid_root"
		e.Explain = "the program runs as root (or setuid root): the kernel gives root's capabilities, not the file's"
	case e.rec.MntNosuid != 0:
		e.Because = "nosuid"
		e.Explain = "the file is on a nosuid mount, where the kernel ignores file capabilities: run it from a mount without nosuid"
	case fc.Version == 3 && !rootOwnsUserNS(e, fc.RootID):
		e.Because = "rootid"
		e.Explain = rootidExplanation(e, fc.RootID)
	case e.Missing&^set(in.Bounding) != 0:
		e.Because = "bounding_set"
		e.Explain = fmt.Sprintf("%s not in the process's bounding set: grant it to the container (its capabilities), or drop fewer", e.Missing&^set(in.Bounding))
	case e.rec.NoNewPrivs != 0:
		e.Because = "no_new_privs"
		e.Explain = "no_new_privs was set before the exec, and the kernel kept the permitted set to the old one: grant the capability to the container, or allow privilege escalation"
	default:
		e.Because = "unknown"
		e.Explain = "the kernel did not install them, and none of nosuid, rootid, bounding set and no_new_privs explains it (an LSM?)"
	}
}

// rootOwnsUserNS is the kernel's rootid_owns_currentns: the rootid is root in the actor's user
// namespace or one of its ancestors. Ancestors past the levels read count as not owning it.
func rootOwnsUserNS(e *Exec, rootid uint32) bool {
	if e.rec.FsUserns != initUserNS {
		return true // the rootid is relative to the file system's own user namespace: not judged
	}
	for i := 0; i < int(e.rec.UsernsLevels) && i < len(e.rec.RootKuid); i++ {
		if k := e.rec.RootKuid[i]; k != rootNone && k == rootid {
			return true
		}
	}
	return false
}

func rootidExplanation(e *Exec, rootid uint32) string {
	e.MapsTo = nil
	maps := "maps to nothing there"
	if e.rec.ExtentsRead == 0 {
		maps = "its uid map was not read"
	}
	for i := 0; i < int(e.rec.NrExtents) && i < len(e.rec.Extents) && e.rec.ExtentsRead != 0; i++ {
		x := e.rec.Extents[i]
		if rootid >= x.LowerFirst && rootid-x.LowerFirst < x.Count {
			e.mapsTo = x.First + (rootid - x.LowerFirst)
			e.MapsTo = &e.mapsTo
			maps = fmt.Sprintf("maps to uid %d there", e.mapsTo)
		}
	}
	root := "no uid is root there"
	if k := e.rec.RootKuid[0]; k != rootNone {
		root = fmt.Sprintf("root there is host uid %d", k)
	}
	return fmt.Sprintf("v3 rootid %d is not root in user ns %d (%s; %s): rebuild the image without user namespaces, or setcap again without -n (or with -n %s)",
		rootid, e.rec.Userns[0], maps, root, rootHint(e))
}

func rootHint(e *Exec) string {
	if k := e.rec.RootKuid[0]; k != rootNone {
		return fmt.Sprint(k)
	}
	return "the host uid that is root in the target user namespace"
}
