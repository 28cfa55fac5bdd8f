package setns

import (
	"os"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"

	gen "github.com/ghostwatch/ghostwatch/gen/setns"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
	"github.com/ghostwatch/ghostwatch/tracer/kernel"
)

func TestHooksNameRealPrograms(t *testing.T) {
	spec, err := gen.LoadSetns()
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	for _, h := range Hooks {
		for _, c := range h.Candidates {
			for _, name := range c {
				if _, ok := spec.Programs[name]; !ok {
					t.Errorf("hook %s names program %q, which the object lacks", h.Name, name)
				}
				used[name] = true
			}
		}
	}
	for name := range spec.Programs {
		if !used[name] {
			t.Errorf("program %q is in no hook: dead code", name)
		}
	}
}

// The attach point chosen for each hook must be the best this kernel offers, so that a silent
// fallback is caught. What the kernel offers is found independently of ghostwatch's probing; a
// VM harness can also state it exactly with GHOSTWATCH_EXPECT_ATTACH="hook=kind,...".
func TestAttachChoices(t *testing.T) {
	tr, _ := newTracer(t, gadget.Filter{})
	want := map[string]string{HookSyscalls: "tracepoint", HookFork: "tp_btf", HookCommit: ""}
	if features.HaveProgramType(ebpf.Tracing) == nil {
		want[HookCommit] = "fentry"
	} else if kernel.HasKprobes() {
		want[HookCommit] = "kprobe"
	}
	if env := os.Getenv("GHOSTWATCH_EXPECT_ATTACH"); env != "" {
		for _, kv := range strings.Split(env, ",") {
			hook, kind, _ := strings.Cut(kv, "=")
			if _, ok := want[hook]; ok {
				want[hook] = strings.TrimPrefix(kind, "none")
			}
		}
	}
	for hook, kind := range want {
		if got := tr.Kind(hook); got != kind {
			t.Errorf("hook %s attached as %q, want %q (choices: %v)", hook, got, kind, tr.Choices())
		}
	}
}
