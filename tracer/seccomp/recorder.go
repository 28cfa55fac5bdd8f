// Package seccomp records the syscalls of containers in the kernel (a bitmap per mount namespace,
// nothing sent per syscall) and writes them as OCI seccomp profiles.
package seccomp

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/cilium/ebpf"

	gen "github.com/ghostwatch/ghostwatch/gen/seccomp"
	"github.com/ghostwatch/ghostwatch/tracer/attach"
	"github.com/ghostwatch/ghostwatch/tracer/container"
	"github.com/ghostwatch/ghostwatch/tracer/encode"
	"github.com/ghostwatch/ghostwatch/tracer/event"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
	"github.com/ghostwatch/ghostwatch/tracer/kernel"
)

// Hook names.
const (
	HookSyscalls = "sys_enter"
	HookTrees    = "process-tree"
	HookRunning  = "running-namespaces"
)

// paramNew is the option behind Options.New.
const paramNew = "new"

// Gadget describes the recorder. It is not streamed: seccomp record and the OCI hook drive it.
var Gadget = gadget.Descriptor{
	Name:     "seccomp",
	Summary:  "per-container syscall recording into OCI seccomp profiles",
	Mode:     gadget.Recorder,
	Load:     gen.LoadSeccomp,
	Features: []kernel.Feature{kernel.TaskBTF, kernel.FetchAtomics},
	Needs: map[string]kernel.Feature{gen.SeccompProgSysEnter: kernel.FetchAtomics,
		gen.SeccompProgTreeFork: kernel.FetchAtomics, gen.SeccompProgTreeExit: kernel.FetchAtomics},
	Hooks: []attach.Hook{
		{Name: HookSyscalls, Candidates: [][]string{{gen.SeccompProgSysEnter}, {gen.SeccompProgSysEnterNofetch}}},
		{Name: HookTrees, Candidates: [][]string{{gen.SeccompProgTreeFork, gen.SeccompProgTreeExit},
			{gen.SeccompProgTreeForkNofetch, gen.SeccompProgTreeExitNofetch}}},
		{Name: HookRunning, Candidates: [][]string{{gen.SeccompProgIgnoreRunning}}},
	},
	Kinds: []gadget.Kind{gadget.NewKind[gen.SeccompEvent, Armed]("armed", uint32(gen.SeccompSeccompKindSECCOMP_ARMED),
		gadget.Field{Name: "mntns", Meaning: "the mount namespace whose recording began"},
		gadget.Field{Name: "reason", Meaning: "`seccomp` (it installed its first seccomp filter) or `exec` (it exec'd with no filter installed)"},
	)},
	Params: []gadget.Param{{Name: paramNew, Default: false,
		Usage: "record every mount namespace not ignored from its first seccomp filter or, failing one, its first exec"}},
	Configure: func(spec *ebpf.CollectionSpec, p gadget.Params) error {
		// With new, arming is needed from the start (see Recorder.setActive).
		return errors.Join(spec.Variables[gen.SeccompVarArmNew].Set(p.Bool(paramNew)),
			spec.Variables[gen.SeccompVarArming].Set(boolU32(p.Bool(paramNew))))
	},
	// A mount namespace made after load records by itself at its first exec.
	Selftest: gadget.Selftest{Params: gadget.Params{paramNew: true}, Command: []string{"unshare", "--mount", "true"}},
}

func boolU32(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

// Reason says how a recording began by itself (--new).
type Reason = gen.SeccompArmReason

// The reasons.
const (
	ArmSeccomp = gen.SeccompArmReasonARM_SECCOMP // it installed its first seccomp filter
	ArmExec    = gen.SeccompArmReasonARM_EXEC    // it exec'd before any filter was installed
)

// Options configure a Recorder.
type Options struct {
	// New makes the kernel start recording every mount namespace made from now on, from its first
	// seccomp filter or, failing one, its first exec: containers are recorded from their start.
	New bool
}

// Recorder is a loaded recorder. A recording's key is a mount namespace inode (a container) or
// the pid of a process tree's root.
type Recorder struct {
	*gadget.Gadget
	table     *table
	ignored   *ebpf.Map
	expected  *ebpf.Map
	arming    *ebpf.Variable
	opts      Options
	mu        sync.Mutex
	started   int             // recordings started from user space and not stopped
	expecting int             // namespaces expected and not stopped
	origin    map[uint32]*int // key to the counter it holds up
	trees     map[uint32]bool // keys that are process trees
	syscalls  bool            // whether sys_enter is attached
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

// New loads the recorder. With o.New, the mount namespaces processes are in now are never
// recorded by themselves.
func New(o Options) (*Recorder, error) {
	g, err := gadget.Open(&Gadget, gadget.Options{Params: gadget.Params{paramNew: o.New}})
	if err != nil {
		return nil, err
	}
	spec, err := Gadget.Load() // the offsets of the variables user space shares with the kernel
	if err != nil {
		g.Close()
		return nil, err
	}
	set := g.Set()
	claim := slices.Contains(set.Chosen(HookTrees), gen.SeccompProgTreeExit)
	t, err := mapTable(set.Map(".bss"), set.Map(gen.SeccompMapSpill), set.Map(gen.SeccompMapMembers), spec, claim)
	if err != nil {
		g.Close()
		return nil, err
	}
	r := &Recorder{Gadget: g, table: t, ignored: set.Map(gen.SeccompMapIgnored),
		expected: set.Map(gen.SeccompMapExpected), arming: set.Variable(gen.SeccompVarArming), opts: o,
		origin: map[uint32]*int{}, trees: map[uint32]bool{}, syscalls: true}
	if o.New {
		if err := r.ignoreRunning(); err != nil {
			r.Close()
			return nil, err
		}
	}
	if err := r.setActive(); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// Close unloads the recorder.
func (r *Recorder) Close() error {
	return errors.Join(r.table.close(), r.Gadget.Close())
}

// setActive tells the kernel whether it may begin recordings, and attaches sys_enter only while
// something is or may be recorded: otherwise no program runs on any syscall.
func (r *Recorder) setActive() error {
	arming := r.opts.New || r.expecting > 0
	if err := r.arming.Set(boolU32(arming)); err != nil {
		return err
	}
	want := arming || r.started > 0
	if want == r.syscalls {
		return nil
	}
	r.syscalls = want
	if want {
		return r.Set().Attach(HookSyscalls)
	}
	return r.Set().Detach(HookSyscalls)
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

// ignoreRunning has the kernel ignore the mount namespaces tasks are in now (ignore_running).
func (r *Recorder) ignoreRunning() error {
	if _, err := gadget.ReadIter[struct{}](r.Set(), gen.SeccompProgIgnoreRunning); err != nil {
		return fmt.Errorf("ignoring running mount namespaces: %w", err)
	}
	return nil
}

// Start records a mount namespace from now on.
func (r *Recorder) Start(mntns uint32) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, err := r.start(mntns)
	return err
}

// start begins recording key; begun is false if it was started or expected already (one Stop
// ends it).
func (r *Recorder) start(key uint32) (begun bool, err error) {
	if _, ok := r.origin[key]; ok {
		return false, nil
	}
	r.started++
	if err := r.setActive(); err != nil {
		r.started--
		return false, err
	}
	if err := r.table.begin(key); err != nil {
		r.started--
		return false, errors.Join(err, r.setActive())
	}
	r.origin[key] = &r.started
	return true, nil
}

// StartTree records a process and its descendants, those running and those it starts, from now
// on; its key is pid. On error nothing of it is recorded.
func (r *Recorder) StartTree(pid uint32) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.trees[pid] {
		return nil // one Stop ends it
	}
	begun, err := r.start(pid)
	if err != nil {
		return err
	}
	if err := r.addTree(pid); err != nil {
		if begun {
			_, stopErr := r.stop(pid)
			err = errors.Join(err, stopErr)
		}
		return err
	}
	return nil
}

// addTree makes pid's processes members of its tree. The tree is marked, and counted in the
// kernel, once its root is a member: Stop uncounts exactly the trees counted, or the kernel's
// count would wrap and every syscall of the node look its process up.
func (r *Recorder) addTree(pid uint32) error {
	if err := r.table.addMember(pid, pid); err != nil {
		return err
	}
	r.trees[pid] = true
	// From here on the kernel adds the tree's new processes; those it had are found in /proc.
	atomic.AddUint32(r.table.trees, 1)
	for _, child := range container.Descendants(pid) {
		if err := r.table.addMember(child, pid); err != nil {
			return err
		}
	}
	return nil
}

// Syscalls are the syscall numbers recorded, per table.
type Syscalls struct {
	Native, Compat, X32 []uint32
	// OutOfRange counts calls whose number is past what the kernel side records (none today).
	OutOfRange uint64
}

// Read returns what a recording did so far; ok is false if it is not recorded.
func (r *Recorder) Read(key uint32) (s Syscalls, ok bool, err error) {
	rec, ok, err := r.table.read(key)
	return syscallsOf(rec), ok, err
}

// NotRecorded counts the recordings and tree members the kernel could not add because its
// tables were full.
func (r *Recorder) NotRecorded() uint32 { return atomic.LoadUint32(r.table.notRecorded) }

func syscallsOf(rec gen.SeccompRecording) Syscalls {
	w := &rec.Words
	return Syscalls{
		Native:     bits(w[gen.SeccompSyscallTableTABLE_NATIVE][:]),
		Compat:     bits(w[gen.SeccompSyscallTableTABLE_COMPAT][:]),
		X32:        bits(w[gen.SeccompSyscallTableTABLE_X32][:]),
		OutOfRange: rec.OutOfRange,
	}
}

// Stop ends a recording and returns what it recorded (nothing if it never began). A mount
// namespace the kernel began recording is then ignored, so that it is not recorded again.
func (r *Recorder) Stop(key uint32) (Syscalls, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stop(key)
}

func (r *Recorder) stop(key uint32) (Syscalls, error) {
	tree := r.trees[key]
	if tree {
		// Uncounted first: while the kernel's count of trees is that of all recordings, it reads
		// no mount namespace, so it must never count more trees than there are.
		atomic.AddUint32(r.table.trees, ^uint32(0))
	}
	rec, _, err := r.table.end(key)
	if err != nil {
		if tree {
			atomic.AddUint32(r.table.trees, 1)
		}
		return Syscalls{}, err
	}
	// Ended in the kernel: what counts it is undone whatever fails on the way.
	var errs []error
	if rec.MntnsId != 0 { // begun by the kernel, which would begin it again
		if err := r.ignored.Put(rec.MntnsId, uint8(1)); err != nil {
			errs = append(errs, fmt.Errorf("ignoring mount namespace %d: %w", key, err))
		}
	}
	if tree {
		delete(r.trees, key)
		r.table.dropTree(key)
	}
	if n, ok := r.origin[key]; ok {
		delete(r.origin, key)
		*n--
		r.expected.Delete(key)
		errs = append(errs, r.setActive())
	}
	return syscallsOf(rec), errors.Join(errs...)
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

// Live counts the recordings under way, those the kernel began included.
func (r *Recorder) Live() uint32 { return atomic.LoadUint32(r.table.live) }
