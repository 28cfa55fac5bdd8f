package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/ghostwatch/ghostwatch/tracer/registry"
)

// generate returns README.md and every page of docs/ under root, by path, with the registry's
// sections written in. Every section must be somewhere, and a gadget's own sections on its page
// docs/gadgets/PAGE.md (its name, or a snapshot's group), so that a new gadget without a page
// fails here.
func generate(root string) (map[string]string, error) {
	docs, err := registry.Docs()
	if err != nil {
		return nil, err
	}
	if docs["kernels"], err = kernelTable(); err != nil {
		return nil, err
	}
	paths := []string{filepath.Join(root, "README.md")}
	err = filepath.WalkDir(filepath.Join(root, "docs"), func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".md") {
			paths = append(paths, path)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	pages := map[string]string{}
	where := map[string][]string{}
	for _, path := range paths {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		text, used, err := registry.ReplaceDocs(string(b), docs)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		pages[path] = text
		rel, _ := filepath.Rel(root, path)
		for _, name := range used {
			where[name] = append(where[name], rel)
		}
	}
	var missing []string
	for name := range docs {
		want := ""
		if kind, gadget, ok := strings.Cut(name, ":"); ok && kind != "" {
			want = filepath.Join("docs", "gadgets", registry.Page(gadget)+".md")
		}
		if len(where[name]) == 0 || want != "" && !slices.Contains(where[name], want) {
			if want == "" {
				want = "a page"
			}
			missing = append(missing, fmt.Sprintf("<!-- registry:%s --> in %s", name, want))
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return nil, fmt.Errorf("the documentation lacks %s", strings.Join(missing, ", "))
	}
	return pages, nil
}
