package cni_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/ghostwatch/ghostwatch/tracer/cni"
	"github.com/ghostwatch/ghostwatch/tracer/container/containertest"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
	"github.com/ghostwatch/ghostwatch/tracer/testutil"
)

// The kubelet's story on a loaded node: RunPodSandbox through containerd's CRI with a deadline
// shorter than the ADD takes. The slow ADD is reported while it runs, then ends when containerd
// gives up on it (the CRI call's deadline kills the plugin); the kubelet's next RunPodSandbox for
// the same pod makes a new network namespace and its ADD is flagged as a retry, pointing at the
// first.
func TestRunPodSandboxDeadlineRetry(t *testing.T) {
	testutil.RequirePrivileged(t)
	bin := t.TempDir()
	for _, p := range []string{"loopback", "host-local"} {
		if err := os.Symlink(filepath.Join(debianBin, p), filepath.Join(bin, p)); err != nil {
			t.Fatal(err)
		}
	}
	// The first ADD takes 20 s, the next ones none.
	script := "#!/bin/sh\nif [ \"$CNI_COMMAND\" = ADD ] && [ ! -e " + bin + "/slow-done ]; then\n  touch " + bin +
		"/slow-done\n  sleep 20\nfi\nexec " + debianBin + "/ptp\n"
	if err := os.WriteFile(filepath.Join(bin, "ptp"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	tr := open(t, gadget.Params{cni.ParamSlow: time.Second, cni.ParamBinDir: bin})
	d := containertest.StartCRI(t, containertest.CRIConfig{CNIBinDir: bin})
	config := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: "slow-add", Namespace: "gw-test", Uid: "uid-slow-add"},
		Hostname:     "slow-add",
		LogDirectory: t.TempDir(),
		Linux:        &runtimeapi.LinuxPodSandboxConfig{},
	}
	run := func(deadline time.Duration) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		resp, err := d.CRI.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: config})
		return resp.GetPodSandboxId(), err
	}
	if _, err := run(4 * time.Second); err == nil {
		t.Fatal("RunPodSandbox with a 4 s deadline and a 20 s ADD succeeded")
	}
	// The ptp wrapper's ADD: loopback's, first in the list, ends at once.
	isPtp := func(cmd string) func(v *cni.Invocation) bool {
		return func(v *cni.Invocation) bool {
			return v.Command == cmd && v.Plugin == "ptp" && v.Pod == "slow-add" && v.K8sNamespace == "gw-test"
		}
	}
	slow := tr.next(t, cni.KindSlow, "the first ADD, still running", isPtp("ADD"))
	first := tr.next(t, cni.KindDone, "the first ADD, ended", isPtp("ADD"))
	if first.ContainerID != slow.ContainerID || first.Duration < time.Second || first.Attempt > 1 {
		t.Errorf("first ADD: %s after %v, attempt %d (slow report of %s)", first.ContainerID, first.Duration, first.Attempt, slow.ContainerID)
	}
	// The plugin is killed, but the sleep it started holds its stdout, which containerd reads to
	// the end: its RunPodSandbox goes on, holding the pod's sandbox name, until the sleep ends.
	// The kubelet's retries meanwhile fail with "name is reserved", as they did every 10 s in the
	// incident; this one retries every second.
	var id string
	reserved := 0
	for deadline := time.Now().Add(time.Minute); ; {
		var err error
		if id, err = run(time.Minute); err == nil {
			break
		}
		if !strings.Contains(err.Error(), "is reserved") || time.Now().After(deadline) {
			t.Fatalf("RunPodSandbox again: %v", err)
		}
		reserved++
		time.Sleep(time.Second)
	}
	if reserved == 0 {
		t.Error("the retry found the pod's sandbox name free while the first ADD's sleep held its output")
	}
	t.Logf("%d retries refused with \"name is reserved\"", reserved)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		d.CRI.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id})
		d.CRI.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id})
	})
	// The retried sandbox's first ADD (loopback's) is the pod's second with a new namespace, and
	// names the first sandbox's as its cause.
	retry := tr.next(t, cni.KindDone, "the retried sandbox's ADD", func(v *cni.Invocation) bool {
		return v.Command == "ADD" && v.Pod == "slow-add" && v.ContainerID == id
	})
	if retry.Attempt != 2 || retry.Cause == nil || !slices.Contains(retry.Cause.Attrs, gadget.Attr{Key: "container_id", Value: first.ContainerID}) ||
		retry.ExitCode != 0 || retry.NetNS == first.NetNS {
		// The namespace by path: the first's inode is free again (containerd removed it), and
		// the kernel gives it to the next.
		t.Errorf("retried ADD: attempt %d, cause %+v, exit %d, netns %s (first's %s, sandbox %s)", retry.Attempt, retry.Cause, retry.ExitCode, retry.NetNS, first.NetNS, first.ContainerID)
	}
}
