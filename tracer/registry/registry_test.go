// The checks every registered gadget must pass, on this kernel and in vmtest's guests.
package registry_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/features"

	"github.com/ghostwatch/ghostwatch/tracer/attach"
	"github.com/ghostwatch/ghostwatch/tracer/container"
	"github.com/ghostwatch/ghostwatch/tracer/encode"
	"github.com/ghostwatch/ghostwatch/tracer/event"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
	"github.com/ghostwatch/ghostwatch/tracer/gadget/gadgettest"
	"github.com/ghostwatch/ghostwatch/tracer/kernel"
	"github.com/ghostwatch/ghostwatch/tracer/registry"
	"github.com/ghostwatch/ghostwatch/tracer/testutil"
)

func forEach(t *testing.T, f func(t *testing.T, d *gadget.Descriptor)) {
	names := map[string]bool{}
	for _, d := range registry.All {
		if names[d.Name] {
			t.Fatalf("two gadgets are named %s", d.Name)
		}
		names[d.Name] = true
		t.Run(d.Name, func(t *testing.T) { f(t, d) })
	}
}

// Every program a hook names is in the object, and every program of the object is in a hook (of
// a gadget loading that object: a snapshot shares its group's); the descriptor's options are ones
// the CLI can make flags of.
func TestHooksNameRealPrograms(t *testing.T) {
	used := map[uintptr]map[string]bool{} // by object: the programs the hooks of its gadgets name
	for _, d := range registry.All {
		obj := reflect.ValueOf(d.Load).Pointer()
		if used[obj] == nil {
			used[obj] = map[string]bool{}
		}
		for _, h := range d.Hooks {
			for _, c := range h.Candidates {
				for _, name := range c {
					used[obj][name] = true
				}
			}
		}
	}
	forEach(t, func(t *testing.T, d *gadget.Descriptor) {
		if err := d.Validate(); err != nil {
			t.Error(err)
		}
		spec, err := d.Load()
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range d.Hooks {
			if _, err := attach.CandidateKinds(spec, h); err != nil {
				t.Error(err)
			}
		}
		for name := range spec.Programs {
			if !used[reflect.ValueOf(d.Load).Pointer()][name] {
				t.Errorf("program %q is in no hook: dead code", name)
			}
		}
	})
}

// Fetching atomics are only in the programs Needs names (5.10's verifier refuses a program with
// one anywhere in it, whatever the path), each of those has one (else Needs is stale), and every
// candidate with such a program has a later candidate without, for kernels that lack them. The
// programs are those the gadget's hooks name (a snapshot's object is its group's too).
func TestFetchingAtomicsOnlyWhereNeeded(t *testing.T) {
	forEach(t, func(t *testing.T, d *gadget.Descriptor) {
		spec, err := d.Load()
		if err != nil {
			t.Fatal(err)
		}
		for name, p := range spec.Programs {
			if !slices.ContainsFunc(d.Hooks, func(h attach.Hook) bool {
				return slices.ContainsFunc(h.Candidates, func(c []string) bool { return slices.Contains(c, name) })
			}) {
				continue
			}
			var fetching []string
			for _, ins := range p.Instructions {
				if ins.OpCode.Class() == asm.StXClass && ins.OpCode.Mode() == asm.AtomicMode && ins.OpCode.AtomicOp() != asm.AddAtomic {
					fetching = append(fetching, ins.OpCode.AtomicOp().String())
				}
			}
			needs := d.Needs[name].Name == kernel.FetchAtomics.Name
			if len(fetching) > 0 && !needs {
				t.Errorf("program %s has fetching atomics (%s) but Needs does not say so: 5.10 would refuse it", name, strings.Join(fetching, ", "))
			}
			if len(fetching) == 0 && needs {
				t.Errorf("Needs says program %s uses fetching atomics, but it has none", name)
			}
		}
		for _, h := range d.Hooks {
			needy := func(c []string) bool {
				return slices.ContainsFunc(c, func(n string) bool { _, ok := d.Needs[n]; return ok })
			}
			if i := slices.IndexFunc(h.Candidates, needy); i >= 0 && h.Without == "" &&
				!slices.ContainsFunc(h.Candidates[i+1:], func(c []string) bool { return !needy(c) }) {
				t.Errorf("hook %s: no candidate after %v does without the features Needs names", h.Name, h.Candidates[i])
			}
		}
	})
}

// Each kind's Go record is its C struct (same size, as bpf2go generated it), begins with the
// shared header, and kinds have distinct values.
func TestKindLayouts(t *testing.T) {
	forEach(t, func(t *testing.T, d *gadget.Descriptor) {
		spec, err := d.Load()
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Kinds) == 0 && d.Mode != gadget.Snapshot { // a snapshot's items are documented in Derived
			t.Fatal("no event kinds")
		}
		values := map[uint32]string{}
		for _, k := range d.Kinds {
			if other, ok := values[k.Value]; ok {
				t.Errorf("kinds %s and %s share the value %d", k.Name, other, k.Value)
			}
			values[k.Value] = k.Name
			if k.Value == 0 {
				t.Errorf("kind %s has value 0, which a zeroed record would also have", k.Name)
			}
			rec := k.Record()
			first := -1 // bpf2go's structs begin with a zero-size layout marker
			for i := 0; rec.Kind() == reflect.Struct && i < rec.NumField() && first < 0; i++ {
				if rec.Field(i).Type.Size() > 0 {
					first = i
				}
			}
			if first < 0 || rec.Field(first).Offset != 0 {
				t.Errorf("kind %s: record %v does not begin with the header", k.Name, rec)
				continue
			}
			if err := event.CheckLayout(rec.Field(first).Type); err != nil {
				t.Errorf("kind %s: %v", k.Name, err)
			}
			// bpf2go names the Go type after the C struct: find it in the object's BTF.
			var found bool
			for typ := range spec.Types.All() {
				s, ok := typ.(*btf.Struct)
				// bpf2go's name: the object's identifier (the gadget's name) and the C name in camel case.
				if ok && strings.EqualFold(rec.Name(), d.Name+strings.ReplaceAll(s.Name, "_", "")) && s.Size == uint32(rec.Size()) {
					found = true
					break
				}
			}
			if !found {
				t.Errorf("kind %s: no C struct of %d bytes named like %s in the object", k.Name, rec.Size(), rec.Name())
			}
		}
		for _, k := range append(append([]gadget.Kind{}, d.Kinds...), d.Derived...) {
			if k.Folded {
				if d.NewProcessor == nil {
					t.Errorf("kind %s is folded, but the gadget has no processor to fold it", k.Name)
				}
				continue
			}
			if len(k.Fields) == 0 {
				t.Errorf("kind %s documents no field", k.Name)
			}
			for _, f := range k.Fields {
				if f.Name == "" || f.Meaning == "" {
					t.Errorf("kind %s documents a field without a name or meaning: %+v", k.Name, f)
				}
			}
		}
	})
}

// A record shorter than its kind, or of a kind the gadget does not have, is an error: never read
// past what the kernel wrote, never skip silently.
func TestShortRecordIsAnError(t *testing.T) {
	forEach(t, func(t *testing.T, d *gadget.Descriptor) {
		dec := gadget.NewDecoder(d, event.NewClock(), nil)
		headerSize := int(unsafe.Sizeof(event.Raw{}))
		if _, err := dec.Decode(make([]byte, headerSize-1)); err == nil {
			t.Error("a record shorter than the header decoded")
		}
		for _, k := range d.Kinds {
			raw := make([]byte, k.Record().Size())
			(*event.Raw)(unsafe.Pointer(&raw[0])).Kind = k.Value
			if _, err := dec.Decode(raw); err != nil {
				t.Errorf("kind %s: a whole record: %v", k.Name, err)
			}
			if _, err := dec.Decode(raw[:len(raw)-1]); err == nil {
				t.Errorf("kind %s: a record one byte short decoded", k.Name)
			}
			(*event.Raw)(unsafe.Pointer(&raw[0])).Kind = 1 << 30
			if _, err := dec.Decode(raw); err == nil {
				t.Errorf("kind %s: a record of an unknown kind decoded", k.Name)
			}
		}
	})
}

// Decoding a record of any kind (containers resolved) and writing it as a JSON line and as a
// table row allocates nothing: the per-event path of `trace`, which a storm runs a million times a
// second. Kinds with no table row (the recorder's) are written as JSON only. A device rule write
// is left out: it parses the rule and the cgroup's states before and after (allocating), and it
// happens once per rule a runtime writes, not in storms; so is an OOM kill, whose memory cgroup's
// path is joined and parsed for its container, once per kill.
func TestDecodeEncodeAllocatesNothing(t *testing.T) {
	rare := map[string]bool{"devices/rule": true, "oom/kill": true}
	forEach(t, func(t *testing.T, d *gadget.Descriptor) {
		dec := gadget.NewDecoder(d, event.NewClock(), container.NewCollection())
		for _, k := range d.Kinds {
			if rare[d.Name+"/"+k.Name] {
				continue
			}
			raw := make([]byte, k.Record().Size())
			h := (*event.Raw)(unsafe.Pointer(&raw[0]))
			h.Kind, h.Pid, h.Tid, h.Comm[0] = k.Value, 4242, 4242, 'x'
			allocs := gadgettest.AllocsPerEvent(t, d, dec, raw)
			if allocs != 0 {
				t.Errorf("kind %s: %.1f allocations per event", k.Name, allocs)
			}
		}
	})
}

// available says whether this kernel offers an attach kind, found without ghostwatch's own
// probing.
func available(kind string) bool {
	switch kind {
	case "fentry", "fexit":
		return features.HaveProgramType(ebpf.Tracing) == nil
	case "lsm":
		return features.HaveProgramType(ebpf.LSM) == nil
	case "kprobe", "kretprobe":
		return kernel.HasKprobes()
	}
	return true // tracepoints, raw tracepoints, tp_btf and iterators work on every supported kernel
}

// The attach point chosen for each hook is the best this kernel offers, so that a silent fallback
// is caught. What the kernel offers is found independently; vmtest states it exactly per kernel
// with GHOSTWATCH_EXPECT_ATTACH="gadget/hook=kind,..." (kind "none" for none).
func TestAttachChoices(t *testing.T) {
	testutil.RequirePrivileged(t)
	expect := map[string]string{}
	if env := os.Getenv("GHOSTWATCH_EXPECT_ATTACH"); env != "" {
		for _, kv := range strings.Split(env, ",") {
			hook, kind, _ := strings.Cut(kv, "=")
			expect[hook] = strings.TrimPrefix(kind, "none")
		}
	}
	forEach(t, func(t *testing.T, d *gadget.Descriptor) {
		spec, err := d.Load()
		if err != nil {
			t.Fatal(err)
		}
		g := open(t, d, gadget.Filter{})
		for _, h := range d.Hooks {
			kinds, err := attach.CandidateKinds(spec, h)
			if err != nil {
				t.Fatal(err)
			}
			want := ""
			for _, k := range kinds {
				if available(k) {
					want = k
					break
				}
			}
			if param, ok := d.HookParams[h.Name]; ok && !g.Params.Bool(param) {
				want = "" // not asked for
			}
			key := d.Name + "/" + h.Name
			if k, ok := expect[key]; ok {
				want = k
				delete(expect, key)
			} else if len(os.Getenv("GHOSTWATCH_EXPECT_ATTACH")) > 0 {
				t.Errorf("GHOSTWATCH_EXPECT_ATTACH says nothing of %s", key)
			}
			if got := g.Kind(h.Name); got != want {
				t.Errorf("hook %s attached as %q, want %q (choices: %v)", h.Name, got, want, g.Choices())
			}
		}
	})
	hooks := map[string]bool{}
	for _, d := range registry.All {
		for _, h := range d.Hooks {
			hooks[d.Name+"/"+h.Name] = true
		}
	}
	for key := range expect { // left: a hook no gadget has, or one of a gadget -run left out
		if !hooks[key] {
			t.Errorf("GHOSTWATCH_EXPECT_ATTACH names %s, which no registered gadget has", key)
		}
	}
}

func open(t *testing.T, d *gadget.Descriptor, f gadget.Filter) *gadget.Gadget {
	t.Helper()
	g, err := gadget.Open(d, gadget.Options{Filter: f, Params: d.Selftest.Params})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

// Close leaves no program, map, link or mount behind, after events have flowed.
func TestCloseLeavesNothing(t *testing.T) {
	testutil.RequirePrivileged(t)
	forEach(t, func(t *testing.T, d *gadget.Descriptor) {
		before := testutil.KernelObjects(t)
		g, err := gadget.Open(d, gadget.Options{Params: d.Selftest.Params})
		if err != nil {
			t.Fatal(err)
		}
		if len(testutil.KernelObjects(t)) <= len(before) {
			g.Close()
			t.Fatal("Open added nothing to the kernel's lists: the check below could not fail")
		}
		selftest(t, d, g)
		if err := g.Close(); err != nil {
			t.Fatal(err)
		}
		testutil.WaitUnloaded(t, before, testutil.KernelObjects)
	})
}

// proc is a shell that waits on its stdin and then execs a gadget's selftest command, so that
// its pid is known before the command runs.
type proc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	pid   uint32
}

// start starts a proc in new namespaces (unshareFlags) that will exec argv, under the name as if
// it was not empty (its comm becomes name).
func start(t *testing.T, argv []string, unshareFlags uintptr, as string) *proc {
	t.Helper()
	path, err := exec.LookPath(argv[0])
	if err != nil {
		t.Fatal(err)
	}
	if as != "" {
		link := filepath.Join(t.TempDir(), as)
		if err := os.Symlink(path, link); err != nil {
			t.Fatal(err)
		}
		path = link
	}
	cmd := exec.Command("sh", append([]string{"-c", `read _; exec "$@"`, "sh", path}, argv[1:]...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: unshareFlags}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, stdin: stdin, pid: uint32(cmd.Process.Pid)}
	t.Cleanup(func() {
		if p.stdin != nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return p
}

// run lets the command run to its end.
func (p *proc) run(t *testing.T) {
	t.Helper()
	p.stdin.Write([]byte("\n"))
	p.stdin.Close()
	p.stdin = nil
	if err := p.cmd.Wait(); err != nil {
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			t.Fatal(err)
		}
	}
}

// The pid, comm and container (mount namespace) filters drop in the kernel what they should: the
// excluded actor's event, caused first, never arrives before the included actor's.
func TestFilters(t *testing.T) {
	testutil.RequirePrivileged(t)
	const name = "gw-selftest"
	hostMnt := testutil.NSInode(t, os.Getpid(), "mnt")
	cases := []struct {
		name string
		// run makes the excluded and the included actor, and opens the gadget filtering them.
		run func(t *testing.T, d *gadget.Descriptor) (g *gadget.Gadget, excluded, included *proc)
	}{
		{"pid", func(t *testing.T, d *gadget.Descriptor) (*gadget.Gadget, *proc, *proc) {
			ex, in := start(t, d.Selftest.Command, 0, ""), start(t, d.Selftest.Command, 0, "")
			return open(t, d, gadget.Filter{PID: in.pid}), ex, in
		}},
		{"comm", func(t *testing.T, d *gadget.Descriptor) (*gadget.Gadget, *proc, *proc) {
			ex, in := start(t, d.Selftest.Command, 0, ""), start(t, d.Selftest.Command, 0, name)
			return open(t, d, gadget.Filter{Comm: name}), ex, in
		}},
		{"container-only", func(t *testing.T, d *gadget.Descriptor) (*gadget.Gadget, *proc, *proc) {
			ex, in := start(t, d.Selftest.Command, 0, ""), start(t, d.Selftest.Command, syscall.CLONE_NEWNS, "")
			g := open(t, d, gadget.Filter{MntNS: gadget.MntNSOnly})
			if err := g.SetMntNS(testutil.NSInode(t, int(in.pid), "mnt"), true); err != nil {
				t.Fatal(err)
			}
			return g, ex, in
		}},
		{"host-excluded", func(t *testing.T, d *gadget.Descriptor) (*gadget.Gadget, *proc, *proc) {
			ex, in := start(t, d.Selftest.Command, 0, ""), start(t, d.Selftest.Command, syscall.CLONE_NEWNS, "")
			g := open(t, d, gadget.Filter{MntNS: gadget.MntNSExcept})
			if err := g.SetMntNS(hostMnt, true); err != nil {
				t.Fatal(err)
			}
			return g, ex, in
		}},
	}
	forEach(t, func(t *testing.T, d *gadget.Descriptor) {
		spec, err := d.Load()
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := spec.Variables["filter_tgid"]; !ok || d.Mode == gadget.Snapshot {
			// Such a gadget must refuse a filter rather than ignore it.
			if _, err := gadget.Open(d, gadget.Options{Filter: gadget.Filter{PID: 1}, Params: d.Selftest.Params}); err == nil {
				t.Fatal("a gadget without filters accepted a pid filter")
			}
			return
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				g, ex, in := c.run(t, d)
				events := gadgettest.Collect(t, func(ctx context.Context, emit func(gadget.Event)) error {
					return g.Run(ctx, nil, emit, nil, nil)
				})
				ex.run(t)
				in.run(t)
				events.Next(t, "the included actor's event", func(ev gadget.Event) bool {
					return ev.Head().Proc.PID == in.pid
				}, func(ev gadget.Event) {
					if ev.Head().Proc.PID == ex.pid {
						t.Errorf("the filter let through the excluded actor's event: %+v", ev.Head())
					}
				})
			})
		}
	})
}

// A hook an option turns off is not attached, and nothing of it runs.
func TestHookParamsTurnHooksOff(t *testing.T) {
	testutil.RequirePrivileged(t)
	forEach(t, func(t *testing.T, d *gadget.Descriptor) {
		for hook, param := range d.HookParams {
			params := gadget.Params{}
			for k, v := range d.Selftest.Params {
				params[k] = v
			}
			params[param] = false
			g, err := gadget.Open(d, gadget.Options{Params: params})
			if err != nil {
				t.Fatal(err)
			}
			if kind := g.Kind(hook); kind != "" {
				t.Errorf("--%s=false: hook %s attached as %s", param, hook, kind)
			}
			g.Close()
		}
	})
}

func featureNames(fs []kernel.Feature) string {
	var names []string
	for _, f := range fs {
		names = append(names, f.Name)
	}
	return strings.Join(names, ",")
}

// The fallbacks taken are those of the features this kernel lacks: exactly those vmtest names per
// kernel (GHOSTWATCH_EXPECT_LACKS), and each gadget reports those among its own features.
func TestFallbacksChosen(t *testing.T) {
	testutil.RequirePrivileged(t)
	lacking, err := kernel.Lacking()
	if err != nil {
		t.Fatal(err)
	}
	if want, ok := os.LookupEnv("GHOSTWATCH_EXPECT_LACKS"); ok && featureNames(lacking) != want {
		t.Errorf("this kernel lacks %q, want %q", featureNames(lacking), want)
	}
	forEach(t, func(t *testing.T, d *gadget.Descriptor) {
		var want []kernel.Feature
		for _, f := range lacking {
			for _, df := range d.Features {
				if df.Name == f.Name {
					want = append(want, f)
				}
			}
		}
		g := open(t, d, gadget.Filter{})
		if got := featureNames(g.Fallbacks); got != featureNames(want) {
			t.Errorf("fallbacks %q, want %q", got, featureNames(want))
		}
	})
}

// With every fallback forced, each gadget loads on this kernel and its selftest's event arrives, so
// that the paths of older kernels are tested on every kernel of the matrix.
func TestFallbacksWork(t *testing.T) {
	testutil.RequirePrivileged(t)
	t.Setenv(kernel.LackEnv, "all")
	forEach(t, func(t *testing.T, d *gadget.Descriptor) {
		g := open(t, d, gadget.Filter{})
		if got, want := featureNames(g.Fallbacks), featureNames(d.Features); got != want {
			t.Errorf("fallbacks %q, want all of the gadget's features %q", got, want)
		}
		selftest(t, d, g)
	})
}

// selftest runs the gadget's selftest: a stream's event of the command's process arrives; a
// snapshot taken while the command runs lists it (an item names its pid), and writes only the
// members its descriptor documents.
func selftest(t *testing.T, d *gadget.Descriptor, g *gadget.Gadget) {
	t.Helper()
	if d.Mode != gadget.Snapshot {
		events := gadgettest.Collect(t, func(ctx context.Context, emit func(gadget.Event)) error {
			return g.Run(ctx, nil, emit, nil, nil)
		})
		p := start(t, d.Selftest.Command, 0, "")
		p.run(t)
		events.Next(t, "the selftest's event", func(ev gadget.Event) bool {
			return ev.Head().Type == d.Name && ev.Head().Proc.PID == p.pid
		}, nil)
		events.Stop(t)
		return
	}
	cmd := exec.Command(d.Selftest.Command[0], d.Selftest.Command[1:]...)
	h, _ := testutil.StartProcess(t, cmd)
	defer h.Stop()
	items, err := g.Snapshot(nil)
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, f := range d.Derived[0].Fields {
		documented[f.Name] = true
	}
	listed := false
	for _, it := range items {
		var j encode.JSON
		it.AppendJSON(&j)
		var m map[string]any
		if err := json.Unmarshal(j.B, &m); err != nil {
			t.Fatalf("%v: %s", err, j.B)
		}
		for k := range m {
			if !documented[k] {
				t.Errorf("member %q of %s is not documented (Derived): %s", k, d.Name, j.B)
			}
		}
		listed = listed || namesPID(m, float64(h.Pid))
	}
	if !listed {
		t.Errorf("%d items, none names the selftest's process %d", len(items), h.Pid)
	}
}

// namesPID says whether a decoded JSON value has a member "pid" of that value, at any depth.
func namesPID(v any, pid float64) bool {
	switch v := v.(type) {
	case map[string]any:
		if v["pid"] == pid {
			return true
		}
		for _, m := range v {
			if namesPID(m, pid) {
				return true
			}
		}
	case []any:
		return slices.ContainsFunc(v, func(e any) bool { return namesPID(e, pid) })
	}
	return false
}
