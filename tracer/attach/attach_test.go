package attach

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"

	"github.com/ghostwatch/ghostwatch/tracer/kernel"
	"github.com/ghostwatch/ghostwatch/tracer/testutil"
)

// What a failed candidate's reason names, per kernel: the feature missing and the first release
// with it, or nothing where the failure is not a missing feature.
func TestLacked(t *testing.T) {
	has := func(names ...string) func(string) bool {
		return func(n string) bool { return strings.Contains(" "+strings.Join(names, " ")+" ", " "+n+" ") }
	}
	notSupported := fmt.Errorf("load: %w", ebpf.ErrNotSupported)
	for _, tc := range []struct {
		arch, release, kind, target string
		err                         error
		inBTF                       func(string) bool
		want                        string
	}{
		{"arm64", "6.1.0-57-arm64", "fexit", "cap_capable", unix.ENODEV, has("cap_capable"),
			"fexit on arm64 needs ftrace direct calls (Linux 6.4 has them first)"},
		{"arm64", "6.1.0-57-arm64", "fentry", "cap_capable", unix.EINVAL, has("cap_capable"),
			"fentry on arm64 needs ftrace direct calls (Linux 6.4 has them first)"},
		{"arm64", "6.12.118+deb12-arm64", "fexit", "cap_capable", notSupported, has("cap_capable"),
			"fexit needs ftrace direct calls, which this kernel is built without (CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS)"},
		{"arm64", "6.12.118+deb12-arm64", "fexit", "cap_capable", unix.EPERM, has("cap_capable"), ""},
		{"amd64", "6.18.44", "fentry", "switch_task_namespaces", unix.EPERM, has("switch_task_namespaces"), ""},
		{"amd64", "6.1.0-57-amd64", "fentry", "gone", notSupported, has(), "this kernel's BTF has no function gone"},
		{"amd64", "6.12.118+deb12-amd64", "tp_btf", "cap_capable", notSupported, has(),
			"this kernel has no tracepoint cap_capable (Linux 6.14 has it first)"},
		{"arm64", "6.1.0-57-arm64", "tp_btf", "gw_none", notSupported, has(), "this kernel has no tracepoint gw_none"},
		{"amd64", "6.18.44", "tp_btf", "sys_exit", unix.EACCES, has("btf_trace_sys_exit"), ""},
		{"amd64", "5.10.0-46-amd64", "tracepoint", "syscalls/sys_enter_setns", notSupported, has(), ""},
	} {
		got := lacked(tc.arch, tc.release, tc.kind, tc.target, tc.err, tc.inBTF)
		if got != tc.want {
			t.Errorf("%s %s: %s %s failing with %v: %q, want %q", tc.arch, tc.release, tc.kind, tc.target, tc.err, got, tc.want)
		}
	}
}

// A required hook no candidate of which attaches fails the load in one line that names, for each
// candidate, what this kernel lacks and the first release with it: a tracepoint no kernel has, and
// on arm64 before direct calls, fexit.
func TestRequiredHookNamesWhatIsMissing(t *testing.T) {
	testutil.RequirePrivileged(t)
	ret := asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}
	spec := &ebpf.CollectionSpec{Programs: map[string]*ebpf.ProgramSpec{
		"none": {Name: "none", Type: ebpf.Tracing, AttachType: ebpf.AttachTraceRawTp, AttachTo: "gw_no_such_tracepoint",
			SectionName: "tp_btf/gw_no_such_tracepoint", License: "GPL", Instructions: ret},
		"check": {Name: "check", Type: ebpf.Tracing, AttachType: ebpf.AttachTraceFExit, AttachTo: "cap_capable",
			SectionName: "fexit/cap_capable", License: "GPL", Instructions: ret},
	}}
	_, err := Load(spec, []Hook{{Name: "tp", Candidates: [][]string{{"none"}}}}, nil)
	want := "no attach point works for tp (tp_btf gw_no_such_tracepoint: this kernel has no tracepoint gw_no_such_tracepoint)"
	if err == nil || err.Error() != want {
		t.Errorf("a tracepoint no kernel has: %v, want %q", err, want)
	}
	s, err := Load(spec, []Hook{{Name: "check", Candidates: [][]string{{"check"}}}}, nil)
	if err == nil {
		s.Close()
	}
	if runtime.GOARCH != "arm64" || !kernel.Older(kernel.Release(), "6.4") {
		t.Logf("fexit on %s %s: %v", runtime.GOARCH, kernel.Release(), err)
		return
	}
	want = "no attach point works for check (fexit cap_capable: fexit on arm64 needs ftrace direct calls (Linux 6.4 has them first))"
	if err == nil || err.Error() != want {
		t.Errorf("fexit on arm64 %s: %v, want %q", kernel.Release(), err, want)
	}
}
