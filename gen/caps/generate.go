// Package caps holds the bpf2go bindings of bpf/caps.bpf.c.
package caps

//go:generate go tool bpf2go -go-package caps -target amd64,arm64 -type check_event -type capset_event -type exec_event -type caps_kind -type caps_audit -output-stem caps Caps ../../bpf/caps.bpf.c -- -I../../bpf/include -I..
