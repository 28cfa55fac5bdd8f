// Command readme writes the registry's documentation of every gadget (tracer/registry.Docs) into
// README.md and the pages of docs/: `make generate` runs it, and a test fails when a page differs.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := run("."); err != nil {
		fmt.Fprintln(os.Stderr, "readme:", err)
		os.Exit(1)
	}
}

func run(root string) error {
	pages, err := generate(root)
	if err != nil {
		return err
	}
	for path, text := range pages {
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			return err
		}
	}
	return nil
}
