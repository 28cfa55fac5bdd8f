// Package floor holds the bpf2go bindings of bpf/floor.bpf.c: empty programs that benchmarks
// measure gadgets against.
package floor

//go:generate go tool bpf2go -go-package floor -target amd64,arm64 -output-stem floor Floor ../../bpf/floor.bpf.c -- -I../../bpf/include -I..
