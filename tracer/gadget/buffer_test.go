package gadget

import "testing"

func TestParseBufferSize(t *testing.T) {
	for in, want := range map[string]uint32{"1048576": 1 << 20, "8M": 8 << 20, "8MiB": 8 << 20, "64k": 64 << 10, "1G": 1 << 30, "4MB": 4 << 20, "4mb": 4 << 20, "256kib": 256 << 10} {
		if got, err := ParseBufferSize(in); err != nil || got != want {
			t.Errorf("ParseBufferSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "3M", "32K", "2G", "8X", "M", "-8M", "1.5M", "8MiBB", "8B"} {
		if _, err := ParseBufferSize(in); err == nil {
			t.Errorf("ParseBufferSize(%q) accepted", in)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]uint64{"1GiB": 1 << 30, "500M": 500 << 20, "2T": 2 << 40, "4096": 4096} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "1.5G", "G", "-1M", "10X"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) accepted", in)
		}
	}
}
