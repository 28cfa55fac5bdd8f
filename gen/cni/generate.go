// Package cni holds the bpf2go bindings of bpf/cni.bpf.c.
package cni

//go:generate go tool bpf2go -go-package cni -target amd64,arm64 -type exec_event -type output_event -type exit_event -type cni_kind -type cni_found -type inode_key -type cni_proc -output-stem cni Cni ../../bpf/cni.bpf.c -- -I../../bpf/include -I..
