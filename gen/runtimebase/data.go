// Package runtimebase holds the committed start-up sets of OCI runtimes, one JSON file per
// runtime and version, written by tools/runtimebase (`make runtime-base`, as root) from the
// runtimes themselves and checked by tracer/seccomp/runtimebase's tests. Not edited by hand.
package runtimebase

import "embed"

// Files are the sets, named RUNTIME-VERSION.json.
//
//go:embed *.json
var Files embed.FS
