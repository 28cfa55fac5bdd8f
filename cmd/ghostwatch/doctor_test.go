package main

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/ghostwatch/ghostwatch/tracer/attach"
	"github.com/ghostwatch/ghostwatch/tracer/container/containertest"
	"github.com/ghostwatch/ghostwatch/tracer/cri"
	"github.com/ghostwatch/ghostwatch/tracer/kernel"
	"github.com/ghostwatch/ghostwatch/tracer/testutil"
)

// runDoctor runs doctor -o json and returns its report, the report as text and how long it took.
func runDoctor(t *testing.T, socket string) (doctorReport, string, time.Duration) {
	t.Helper()
	var r doctorReport
	start := time.Now()
	var stdout, stderr strings.Builder
	if code := run([]string{"ghostwatch", "doctor", "-o", "json", "--containerd-socket", socket}, &stdout, &stderr); code != 0 {
		t.Fatalf("doctor: exit %d: %s", code, stderr.String())
	}
	took := time.Since(start)
	if err := json.Unmarshal([]byte(stdout.String()), &r); err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	printDoctor(&text, r)
	return r, text.String(), took
}

// cniBinDir writes a CNI bin dir with Debian's loopback and host-local, and a plugin that runs
// script (sh, $dir being the bin dir) and then becomes Debian's plugin of its name.
func cniBinDir(t *testing.T, plugin, script string) string {
	t.Helper()
	dir := t.TempDir()
	for _, p := range []string{"loopback", "host-local"} {
		if err := os.Symlink(filepath.Join("/usr/lib/cni", p), filepath.Join(dir, p)); err != nil {
			t.Fatal(err)
		}
	}
	body := "#!/bin/sh\ndir=${0%/*}\n" + script + "\nexec /usr/lib/cni/" + plugin + "\n"
	if err := os.WriteFile(filepath.Join(dir, plugin), []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// hangingDEL writes a CNI bin dir whose ptp plugin's DEL waits on a FIFO until release, after
// saying so on another FIFO; loopback and host-local are Debian's.
func hangingDEL(t *testing.T) (dir string, started string, release func()) {
	t.Helper()
	dir = cniBinDir(t, "ptp", "if [ \"$CNI_COMMAND\" = DEL ] && [ ! -e $dir/open ]; then\n"+
		"  echo del >$dir/started\n  read _ <$dir/gate\nfi")
	started, gate := filepath.Join(dir, "started"), filepath.Join(dir, "gate")
	for _, f := range []string{started, gate} {
		if err := syscall.Mkfifo(f, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir, started, func() {
		os.WriteFile(filepath.Join(dir, "open"), nil, 0o644)
		// O_RDWR never blocks on a FIFO: the waiting DEL reads the line and goes on.
		if f, err := os.OpenFile(gate, os.O_RDWR, 0); err == nil {
			f.WriteString("go\n")
			f.Close()
		}
	}
}

// doctor asks containerd's CRI for its Status: a healthy one answers ready; while a pod's CNI DEL
// hangs, doctor still answers (within the runtime's deadlines) and lists the DEL, with its pod and where it waits.
// (containerd 1.6's Status takes no lock a DEL holds, even with its CNI configuration reloaded
// meanwhile: it answers here; TestDoctorCRITimeout covers a runtime that does not.)
func TestDoctorCRIStatus(t *testing.T) {
	testutil.RequirePrivileged(t)
	bin, started, release := hangingDEL(t)
	d := containertest.StartCRI(t, containertest.CRIConfig{CNIBinDir: bin})
	pod := d.RunPod(t, "doctor-del")

	r, text, _ := runDoctor(t, d.Socket)
	if len(r.CRI) == 0 || r.CRI[0].Socket != d.Socket || !r.CRI[0].Answered || !r.CRI[0].RuntimeReady || !r.CRI[0].NetworkReady ||
		r.CRI[0].Runtime != "containerd" || len(r.CNIInFlight) != 0 {
		t.Fatalf("healthy containerd: %+v, in flight %+v", r.CRI, r.CNIInFlight)
	}
	if !strings.Contains(text, "containerd at "+d.Socket+": RuntimeReady yes, NetworkReady yes, answered in") {
		t.Errorf("text:\n%s", text)
	}

	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, err := d.CRI.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: pod.ID})
		stopped <- err
	}()
	t.Cleanup(func() {
		if err := <-stopped; err != nil {
			t.Errorf("StopPodSandbox once the DEL went on: %v", err)
		}
	})
	t.Cleanup(release)                              // before the pod's and the daemon's own cleanup, which would wait on the DEL
	if _, err := os.ReadFile(started); err != nil { // blocks until the DEL writes
		t.Fatal(err)
	}
	// What the hanging DEL can hold is the runtime's Status call and the scan of the plugins in
	// flight: timed alone, they take no more than the Status deadline and the scan. (Doctor's
	// whole run, against a run without the DEL, timed mostly the loading of every gadget, which
	// a loaded machine stretches by seconds from one run to the next.)
	start := time.Now()
	var held doctorReport
	held.addCRI(criHealth(context.Background(), d.Socket))
	if took := time.Since(start); took > 2*cri.StatusDeadline || !held.CRI[0].Answered {
		t.Errorf("the runtime's Status and the in-flight scan took %v with a DEL hanging: %+v", took, held.CRI)
	}
	r, text, _ = runDoctor(t, d.Socket)
	if !r.CRI[0].Answered {
		t.Errorf("doctor with a DEL hanging: %+v", r.CRI)
	}
	var del *cniInFlight
	for i, f := range r.CNIInFlight {
		if f.Command == "DEL" && f.ContainerID == pod.ID {
			del = &r.CNIInFlight[i]
		}
	}
	if del == nil || del.Plugin != "ptp" || del.Pod != "doctor-del" || del.K8sNamespace != "default" ||
		!strings.Contains(del.Blocked, "open") || del.RunningNs <= 0 {
		t.Fatalf("the hanging DEL of %s is not listed as such: %+v", pod.ID, r.CNIInFlight)
	}
	if want := `DEL ptp, pod "default/doctor-del", container ` + pod.ID; !strings.Contains(text, want) {
		t.Errorf("text has no %q:\n%s", want, text)
	}
}

// A runtime that takes the connection and never answers is reported as timed out, within the
// deadline.
func TestDoctorCRITimeout(t *testing.T) {
	testutil.RequirePrivileged(t)
	sock := filepath.Join(t.TempDir(), "wedged.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	r, text, took := runDoctor(t, sock)
	if len(r.CRI) == 0 || !r.CRI[0].TimedOut || r.CRI[0].Answered ||
		!strings.Contains(r.CRI[0].Error, "did not answer within 2s") || r.CNIInFlight == nil {
		t.Fatalf("a runtime that never answers: %+v, in flight %+v", r.CRI, r.CNIInFlight)
	}
	if !strings.Contains(text, sock+": TIMED OUT after 2") || !strings.Contains(text, "CNI invocations in flight: ") {
		t.Errorf("text:\n%s", text)
	}
	t.Logf("doctor took %v", took)
}

// doctor's text says a kernel is out of scope, and for each gadget what the kernel lacks and the
// fallback taken instead, or why the gadget cannot load.
func TestDoctorPrintsScopeAndFallbacks(t *testing.T) {
	lacks := lackStatuses([]kernel.Feature{kernel.TaskBTF})
	r := doctorReport{
		Kernel: "4.19.0-27-amd64", OutOfScope: "kernel 4.19.0-27-amd64 is older than 5.10, the oldest ghostwatch supports",
		Lacks: lacks,
		Gadgets: []gadgetStatus{
			{Name: "setns", Hooks: []attach.Choice{{Hook: "clone-child", Chosen: "tp_btf sched_process_fork", Kind: "tp_btf"}}, Fallbacks: lacks},
			{Name: "caps", Error: "caps: kernel 4.19.0-27-amd64 lacks the BPF ring buffer (Linux 5.8 has it first; ghostwatch supports 5.10 and newer)"},
		},
	}
	var b strings.Builder
	printDoctor(&b, r)
	out := b.String()
	for _, want := range []string{
		"out of scope: kernel 4.19.0-27-amd64 is older than 5.10",
		"lacks task-btf (helper bpf_get_current_task_btf, Linux 5.11): " + kernel.TaskBTF.Fallback,
		"setns: lacks task-btf (helper bpf_get_current_task_btf, Linux 5.11), so: " + kernel.TaskBTF.Fallback,
		"caps: cannot load: caps: kernel 4.19.0-27-amd64 lacks the BPF ring buffer (Linux 5.8",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("doctor's text has no %q:\n%s", want, out)
		}
	}
}
