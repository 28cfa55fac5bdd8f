// Package header holds the Go types of bpf/include/header.h, shared by every gadget's events.
package header

//go:generate go tool bpf2go -go-package header -target amd64,arm64 -output-stem header Header ../../bpf/header.bpf.c -- -I../../bpf/include -I..
