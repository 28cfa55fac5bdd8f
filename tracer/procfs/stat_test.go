package procfs

import (
	"os"
	"testing"
)

func TestParseStat(t *testing.T) {
	s, ok := parseStat("4242 (a (b) c) S 17 4242 4242 0 -1 4194560 111 0 0 0 5 3 0 0 20 0 1 0 98765 123 456")
	if !ok || s.Comm != "a (b) c" || s.PPid != 17 || s.Flags != 4194560 || s.KernelThread() || s.Start != 98765 {
		t.Errorf("parsed %+v, %v", s, ok)
	}
	if s, ok := parseStat("2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 1 0 0"); !ok || !s.KernelThread() {
		t.Errorf("kthreadd parsed %+v, %v: want a kernel thread", s, ok)
	}
	for _, bad := range []string{"", "12 comm S 1", "12 (x) S", "12 (x) S 1 2 3 4 5 6 7"} {
		if _, ok := parseStat(bad); ok {
			t.Errorf("parsed %q", bad)
		}
	}
	if s, ok := ReadStat(os.Getpid()); !ok || s.PPid != uint32(os.Getppid()) {
		t.Errorf("ReadStat(self) = %+v, %v; want parent %d", s, ok, os.Getppid())
	}
}
