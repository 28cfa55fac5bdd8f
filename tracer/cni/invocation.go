package cni

import (
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ghostwatch/ghostwatch/tracer/encode"
	"github.com/ghostwatch/ghostwatch/tracer/event"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
)

// Invocation is one CNI plugin invocation: its start, its end (done), or its state while it runs
// too long (slow). Values are never changed once emitted.
type Invocation struct {
	event.Header // the plugin's process, at its exec
	Plugin       string
	File         string
	FoundBy      string
	Call
	NetNSInode uint32
	Start      time.Time
	// Duration is, for done, how long it ran; for slow, how long it has been running.
	Duration time.Duration
	Exit
	Printed
	Stderr        string
	OutputDropped uint32
	Chain         []Step
	Blocked       []Blocked // slow: its running processes
	AtStop        bool
	// Attempt counts the pod's ADDs with a new network namespace (retries); Cause is the last.
	Attempt int
	Cause   *gadget.Cause
}

// Exit is how a process ended.
type Exit struct {
	Exited   bool
	ExitCode int
	Signal   string // the signal that killed it: "SIGKILL"
}

// exitOf decodes the kernel's exit code: the status << 8, or the signal in the low 7 bits.
func exitOf(code int32) Exit {
	if sig := code & 0x7f; sig != 0 {
		return Exit{Exited: true, Signal: unix.SignalName(unix.Signal(sig))}
	}
	return Exit{Exited: true, ExitCode: int(code>>8) & 0xff}
}

// Step is a program an invocation ran: an exec of one of its processes.
type Step struct {
	PID, PPID uint32
	File      string
	Args      []string
	Plugin    bool // its file is in a CNI bin dir
	Start     time.Time
	Duration  time.Duration // until its exit, or until the event for a running one
	Exit
	Error *Error // the CNI error it printed
}

// Head returns the common part.
func (v *Invocation) Head() *event.Header { return &v.Header }

// Clone returns a copy; values are never changed once emitted, so it shares them.
func (v *Invocation) Clone() gadget.Event { c := *v; return &c }

// AppendJSON appends the cni object.
func (v *Invocation) AppendJSON(j *encode.JSON) {
	j.Object()
	j.OmitEmpty("command", v.Command)
	j.String("plugin", v.Plugin)
	j.String("file", v.File)
	j.String("found_by", v.FoundBy)
	j.OmitEmpty("container_id", v.ContainerID)
	j.OmitEmpty("netns", v.NetNS)
	if v.NetNSInode != 0 {
		j.Uint("netns_inode", uint64(v.NetNSInode))
	}
	j.OmitEmpty("ifname", v.IfName)
	j.OmitEmpty("pod", v.Pod)
	j.OmitEmpty("k8s_namespace", v.K8sNamespace)
	j.OmitEmpty("pod_uid", v.PodUID)
	j.OmitEmpty("cni_args", v.Args)
	j.OmitEmpty("cni_path", v.Path)
	j.Time("start", v.Start)
	switch v.Kind {
	case KindDone:
		j.Int("duration_ns", int64(v.Duration))
		appendExit(j, v.Exit)
		if v.Result != nil {
			j.Key("result")
			j.B = append(j.B, v.Result...)
		}
		if v.Error != nil {
			j.ObjectKey("error")
			j.Int("code", int64(v.Error.Code))
			j.String("msg", v.Error.Msg)
			j.OmitEmpty("details", v.Error.Details)
			j.End()
		}
		j.OmitEmpty("stdout", v.Text)
		j.OmitEmpty("stderr", v.Stderr)
		if v.OutputDropped > 0 {
			j.Uint("output_dropped", uint64(v.OutputDropped))
		}
	case KindSlow:
		j.Int("running_ns", int64(v.Duration))
	}
	if v.Kind != KindStart {
		appendChain(j, v.Chain)
	}
	if len(v.Blocked) > 0 {
		j.Array("blocked", len(v.Blocked), func(i int) {
			b := &v.Blocked[i]
			j.Object()
			j.Uint("pid", uint64(b.PID))
			j.Uint("tid", uint64(b.TID))
			j.String("comm", b.Comm)
			j.String("syscall", b.Syscall)
			j.OmitEmpty("target", b.Target)
			j.OmitEmpty("wchan", b.Wchan)
			if len(b.Stack) > 0 {
				j.Strings("stack", b.Stack)
			}
			j.End()
		})
	}
	if v.AtStop {
		j.Bool("at_stop", true)
	}
	if v.Attempt > 1 {
		j.Int("attempt", int64(v.Attempt))
		j.Bool("retry_loop", true)
	}
	if v.Cause != nil {
		j.Key("cause")
		v.Cause.AppendJSON(j)
	}
	j.End()
}

func appendExit(j *encode.JSON, x Exit) {
	switch {
	case !x.Exited:
	case x.Signal != "":
		j.String("signal", x.Signal)
	default:
		j.Int("exit_code", int64(x.ExitCode))
	}
}

func appendChain(j *encode.JSON, chain []Step) {
	j.Array("chain", len(chain), func(i int) {
		s := &chain[i]
		j.Object()
		j.Uint("pid", uint64(s.PID))
		j.Uint("ppid", uint64(s.PPID))
		j.String("file", s.File)
		j.Strings("args", s.Args)
		j.Bool("plugin", s.Plugin)
		j.Time("start", s.Start)
		j.Int("duration_ns", int64(s.Duration))
		appendExit(j, s.Exit)
		if !s.Exited {
			j.Bool("running", true)
		}
		if s.Error != nil {
			j.String("error", s.Error.String())
		}
		j.End()
	})
}

// AppendRow appends the kind and a sentence:
// "ADD bridge pod default/web-0 ok in 68ms: 10.88.0.5/16 on eth0; ran host-local".
func (v *Invocation) AppendRow(r *encode.Row) {
	r.Cell(v.Kind)
	r.Begin()
	r.Str(v.What())
}

// What is the invocation in one sentence, as the table writes it.
func (v *Invocation) What() string {
	var b strings.Builder
	b.WriteString(or(v.Command, "(no CNI_COMMAND)"))
	b.WriteString(" " + v.Plugin)
	if k := v.PodKey(); k != "" {
		b.WriteString(" pod " + k)
	}
	if v.ContainerID != "" {
		b.WriteString(" ctr " + short(v.ContainerID))
	}
	switch v.Kind {
	case KindStart:
		if v.IfName != "" {
			b.WriteString(" " + v.IfName)
		}
		if v.NetNS != "" {
			b.WriteString(" in " + v.NetNS)
		}
	case KindDone:
		b.WriteString(" " + v.outcome() + " in " + round(v.Duration))
		if s := v.printedSummary(); s != "" {
			b.WriteString(": " + s)
		}
		var ran []string
		for _, s := range v.Chain {
			ran = append(ran, base(s.File))
		}
		if len(ran) > 0 {
			b.WriteString("; ran " + strings.Join(ran, ", "))
		}
	case KindSlow:
		if v.AtStop {
			b.WriteString(" still running at stop after " + round(v.Duration))
		} else {
			b.WriteString(" running " + round(v.Duration))
		}
		for i, bl := range v.Blocked {
			b.WriteString(map[bool]string{true: ": ", false: "; "}[i == 0])
			b.WriteString(bl.Comm + " (pid " + strconv.Itoa(int(bl.PID)) + ") in " + bl.Where())
		}
	}
	if v.Attempt > 1 && v.Cause != nil {
		b.WriteString(" RETRY: ADD number " + strconv.Itoa(v.Attempt) + " for this pod, the last " + v.Cause.Label())
	}
	return b.String()
}

// outcome is "ok", "failed (exit 1)" or "killed by SIGKILL".
func (v *Invocation) outcome() string {
	switch {
	case !v.Exited:
		return "exit not seen"
	case v.Signal != "":
		return "killed by " + v.Signal
	case v.ExitCode == 0 && v.Error == nil:
		return "ok"
	}
	return "failed (exit " + strconv.Itoa(v.ExitCode) + ")"
}

func (v *Invocation) printedSummary() string {
	switch {
	case v.Error != nil:
		return v.Error.String()
	case v.Result != nil:
		return summary(v.Result)
	case v.Text != "":
		return firstLine(v.Text)
	case v.Stderr != "":
		return firstLine(v.Stderr)
	}
	return ""
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i] + " ..."
	}
	return s
}

func or(s, empty string) string {
	if s == "" {
		return empty
	}
	return s
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func base(path string) string {
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		return path[i+1:]
	}
	return path
}

func round(d time.Duration) string {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(100 * time.Microsecond).String()
	}
	return d.String()
}
