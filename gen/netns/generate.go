// Package netns holds the bpf2go bindings of bpf/netns.bpf.c.
package netns

//go:generate go tool bpf2go -go-package netns -target amd64,arm64 -type holder_record -type holder_kind -type netns_event -type netns_kind -type netns_how -output-stem netns Netns ../../bpf/netns.bpf.c -- -I../../bpf/include -I..
