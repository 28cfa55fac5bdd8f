// Package signals holds the bpf2go bindings of bpf/signals.bpf.c.
package signals

//go:generate go tool bpf2go -go-package signals -target amd64,arm64 -type signal_event -type signals_kind -type signals_why -type signals_call -output-stem signals Signals ../../bpf/signals.bpf.c -- -I../../bpf/include -I..
