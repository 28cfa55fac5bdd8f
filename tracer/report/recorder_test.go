package report_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ghostwatch/ghostwatch/tracer/report"
)

// The report appears only when written, whole, under its name; a recorder closed without writing
// leaves nothing in the directory.
func TestRecorderLeavesNothingUnwritten(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "r.html")
	r, err := report.NewRecorder(path)
	if err != nil {
		t.Fatal(err)
	}
	r.AddLine([]byte(`{"type":"summary","gadget":"setns","events":0,"lost":0,"duration":"1s"}`))
	r.Close()
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("closed without writing, the directory has %v", entries)
	}

	r, err = report.NewRecorder(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	r.AddLine([]byte(`{"type":"summary","gadget":"setns","events":0,"lost":2,"duration":"1s"}`))
	if err := r.Write(report.Options{Title: "t"}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil || !strings.Contains(string(b), `"lost":2`) {
		t.Errorf("report %q: %v", b, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("the directory has %v, want the report only", entries)
	}
	if _, err := report.NewRecorder(filepath.Join(dir, "missing", "r.html")); err == nil {
		t.Error("a report in a missing directory was accepted")
	}
}
