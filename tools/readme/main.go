// Command readme writes the registry's documentation of every gadget (tracer/registry.Docs) into
// README.md: `make generate` runs it, and a test fails when the README differs.
package main

import (
	"fmt"
	"os"

	"github.com/ghostwatch/ghostwatch/tracer/registry"
)

func main() {
	const path = "README.md"
	b, err := os.ReadFile(path)
	if err == nil {
		var out string
		if out, err = registry.ReplaceDocs(string(b)); err == nil {
			err = os.WriteFile(path, []byte(out), 0o644)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "readme:", err)
		os.Exit(1)
	}
}
