// Package seccomp records the syscalls of containers in the kernel (a bitmap per mount namespace,
// nothing sent per syscall) and writes them as OCI seccomp profiles.
package seccomp

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/cilium/ebpf"

	gen "github.com/ghostwatch/ghostwatch/gen/seccomp"
	"github.com/ghostwatch/ghostwatch/tracer/attach"
	"github.com/ghostwatch/ghostwatch/tracer/container"
	"github.com/ghostwatch/ghostwatch/tracer/encode"
	"github.com/ghostwatch/ghostwatch/tracer/event"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
)

// Hook names.
const (
	HookSyscalls = "sys_enter"
	HookArm      = "filter-install"
)

// paramNew is the option behind Options.New.
const paramNew = "new"

// Gadget describes the recorder. It is not streamed: seccomp record and the OCI hook drive it.
var Gadget = gadget.Descriptor{
	Name:    "seccomp",
	Summary: "per-container syscall recording into OCI seccomp profiles",
	Mode:    gadget.Recorder,
	Load:    gen.LoadSeccomp,
	Hooks: []attach.Hook{
		{Name: HookSyscalls, Candidates: [][]string{{gen.SeccompProgSysEnter}}},
		{Name: HookArm, Candidates: [][]string{{gen.SeccompProgSeccompExit, gen.SeccompProgPrctlExit}}},
	},
	Kinds: []gadget.Kind{gadget.NewKind[gen.SeccompEvent, Armed]("armed", uint32(gen.SeccompSeccompKindSECCOMP_ARMED),
		gadget.Field{Name: "mntns", Meaning: "the mount namespace whose recording began"},
		gadget.Field{Name: "reason", Meaning: "`seccomp` (its first seccomp filter was installed) or `exec` (it exec'd with no filter installed)"},
	)},
	Params: []gadget.Param{{Name: paramNew, Default: false,
		Usage: "record every mount namespace not ignored from its first seccomp filter or, failing one, its first exec"}},
	Configure: func(spec *ebpf.CollectionSpec, p gadget.Params) error {
		// With new, arming is needed from the start (see Recorder.setActive).
		on := uint32(0)
		if p.Bool(paramNew) {
			on = 1
		}
		return errors.Join(spec.Variables[gen.SeccompVarArmNew].Set(p.Bool(paramNew)),
			spec.Variables[gen.SeccompVarArming].Set(on), spec.Variables[gen.SeccompVarActive].Set(on))
	},
	// A mount namespace made after load records by itself at its first exec.
	Selftest: gadget.Selftest{Params: gadget.Params{paramNew: true}, Command: []string{"unshare", "--mount", "true"}},
}

// Reason says how a recording began by itself (--new).
type Reason = gen.SeccompArmReason

// The reasons.
const (
	ArmSeccomp = gen.SeccompArmReasonARM_SECCOMP // its first seccomp filter was installed
	ArmExec    = gen.SeccompArmReasonARM_EXEC    // it exec'd before any filter was installed
)

// Options configure a Recorder.
type Options struct {
	// New makes the kernel start recording every mount namespace not ignored, from its first
	// seccomp filter or, failing one, its first exec: containers are recorded from their start.
	New bool
}

// Recorder is a loaded recorder.
type Recorder struct {
	*gadget.Gadget
	recordings *ebpf.Map
	ignored    *ebpf.Map
	expected   *ebpf.Map
	active     *ebpf.Variable
	arming     *ebpf.Variable
	opts       Options
	mu         sync.Mutex
	started    int             // recordings started from user space and not stopped
	expecting  int             // namespaces expected and not stopped
	origin     map[uint32]*int // mntns to the counter it holds up
}

// Armed is a recording the kernel started by itself.
type Armed struct {
	event.Header
	MntNS  uint32
	Reason Reason
}

// Decode fills the event from a kernel record.
func (a *Armed) Decode(rec *gen.SeccompEvent, h *event.Header, _ event.Resolver) {
	*a = Armed{Header: *h, MntNS: rec.Mntns, Reason: rec.Reason}
}

// Head returns the common part.
func (a *Armed) Head() *event.Header { return &a.Header }

// Clone returns a copy.
func (a *Armed) Clone() gadget.Event { c := *a; return &c }

func (a *Armed) reason() string {
	if a.Reason == ArmSeccomp {
		return "seccomp"
	}
	return "exec"
}

// AppendJSON appends the seccomp object.
func (a *Armed) AppendJSON(j *encode.JSON) {
	j.Object()
	j.Uint("mntns", uint64(a.MntNS))
	j.String("reason", a.reason())
	j.End()
}

// AppendRow appends the mount namespace and the reason.
func (a *Armed) AppendRow(r *encode.Row) {
	r.Begin()
	r.Uint(uint64(a.MntNS))
	r.Cell(a.reason())
}

// New loads the recorder. The host's mount namespace is never recorded by itself.
func New(o Options) (*Recorder, error) {
	g, err := gadget.Open(&Gadget, gadget.Options{Params: gadget.Params{paramNew: o.New}})
	if err != nil {
		return nil, err
	}
	set := g.Set()
	r := &Recorder{Gadget: g, recordings: set.Map(gen.SeccompMapRecordings), ignored: set.Map(gen.SeccompMapIgnored),
		expected: set.Map(gen.SeccompMapExpected), active: set.Variable(gen.SeccompVarActive),
		arming: set.Variable(gen.SeccompVarArming), opts: o, origin: map[uint32]*int{}}
	if host := container.ProcNS(1)["mnt"]; host != 0 {
		if err := r.Ignore(host); err != nil {
			g.Close()
			return nil, err
		}
	}
	if err := r.setActive(); err != nil {
		g.Close()
		return nil, err
	}
	return r, nil
}

// setActive tells the kernel whether anything is recorded or expected, so that otherwise syscalls
// leave at once, and whether the arming path is needed.
func (r *Recorder) setActive() error {
	var arming, active uint32
	if r.opts.New || r.expecting > 0 {
		arming = 1
	}
	if arming == 1 || r.started > 0 {
		active = 1
	}
	if err := r.arming.Set(arming); err != nil {
		return err
	}
	return r.active.Set(active)
}

// Expect records a mount namespace from its first seccomp filter install or, failing one, its
// first exec: the moment from which a profile applied by the runtime would be enforced.
func (r *Recorder) Expect(mntns uint32) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.expected.Put(mntns, uint8(1)); err != nil {
		return fmt.Errorf("expecting mount namespace %d: %w", mntns, err)
	}
	r.expecting++
	r.origin[mntns] = &r.expecting
	return r.setActive()
}

// Ignore keeps a mount namespace from being recorded by itself (with New).
func (r *Recorder) Ignore(mntns uint32) error {
	if err := r.ignored.Put(mntns, uint8(1)); err != nil {
		return fmt.Errorf("ignoring mount namespace %d: %w", mntns, err)
	}
	return nil
}

// Start records a mount namespace from now on.
func (r *Recorder) Start(mntns uint32) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var empty gen.SeccompRecording
	if err := r.recordings.Update(mntns, &empty, ebpf.UpdateNoExist); err != nil && !errors.Is(err, ebpf.ErrKeyExist) {
		return fmt.Errorf("recording mount namespace %d: %w", mntns, err)
	}
	r.started++
	r.origin[mntns] = &r.started
	return r.setActive()
}

// Syscalls are the syscall numbers recorded, per table.
type Syscalls struct {
	Native, Compat, X32 []uint32
	// OutOfRange counts calls whose number is past what the kernel side records (none today).
	OutOfRange uint64
}

// Read returns what a mount namespace did so far; ok is false if it is not recorded.
func (r *Recorder) Read(mntns uint32) (s Syscalls, ok bool, err error) {
	var rec gen.SeccompRecording
	if err := r.recordings.Lookup(mntns, &rec); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return s, false, nil
		}
		return s, false, fmt.Errorf("reading the recording of mount namespace %d: %w", mntns, err)
	}
	w := &rec.Words
	return Syscalls{
		Native:     bits(w[gen.SeccompSyscallTableTABLE_NATIVE][:]),
		Compat:     bits(w[gen.SeccompSyscallTableTABLE_COMPAT][:]),
		X32:        bits(w[gen.SeccompSyscallTableTABLE_X32][:]),
		OutOfRange: rec.OutOfRange,
	}, true, nil
}

// Stop ends a recording and returns what it recorded (nothing if it never began). The namespace
// is then ignored, so it is not recorded again.
func (r *Recorder) Stop(mntns uint32) (Syscalls, error) {
	s, _, err := r.Read(mntns)
	if err != nil {
		return s, err
	}
	if err := r.Ignore(mntns); err != nil {
		return s, err
	}
	if err := r.recordings.Delete(mntns); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return s, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if n, ok := r.origin[mntns]; ok {
		delete(r.origin, mntns)
		*n--
		r.expected.Delete(mntns)
		return s, r.setActive()
	}
	return s, nil
}

func bits(words []uint64) []uint32 {
	var out []uint32
	for i, w := range words {
		for b := 0; b < 64; b++ {
			if w&(1<<b) != 0 {
				out = append(out, uint32(i*64+b))
			}
		}
	}
	return out
}

// Run reports the recordings the kernel starts by itself (with New) until ctx is done.
func (r *Recorder) Run(ctx context.Context, armed func(Armed), onLost func(uint64)) error {
	return r.Gadget.Run(ctx, nil, func(ev gadget.Event) { armed(*ev.(*Armed)) }, nil, onLost)
}
