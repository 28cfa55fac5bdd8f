// Package setns holds the bpf2go bindings of bpf/setns.bpf.c.
package setns

//go:generate go tool bpf2go -go-package setns -target amd64,arm64 -type event -type setns_kind -type setns_syscall -type setns_fd_kind -type ancestor -type rt_args -type then_event -output-stem setns Setns ../../bpf/setns.bpf.c -- -I../../bpf/include -I..
