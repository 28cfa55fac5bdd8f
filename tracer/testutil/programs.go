package testutil

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// Wait is how long a test waits for an event it caused before failing: 10 s, and a minute in
// vmtest's guests, which qemu emulates (TCG) many times slower than the host runs, on CPUs the
// host's other work shares.
var Wait = func() time.Duration {
	if os.Getenv("GHOSTWATCH_VMTEST") == "1" {
		return time.Minute
	}
	return 10 * time.Second
}()

// Programs lists the BPF programs loaded in the kernel now: id to name.
func Programs(t testing.TB) map[int]string {
	t.Helper()
	ids := map[int]string{}
	var id ebpf.ProgramID
	for {
		next, err := ebpf.ProgramGetNextID(id)
		if err != nil {
			return ids
		}
		id = next
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue // unloaded meanwhile
		}
		if info, err := p.Info(); err == nil {
			ids[int(id)] = info.Name
		}
		p.Close()
	}
}

// WaitUnloaded fails the test unless, within Wait, every object that list shows was already in
// before. The kernel frees programs and maps shortly after their last reference goes, so this
// polls.
func WaitUnloaded[K comparable](t testing.TB, before map[K]string, list func(testing.TB) map[K]string) {
	t.Helper()
	deadline := time.Now().Add(Wait)
	for {
		var left []string
		for key, name := range list(t) {
			if _, ok := before[key]; !ok {
				left = append(left, fmt.Sprintf("%v (%s)", key, name))
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			slices.Sort(left)
			t.Fatalf("left behind after %v: %v", Wait, left)
		}
		// cilium/ebpf unmaps a global-variable map (.bss, .data) only when the garbage collector
		// finds its mapping unreferenced; the kernel frees the map after that.
		runtime.GC()
		time.Sleep(50 * time.Millisecond) // polling kernel lists: there is nothing to wait on
	}
}

// KernelObjects lists what a gadget may leave behind: loaded programs, maps and links (by kind
// and id) and this process's mounts (by mount point and type).
func KernelObjects(t testing.TB) map[string]string {
	t.Helper()
	out := map[string]string{}
	for id, name := range Programs(t) {
		out[fmt.Sprintf("program %d", id)] = name
	}
	var mid ebpf.MapID
	for {
		next, err := ebpf.MapGetNextID(mid)
		if err != nil {
			break
		}
		mid = next
		if m, err := ebpf.NewMapFromID(mid); err == nil {
			if info, err := m.Info(); err == nil {
				out[fmt.Sprintf("map %d", mid)] = info.Name
			}
			m.Close()
		}
	}
	it := new(link.Iterator)
	for it.Next() {
		out[fmt.Sprintf("link %d", it.ID)] = fmt.Sprintf("%T", it.Link)
	}
	if err := it.Err(); err != nil {
		t.Fatalf("listing links: %v", err)
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(mounts), "\n") {
		// id parent major:minor root mountpoint options... - fstype source options
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		fstype := ""
		if i := slices.Index(f, "-"); i >= 0 && i+1 < len(f) {
			fstype = f[i+1]
		}
		out["mount "+f[4]] = fstype
	}
	return out
}
