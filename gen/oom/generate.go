// Package oom holds the bpf2go bindings of bpf/oom.bpf.c.
package oom

//go:generate go tool bpf2go -go-package oom -target amd64,arm64 -type oom_event -type oom_kind -type oom_seen -type oom_constraint_kind -type cgroup_path -output-stem oom Oom ../../bpf/oom.bpf.c -- -I../../bpf/include -I..
