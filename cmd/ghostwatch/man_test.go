package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"testing"

	"github.com/ghostwatch/ghostwatch/tracer/registry"
	"github.com/ghostwatch/ghostwatch/tracer/testutil"
)

// manDir holds the committed man pages, which make man writes.
const manDir = "../../docs/man"

// The committed man pages are what the command line's definition gives today: a page per command,
// each gadget's trace command included (a source check: not in vmtest's guests, which have no
// source tree).
func TestManPagesCommitted(t *testing.T) {
	if os.Getenv("GHOSTWATCH_VMTEST") == "1" {
		t.Skip("a source check: the guests have no source tree")
	}
	pages, err := manPages(newApp(io.Discard, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range registry.Streams() {
		if _, ok := pages["ghostwatch-trace-"+d.Name+".1"]; !ok {
			t.Errorf("no man page for trace %s", d.Name)
		}
	}
	files, err := filepath.Glob(filepath.Join(manDir, "*.1"))
	if err != nil {
		t.Fatal(err)
	}
	var committed, want []string
	for _, f := range files {
		committed = append(committed, filepath.Base(f))
	}
	for name, page := range pages {
		want = append(want, name)
		b, err := os.ReadFile(filepath.Join(manDir, name))
		if err == nil && !bytes.Equal(b, page) {
			t.Errorf("docs/man/%s differs from what the command line gives: run make man", name)
		}
	}
	sort.Strings(want)
	if !slices.Equal(committed, want) {
		t.Errorf("docs/man has %q, the command line has %q: run make man", committed, want)
	}
}

// Every page renders with groff with no warning at all (-ww), which catches unescaped roff.
func TestManPagesRender(t *testing.T) {
	groff := testutil.RequireTool(t, "groff")
	dir := t.TempDir()
	if out, err := command("man", dir).CombinedOutput(); err != nil {
		t.Fatalf("ghostwatch man: %v: %s", err, out)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.1"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no pages written: %v", err)
	}
	for _, f := range files {
		out, err := exec.Command(groff, "-man", "-Tutf8", "-ww", "-z", f).CombinedOutput()
		if err != nil || len(out) > 0 {
			t.Errorf("groff %s: %v: %s", filepath.Base(f), err, out)
		}
	}
}
