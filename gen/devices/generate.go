// Package devices holds the bpf2go bindings of bpf/devices.bpf.c.
package devices

//go:generate go tool bpf2go -go-package devices -target amd64,arm64 -type rule_event -type program_event -type denied_event -type devices_kind -type denied_by -type denied_node -type cgroup_path -type devcg_state -output-stem devices Devices ../../bpf/devices.bpf.c -- -I../../bpf/include -I..
