package main

import (
	"os"
	"testing"

	"github.com/ghostwatch/ghostwatch/tracer/registry"
)

// The README's gadget list, JSON objects and attach points are the registry's (a source check:
// it runs here, not in vmtest's guests, which have no source tree).
func TestREADMEDocumentsEveryGadget(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	want, err := registry.ReplaceDocs(string(b))
	if err != nil {
		t.Fatal(err)
	}
	if want != string(b) {
		t.Error("README.md does not document the registered gadgets as the registry does: run make generate")
	}
}
