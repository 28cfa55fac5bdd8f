// Package setnstest builds records of the setns gadget as its BPF program writes them, for tests
// and benchmarks of decoding and encoding.
package setnstest

import (
	"unsafe"

	gen "github.com/ghostwatch/ghostwatch/gen/setns"
)

// Record is a kernel record: a setns into a net namespace by fd (setns true), or an unshare of
// several types that failed.
func Record(setns bool) []byte {
	var rec gen.SetnsEvent
	rec.Hdr.Kind = uint32(gen.SetnsSetnsKindSETNS_CALL)
	rec.Hdr.TsBootNs = 123456789
	rec.Hdr.Pid, rec.Hdr.Tid, rec.Hdr.Ppid = 4242, 4243, 1
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&rec.Hdr.Comm[0])), len(rec.Hdr.Comm)), "nsenter \"<x>\"")
	for i := range rec.Hdr.Ns {
		rec.Hdr.Ns[i] = 4026531830 + uint32(i)
	}
	if setns {
		rec.Syscall, rec.Fd, rec.FdKind = gen.SetnsSetnsSyscallSYSCALL_SETNS, 3, gen.SetnsSetnsFdKindFD_NSFS
		rec.Flags, rec.NsMask = 0x40000000, 0x40000000
		rec.Target[1] = 4026532177
	} else {
		rec.Syscall, rec.Flags, rec.NsMask = gen.SetnsSetnsSyscallSYSCALL_UNSHARE, 0x6c020000, 0x6c020000
		for i := range rec.Target {
			rec.Target[i] = 4026532300 + uint32(i)
		}
		rec.Ret = -1
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&rec)), unsafe.Sizeof(rec))
}

// ThenRecord is a then record: an exec of tcpdump that failed with ENOENT (exec true), or an exit
// with status 1 without exec.
func ThenRecord(exec bool) []byte {
	var rec gen.SetnsThenEvent
	rec.Hdr.Kind = uint32(gen.SetnsSetnsKindSETNS_THEN)
	rec.Hdr.TsBootNs, rec.Session, rec.EnteredBy = 223456789, 123456789, 4243
	rec.Hdr.Pid, rec.Hdr.Tid, rec.Hdr.Ppid = 4242, 4242, 1
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&rec.Hdr.Comm[0])), len(rec.Hdr.Comm)), "nsenter")
	if exec {
		rec.Exec, rec.Ret, rec.Argc = 1, -2, 2
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&rec.File[0])), len(rec.File)), "/usr/bin/tcpdump")
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&rec.Args[0][0])), len(rec.Args[0])), "tcpdump")
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&rec.Args[1][0])), len(rec.Args[1])), "-i\"eth0\"")
	} else {
		rec.ExitCode = 1 << 8
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&rec)), unsafe.Sizeof(rec))
}
