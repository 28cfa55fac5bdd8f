// Package netlink holds the bpf2go bindings of bpf/netlink.bpf.c.
package netlink

//go:generate go tool bpf2go -go-package netlink -target amd64,arm64 -type extack_event -type ack_event -type netlink_kind -output-stem netlink Netlink ../../bpf/netlink.bpf.c -- -I../../bpf/include -I..
