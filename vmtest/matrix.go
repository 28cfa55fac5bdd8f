package vmtest

import "maps"

// Row is a kernel series on an architecture: a row of the test matrix.
type Row struct{ Series, Arch string }

// Matrix is every row, in order: Debian 11's 5.10 and Debian 12's 6.1 and 6.12 on amd64; 6.1 and
// 6.12 on arm64, where 5.10 is not tested.
var Matrix = []Row{{"5.10", "amd64"}, {"6.1", "amd64"}, {"6.12", "amd64"}, {"6.1", "arm64"}, {"6.12", "arm64"}}

// Pending are the rows that do not pass yet, with why: `make vmtest` (and so `make test` and CI)
// leaves them out unless KERNELS or ARCH names them. Every row passes now.
var Pending = map[Row]string{}

// Override is, per row, the hooks ("gadget/hook") that must not take their best candidate there,
// and the attach kind they must take instead ("none" for none). 5.10 has no netlink_extack
// tracepoint; arm64's 6.1 has no fentry/fexit (no direct-call trampolines there).
var Override = map[Row]map[string]string{
	{"5.10", "amd64"}: {"netlink/extack": "kprobe"},
	{"6.1", "arm64"}: {
		"caps/check": "kprobe", "caps/capset": "tracepoint", "devices/rule": "tracepoint",
		"devices/denied": "tp_btf", "netns/created": "kretprobe", "netns/destroyed": "kprobe", "oom/kill": "kprobe", "setns/commit": "kprobe",
	},
}

// Lacks is, per kernel series, the features of tracer/kernel it lacks, whose fallbacks must be
// taken there.
var Lacks = map[string]string{
	"5.10": "task-btf,fetch-atomics,task-pt-regs,rdonly-cast",
	"6.1":  "rdonly-cast",
	"6.12": "",
}

// Expect returns the attach kind every hook ("gadget/hook") must take on the row, given the kind
// of each hook's best candidate (registry.BestChoices): Debian's kernels offer every attach point
// on amd64 but for 5.10's missing tracepoint, so each hook takes its best there, and Override lists
// the exceptions.
func (r Row) Expect(best map[string]string) map[string]string {
	out := maps.Clone(best)
	maps.Copy(out, Override[r])
	return out
}
