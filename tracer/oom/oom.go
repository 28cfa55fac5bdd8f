// Package oom traces OOM kills: the victim and its container, the memory cgroup whose limit was
// hit (or the machine's memory) with its usage and limit, the victim's memory, and the task whose
// allocation triggered the kill.
package oom

import (
	"os"
	"strconv"
	"unsafe"

	gen "github.com/ghostwatch/ghostwatch/gen/oom"
	"github.com/ghostwatch/ghostwatch/tracer/attach"
	"github.com/ghostwatch/ghostwatch/tracer/encode"
	"github.com/ghostwatch/ghostwatch/tracer/event"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
	"github.com/ghostwatch/ghostwatch/tracer/kernel"
)

// Type is the gadget's name and the name of its object in JSON.
const Type = "oom"

// HookKill is the gadget's one hook: the kernel's choice of a victim.
const HookKill = "kill"

// Gadget describes the oom gadget.
var Gadget = gadget.Descriptor{
	Name:    Type,
	Summary: "OOM kills: the victim and its container, the memory cgroup whose limit was hit with its usage and limit, the victim's memory, the task that triggered it",
	Load:    gen.LoadOom,
	// fill_header (the trigger) reads the current task (compat.h).
	Features: []kernel.Feature{kernel.TaskBTF},
	Hooks: []attach.Hook{
		// oom_kill_process has the kernel's oom_control (constraint, memcg, badness); the
		// tracepoint has the victim only, and the constraint is inferred from its memcgs.
		{Name: HookKill, Candidates: [][]string{{gen.OomProgKillFentry}, {gen.OomProgKillKprobe}, {gen.OomProgKillMarkVictim}}},
	},
	Kinds: []gadget.Kind{gadget.NewKind[gen.OomOomEvent, Event]("kill", uint32(gen.OomOomKindOOM_KILLED),
		gadget.Field{Name: "constraint", Meaning: "what ran out: `memcg` (a memory cgroup's limit), `global` (the machine's memory), `cpuset` or `mempolicy` (the memory of some nodes)"},
		gadget.Field{Name: "constraint_from", Meaning: "how the constraint was known: `oom_control` (the kernel's own, at oom_kill_process), `memcg_oom_lock` (the highest memory cgroup above the victim that the memcg OOM killer locked: cgroup v1, and v2 before 6.11), `memcg_at_limit` (the nearest one whose usage was at its limit), `none_at_limit` (no memory cgroup above the victim was locked or at its limit: the machine's memory)"},
		gadget.Field{Name: "memcg", Meaning: "the memory cgroup whose limit was hit (for another constraint, the victim's): `id`, `path` (in its hierarchy: v1 memory or v2), `container` that owns it, `usage_bytes`, `limit_bytes` (absent: no limit), `memsw_usage_bytes` and `memsw_limit_bytes` (v1 memory+swap, v2 swap; limit absent: none), `at_limit` (usage within 64 pages of the limit)"},
		gadget.Field{Name: "victim", Meaning: "the victim's memory when it was chosen (the event's `proc` and `container` are the victim): `rss_bytes` (anon + file + shmem), `anon_rss_bytes`, `file_rss_bytes`, `shmem_rss_bytes`, `swap_bytes`, `total_vm_bytes`, `pgtables_bytes`, `oom_score_adj`"},
		gadget.Field{Name: "trigger", Meaning: "the task whose allocation failed: `pid`, `tid`, `comm`, `container`, and `same` when it is the victim"},
		gadget.Field{Name: "order`, `gfp_mask`, `points`, `totalpages", Meaning: "from `oom_control` only: the failed allocation's order and flags, the victim's badness, and the pages the kill was constrained to"},
	)},
	Derived: []gadget.Kind{{Name: KindExit, Fields: exitFields}},
	NewProcessor: func(g *gadget.Gadget, _ gadget.Params) (gadget.Processor, error) {
		return &exits{forgot: g.Forgot}, nil
	},
	Columns: []encode.Column{{Name: "CONSTRAINT", Width: 10}, {Name: "WHAT"}},
	// A memory cgroup of its own with an 8 MiB limit, in which the shell doubles a string until
	// it is killed; a child of it, outside, removes the cgroup once it has died. v1 memory where
	// it is mounted (this machine), else v2 (vmtest's guests).
	Selftest: gadget.Selftest{Command: []string{"sh", "-c", selftest}},
}

const selftest = `if [ -d /sys/fs/cgroup/memory ]; then
	d=/sys/fs/cgroup/memory/gw-selftest-oom-$$ && mkdir $d && echo 8M > $d/memory.limit_in_bytes || exit 1
else
	u=/sys/fs/cgroup/unified && echo +memory > $u/cgroup.subtree_control && d=$u/gw-selftest-oom-$$ && mkdir $d && echo 8M > $d/memory.max && echo 0 > $d/memory.swap.max || exit 1
fi
p=$$; (while kill -0 $p 2>/dev/null; do sleep 0.02; done; rmdir $d) &
echo $$ > $d/cgroup.procs && a=x && while :; do a=$a$a; done`

// pageSize converts the kernel's page counts to bytes.
var pageSize = uint64(os.Getpagesize())

// noLimit is the kernel's PAGE_COUNTER_MAX (LONG_MAX / PAGE_SIZE): a memcg without a limit.
var noLimit = uint64(1<<63-1) / pageSize

// Event is one OOM kill; its header's actor is the victim.
type Event struct {
	event.Header
	OOM     Details
	strings event.Strings // interns the trigger's comm
}

// Details is the gadget's own object.
type Details struct {
	Constraint     string
	ConstraintFrom string
	Memcg          Memcg
	Victim         Memory
	Trigger        Task
	// From oom_control only (Seen "oom_control"): the failed allocation and the victim's badness.
	Order      int32
	GFPMask    uint32
	Points     int64
	TotalPages uint64
}

// Memcg is the memory cgroup of a kill.
type Memcg struct {
	ID         uint64
	Path       string
	Container  *event.Container
	Usage      uint64 // bytes
	Limit      uint64 // bytes; 0: none
	MemswUsage uint64
	MemswLimit uint64 // 0: none
	AtLimit    bool
}

// Memory is the victim's memory, in bytes.
type Memory struct {
	AnonRSS, FileRSS, ShmemRSS, Swap, TotalVM, PageTables uint64
	OOMScoreAdj                                           int16
}

// RSS is what the kernel counts as the victim's resident memory.
func (m Memory) RSS() uint64 { return m.AnonRSS + m.FileRSS + m.ShmemRSS }

// Task is the task that triggered the kill.
type Task struct {
	PID, TID  uint32
	Comm      string
	Container *event.Container
	Same      bool // it is the victim
}

var constraints = map[gen.OomOomConstraintKind]string{
	gen.OomOomConstraintKindCONSTRAINT_KIND_GLOBAL:    "global",
	gen.OomOomConstraintKindCONSTRAINT_KIND_CPUSET:    "cpuset",
	gen.OomOomConstraintKindCONSTRAINT_KIND_MEMPOLICY: "mempolicy",
	gen.OomOomConstraintKindCONSTRAINT_KIND_MEMCG:     "memcg",
}

var seen = map[gen.OomOomSeen]string{
	gen.OomOomSeenSEEN_OOM_CONTROL: "oom_control",
	gen.OomOomSeenSEEN_MEMCG_LOCK:  "memcg_oom_lock",
	gen.OomOomSeenSEEN_MEMCG_FULL:  "memcg_at_limit",
	gen.OomOomSeenSEEN_NONE:        "none_at_limit",
}

func inBytes(pages uint64) uint64 { return pages * pageSize }

func limit(pages uint64) uint64 {
	if pages >= noLimit {
		return 0
	}
	return inBytes(pages)
}

// Decode fills the event from a kernel record.
func (e *Event) Decode(rec *gen.OomOomEvent, h *event.Header, r event.Resolver) {
	e.Header = *h
	trigger := (*event.Raw)(unsafe.Pointer(&rec.Trigger))
	d := &e.OOM
	*d = Details{
		Constraint:     constraints[rec.Constraint],
		ConstraintFrom: seen[rec.Seen],
		Memcg: Memcg{ID: rec.Memcg.Id, Usage: inBytes(rec.Usage), Limit: limit(rec.Limit),
			MemswUsage: inBytes(rec.MemswUsage), MemswLimit: limit(rec.MemswLimit), AtLimit: rec.MemcgAtLimit != 0},
		Victim: Memory{AnonRSS: inBytes(rec.AnonRss), FileRSS: inBytes(rec.FileRss), ShmemRSS: inBytes(rec.ShmemRss),
			Swap: inBytes(rec.Swapents), TotalVM: inBytes(rec.TotalVm), PageTables: rec.PgtablesBytes, OOMScoreAdj: rec.OomScoreAdj},
		Trigger: Task{PID: trigger.Pid, TID: trigger.Tid, Comm: e.strings.Get(trigger.Comm[:]),
			Same: trigger.Pid == h.Proc.PID},
		Order: rec.Order, GFPMask: rec.GfpMask, Points: rec.Points, TotalPages: rec.Totalpages,
	}
	d.Memcg.Path = event.CgroupPath(rec.Memcg.Name[:], rec.Memcg.Depth, rec.Memcg.Truncated != 0)
	if r != nil {
		d.Memcg.Container = r.Cgroup(d.Memcg.Path)
		d.Trigger.Container = r.Actor(trigger)
	}
}

// Head returns the common part.
func (e *Event) Head() *event.Header { return &e.Header }

// Clone returns a copy that later decoding leaves alone.
func (e *Event) Clone() gadget.Event {
	return &Event{Header: e.Header, OOM: e.OOM}
}

// AppendJSON appends the oom object.
func (e *Event) AppendJSON(j *encode.JSON) {
	d := &e.OOM
	j.Object()
	j.String("constraint", d.Constraint)
	j.String("constraint_from", d.ConstraintFrom)
	m := &d.Memcg
	j.ObjectKey("memcg")
	j.Uint("id", m.ID)
	j.String("path", m.Path)
	if m.Container != nil {
		j.Key("container")
		j.B = m.Container.AppendJSON(j.B)
	}
	j.Uint("usage_bytes", m.Usage)
	if m.Limit != 0 {
		j.Uint("limit_bytes", m.Limit)
	}
	j.Uint("memsw_usage_bytes", m.MemswUsage)
	if m.MemswLimit != 0 {
		j.Uint("memsw_limit_bytes", m.MemswLimit)
	}
	j.Bool("at_limit", m.AtLimit)
	j.End()
	v := &d.Victim
	j.ObjectKey("victim")
	j.Uint("rss_bytes", v.RSS())
	j.Uint("anon_rss_bytes", v.AnonRSS)
	j.Uint("file_rss_bytes", v.FileRSS)
	j.Uint("shmem_rss_bytes", v.ShmemRSS)
	j.Uint("swap_bytes", v.Swap)
	j.Uint("total_vm_bytes", v.TotalVM)
	j.Uint("pgtables_bytes", v.PageTables)
	j.Int("oom_score_adj", int64(v.OOMScoreAdj))
	j.End()
	t := &d.Trigger
	j.ObjectKey("trigger")
	j.Uint("pid", uint64(t.PID))
	j.Uint("tid", uint64(t.TID))
	j.String("comm", t.Comm)
	if t.Container != nil {
		j.Key("container")
		j.B = t.Container.AppendJSON(j.B)
	}
	j.Bool("same", t.Same)
	j.End()
	if d.ConstraintFrom == "oom_control" {
		j.Int("order", int64(d.Order))
		j.Uint("gfp_mask", uint64(d.GFPMask))
		j.Int("points", d.Points)
		j.Uint("totalpages", d.TotalPages)
	}
	j.End()
}

// AppendRow appends CONSTRAINT and a sentence: "killed (rss 31.6MiB) at memcg /k8s.io/ID
// (db-0/db) limit 32.0MiB, usage 32.0MiB; triggered by itself".
func (e *Event) AppendRow(r *encode.Row) {
	d := &e.OOM
	r.Cell(d.Constraint)
	r.Begin()
	r.Str("killed (rss ")
	appendSize(r, d.Victim.RSS())
	r.Str(") ")
	m := &d.Memcg
	if d.Constraint == "memcg" {
		r.Str("at the limit of memcg ")
	} else {
		r.Str("in memcg ")
	}
	r.Str(m.Path)
	if m.Container != nil {
		r.Str(" (")
		r.Str(m.Container.Label())
		r.Str(")")
	}
	r.Str(": usage ")
	appendSize(r, m.Usage)
	r.Str(" of ")
	if m.Limit == 0 {
		r.Str("no limit")
	} else {
		appendSize(r, m.Limit)
	}
	r.Str("; triggered by ")
	if d.Trigger.Same {
		r.Str("itself")
	} else {
		r.Str(d.Trigger.Comm)
		r.Str(" (pid ")
		r.Uint(uint64(d.Trigger.PID))
		r.Str(", ")
		if d.Trigger.Container == nil {
			r.Str("host")
		} else {
			r.Str(d.Trigger.Container.Label())
		}
		r.Str(")")
	}
}

// appendSize appends bytes in MiB with one decimal.
func appendSize(r *encode.Row, b uint64) {
	r.B = strconv.AppendFloat(r.B, float64(b)/(1<<20), 'f', 1, 64)
	r.Str("MiB")
}
