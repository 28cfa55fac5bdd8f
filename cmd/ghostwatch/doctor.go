package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/ghostwatch/ghostwatch/tracer/attach"
	"github.com/ghostwatch/ghostwatch/tracer/cni"
	"github.com/ghostwatch/ghostwatch/tracer/container"
	"github.com/ghostwatch/ghostwatch/tracer/cri"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
	"github.com/ghostwatch/ghostwatch/tracer/kernel"
	"github.com/ghostwatch/ghostwatch/tracer/registry"
)

type doctorReport struct {
	Kernel       string          `json:"kernel"`
	OutOfScope   string          `json:"out_of_scope,omitempty"`
	Lacks        []lackStatus    `json:"lacks"`
	BTF          bool            `json:"btf"`
	Privileges   string          `json:"privileges"`
	FileSystems  []fsStatus      `json:"filesystems"`
	ProgramTypes []featureStatus `json:"program_types"`
	MapTypes     []featureStatus `json:"map_types"`
	Gadgets      []gadgetStatus  `json:"gadgets"`
	Runtimes     []runtimeStatus `json:"runtimes"`
	CRI          []criStatus     `json:"cri"`
	// CNIInFlight are the CNI plugins running now (from /proc): when a runtime's Status times
	// out, one of them may hold what it waits for.
	CNIInFlight []cniInFlight `json:"cni_in_flight"`
}

// criStatus is a runtime's answer to the kubelet's health call, RuntimeService/Status.
type criStatus struct {
	Socket       string          `json:"socket"`
	Runtime      string          `json:"runtime,omitempty"`
	Answered     bool            `json:"answered"`
	TimedOut     bool            `json:"timed_out"`
	Error        string          `json:"error,omitempty"`
	TookNs       int64           `json:"took_ns"`
	RuntimeReady bool            `json:"runtime_ready"`
	NetworkReady bool            `json:"network_ready"`
	NotReady     []cri.Condition `json:"not_ready,omitempty"`
}

// cniInFlight is a CNI invocation running now, found in /proc.
type cniInFlight struct {
	PID          uint32 `json:"pid"`
	Plugin       string `json:"plugin"`
	Command      string `json:"command"`
	ContainerID  string `json:"container_id,omitempty"`
	Pod          string `json:"pod,omitempty"`
	K8sNamespace string `json:"k8s_namespace,omitempty"`
	NetNS        string `json:"netns,omitempty"`
	RunningNs    int64  `json:"running_ns"`
	Blocked      string `json:"blocked,omitempty"`
}

type runtimeStatus struct {
	Name       string `json:"name"`
	Reachable  bool   `json:"reachable"`
	Detail     string `json:"detail"`
	Containers int    `json:"containers"`
}

type fsStatus struct {
	Name    string `json:"name"`
	Path    string `json:"path"`
	Mounted bool   `json:"mounted"`
	For     string `json:"for"`
}

type featureStatus struct {
	Name      string `json:"name"`
	Supported bool   `json:"supported"`
	Detail    string `json:"detail,omitempty"`
}

type gadgetStatus struct {
	Name      string          `json:"name"`
	Error     string          `json:"error,omitempty"`
	Hooks     []attach.Choice `json:"hooks,omitempty"`
	Fallbacks []lackStatus    `json:"fallbacks,omitempty"`
}

// lackStatus is a kernel feature this kernel lacks, and what is done instead.
type lackStatus struct {
	Feature  string `json:"feature"`
	What     string `json:"what"`
	Since    string `json:"since"`
	Fallback string `json:"fallback"`
}

func lackStatuses(fs []kernel.Feature) []lackStatus {
	out := []lackStatus{}
	for _, f := range fs {
		out = append(out, lackStatus{f.Name, f.What, f.Since, f.Fallback})
	}
	return out
}

func doctorCommand() *cli.Command {
	return &cli.Command{
		Name:  "doctor",
		Usage: "what this kernel offers: BTF, program and map types, mounts, and the attach point each hook would use; whether the container runtime answers the kubelet's Status call, and the CNI plugins in flight when it does not",
		Flags: append([]cli.Flag{outputFlag}, containerFlags(false)...),
		Action: func(c *cli.Context) error {
			format, co, err := listFlags(c)
			if err != nil {
				return err
			}
			// The runtime's health is asked while the gadgets load: a wedged runtime costs
			// its deadline once, not on top of the rest.
			health := make(chan []cri.Health, 1)
			go func() { health <- criHealth(c.Context, co.socket) }()
			sources := make(chan []runtimeStatus, 1)
			go func() { sources <- runtimes(c.Context, co) }()
			r := doctor()
			r.Runtimes = <-sources
			r.addCRI(<-health)
			if format == "json" {
				return newPrinter(format, c.App.Writer).print(r, nil)
			}
			w := bufio.NewWriter(c.App.Writer)
			printDoctor(w, r)
			if err := w.Flush(); err != nil { // the first write's error, kept by w
				return fmt.Errorf("writing output: %w", err)
			}
			return nil
		},
	}
}

func doctor() doctorReport {
	r := doctorReport{Kernel: kernel.Release(), OutOfScope: kernel.OutOfScope(), BTF: kernel.HasBTF(), Privileges: "ok"}
	if err := kernel.CheckPrivileges(); err != nil {
		r.Privileges = err.Error()
	}
	if lacking, err := kernel.Lacking(); err == nil {
		r.Lacks = lackStatuses(lacking)
	} else if r.Privileges == "ok" {
		r.Lacks = []lackStatus{{Feature: "?", Fallback: err.Error()}}
	}
	for _, fs := range kernel.FileSystems {
		r.FileSystems = append(r.FileSystems, fsStatus{fs.Name, fs.Path, fs.Mounted(), fs.Why})
	}
	for _, p := range []struct {
		name string
		t    ebpf.ProgramType
	}{
		{"kprobe programs", ebpf.Kprobe}, {"tracepoint", ebpf.TracePoint}, {"raw_tracepoint", ebpf.RawTracepoint},
		{"fentry/fexit (tracing)", ebpf.Tracing}, {"lsm", ebpf.LSM}, {"cgroup_device", ebpf.CGroupDevice},
	} {
		r.ProgramTypes = append(r.ProgramTypes, probe(p.name, features.HaveProgramType(p.t)))
	}
	// A kprobe program loads even where kprobes cannot be attached: say so.
	kprobes := featureStatus{Name: "kprobes (attaching)", Supported: kernel.HasKprobes()}
	if !kprobes.Supported {
		kprobes.Detail = "CONFIG_KPROBES is off"
	}
	r.ProgramTypes = append(r.ProgramTypes, kprobes)
	r.MapTypes = append(r.MapTypes, probe("ringbuf", features.HaveMapType(ebpf.RingBuf)))

	// The real test of an attach point is attaching it: load each gadget and record its choices.
	for _, d := range registry.All {
		r.Gadgets = append(r.Gadgets, probeGadget(d))
	}
	return r
}

func probeGadget(d *gadget.Descriptor) gadgetStatus {
	s := gadgetStatus{Name: d.Name}
	g, err := gadget.Open(d, gadget.Options{})
	if err != nil {
		s.Error = err.Error()
		return s
	}
	s.Hooks = g.Choices()
	if len(g.Fallbacks) > 0 {
		s.Fallbacks = lackStatuses(g.Fallbacks)
	}
	g.Close()
	return s
}

// runtimes says which container sources answer and how many containers each knows.
func runtimes(ctx context.Context, o containerOptions) []runtimeStatus {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	coll := container.NewCollection()
	ctrd := runtimeStatus{Name: "containerd", Reachable: true, Detail: o.socket}
	w, err := container.WatchContainerd(ctx, coll, o.socket, o.namespaces, nil)
	if err != nil {
		ctrd.Reachable, ctrd.Detail = false, err.Error()
	}
	w.Stop()
	ctrd.Containers = len(coll.List())
	coll.ScanProcesses()
	byPath := runtimeStatus{Name: "cgroup paths", Reachable: true, Detail: "containers found by their cgroups only"}
	for _, c := range coll.List() {
		if c.Source == "cgroup" {
			byPath.Containers++
		}
	}
	return []runtimeStatus{ctrd, byPath}
}

// criHealth asks every CRI socket of the node for its Status.
func criHealth(ctx context.Context, containerdSocket string) []cri.Health {
	sockets := cri.Sockets(containerdSocket)
	out := make([]cri.Health, len(sockets))
	var wg sync.WaitGroup
	for i, s := range sockets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = cri.Check(ctx, s, cri.StatusDeadline)
		}()
	}
	wg.Wait()
	return out
}

// addCRI records the runtimes' answers and the CNI invocations in flight: a DEL that hangs
// may hold what a runtime's Status waits for.
func (r *doctorReport) addCRI(hs []cri.Health) {
	r.CRI = []criStatus{}
	for _, h := range hs {
		r.CRI = append(r.CRI, criStatus{Socket: h.Socket, Runtime: h.Runtime, Answered: h.Answered, TimedOut: h.TimedOut,
			Error: h.Error, TookNs: h.Took.Nanoseconds(), RuntimeReady: h.RuntimeReady, NetworkReady: h.NetworkReady, NotReady: h.NotReady})
	}
	r.CNIInFlight = []cniInFlight{}
	now := bootNow()
	for _, run := range cni.FindRunning() {
		f := cniInFlight{PID: run.PID, Plugin: filepath.Base(run.File), Command: run.Call.Command, ContainerID: run.Call.ContainerID,
			Pod: run.Call.Pod, K8sNamespace: run.Call.K8sNamespace, NetNS: run.Call.NetNS, RunningNs: int64(now - run.StartBoot)}
		if run.File == "" {
			f.Plugin = run.Comm
		}
		if b, ok := run.Blocked(); ok {
			f.Blocked = fmt.Sprintf("pid %d (%s) in %s", b.PID, b.Comm, b.Where())
		}
		r.CNIInFlight = append(r.CNIInFlight, f)
	}
}

func bootNow() uint64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts) // always there on the kernels ghostwatch supports
	return uint64(ts.Nano())
}

func probe(name string, err error) featureStatus {
	s := featureStatus{Name: name, Supported: err == nil}
	if err != nil {
		s.Detail = err.Error()
		if errors.Is(err, ebpf.ErrNotSupported) {
			s.Detail = "not supported by this kernel"
		}
	}
	return s
}

func printDoctor(w interface{ Write([]byte) (int, error) }, r doctorReport) {
	yes := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	fmt.Fprintf(w, "kernel:      %s\n", r.Kernel)
	if r.OutOfScope != "" {
		fmt.Fprintf(w, "             out of scope: %s\n", r.OutOfScope)
	}
	fmt.Fprintf(w, "BTF:         %s\nprivileges:  %s\n", yes(r.BTF), r.Privileges)
	fmt.Fprintln(w, "\nkernel features the programs adapt to (bpf/include/compat.h):")
	if len(r.Lacks) == 0 {
		fmt.Fprintln(w, "  this kernel has them all")
	}
	for _, l := range r.Lacks {
		fmt.Fprintf(w, "  lacks %s (%s, Linux %s): %s\n", l.Feature, l.What, l.Since, l.Fallback)
	}
	fmt.Fprintln(w, "\nfile systems:")
	for _, fs := range r.FileSystems {
		state := "mounted"
		switch {
		case !fs.Mounted && fs.Name == kernel.Tracefs.Name:
			state = "not mounted (ghostwatch mounts it while tracing)"
		case !fs.Mounted:
			state = "not mounted"
		}
		fmt.Fprintf(w, "  %-11s %-22s %s; for %s\n", fs.Name, fs.Path, state, fs.For)
	}
	fmt.Fprintln(w, "\nprogram and map types:")
	for _, f := range append(r.ProgramTypes, r.MapTypes...) {
		detail := ""
		if f.Detail != "" {
			detail = " (" + f.Detail + ")"
		}
		fmt.Fprintf(w, "  %-36s %s%s\n", f.Name, yes(f.Supported), detail)
	}
	fmt.Fprintln(w, "\ncontainer sources:")
	for _, rt := range r.Runtimes {
		state := "reachable"
		if !rt.Reachable {
			state = "unreachable"
		}
		fmt.Fprintf(w, "  %-13s %s, %d containers (%s)\n", rt.Name, state, rt.Containers, rt.Detail)
	}
	fmt.Fprintf(w, "\ncontainer runtime health (CRI RuntimeService/Status, within %v):\n", cri.StatusDeadline)
	for _, c := range r.CRI {
		name := c.Socket
		if c.Runtime != "" {
			name = c.Runtime + " at " + c.Socket
		}
		took := time.Duration(c.TookNs).Round(time.Millisecond)
		switch {
		case c.TimedOut:
			fmt.Fprintf(w, "  %s: TIMED OUT after %v: %s\n", name, took, c.Error)
		case !c.Answered:
			fmt.Fprintf(w, "  %s: %s\n", name, c.Error)
		default:
			fmt.Fprintf(w, "  %s: RuntimeReady %s, NetworkReady %s, answered in %v\n", name, yes(c.RuntimeReady), yes(c.NetworkReady), took)
			for _, n := range c.NotReady {
				fmt.Fprintf(w, "      %s: %s: %s\n", n.Type, n.Reason, n.Message)
			}
		}
	}
	fmt.Fprintf(w, "\nCNI invocations in flight: %d\n", len(r.CNIInFlight))
	for _, f := range r.CNIInFlight {
		pod := f.Pod
		if f.K8sNamespace != "" {
			pod = f.K8sNamespace + "/" + pod
		}
		fmt.Fprintf(w, "  pid %d %s %s, pod %q, container %s, netns %s, running for %v\n", f.PID, f.Command, f.Plugin,
			pod, f.ContainerID, f.NetNS, time.Duration(f.RunningNs).Round(time.Millisecond))
		if f.Blocked != "" {
			fmt.Fprintf(w, "      waits: %s\n", f.Blocked)
		}
	}
	fmt.Fprintln(w, "\nattach points (chosen by attaching here):")
	for _, g := range r.Gadgets {
		if g.Error != "" {
			fmt.Fprintf(w, "  %s: cannot load: %s\n", g.Name, g.Error)
			continue
		}
		for _, h := range g.Hooks {
			fmt.Fprintf(w, "  %s/%s\n", g.Name, h)
			for _, rej := range h.Rejected {
				fmt.Fprintf(w, "      not %s: %s\n", rej.Candidate, rej.Reason)
			}
		}
		for _, f := range g.Fallbacks {
			fmt.Fprintf(w, "  %s: lacks %s (%s, Linux %s), so: %s\n", g.Name, f.Feature, f.What, f.Since, f.Fallback)
		}
	}
}
