package gadget

import (
	"fmt"
	"math/bits"
	"strconv"
	"strings"
)

// Ring buffer sizes (Options.BufferSize). The kernel wants a power of two, a whole number of pages.
const (
	MinBufferSize = 64 << 10
	MaxBufferSize = 1 << 30
)

// ParseBufferSize reads a ring buffer size: a size as ParseSize reads it, a power of two between
// MinBufferSize and MaxBufferSize.
func ParseBufferSize(s string) (uint32, error) {
	size, err := ParseSize(s)
	if err != nil {
		return 0, err
	}
	if size < MinBufferSize || size > MaxBufferSize || bits.OnesCount64(size) != 1 {
		return 0, fmt.Errorf("%s is not a power of two from 64K to 1G", s)
	}
	return uint32(size), nil
}

// ParseSize reads a size: bytes, or a number with K, M, G or T (powers of 1024, "KiB" and "MB"
// spellings too), e.g. 8M.
func ParseSize(s string) (uint64, error) {
	num := strings.TrimRightFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	unit := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(s[len(num):]), "B"), "I")
	shift := map[string]uint{"": 0, "K": 10, "M": 20, "G": 30, "T": 40}
	sh, ok := shift[unit]
	n, err := strconv.ParseUint(num, 10, 32)
	if !ok || err != nil {
		return 0, fmt.Errorf("%q is not a size: want bytes or a number with K, M, G or T, e.g. 8M", s)
	}
	return n << sh, nil
}
