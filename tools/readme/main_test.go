package main

import (
	"os"
	"strings"
	"testing"
)

// The README's gadget list, and each gadget's page with its JSON objects and attach points, are the
// registry's; every gadget has a page (a source check: it runs here, not in vmtest's guests, which
// have no source tree).
func TestDocsDocumentEveryGadget(t *testing.T) {
	pages, err := generate("../..")
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range pages {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != want {
			t.Errorf("%s does not document the registered gadgets as the registry does: run make generate", strings.TrimPrefix(path, "../../"))
		}
	}
}
