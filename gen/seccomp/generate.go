// Package seccomp holds the bpf2go bindings of bpf/seccomp.bpf.c.
package seccomp

//go:generate go tool bpf2go -go-package seccomp -target amd64,arm64 -type event -type recording -type syscall_table -type arm_reason -type seccomp_kind -output-stem seccomp Seccomp ../../bpf/seccomp.bpf.c -- -I../../bpf/include -I..
