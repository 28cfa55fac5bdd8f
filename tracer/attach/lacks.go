package attach

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"

	"github.com/ghostwatch/ghostwatch/tracer/kernel"
)

// tracepointSince is the first release of the tracepoints a candidate attaches to that are newer
// than the oldest kernel ghostwatch supports (5.10); the others are older.
var tracepointSince = map[string]string{
	"cap_capable": "6.14", // include/trace/events/capability.h
}

// arm64DirectCalls is the first release whose arm64 ftrace makes direct calls, which fentry and
// fexit on kernel functions go through there (arm64's BPF trampoline itself is in 6.0).
const arm64DirectCalls = "6.4"

// lacked says what the kernel lacks that a candidate of kind on target needs, with the first
// release that has it, when err (why the candidate failed) comes of that; "" when it does not.
// arch and release are the kernel's (runtime.GOARCH, uname); inBTF tells whether the kernel's BTF
// has a type of that name.
func lacked(arch, release, kind, target string, err error, inBTF func(string) bool) string {
	notSupported := errors.Is(err, ebpf.ErrNotSupported) || errors.Is(err, unix.ENODEV)
	switch kind {
	case "tp_btf", "raw_tp":
		if notSupported && !inBTF("btf_trace_"+target) {
			if since := tracepointSince[target]; since != "" {
				return fmt.Sprintf("this kernel has no tracepoint %s (Linux %s has it first)", target, since)
			}
			return "this kernel has no tracepoint " + target
		}
	case "fentry", "fexit":
		if !inBTF(target) {
			if notSupported {
				return "this kernel's BTF has no function " + target
			}
			return ""
		}
		if arch == "arm64" && kernel.Older(release, arm64DirectCalls) {
			return fmt.Sprintf("%s on arm64 needs ftrace direct calls (Linux %s has them first)", kind, arm64DirectCalls)
		}
		if notSupported {
			return kind + " needs ftrace direct calls, which this kernel is built without (CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS)"
		}
	}
	return ""
}

// kernelHas tells whether the running kernel's BTF has a type named name.
func kernelHas(name string) bool {
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return true // no answer: say nothing of the target
	}
	_, err = spec.AnyTypeByName(name)
	return err == nil
}
