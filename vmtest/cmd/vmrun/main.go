// Command vmrun runs a test binary inside a VM: use it as `go test -exec vmrun`. The kernel and the
// guest init come from VMTEST_KERNEL and VMTEST_INIT; VMTEST_TIMEOUT bounds the run (default 10m).
// VMTEST_ARCH=arm64 boots an arm64 kernel with the programs of VMTEST_ROOT (vmtest.Arm64Root).
// Its exit status is the guest test's; a guest that reports none fails with its console log. An
// interrupt (SIGINT, SIGTERM) stops the guest and removes its files.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ghostwatch/ghostwatch/vmtest"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: vmrun TEST-BINARY [ARGS...] (with VMTEST_KERNEL and VMTEST_INIT set)")
		os.Exit(2)
	}
	o := vmtest.Options{Arch: os.Getenv("VMTEST_ARCH"), Root: os.Getenv("VMTEST_ROOT"), Kernel: os.Getenv("VMTEST_KERNEL"),
		Init: os.Getenv("VMTEST_INIT"), Timeout: 10 * time.Minute, Output: os.Stdout}
	if o.Kernel == "" || o.Init == "" {
		fmt.Fprintln(os.Stderr, "vmrun: VMTEST_KERNEL (a vmlinuz) and VMTEST_INIT (the vminit binary) must be set")
		os.Exit(2)
	}
	if s := os.Getenv("VMTEST_TIMEOUT"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			fmt.Fprintf(os.Stderr, "vmrun: VMTEST_TIMEOUT=%q is not a duration\n", s)
			os.Exit(2)
		}
		o.Timeout = d
	}
	dir, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, "vmrun:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	status, err := vmtest.RunTest(ctx, o, dir, os.Args[1], os.Args[2:]...)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "vmrun:", err)
		os.Exit(1)
	}
	os.Exit(status)
}
