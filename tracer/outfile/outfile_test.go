package outfile_test

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/ghostwatch/ghostwatch/tracer/outfile"
)

// A file appears only when committed, whole, under its name (replacing an older one); an aborted
// one leaves nothing. A directory is refused at once, and an error names the destination, not the
// temporary file.
func TestWholeOrNothing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.json")
	f, err := outfile.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("half")
	f.Abort()
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("aborted, the directory has %v", entries)
	}
	os.WriteFile(path, []byte("old"), 0o600)
	if err := outfile.WriteFile(path, []byte("new")); err != nil {
		t.Fatal(err)
	}
	if data, err := os.ReadFile(path); string(data) != "new" || err != nil {
		t.Errorf("%s holds %q (%v), want new", path, data, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("the directory has %v, want the file only", entries)
	}

	if _, err := outfile.Create(dir); !errors.Is(err, syscall.EISDIR) {
		t.Errorf("a directory as the destination: %v, want EISDIR", err)
	}
	missing := filepath.Join(dir, "missing", "out.json")
	if _, err := outfile.Create(missing); err == nil || err.Error() != "open "+missing+": no such file or directory" {
		t.Errorf("in a missing directory: %v, want the destination named", err)
	}
}
