package event

import "testing"

func TestCgroupPath(t *testing.T) {
	names := make([][CgroupNameLen]int8, 8)
	for i, n := range []string{"abc", "k8s.io"} {
		for j := range len(n) {
			names[i][j] = int8(n[j])
		}
	}
	for _, c := range []struct {
		depth     uint32
		truncated bool
		want      string
	}{{0, false, "/"}, {1, false, "/abc"}, {2, false, "/k8s.io/abc"}, {2, true, "/.../k8s.io/abc"}} {
		if got := CgroupPath(names, c.depth, c.truncated); got != c.want {
			t.Errorf("depth %d truncated %v: %q, want %q", c.depth, c.truncated, got, c.want)
		}
	}
}
