// Package cni traces CNI plugin invocations: the plugin a runtime exec'd, with its command, pod
// and network namespace, the chain of processes it ran (IPAM and chained plugins, iptables...),
// how long it took, its exit and the result or error it printed; one still running after --slow
// is reported while it runs, with where it is blocked.
package cni

import (
	"strings"
	"time"

	"github.com/cilium/ebpf"

	gen "github.com/ghostwatch/ghostwatch/gen/cni"
	"github.com/ghostwatch/ghostwatch/tracer/attach"
	"github.com/ghostwatch/ghostwatch/tracer/encode"
	"github.com/ghostwatch/ghostwatch/tracer/event"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
	"github.com/ghostwatch/ghostwatch/tracer/kernel"
)

// Type is the gadget's name and the name of its object in JSON.
const Type = "cni"

// Hook names.
const (
	HookExec   = "exec"   // execs: a plugin starting, or a process of an invocation exec'ing
	HookTree   = "tree"   // forks and exits of an invocation's processes
	HookOutput = "output" // what they write to their stdout and stderr (fd 1 and 2, not redirected)
)

// Options.
const (
	ParamSlow     = "slow"
	ParamBinDir   = "bin-dir"
	ParamEnvMatch = "env-match"
	ParamOutput   = "plugin-output"
)

// DefaultBinDirs are where runtimes look for plugins: the CNI default, and Debian's and Fedora's
// packages.
const DefaultBinDirs = "/opt/cni/bin:/usr/lib/cni:/usr/libexec/cni"

// Gadget describes the cni gadget.
var Gadget = gadget.Descriptor{
	Name:    Type,
	Summary: "CNI plugin invocations: command, pod, network namespace, the plugins and programs each ran, duration, exit and result or error; those still running after --slow with where they are blocked",
	Load:    gen.LoadCni,
	// fill_header and the actor filter read the current task (compat.h).
	Features: []kernel.Feature{kernel.TaskBTF},
	Hooks: []attach.Hook{
		{Name: HookExec, Candidates: [][]string{{gen.CniProgExecBtf}}},
		{Name: HookTree, Candidates: [][]string{{gen.CniProgForkBtf, gen.CniProgExitBtf}}},
		// The syscall tracepoint costs every syscall of the node (~50 ns here) once attached.
		{Name: HookOutput, Candidates: [][]string{{gen.CniProgOutputEnter}}},
	},
	HookParams: map[string]string{HookOutput: ParamOutput},
	Kinds: []gadget.Kind{
		gadget.NewKind[gen.CniExecEvent, ExecRecord]("exec", uint32(gen.CniCniKindCNI_EXEC)).Fold(),
		gadget.NewKind[gen.CniOutputEvent, OutputRecord]("output", uint32(gen.CniCniKindCNI_OUTPUT)).Fold(),
		gadget.NewKind[gen.CniExitEvent, ExitRecord]("exit", uint32(gen.CniCniKindCNI_EXIT)).Fold(),
	},
	Derived: []gadget.Kind{
		{Name: KindStart, Fields: startFields},
		{Name: KindDone, Fields: append(append([]gadget.Field{}, startFields...), doneFields...)},
		{Name: KindSlow, Fields: append(append([]gadget.Field{}, startFields...), slowFields...)},
	},
	Columns: []encode.Column{{Name: "KIND", Width: 5}, {Name: "WHAT"}},
	Params: []gadget.Param{
		{Name: ParamSlow, Default: 10 * time.Second, Usage: "report an invocation still running after this long, and again every as long, with where it is blocked"},
		{Name: ParamBinDir, Default: DefaultBinDirs, Usage: "the CNI bin dirs, separated by ':' (a binary exec'd from one is a plugin; an invocation's CNI_PATH adds its dirs)"},
		{Name: ParamEnvMatch, Default: false, Usage: "also take any file exec'd with CNI_COMMAND in its environment for a plugin (scripts always are): reads the environment of every exec, in the kernel"},
		{Name: ParamOutput, Default: true, Usage: "copy what plugins write to stdout and stderr (the result or error); uses the write syscall's tracepoint, which slows every syscall of the node a little: --plugin-output=false avoids that"},
	},
	Configure: func(spec *ebpf.CollectionSpec, p gadget.Params) error {
		if err := spec.Variables[gen.CniVarEnvMatch].Set(p.Bool(ParamEnvMatch)); err != nil {
			return err
		}
		dirs := BinDirs(strings.Split(p.String(ParamBinDir), ":"))
		m := spec.Maps[gen.CniMapBinDirs]
		for _, k := range dirs {
			m.Contents = append(m.Contents, ebpf.MapKV{Key: k, Value: uint8(1)})
		}
		return nil
	},
	NewProcessor: func(g *gadget.Gadget, p gadget.Params) (gadget.Processor, error) { return newTracker(g, p), nil },
	// Debian's loopback plugin, exec'd from its bin dir without a CNI environment: it fails, and
	// is reported.
	Selftest: gadget.Selftest{Command: []string{"/usr/lib/cni/loopback"}},
}

// Derived kinds.
const (
	KindStart = "start" // the runtime exec'd a plugin
	KindDone  = "done"  // it exited
	KindSlow  = "slow"  // it is still running after --slow
)

var startFields = []gadget.Field{
	{Name: "command", Meaning: "`ADD`, `DEL`, `CHECK`, `VERSION`... (`CNI_COMMAND`)"},
	{Name: "plugin", Meaning: "the plugin the runtime exec'd (its file's name) and `file`, the path"},
	{Name: "found_by", Meaning: "`bin_dir` (its directory is a CNI bin dir), `env` (`CNI_COMMAND` in its environment) or `running` (running when tracing began, found in /proc)"},
	{Name: "container_id", Meaning: "`CNI_CONTAINERID`: the pod sandbox's id under containerd and CRI-O"},
	{Name: "netns", Meaning: "`CNI_NETNS`, and `netns_inode`, its inode when it could be read"},
	{Name: "ifname", Meaning: "`CNI_IFNAME`"},
	{Name: "pod", Meaning: "`K8S_POD_NAME` from `CNI_ARGS`, with `k8s_namespace` (`K8S_POD_NAMESPACE`) and `pod_uid` (`K8S_POD_UID`)"},
	{Name: "cni_args", Meaning: "`CNI_ARGS` as given, and `cni_path`, `CNI_PATH`"},
	{Name: "start", Meaning: "when the plugin was exec'd"},
	{Name: "attempt", Meaning: "ADD: how many ADDs for this pod, each with a new network namespace, were seen in the last 10 minutes (absent: the first); from 2 on, `retry_loop` is true"},
	{Name: "cause", Meaning: "a retried ADD: the previous ADD for the pod (`time`, `kind` `add`, `before_ns`, `pid`, `comm`, and `container_id`, `netns`, `outcome`: `running`, `ok` or its error)"},
}

var doneFields = []gadget.Field{
	{Name: "duration_ns", Meaning: "how long the plugin ran, from its exec to its exit"},
	{Name: "exit_code", Meaning: "its exit status; or `signal`, the signal that killed it (`SIGKILL`)"},
	{Name: "result", Meaning: "the JSON result it printed, as printed (compacted)"},
	{Name: "error", Meaning: "the CNI error it printed: `code`, `msg`, `details`"},
	{Name: "stdout", Meaning: "what it printed when that is not JSON, and `stderr`, what it wrote there (each up to 16 KiB; `output_dropped`: bytes not copied)"},
	{Name: "chain", Meaning: "every process it ran, in order: `pid`, `ppid`, `file`, `args`, `plugin` (true for a file of a CNI bin dir), `start`, `duration_ns`, `exit_code` or `signal`, `running`, and `error` (a CNI error it printed)"},
}

var slowFields = []gadget.Field{
	{Name: "running_ns", Meaning: "how long it has been running"},
	{Name: "chain", Meaning: "as for `done`, with the processes still running"},
	{Name: "blocked", Meaning: "for each process of the invocation still running: `pid`, `comm`, and where its most telling thread waits: `tid`, `syscall` (from /proc/PID/task/TID/syscall), `wchan`, `stack` (the kernel stack, when /proc/PID/task/TID/stack is readable)"},
	{Name: "at_stop", Meaning: "true when written because tracing stopped with the invocation still running"},
}

// ExecRecord is an exec in an invocation's process tree, as the kernel recorded it; the tracker folds
// it into the invocation.
type ExecRecord struct {
	gadget.Folded
	rec      *gen.CniExecEvent // the ring buffer's record while it is processed; Clone copies it
	resolver event.Resolver    // told the pod of an ADD's namespace, if it keeps them (event.Networks)
}

// Decode keeps the record.
func (e *ExecRecord) Decode(rec *gen.CniExecEvent, h *event.Header, r event.Resolver) {
	e.Header, e.rec, e.resolver = *h, rec, r
}

// Clone returns a copy that owns its record.
func (e *ExecRecord) Clone() gadget.Event { c := *e; r := *e.rec; c.rec = &r; return &c }

// OutputRecord is what a process of an invocation wrote to its stdout or stderr (Fd 1 or 2).
type OutputRecord struct {
	gadget.Folded
	rec *gen.CniOutputEvent
}

// Decode keeps the record.
func (o *OutputRecord) Decode(rec *gen.CniOutputEvent, h *event.Header, _ event.Resolver) {
	o.Header, o.rec = *h, rec
}

// Clone returns a copy that owns its record.
func (o *OutputRecord) Clone() gadget.Event { c := *o; r := *o.rec; c.rec = &r; return &c }

// ExitRecord is the exit of a process of an invocation.
type ExitRecord struct {
	gadget.Folded
	Root    uint32
	Code    int32
	Dropped uint32
}

// Decode fills the event from a kernel record.
func (x *ExitRecord) Decode(rec *gen.CniExitEvent, h *event.Header, _ event.Resolver) {
	*x = ExitRecord{Folded: gadget.Folded{Header: *h}, Root: rec.Root, Code: rec.Code, Dropped: rec.Dropped}
}

// Clone returns a copy.
func (x *ExitRecord) Clone() gadget.Event { c := *x; return &c }
