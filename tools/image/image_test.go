package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd/oci"
	"github.com/ghostwatch/ghostwatch/tools/ociimage"
	"github.com/ghostwatch/ghostwatch/tracer/container/containertest"
	"github.com/ghostwatch/ghostwatch/tracer/testutil"
	"github.com/opencontainers/runtime-spec/specs-go"
)

// The image, built twice from the same binary, has the same digest; imported into containerd it
// runs ghostwatch as a privileged container in the host's PID namespace, which traces another
// container and names it.
func TestImageTracesAnotherContainer(t *testing.T) {
	testutil.RequirePrivileged(t)
	bin := filepath.Join(t.TempDir(), "ghostwatch")
	build := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-o", bin, "../../cmd/ghostwatch")
	build.Env = append(build.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	spec := ociimage.Spec{
		Name:       "ghostwatch:test",
		Entrypoint: []string{"/usr/bin/ghostwatch"},
		Platforms:  []ociimage.Platform{{Arch: "amd64", Files: []ociimage.File{{Path: "usr/bin/ghostwatch", Source: bin, Mode: 0o755}}}},
	}
	var first, second bytes.Buffer
	digest, err := ociimage.Write(&first, spec)
	if err != nil {
		t.Fatal(err)
	}
	again, err := ociimage.Write(&second, spec)
	if err != nil {
		t.Fatal(err)
	}
	if digest != again || !bytes.Equal(first.Bytes(), second.Bytes()) {
		t.Fatalf("two builds differ: %s, %s", digest, again)
	}

	d := containertest.Start(t)
	imgs := d.Import(t, &first)
	if len(imgs) != 1 || imgs[0].Name != "docker.io/library/ghostwatch:test" || imgs[0].Target.Digest.String() != digest.String() {
		t.Fatalf("imported %+v, want docker.io/library/ghostwatch:test at %s", imgs, digest)
	}
	target := d.Run(t, containertest.Options{Name: "target", Pod: "target-0", Caps: []string{"CAP_SYS_ADMIN"}})

	stdout, stdoutW := io.Pipe()
	stderr, stderrW := io.Pipe()
	t.Cleanup(func() { stdout.Close(); stderr.Close() })
	d.Run(t, containertest.Options{
		Name:   "ghostwatch",
		Image:  imgs[0].Name,
		Args:   []string{"/usr/bin/ghostwatch", "trace", "setns", "-o", "json", "--container", "target"},
		Stdout: stdoutW,
		Stderr: stderrW,
		SpecOpts: []oci.SpecOpts{
			oci.WithPrivileged, oci.WithAllDevicesAllowed, oci.WithHostDevices,
			oci.WithHostNamespace(specs.PIDNamespace),
			oci.WithMounts([]specs.Mount{{Destination: "/run/containerd/containerd.sock", Type: "bind", Source: d.Socket, Options: []string{"rbind", "ro"}}}),
		},
	})
	ready := make(chan struct{})
	var mu sync.Mutex
	var log strings.Builder // ghostwatch's stderr, for failures
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			mu.Lock()
			log.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if strings.Contains(sc.Text(), "Ctrl-C to stop") {
				close(ready)
			}
		}
	}()
	stderrSoFar := func() string { mu.Lock(); defer mu.Unlock(); return log.String() }
	select {
	case <-ready:
	case <-time.After(testutil.Wait):
		t.Fatalf("ghostwatch in its container did not start within %v; stderr:\n%s", testutil.Wait, stderrSoFar())
	}
	pid := target.Exec(t, d, "unshare", "-n", "true")

	events := make(chan map[string]any)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var ev map[string]any
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				events <- ev
			}
		}
		close(events)
	}()
	deadline := time.After(testutil.Wait)
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("ghostwatch's output ended before the target's unshare; stderr:\n%s", stderrSoFar())
			}
			proc, _ := ev["proc"].(map[string]any)
			if got, _ := proc["pid"].(float64); int(got) != pid {
				continue
			}
			c, _ := ev["container"].(map[string]any)
			if c["id"] != target.ID || c["name"] != "target" || c["pod"] != "target-0" {
				t.Errorf("container = %v, want %s (target, pod target-0)", c, target.ID)
			}
			return
		case <-deadline:
			t.Fatalf("no event for the target's unshare (pid %d) within %v; stderr:\n%s", pid, testutil.Wait, stderrSoFar())
		}
	}
}
