package caps

import (
	"strings"
	"testing"
	"time"

	gen "github.com/ghostwatch/ghostwatch/gen/caps"
	"github.com/ghostwatch/ghostwatch/tracer/event"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
)

const netBind = 10 // CAP_NET_BIND_SERVICE

func xattr(version int, rootid uint32, permitted uint64, effective bool) []byte {
	return FileCaps{Version: version, RootID: rootid, Permitted: set(permitted), Effective: effective}.Encode()
}

func TestParseFileCaps(t *testing.T) {
	fc, err := ParseFileCaps(xattr(3, 200000, 1<<netBind, true))
	if err != nil || fc.Version != 3 || fc.RootID != 200000 || fc.Permitted != 1<<netBind || !fc.Effective {
		t.Errorf("v3: %+v %v", fc, err)
	}
	fc, err = ParseFileCaps(xattr(2, 0, 1<<40|1<<netBind, false))
	if err != nil || fc.Version != 2 || fc.Permitted != 1<<40|1<<netBind || fc.Effective {
		t.Errorf("v2: %+v %v", fc, err)
	}
	if fc, err := ParseFileCaps(xattr(1, 0, 1<<netBind, true)); err != nil || fc.Version != 1 || fc.Permitted != 1<<netBind {
		t.Errorf("v1: %+v %v", fc, err)
	}
	for _, bad := range [][]byte{nil, {1, 2}, xattr(2, 0, 1, true)[:19], {0, 0, 0, 9, 0, 0, 0, 0}} {
		if _, err := ParseFileCaps(bad); err == nil {
			t.Errorf("%x parsed", bad)
		}
	}
}

// userNSExec is an exec as uid 1000 in a user namespace mapping 0-65535 to 100000-165535.
func userNSExec(fc FileCaps, installed uint64) *Exec {
	rec := gen.CapsExecEvent{Euid: 101000, Suid: 101000, FsUserns: initUserNS, UsernsLevels: 2, NrExtents: 1, ExtentsRead: 1}
	rec.Caps.Permitted, rec.Caps.Effective, rec.Caps.Bounding = installed, installed, 1<<41-1
	rec.Userns[0], rec.Userns[1] = 4026532246, initUserNS
	rec.RootKuid[0], rec.RootKuid[1] = 100000, 0
	rec.Extents[0].First, rec.Extents[0].LowerFirst, rec.Extents[0].Count = 0, 100000, 65536
	return &Exec{File: "/tmp/bad", rec: rec, Caps: &fc}
}

func TestDiagnose(t *testing.T) {
	for _, tc := range []struct {
		name    string
		exec    func() *Exec
		applied bool
		because string
		explain string
	}{
		{"rootid of another range", func() *Exec {
			return userNSExec(FileCaps{Version: 3, RootID: 200000, Permitted: 1 << netBind, Effective: true}, 0)
		}, false, "rootid", "v3 rootid 200000 is not root in user ns 4026532246 (maps to nothing there; root there is host uid 100000)"},
		{"rootid of this namespace", func() *Exec {
			return userNSExec(FileCaps{Version: 3, RootID: 100000, Permitted: 1 << netBind, Effective: true}, 1<<netBind)
		}, true, "", ""},
		{"rootid the kernel accepted after all: judged by what was installed", func() *Exec {
			return userNSExec(FileCaps{Version: 3, RootID: 200000, Permitted: 1 << netBind, Effective: true}, 1<<netBind)
		}, true, "", ""},
		{"nosuid", func() *Exec {
			e := userNSExec(FileCaps{Version: 2, Permitted: 1 << netBind, Effective: true}, 0)
			e.rec.MntNosuid = 1
			return e
		}, false, "nosuid", "nosuid mount"},
		{"bounding set", func() *Exec {
			e := userNSExec(FileCaps{Version: 2, Permitted: 1 << netBind, Effective: true}, 0)
			e.rec.Caps.Bounding = 0
			return e
		}, false, "bounding_set", "cap_net_bind_service not in the process's bounding set"},
		{"no_new_privs", func() *Exec {
			e := userNSExec(FileCaps{Version: 2, Permitted: 1 << netBind, Effective: true}, 0)
			e.rec.NoNewPrivs = 1
			return e
		}, false, "no_new_privs", "no_new_privs"},
		{"nothing known", func() *Exec {
			return userNSExec(FileCaps{Version: 2, Permitted: 1 << netBind, Effective: true}, 0)
		}, false, "unknown", "none of"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := tc.exec()
			Diagnose(e)
			if e.Applied != tc.applied || e.Because != tc.because || !strings.Contains(e.Explain, tc.explain) {
				t.Errorf("applied %v because %q explain %q; want %v %q containing %q", e.Applied, e.Because, e.Explain, tc.applied, tc.because, tc.explain)
			}
		})
	}
	// A rootid that maps to a uid in the namespace, though not to root.
	e := userNSExec(FileCaps{Version: 3, RootID: 100005, Permitted: 1 << netBind, Effective: true}, 0)
	Diagnose(e)
	if e.MapsTo == nil || *e.MapsTo != 5 || !strings.Contains(e.Explain, "maps to uid 5 there") {
		t.Errorf("maps to %v: %s", e.MapsTo, e.Explain)
	}
}

// The join gives a denied check the exec that explains it, and nothing else a cause.
func TestJoin(t *testing.T) {
	files := map[uint32][]byte{1: xattr(3, 200000, 1<<netBind, true), 2: xattr(2, 0, 1<<netBind, true)}
	j := NewJoin(nil)
	j.readCaps = func(id fileID) ([]byte, string, error) {
		if b, ok := files[id.pid]; ok {
			return b, "test", nil
		}
		return nil, "", errNoCaps
	}
	at := time.Now()
	var out []gadget.Event
	emit := func(ev gadget.Event) { out = append(out, ev.Clone()) }
	exec := func(pid uint32, installed uint64) {
		e := userNSExec(FileCaps{}, installed)
		e.Caps = nil
		e.Header = event.Header{Time: at, Proc: event.Proc{PID: pid}}
		j.Process(e, emit)
	}
	check := func(pid, ppid uint32, cap int32, denied bool) *Check {
		c := &Check{Header: event.Header{Time: at.Add(time.Second), Proc: event.Proc{PID: pid, PPID: ppid}}, Cap: cap, Denied: denied}
		j.Process(c, emit)
		return out[len(out)-1].(*Check)
	}
	exec(1, 0)          // rootid not owned: not applied
	exec(2, 1<<netBind) // applied
	exec(3, 0)          // no file caps: not emitted
	if len(out) != 2 {
		t.Fatalf("%d events emitted, want the two execs with file caps", len(out))
	}
	if c := check(1, 0, netBind, true); c.Cause == nil || c.Cause.Kind != "exec" || c.Cause.Before != time.Second ||
		c.Cause.Attrs[0].Value != "/tmp/bad" || c.Cause.Attrs[2].Value != "rootid" {
		t.Errorf("denied check of the refused exec: cause %+v", c.Cause)
	}
	if c := check(9, 1, netBind, true); c.Cause == nil {
		t.Error("a child of the refused exec: no cause")
	}
	for _, c := range []*Check{check(1, 0, 21, true), check(1, 0, netBind, false), check(2, 0, netBind, true), check(3, 0, netBind, true)} {
		if c.Cause != nil {
			t.Errorf("check %+v has an invented cause %+v", c, c.Cause)
		}
	}
}
