package seccomp

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ghostwatch/ghostwatch/tracer/container"
	"github.com/ghostwatch/ghostwatch/tracer/event"
	"github.com/ghostwatch/ghostwatch/tracer/testutil"
)

// A container whose init ran and exited before its namespaces could be read from /proc (the
// collection knows its pid only, as when containerd's event comes late) is still recorded: the
// task that armed the recording is its init.
func TestSessionFindsAContainerGoneBeforeItsNamespacesWereRead(t *testing.T) {
	testutil.RequirePrivileged(t)
	rec, err := New(Options{New: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	coll := container.NewCollection()
	dir := t.TempDir()
	log, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	s := NewSession(rec, coll, SessionOptions{Out: dir, Log: log})

	cmd := exec.Command("unshare", "--mount", "true") // its exec of true arms the recording
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	coll.Add(&container.Container{Container: &event.Container{ID: "c1", Name: "short", Runtime: "containerd"},
		Pid: uint32(cmd.Process.Pid), NS: map[string]uint32{}})
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), testutil.Wait)
	defer cancel()
	if err := s.Run(ctx, true, nil); err != nil { // returns once the recording has ended
		t.Fatal(err)
	}
	logged, _ := os.ReadFile(log.Name())
	if !strings.Contains(string(logged), "recording short from its first exec") {
		t.Errorf("the container was not recorded: %s", logged)
	}
	data, err := os.ReadFile(filepath.Join(dir, "short.json"))
	if err != nil {
		t.Fatalf("no profile: %v; log: %s", err, logged)
	}
	p, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if names := p.Syscalls[0].Names; !slices.Contains(names, "execve") || !slices.Contains(names, "exit_group") {
		t.Errorf("profile allows %v, want execve and exit_group among them", names)
	}
}
