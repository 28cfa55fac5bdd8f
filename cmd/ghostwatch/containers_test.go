package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ghostwatch/ghostwatch/tracer/container/containertest"
	"github.com/ghostwatch/ghostwatch/tracer/testutil"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

var sysAdmin = []string{"CAP_SYS_ADMIN"}

func TestPsListsContainersWithTheirNamespaces(t *testing.T) {
	testutil.RequirePrivileged(t)
	d := containertest.Start(t)
	web := d.Run(t, containertest.Options{Name: "web", Pod: "web-0"})
	db := d.Run(t, containertest.Options{Name: "db", Pod: "db-0"})

	var stdout, stderr bytes.Buffer
	if code := run([]string{"ghostwatch", "ps", "-o", "json", "--containerd-socket", d.Socket}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	seen := map[string]bool{}
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		var c struct {
			ID, Name, Pod, Runtime, Image string
			K8sNamespace                  string `json:"k8s_namespace"`
			Pid                           int
			NS                            map[string]uint32 `json:"ns"`
		}
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatalf("%q: %v", sc.Text(), err)
		}
		for _, want := range []*containertest.Container{web, db} {
			if c.ID != want.ID {
				continue
			}
			seen[c.ID] = true
			if c.Name != want.Name || c.Pod != want.Pod || c.K8sNamespace != "default" || c.Runtime != "containerd" ||
				c.Image != containertest.ImageName || c.Pid != want.Pid {
				t.Errorf("ps shows %+v for %s", c, want.ID)
			}
			for _, ns := range []string{"mnt", "net", "pid", "user", "uts", "ipc", "cgroup", "time"} {
				if got, real := c.NS[ns], testutil.NSInode(t, want.Pid, ns); got != real {
					t.Errorf("%s: %s namespace %d, /proc/%d/ns/%s says %d", want.Name, ns, got, want.Pid, ns, real)
				}
			}
		}
	}
	if len(seen) != 2 {
		t.Errorf("ps listed %d of the 2 test containers:\n%s", len(seen), stdout.String())
	}
}

func TestTraceSetnsNamesContainers(t *testing.T) {
	testutil.RequirePrivileged(t)
	d := containertest.Start(t)
	db := d.Run(t, containertest.Options{Name: "db", Pod: "db-0", Caps: sysAdmin})
	web := d.Run(t, containertest.Options{Name: "web", Pod: "web-0", Caps: sysAdmin})

	t.Run("target container", func(t *testing.T) {
		tr := startTracing(t, "trace", "setns", "-o", "json", "--containerd-socket", d.Socket)
		cmd := exec.Command("nsenter", "-t", fmt.Sprint(db.Pid), "-n", "-m", "true")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("nsenter: %v: %s", err, out)
		}
		ev := tr.next(t, "nsenter's setns", func(o map[string]any) bool {
			return num(get(o, "proc", "pid")) == int64(cmd.Process.Pid)
		})
		if ev["container"] != nil {
			t.Errorf("actor is the host, but container = %v", ev["container"])
		}
		if get(ev, "setns", "target_container", "id") != db.ID || get(ev, "setns", "target_container", "name") != "db" {
			t.Errorf("target_container = %v, want %s (db)", get(ev, "setns", "target_container"), db.ID)
		}
	})

	t.Run("--container", func(t *testing.T) {
		tr := startTracing(t, "trace", "setns", "-o", "json", "--containerd-socket", d.Socket, "--container", "web")
		dbPid := db.Exec(t, d, "unshare", "-n", "true")
		webPid := web.Exec(t, d, "unshare", "-n", "true")
		ev := tr.next(t, "web's unshare", func(o map[string]any) bool {
			if num(get(o, "proc", "pid")) == int64(dbPid) {
				t.Errorf("--container web let db's event through")
			}
			return num(get(o, "proc", "pid")) == int64(webPid)
		})
		if get(ev, "container", "name") != "web" || get(ev, "container", "pod") != "web-0" {
			t.Errorf("container = %v", ev["container"])
		}
	})
}

// Without containerd, tracing goes on, with one line saying how containers are found instead.
func TestTraceWithoutContainerd(t *testing.T) {
	testutil.RequirePrivileged(t)
	socket := deadSocket(t)
	tr := startTracing(t, "trace", "setns", "-o", "json", "--containerd-socket", socket)
	var warnings []string
	for _, line := range strings.Split(tr.stderr.String(), "\n") {
		if strings.Contains(line, "warning") {
			warnings = append(warnings, line)
		}
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], socket) || !strings.Contains(warnings[0], "cgroup path") {
		t.Errorf("warnings = %q, want one line naming the socket and the cgroup fallback", warnings)
	}
}

// Commands that watch containers end while containers start and stop: a container event late at
// exit must not reach the kernel filter of a gadget closing (an error on a closed map) or closed
// (a nil dereference in SetMntNS), and nothing that watches containers outlives the command. Run
// in this process, so that a watcher still running after run returns is seen.
func TestNoContainerWatcherOutlivesItsCommand(t *testing.T) {
	testutil.RequirePrivileged(t)
	d := containertest.Start(t)
	// Each container that comes and goes is a create, a start, an exit and a delete event for
	// the watcher, and the create is handled with two calls to containerd.
	const churners = 4
	stop := make(chan struct{})
	churned := make(chan int)
	for range churners {
		go func() {
			n := 0
			defer func() { churned <- n }()
			for {
				select {
				case <-stop:
					return
				default:
				}
				d.Run(t, containertest.Options{Name: "churn"}).Remove(d)
				n++
			}
		}()
	}
	stopChurn := sync.OnceValue(func() int {
		close(stop)
		total := 0
		for range churners {
			total += <-churned
		}
		return total
	})
	t.Cleanup(func() { stopChurn() }) // before the daemon stops, on failure too
	commands := [][]string{{"ps"}, {"netns", "holders"}}
	for i := range 12 {
		commands = append(commands, []string{"trace", "setns", "--container", "churn", "--duration", fmt.Sprintf("%dms", 50+10*i)})
	}
	for _, cmd := range commands {
		var stdout, stderr bytes.Buffer
		args := append(append([]string{"ghostwatch"}, cmd...), "-o", "json", "--containerd-socket", d.Socket)
		if code := run(args, &stdout, &stderr); code != 0 {
			t.Fatalf("%s: exit %d: %s", cmd, code, stderr.String())
		}
		if strings.Contains(stderr.String(), "container filter") {
			t.Fatalf("%s: the kernel filter was updated as the gadget closed: %s", cmd, stderr.String())
		}
		if left := containerGoroutines(); left != "" {
			t.Fatalf("%s: a container watcher outlived the command:\n%s", cmd, left)
		}
	}
	if total := stopChurn(); total < 10 {
		t.Errorf("only %d containers came and went: the test did not test", total)
	}
}

// containerGoroutines returns the stacks of goroutines running in tracer/container.
func containerGoroutines() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "ghostwatch/tracer/container.") && !strings.Contains(g, "containerGoroutines") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}

// ps --pods shows a pod whose containers share the sandbox's PID namespace, in JSON and as a table.
func TestPsPods(t *testing.T) {
	testutil.RequirePrivileged(t)
	d := containertest.StartCRI(t, containertest.CRIConfig{})
	pod := d.RunPodNS(t, "web", &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_POD})
	pod.Run(t, d, containertest.PodContainer{Name: "app"})

	var stdout, stderr bytes.Buffer
	if code := run([]string{"ghostwatch", "ps", "--pods", "-o", "json", "--containerd-socket", d.Socket}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var got struct {
		Pod        string
		PIDShared  bool `json:"pid_shared"`
		Containers []struct {
			Name    string
			Sandbox bool
			Shares  map[string]string
		}
	}
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("%q: %v", stdout.String(), err)
	}
	if got.Pod != "web" || !got.PIDShared || len(got.Containers) != 2 || !got.Containers[0].Sandbox ||
		got.Containers[1].Name != "app" || got.Containers[1].Shares["pid"] != "sandbox" || got.Containers[1].Shares["mnt"] != "own" {
		t.Errorf("ps --pods -o json: %s", stdout.String())
	}

	stdout.Reset()
	if code := run([]string{"ghostwatch", "ps", "--pods", "-o", "table", "--containerd-socket", d.Socket}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "NAMESPACE") ||
		!slices.Equal(strings.Fields(lines[2])[:2], []string{"default", "web"}) || strings.Fields(lines[2])[2] != "app" ||
		!slices.Equal(strings.Fields(lines[2])[4:10], []string{"sandbox", "sandbox", "sandbox", "sandbox", "own", "host"}) {
		t.Errorf("ps --pods -o table:\n%s", stdout.String())
	}
}

// deadSocket is a socket that nobody answers on: containerd's, left behind when it stopped.
func deadSocket(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "containerd.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	return path
}
