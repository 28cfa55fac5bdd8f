// Command runtimebase learns what OCI runtimes do between installing a container's seccomp filter
// and exec'ing its workload (record), for each runtime installed here and each noNewPrivileges
// mode, and merges it into the committed sets in gen/runtimebase: a set only grows, so running it
// again changes nothing unless a runtime did something new. With -check it writes nothing and
// fails if a runtime did something its committed set lacks, or has no set: CI runs that. As root:
// `make runtime-base`.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/ghostwatch/ghostwatch/tracer/ociruntime"
	"github.com/ghostwatch/ghostwatch/tracer/seccomp/runtimebase"
)

func main() {
	dir := flag.String("o", "gen/runtimebase", "directory of the committed sets")
	runs := flag.Int("runs", 200, "containers run per runtime and mode")
	check := flag.Bool("check", false, "write nothing; fail if a runtime does what its committed set lacks")
	flag.Parse()
	if err := run(*dir, *runs, *check); err != nil {
		fmt.Fprintln(os.Stderr, "runtimebase:", err)
		os.Exit(1)
	}
}

func run(dir string, runs int, check bool) error {
	var missing []string
	for _, rt := range runtimebase.Runtimes {
		if _, err := exec.LookPath(rt); err != nil {
			if check {
				return fmt.Errorf("%s is not installed: its committed set cannot be checked", rt)
			}
			fmt.Fprintf(os.Stderr, "runtimebase: %s is not installed: skipped\n", rt)
			continue
		}
		name, version, err := ociruntime.Version(rt)
		if err != nil {
			return err
		}
		base, err := runtimebase.ReadFile(dir, name, version)
		if err != nil {
			return err
		}
		for _, nnp := range []bool{false, true} {
			names, err := record(context.Background(), rt, nnp, runs)
			if err != nil {
				return err
			}
			added := base.Add(nnp, names)
			fmt.Printf("%s: %d syscalls recorded in %d runs, %d not in the committed set %v\n", base.Name(nnp), len(names), runs, len(added), added)
			if len(added) > 0 {
				missing = append(missing, fmt.Sprintf("%s: %v", base.Name(nnp), added))
			}
		}
		if check {
			continue
		}
		if err := base.WriteFile(dir); err != nil {
			return err
		}
	}
	if check && len(missing) > 0 {
		return fmt.Errorf("the runtimes did what their committed start-up sets lack (%s): run make runtime-base and commit gen/runtimebase",
			strings.Join(missing, "; "))
	}
	return nil
}
