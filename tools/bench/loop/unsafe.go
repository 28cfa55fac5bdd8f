//go:build amd64

package main

import (
	"syscall"
	"unsafe"
)

func unsafePointer(b []byte) unsafe.Pointer { return unsafe.Pointer(&b[0]) }

func unsafePointerStat(st *syscall.Stat_t) unsafe.Pointer { return unsafe.Pointer(st) }

func unsafePointerArgv(argv []uintptr) unsafe.Pointer { return unsafe.Pointer(&argv[0]) }
