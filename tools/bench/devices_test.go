package bench

import (
	"fmt"
	"testing"

	"github.com/cilium/ebpf/link"

	"github.com/ghostwatch/ghostwatch/tracer/kernel"
)

// BenchmarkDevices measures what `trace devices` adds to every write on the node (a loop of
// one-byte writes to /dev/null, which its rule hook looks at and drops) and to every other
// syscall (getppid: where fexit is refused, its denied hook runs at every syscall's exit), beside
// empty programs on the same tracepoints, attached alone.
func BenchmarkDevices(b *testing.B) {
	loop, ghostwatch, floor, ours := prepare(b)
	release, err := kernel.Use(kernel.Tracefs)
	if err != nil {
		b.Fatal(err)
	}
	defer release()

	// The floor: empty programs on every attach point trace devices takes here, each syscall
	// tracepoint (write's and bpf()'s ends) and tp_btf on every syscall's exit.
	floorLinks := func(b *testing.B, _ int, _ uint32) func() {
		var links []link.Link
		for _, tp := range []string{"sys_enter_write", "sys_exit_write", "sys_enter_bpf", "sys_exit_bpf"} {
			l, err := link.Tracepoint("syscalls", tp, floor.SyscallTp, nil)
			if err != nil {
				b.Fatal(err)
			}
			links = append(links, l)
		}
		l, err := link.AttachTracing(link.TracingOptions{Program: floor.SysExitBtf})
		if err != nil {
			b.Fatal(err)
		}
		links = append(links, l)
		alone(b, ours)
		return func() {
			for _, l := range links {
				l.Close()
			}
		}
	}
	configs := []config{
		{"no tracer", func(*testing.B, int, uint32) func() { return func() {} }, 0},
		{"floor: empty programs on the same attach points", floorLinks, 0},
		{"ghostwatch trace devices -o json", traceGadget(ghostwatch, "devices"), 0},
	}
	for _, mode := range []struct {
		name  string
		calls int
	}{{"write", 1000000}, {"getppid", 1000000}} {
		results := map[string][]float64{}
		for range rounds {
			for _, c := range configs {
				results[c.name] = append(results[c.name], runLoop(b, loop, mode.name, mode.calls, c.setup))
			}
		}
		base := median(results[configs[0].name])
		added := func(name string) float64 { return median(results[name]) - base }
		floor := added(configs[1].name)
		fmt.Printf("\n%s loop, median of %d rounds (%.1f ns per syscall untraced); ratios to %q\n", mode.name, rounds, base, configs[1].name)
		fmt.Printf("%-48s %12s %10s\n", "", "added ns", "x floor")
		for _, c := range configs[1:] {
			a := added(c.name)
			fmt.Printf("%-48s %12.1f %10s\n", c.name, a, ratio(a, floor))
		}
	}
}
