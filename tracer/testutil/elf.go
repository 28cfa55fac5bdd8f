package testutil

import (
	"bytes"
	"encoding/binary"
)

// Executable returns a static x86 executable, 64-bit (x86-64) or not (i386), whose only content is
// code, loaded read-and-execute and run from its first byte: programs with exactly the syscalls a
// test or tool wants, with no compiler needed to make them.
func Executable(code []byte, is64 bool) []byte {
	var b bytes.Buffer
	le := func(v ...any) {
		for _, x := range v {
			binary.Write(&b, binary.LittleEndian, x)
		}
	}
	class, machine, ehsize, phsize := byte(1), uint16(3), uint16(52), uint16(32) // ELFCLASS32, EM_386
	if is64 {
		class, machine, ehsize, phsize = 2, 0x3e, 64, 56 // ELFCLASS64, EM_X86_64
	}
	base, headers := uint64(0x08048000), uint64(ehsize+phsize)
	if is64 {
		base = 0x400000
	}
	size := headers + uint64(len(code))
	// addr writes an address or offset: 8 bytes in ELF64, 4 in ELF32.
	addr := func(v uint64) {
		if is64 {
			le(v)
		} else {
			le(uint32(v))
		}
	}
	b.Write([]byte{0x7f, 'E', 'L', 'F', class, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0}) // little-endian
	le(uint16(2), machine, uint32(1))                                            // ET_EXEC
	addr(base + headers)                                                         // entry
	addr(uint64(ehsize))                                                         // program headers
	addr(0)                                                                      // no section headers
	le(uint32(0), ehsize, phsize, uint16(1), uint16(0), uint16(0), uint16(0))
	// One PT_LOAD, r-x, of the whole file. ELF64 puts the flags second, ELF32 seventh.
	if is64 {
		le(uint32(1), uint32(5), uint64(0), base, base, size, size, uint64(0x1000))
	} else {
		le(uint32(1), uint32(0), uint32(base), uint32(base), uint32(size), uint32(size), uint32(5), uint32(0x1000))
	}
	b.Write(code)
	return b.Bytes()
}
