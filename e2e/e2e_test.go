//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ghostwatch/ghostwatch/tools/ociimage"
	"github.com/ghostwatch/ghostwatch/tracer/testutil"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// incidentImage holds busybox and a copy of it whose file capability (cap_net_bind_service, v3)
// names root 200000: in a pod without a user namespace that root is not the pod's, so the kernel
// ignores the capability and the bind of port 81 is denied.
const incidentImage = "ghostwatch.test/incident:latest"

// The incident pod, in namespace shop: web binds port 81 with the rootid binary as uid 1000
// (denied: the v3 rootid story); db opens /dev/mem, a device its cgroup does not allow (EPERM:
// the devices story). Both loop, so the agent sees them whenever it starts.
const incidentPod = `apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Pod
metadata: {name: incident, namespace: shop}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: ` + incidentImage + `
    imagePullPolicy: Never
    command: [/bin/busybox, sh, -c, 'while :; do /caps/nc -l -p 81; sleep 1; done']
    securityContext: {runAsUser: 1000}
  - name: db
    image: ` + incidentImage + `
    imagePullPolicy: Never
    command: [/bin/busybox, sh, -c, '/bin/busybox mknod /tmp/mem c 1 1; while :; do /bin/busybox head -c1 /tmp/mem; sleep 1; done']
`

// TestKubernetes: the image imported into the node's containerd, deploy/ghostwatch.yaml applied
// through the API server and its agent ready, the incident pod scheduled and run by the kubelet,
// and `kubectl ghostwatch` showing its denials with the names and uid the kubelet gave the pod.
func TestKubernetes(t *testing.T) {
	testutil.RequirePrivileged(t)
	image := os.Getenv("GHOSTWATCH_E2E_IMAGE")
	if image == "" {
		t.Fatal("GHOSTWATCH_E2E_IMAGE is not set: run make e2e, which builds the image")
	}
	c := Start(t)
	plugin := buildPlugin(t, c)

	f, err := os.Open(image)
	if err != nil {
		t.Fatal(err)
	}
	imgs := c.Daemon.Import(t, f)
	f.Close()
	if len(imgs) != 1 || imgs[0].Name != "docker.io/library/ghostwatch:latest" {
		t.Fatalf("imported %v, want docker.io/library/ghostwatch:latest", imgs)
	}
	var incident bytes.Buffer
	if _, err := ociimage.Write(&incident, incidentSpec(t)); err != nil {
		t.Fatal(err)
	}
	c.Daemon.Import(t, &incident)

	apply(t, c, incidentPod)
	c.Kubectl(t, "wait", "-n", "shop", "--for=condition=Ready", "pod/incident", "--timeout=60s")
	uid := c.Kubectl(t, "get", "pod", "-n", "shop", "incident", "-o", "jsonpath={.metadata.uid}")

	t.Run("no agent yet", func(t *testing.T) {
		plugin.fails(t, 1, "no ghostwatch agent on node "+NodeName, "history", "--pod", "incident", "-n", "shop")
	})
	t.Run("pod not found", func(t *testing.T) {
		plugin.fails(t, 1, "pod nosuch not found in namespace shop", "history", "--pod", "nosuch", "-n", "shop")
	})

	// The DaemonSet as deploy/ has it, but for two host paths: the node's containerd socket is
	// the private daemon's, and the flight record is kept in the cluster's directory.
	manifest, err := os.ReadFile("../deploy/ghostwatch.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ds := string(manifest)
	for from, to := range map[string]string{"/run/containerd/containerd.sock": c.Daemon.Socket, "/var/lib/ghostwatch": filepath.Join(c.Dir, "record")} {
		if !strings.Contains(ds, "{path: "+from+",") {
			t.Fatalf("deploy/ghostwatch.yaml has no hostPath %s", from)
		}
		ds = strings.Replace(ds, "{path: "+from+",", "{path: "+to+",", 1)
	}
	// First with a readiness probe that never passes: a real agent, running but not ready.
	unready := strings.Replace(ds, "path: /readyz", "path: /never-ready", 1)
	apply(t, c, unready)
	c.Kubectl(t, "wait", "-n", "ghostwatch", "pods", "-l", "app.kubernetes.io/name=ghostwatch",
		"--for=jsonpath={.status.phase}=Running", "--timeout=120s")
	t.Run("agent not ready", func(t *testing.T) {
		plugin.fails(t, 1, "is not ready", "history", "--pod", "incident", "-n", "shop")
	})
	apply(t, c, ds)
	if out, err := c.KubectlErr("rollout", "status", "-n", "ghostwatch", "daemonset/ghostwatch", "--timeout=120s"); err != nil {
		agentLogs, _ := c.KubectlErr("logs", "-n", "ghostwatch", "-l", "app.kubernetes.io/name=ghostwatch", "--tail=50")
		describe, _ := c.KubectlErr("describe", "pods", "-n", "ghostwatch")
		t.Fatalf("the DaemonSet did not become ready: %v\n%s\n%s\n%s", err, out, agentLogs, describe)
	}

	logs, _ := c.KubectlErr("logs", "-n", "ghostwatch", "daemonset/ghostwatch")
	t.Logf("the agent's log:\n%s", logs)
	defer logAgentCost(t, c)

	t.Run("history", func(t *testing.T) {
		var denial, eperm map[string]any
		deadline := time.Now().Add(60 * time.Second)
		for denial == nil || eperm == nil {
			if time.Now().After(deadline) {
				t.Fatalf("kubectl ghostwatch history: no bind denial (%v) or device EPERM (%v) of pod shop/incident within 60s", denial != nil, eperm != nil)
			}
			time.Sleep(time.Second) // the agent writes its record in blocks; asked again, as a user would
			out := plugin.run(t, "history", "--pod", "incident", "-n", "shop", "--since", "10m", "-o", "json")
			for _, ev := range jsonLines(out) {
				ct, _ := ev["container"].(map[string]any)
				switch {
				case ev["type"] == "caps" && get(ev, "caps", "verdict") == "denied" && get(ev, "caps", "cause", "ignored_because") == "rootid":
					denial = ev
					if ct["name"] != "web" {
						t.Errorf("the denied bind's container: %v, want web", ct)
					}
				case ev["type"] == "devices" && ev["kind"] == "denied":
					eperm = ev
					if ct["name"] != "db" {
						t.Errorf("the EPERM's container: %v, want db", ct)
					}
				default:
					continue
				}
				if ct["pod"] != "incident" || ct["k8s_namespace"] != "shop" || ct["pod_uid"] != uid {
					t.Errorf("container %v: want pod incident in shop with uid %s, as the kubelet named it", ct, uid)
				}
			}
		}
	})

	t.Run("ps", func(t *testing.T) {
		out := plugin.run(t, "ps", "--node", NodeName, "-o", "json")
		found := map[string]bool{}
		for _, c := range jsonLines(out) {
			if name, _ := c["name"].(string); c["pod"] == "incident" && c["k8s_namespace"] == "shop" && c["pod_uid"] == uid {
				found[name] = true
			}
		}
		if !found["web"] || !found["db"] {
			t.Errorf("kubectl ghostwatch ps lists %v of pod shop/incident:\n%s", found, out)
		}
	})

	t.Run("netns holders", func(t *testing.T) {
		out := plugin.run(t, "netns", "holders", "--node", NodeName, "-o", "json")
		if !strings.Contains(out, `"incident"`) {
			t.Errorf("kubectl ghostwatch netns holders does not name pod incident:\n%s", out)
		}
		// The agent's own mounts must not keep the pods' namespaces alive.
		for _, ns := range jsonLines(out) {
			holders, _ := ns["holders"].([]any)
			for _, h := range holders {
				if get(h, "comm") == "ghostwatch" {
					t.Errorf("the agent holds network namespace %v: %v", ns["netns"], h)
				}
			}
		}
	})

	t.Run("trace", func(t *testing.T) {
		out := plugin.run(t, "trace", "caps", "--pod", "incident", "-n", "shop", "--denied", "--duration", "4s", "-o", "json")
		seen := false
		for _, ev := range jsonLines(out) {
			if ct, _ := ev["container"].(map[string]any); ev["type"] == "caps" && ct["pod"] == "incident" && ct["name"] == "web" {
				seen = true
			}
		}
		if !seen {
			t.Errorf("kubectl ghostwatch trace caps --pod incident saw no denial of web in 4s:\n%s", out)
		}
	})
}

// logAgentCost logs what the CRI measures of the agent's container (as the kubelet and
// metrics-server read it): its memory working set and its CPU time since it started, the figures
// deploy/'s requests and limits are set from.
func logAgentCost(t *testing.T, c *Cluster) {
	ctx := context.Background()
	resp, err := c.Daemon.CRI.Runtime.ListContainerStats(ctx, &runtimeapi.ListContainerStatsRequest{})
	if err != nil {
		t.Errorf("ListContainerStats: %v", err)
		return
	}
	for _, st := range resp.Stats {
		if st.Attributes.GetMetadata().GetName() != "agent" {
			continue
		}
		status, err := c.Daemon.CRI.Runtime.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: st.Attributes.Id})
		if err != nil {
			t.Errorf("ContainerStatus: %v", err)
			return
		}
		up := time.Since(time.Unix(0, status.Status.StartedAt))
		mem := st.Memory.GetWorkingSetBytes().GetValue()
		cpu := time.Duration(st.Cpu.GetUsageCoreNanoSeconds().GetValue())
		t.Logf("agent cost: memory working set %.1f MiB, CPU %v in the %v since it started (%.0f millicores on average)",
			float64(mem)/(1<<20), cpu.Round(time.Millisecond), up.Round(time.Second), 1000*cpu.Seconds()/up.Seconds())
	}
}

// incidentSpec is the incident image: busybox, and busybox again as /caps/nc with a v3 file
// capability whose root is 200000.
func incidentSpec(t *testing.T) ociimage.Spec {
	var xattr [24]byte                                     // struct vfs_ns_cap_data
	binary.LittleEndian.PutUint32(xattr[0:], 0x03000000|1) // VFS_CAP_REVISION_3 | VFS_CAP_FLAGS_EFFECTIVE
	binary.LittleEndian.PutUint32(xattr[4:], 1<<10)        // permitted: CAP_NET_BIND_SERVICE
	binary.LittleEndian.PutUint32(xattr[20:], 200000)      // rootid
	return ociimage.Spec{
		Name: incidentImage,
		Platforms: []ociimage.Platform{{Arch: "amd64", Dirs: []string{"tmp"}, Files: []ociimage.File{
			{Path: "bin/busybox", Source: "/bin/busybox", Mode: 0o755},
			{Path: "caps/nc", Source: "/bin/busybox", Mode: 0o755, Xattrs: map[string]string{"security.capability": string(xattr[:])}},
		}}},
	}
}

// kubectlPlugin runs `kubectl ghostwatch` as a user would: kubectl finds kubectl-ghostwatch on
// PATH.
type kubectlPlugin struct {
	c    *Cluster
	path string
}

func buildPlugin(t *testing.T, c *Cluster) kubectlPlugin {
	dir := t.TempDir()
	out, err := exec.Command("go", "build", "-o", dir, "../cmd/kubectl-ghostwatch").CombinedOutput()
	if err != nil {
		t.Fatalf("building kubectl-ghostwatch: %v\n%s", err, out)
	}
	return kubectlPlugin{c: c, path: dir + ":" + c.Bin + ":" + os.Getenv("PATH")}
}

func (p kubectlPlugin) cmd(args ...string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	cmd := exec.Command(filepath.Join(p.c.Bin, "kubectl"), append([]string{"ghostwatch"}, args...)...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+p.c.Kubeconfig, "PATH="+p.path)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	return cmd, &stdout, &stderr
}

func (p kubectlPlugin) run(t *testing.T, args ...string) string {
	t.Helper()
	cmd, stdout, stderr := p.cmd(args...)
	if err := cmd.Run(); err != nil {
		t.Fatalf("kubectl ghostwatch %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return stdout.String()
}

// fails checks that kubectl ghostwatch exits with code and one line of stderr containing want.
func (p kubectlPlugin) fails(t *testing.T, code int, want string, args ...string) {
	t.Helper()
	cmd, _, stderr := p.cmd(args...)
	cmd.Run()
	lines := strings.Split(strings.TrimRight(stderr.String(), "\n"), "\n")
	if cmd.ProcessState.ExitCode() != code || len(lines) != 1 || !strings.Contains(lines[0], want) {
		t.Errorf("kubectl ghostwatch %s: exit %d, stderr %q; want exit %d and one line with %q",
			strings.Join(args, " "), cmd.ProcessState.ExitCode(), stderr, code, want)
	}
}

func jsonLines(out string) []map[string]any {
	var evs []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var ev map[string]any
		if json.Unmarshal(sc.Bytes(), &ev) == nil {
			evs = append(evs, ev)
		}
	}
	return evs
}

// get walks nested JSON objects.
func get(v any, keys ...string) any {
	for _, k := range keys {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	return v
}

func apply(t *testing.T, c *Cluster, manifest string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "m.yaml")
	if err := os.WriteFile(f, []byte(manifest), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Log(c.Kubectl(t, "apply", "-f", f))
}
