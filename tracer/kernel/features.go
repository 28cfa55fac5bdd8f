package kernel

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/rlimit"

	"github.com/ghostwatch/ghostwatch/gen/header"
)

// Feature is something the BPF programs use where the kernel has it and do without otherwise
// (bpf/include/compat.h): its bit is set in the objects' gw_lacks constant before load when this
// kernel lacks it, and the verifier drops the path not taken.
type Feature struct {
	Name string // as doctor, the summary and GHOSTWATCH_LACK name it
	// Bit is its bit in gw_lacks (enum gw_lacks of bpf/include/header.h); 0 for a feature whose
	// fallback is a program variant of its own (a gadget's Descriptor.Needs).
	Bit      uint32
	What     string // what the kernel must offer
	Since    string // the first Linux release with it
	Fallback string // what the programs do without it
	// Needs is a feature this one's use depends on: lacking that one, this one's fallback is taken too.
	Needs string
	probe func() (bool, error)
}

// The features the programs adapt to, oldest first.
var (
	TaskBTF = Feature{Name: "task-btf", Bit: uint32(header.HeaderGwLacksGW_LACKS_TASK_BTF),
		What: "helper bpf_get_current_task_btf", Since: "5.11",
		Fallback: "the current task is read with bpf_get_current_task and a CO-RE probe read per pointer hop",
		probe:    func() (bool, error) { return kernelEnumHas("bpf_func_id", "BPF_FUNC_get_current_task_btf") }}
	// No bit: 5.10's verifier refuses a fetching atomic anywhere in a program, even on a path the
	// constant prunes, so the programs that use them have a variant without (compat.h).
	FetchAtomics = Feature{Name: "fetch-atomics",
		What: "atomic or, fetch-add, compare-and-swap and exchange", Since: "5.12",
		Fallback: "atomic adds only: seccomp sets each syscall's bit once under a per-bit claim in a hash map and begins its own recordings in the spill table; netns tells an emptied namespace by whose map delete succeeds",
		probe:    haveFetchAtomics}
	TaskPtRegs = Feature{Name: "task-pt-regs", Bit: uint32(header.HeaderGwLacksGW_LACKS_TASK_PT_REGS),
		What: "helper bpf_task_pt_regs", Since: "5.15", Needs: TaskBTF.Name,
		Fallback: "a syscall's registers are read at the top of the task's kernel stack, where the entry code saved them",
		probe:    func() (bool, error) { return kernelEnumHas("bpf_func_id", "BPF_FUNC_task_pt_regs") }}
	RdonlyCast = Feature{Name: "rdonly-cast", Bit: uint32(header.HeaderGwLacksGW_LACKS_RDONLY_CAST),
		What: "kfunc bpf_rdonly_cast", Since: "6.2", Needs: TaskBTF.Name,
		Fallback: "devices' write filter reads the file with CO-RE probe reads",
		probe:    func() (bool, error) { return kernelHasFunc("bpf_rdonly_cast") }}
	Features = []Feature{TaskBTF, FetchAtomics, TaskPtRegs, RdonlyCast}
)

// LackEnv names features to treat as missing whatever the kernel has ("all" for every one), so
// that the fallbacks can be tested on any kernel.
const LackEnv = "GHOSTWATCH_LACK"

var (
	probeOnce sync.Once
	probed    map[string]bool // feature name: present
	probeErr  error
)

// Lacking returns the features this kernel lacks (or LackEnv names), in the order of Features.
func Lacking() ([]Feature, error) {
	probeOnce.Do(func() {
		probed = map[string]bool{}
		for _, f := range Features {
			ok, err := f.probe()
			if err != nil {
				probeErr = fmt.Errorf("probing %s: %w", f.What, err)
				return
			}
			probed[f.Name] = ok
		}
	})
	if probeErr != nil {
		return nil, probeErr
	}
	forced := map[string]bool{}
	if env := os.Getenv(LackEnv); env != "" {
		for _, name := range strings.Split(env, ",") {
			name = strings.TrimSpace(name)
			if name != "all" && !slices.ContainsFunc(Features, func(f Feature) bool { return f.Name == name }) {
				return nil, fmt.Errorf("%s names %q, which is no feature (%s)", LackEnv, name, featureNames(Features))
			}
			forced[name] = true
		}
	}
	lacking := map[string]bool{}
	var out []Feature
	for _, f := range Features {
		if !probed[f.Name] || forced[f.Name] || forced["all"] || lacking[f.Needs] {
			lacking[f.Name] = true
			out = append(out, f)
		}
	}
	return out, nil
}

// LacksMask returns the gw_lacks bits of the features lacked, among those given.
func LacksMask(lacking []Feature) uint32 {
	var m uint32
	for _, f := range lacking {
		m |= f.Bit
	}
	return m
}

func featureNames(fs []Feature) string {
	names := make([]string, len(fs))
	for i, f := range fs {
		names[i] = f.Name
	}
	return strings.Join(names, ", ")
}

// kernelEnumHas tells whether the kernel's BTF has a value named value in enum name: a helper
// exists exactly when its BPF_FUNC_ value does.
func kernelEnumHas(name, value string) (bool, error) {
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return false, err
	}
	var e *btf.Enum
	if err := spec.TypeByName(name, &e); err != nil {
		return false, err
	}
	for _, v := range e.Values {
		if v.Name == value {
			return true, nil
		}
	}
	return false, nil
}

func kernelHasFunc(name string) (bool, error) {
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return false, err
	}
	var fn *btf.Func
	err = spec.TypeByName(name, &fn)
	if errors.Is(err, btf.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// fetchAddProbe is a program that does an atomic fetch-add on its stack.
func fetchAddProbe() asm.Instructions {
	fetchAdd := asm.FetchAdd.Mem(asm.R10, asm.R1, asm.DWord, -8)
	// cilium/ebpf (v0.22) encodes the operation into imm only after it has read Constant, so an
	// atomic built here would reach the kernel as a plain add, which 5.10 takes.
	fetchAdd.Constant = int64(asm.FetchAdd >> 8)
	return asm.Instructions{
		asm.Mov.Imm(asm.R1, 0),
		asm.StoreMem(asm.R10, -8, asm.R1, asm.DWord),
		asm.Mov.Imm(asm.R1, 1),
		fetchAdd,
		asm.Mov.Imm(asm.R0, 0),
		asm.Return(),
	}
}

// haveFetchAtomics loads fetchAddProbe: kernels before 5.12 refuse it ("BPF_STX uses reserved
// fields").
func haveFetchAtomics() (bool, error) {
	if err := rlimit.RemoveMemlock(); err != nil {
		return false, err
	}
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.SocketFilter, License: "GPL", Instructions: fetchAddProbe()})
	if err != nil {
		if errors.Is(err, ebpf.ErrNotSupported) || strings.Contains(err.Error(), "reserved fields") {
			return false, nil
		}
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return false, nil
		}
		return false, err
	}
	p.Close()
	return true, nil
}

// MinRelease is the oldest kernel series ghostwatch supports.
const MinRelease = "5.10"

// OutOfScope says why the running kernel is not supported, or "" when it is.
func OutOfScope() string { return outOfScope(Release()) }

func outOfScope(release string) string {
	if Older(release, MinRelease) {
		return fmt.Sprintf("kernel %s is older than %s, the oldest ghostwatch supports", release, MinRelease)
	}
	return ""
}

// Older tells whether release ("6.1.0-57-arm64", as uname gives it) is of a series before series
// ("6.4"); false when either does not parse.
func Older(release, series string) bool {
	rm, rn, ok1 := releaseNumbers(release)
	sm, sn, ok2 := releaseNumbers(series)
	return ok1 && ok2 && (rm < sm || rm == sm && rn < sn)
}

func releaseNumbers(rel string) (major, minor int, ok bool) {
	a, rest, _ := strings.Cut(rel, ".")
	b := rest
	if i := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		b = rest[:i]
	}
	major, err1 := strconv.Atoi(a)
	minor, err2 := strconv.Atoi(b)
	return major, minor, err1 == nil && err2 == nil
}

// CheckRequired returns an error naming the first thing every gadget needs that this kernel
// lacks, with the first release that has it.
func CheckRequired() error {
	if !HasBTF() {
		return fmt.Errorf("kernel %s has no BTF (%s): it needs CONFIG_DEBUG_INFO_BTF=y, as Debian, Ubuntu, RHEL and Amazon Linux kernels have", Release(), BTFPath)
	}
	if err := features.HaveMapType(ebpf.RingBuf); err != nil {
		return fmt.Errorf("kernel %s lacks the BPF ring buffer (Linux 5.8 has it first; ghostwatch supports %s and newer): %w", Release(), MinRelease, err)
	}
	return nil
}
