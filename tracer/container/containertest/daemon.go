package containertest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd"
	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/cio"

	"github.com/containerd/containerd/containers"
	"github.com/containerd/containerd/images"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/containerd/oci"
	"github.com/containerd/containerd/plugin"
	"github.com/ghostwatch/ghostwatch/tracer/container"
	"github.com/ghostwatch/ghostwatch/tracer/cri"
	"github.com/ghostwatch/ghostwatch/tracer/ociruntime"
	"github.com/opencontainers/runtime-spec/specs-go"
)

// SkipInVM skips a test that needs a container runtime inside vmtest guests, which have none.
// What such tests check is user space; the kernel side of it is covered by the gadget tests,
// which do run in the VMs.
func SkipInVM(t testing.TB) {
	if os.Getenv("GHOSTWATCH_VMTEST") == "1" {
		t.Skip("container runtime tests run on the host kernel only, not in vmtest guests")
	}
}

// Namespace is the containerd namespace test containers are created in, as the CRI does.
const Namespace = "k8s.io"

// Daemon is a containerd of the test's own.
type Daemon struct {
	Socket string
	Client *containerd.Client
	config string
	cmd    *exec.Cmd
	log    *lockedBuffer
	// cgroup2: containerd runs in a mount namespace where /sys/fs/cgroup is cgroup2
	// (StartCgroup2).
	cgroup2 bool
	// CRI is the daemon's CRI plugin (StartCRI), nil when it is disabled.
	CRI *cri.Client
	// CNIConfDir is where the CRI plugin reads its network configuration (StartCRI).
	CNIConfDir string
}

// lockedBuffer is the daemon's output: written by the goroutine that copies it, read by a test
// that fails.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Start runs containerd with its own root, state and socket and imports the busybox image. It is
// stopped, and its containers removed, at the end of the test.
func Start(t testing.TB) *Daemon {
	t.Helper()
	return startDaemon(t, false, nil)
}

// StartCgroup2 is Start with containerd, its shims and runtimes in cgroup v2 mode, as on a host
// that is cgroup v2 only (ociruntime.RunCgroup2): crun runs only so on this host.
func StartCgroup2(t testing.TB) *Daemon {
	t.Helper()
	return startDaemon(t, true, nil)
}

// CRIConfig configures the CRI plugin of StartCRI.
type CRIConfig struct {
	// CNIConfList is the network configuration pods get; default ptpConfList. %s in it is
	// replaced by a directory of the daemon's own (for IPAM's state).
	CNIConfList string
	// CNIBinDir is where the plugins are; default /usr/lib/cni (Debian's
	// containernetworking-plugins).
	CNIBinDir string
}

// ptpConfList gives every pod a network namespace of its own with lo up and an eth0, which
// containerd 1.6's CRI requires (a pod without an eth0 address fails with "failed to find network
// info"). The addresses are in the loopback range, never on any network: the peer on the host
// side gets a /32 that the host's own 127.0.0.0/8 route outranks, so nothing ever leaves the
// machine.
const ptpConfList = `{"cniVersion": "1.0.0", "name": "ghostwatch-test", "plugins": [
  {"type": "loopback"},
  {"type": "ptp", "ipMasq": false, "ipam": {"type": "host-local", "dataDir": "%s",
    "ranges": [[{"subnet": "127.88.0.0/16"}]]}}]}`

// StartCRI is Start with containerd's CRI plugin on (the daemon's socket serves the CRI too), as
// a kubelet's node has it: pods run with the busybox image as their sandbox image, and their
// network namespaces are bind-mounted under the daemon's own state directory. Cleanup stops and
// removes every pod through the CRI, which unmounts those namespaces.
func StartCRI(t testing.TB, c CRIConfig) *Daemon {
	t.Helper()
	SkipInVM(t) // before looking for CNI plugins, which guests do not have either
	if c.CNIConfList == "" {
		c.CNIConfList = ptpConfList
	}
	if c.CNIBinDir == "" {
		c.CNIBinDir = "/usr/lib/cni"
	}
	if _, err := os.Stat(filepath.Join(c.CNIBinDir, "loopback")); err != nil {
		t.Fatalf("no CNI plugins in %s: install Debian's containernetworking-plugins", c.CNIBinDir)
	}
	return startDaemon(t, false, &c)
}

func startDaemon(t testing.TB, cgroup2 bool, criConfig *CRIConfig) *Daemon {
	t.Helper()
	SkipInVM(t)
	for _, bin := range []string{"containerd", "containerd-shim-runc-v2", "runc"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s not found: install Debian's containerd and runc", bin)
		}
	}
	// Short paths: unix socket names are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "gw-ctrd")
	if err != nil {
		t.Fatal(err)
	}
	d := &Daemon{Socket: filepath.Join(dir, "containerd.sock"), log: &lockedBuffer{}, cgroup2: cgroup2}
	disabled := `disabled_plugins = ["io.containerd.grpc.v1.cri"]`
	if criConfig != nil {
		disabled = ""
	}
	config := fmt.Sprintf(`version = 2
root = %q
state = %q
%s
[grpc]
  address = %q
[ttrpc]
  address = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), disabled, d.Socket, d.Socket+".ttrpc")
	if criConfig != nil {
		confDir := filepath.Join(dir, "net.d")
		d.CNIConfDir = confDir
		if err := os.MkdirAll(confDir, 0o755); err != nil {
			t.Fatal(err)
		}
		conf := strings.ReplaceAll(criConfig.CNIConfList, "%s", filepath.Join(dir, "cni"))
		if err := os.WriteFile(filepath.Join(confDir, "10-test.conflist"), []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		// The stream server (exec, attach, port-forward) listens on loopback, on a port of
		// its own choosing. OOM score adjustments are kept at or above containerd's own: the
		// sandbox's -998 needs CAP_SYS_RESOURCE, which this machine does not give (runc
		// fails with "can't get final child's PID from pipe").
		config += fmt.Sprintf(`[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  netns_mounts_under_state_dir = true
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %q
    conf_dir = %q
`, ImageName, criConfig.CNIBinDir, confDir)
	}
	configPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(configPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	d.config = configPath
	t.Cleanup(func() {
		d.Stop()
		os.RemoveAll(dir)
	})
	d.start(t)
	d.importImage(t)
	if criConfig != nil {
		if d.CRI, err = cri.Dial(context.Background(), d.Socket); err != nil {
			t.Fatalf("%v\n%s", err, d.log)
		}
	}
	return d
}

// start runs the daemon and waits until it answers.
func (d *Daemon) start(t testing.TB) {
	d.cmd = exec.Command("containerd", "--config", d.config)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	start := d.cmd.Start
	if d.cgroup2 {
		// Started from a thread that ends at once: no parent-death signal, Stop ends it.
		d.cmd = ociruntime.Cgroup2Command("containerd", "--config", d.config)
		d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
		start = func() error { return ociruntime.InCgroup2Thread(d.cmd.Start) }
	} else {
		d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	}
	if err := start(); err != nil {
		t.Fatal(err)
	}
	var err error
	deadline := time.Now().Add(20 * time.Second)
	for {
		d.Client, err = containerd.New(d.Socket, containerd.WithTimeout(time.Second))
		if err == nil {
			if _, err = d.Client.Version(context.Background()); err == nil {
				break
			}
			d.Client.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("containerd did not answer on %s: %v\n%s", d.Socket, err, d.log)
		}
		time.Sleep(50 * time.Millisecond) // the daemon gives no other sign that it is ready
	}
}

// Crash kills the daemon as an outage would, leaving its containers running. It is started again
// at cleanup, to remove them.
func (d *Daemon) Crash(t testing.TB) {
	d.Client.Close()
	d.Client = nil
	d.cmd.Process.Kill()
	d.cmd.Wait()
	d.cmd = nil
	t.Cleanup(func() { d.start(t) }) // runs before Stop, which was registered earlier
}

// Restart kills the daemon as Crash does, then starts it again on the same socket and state, as
// a node's service manager would.
func (d *Daemon) Restart(t testing.TB) {
	d.Client.Close()
	d.cmd.Process.Kill()
	d.cmd.Wait()
	d.start(t)
}

func (d *Daemon) importImage(t testing.TB) {
	t.Helper()
	var image bytes.Buffer
	if err := BuildImage(&image); err != nil {
		t.Fatal(err)
	}
	d.Import(t, &image)
}

// Import imports an image archive (OCI layout or docker save) as `ctr image import` does, and
// unpacks it for this machine's platform. It returns the images imported.
func (d *Daemon) Import(t testing.TB, archive io.Reader) []images.Image {
	t.Helper()
	ctx := d.Context()
	imgs, err := d.Client.Import(ctx, archive)
	if err != nil {
		t.Fatalf("importing an image: %v", err)
	}
	for _, img := range imgs {
		if err := containerd.NewImage(d.Client, img).Unpack(ctx, ""); err != nil {
			t.Fatalf("unpacking %s: %v", img.Name, err)
		}
	}
	return imgs
}

// Context carries the test namespace.
func (d *Daemon) Context() context.Context {
	return namespaces.WithNamespace(context.Background(), Namespace)
}

// Stop removes every pod and container and stops the daemon.
func (d *Daemon) Stop() {
	if d.CRI != nil {
		d.removePods()
		d.CRI.Close()
		d.CRI = nil
	}
	if d.Client != nil {
		ctx := d.Context()
		if cs, err := d.Client.Containers(ctx); err == nil {
			for _, c := range cs {
				removeContainer(ctx, c)
			}
		}
		d.Client.Close()
		d.Client = nil
	}
	if d.cmd != nil && d.cmd.Process != nil {
		d.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { d.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			d.cmd.Process.Kill()
			<-done
		}
		d.cmd = nil
	}
}

// Container is a running test container.
type Container struct {
	ID   string
	Name string
	Pod  string
	Pid  int // the task's init, on the host
	c    containerd.Container
	task containerd.Task
}

// Options describe a test container.
type Options struct {
	Name      string   // io.kubernetes.container.name
	Pod       string   // io.kubernetes.pod.name; empty: no CRI labels
	Sandbox   bool     // a pod's sandbox (pause) container
	Args      []string // default: sleep forever
	Caps      []string // added to runc's default capabilities, e.g. CAP_SYS_ADMIN to unshare
	SpecOpts  []oci.SpecOpts
	NetNSPath string // join this network namespace (as containers of a pod join their sandbox's)
	Seccomp   *specs.LinuxSeccomp
	// NoNewPrivileges makes runc install the seccomp filter late, just before the workload's exec.
	NoNewPrivileges bool
	// NewPrivileges clears noNewPrivileges, which containerd's default spec sets (as Kubernetes
	// does unless allowPrivilegeEscalation is false).
	NewPrivileges bool
	Runtime       string // the runc shim's binary (ctr's --runc-binary): crun; default runc
	Image         string // an image imported with Import; default the busybox image
	// Stdout and Stderr receive the container's output as it runs; default discarded.
	Stdout, Stderr io.Writer
}

// Run creates and starts a container; it is removed at the end of the test.
func (d *Daemon) Run(t testing.TB, o Options) *Container {
	t.Helper()
	if o.Stdout != nil || o.Stderr != nil {
		return d.launch(t, o, cio.NewCreator(cio.WithStreams(nil, o.Stdout, o.Stderr)))
	}
	return d.launch(t, o, cio.NullIO)
}

// RunToExit runs a container to its end and returns its exit status and output.
func (d *Daemon) RunToExit(t testing.TB, o Options) (int, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer // one writer each
	c := d.launch(t, o, cio.NewCreator(cio.WithStreams(nil, &stdout, &stderr)))
	ctx := d.Context()
	exited, err := c.task.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var st containerd.ExitStatus
	select {
	case st = <-exited:
	case <-time.After(time.Minute):
		t.Fatalf("container %s did not exit", o.Name)
	}
	c.task.Delete(ctx) // closes the streams, so the buffers are complete
	return int(st.ExitCode()), stdout.String() + stderr.String()
}

func (d *Daemon) launch(t testing.TB, o Options, io cio.Creator) *Container {
	t.Helper()
	ctx := d.Context()
	name := o.Image
	if name == "" {
		name = ImageName
	}
	image, err := d.Client.GetImage(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	args := o.Args
	if len(args) == 0 {
		args = []string{"sleep", "100000"}
	}
	labels := map[string]string{"nerdctl/name": o.Name}
	if o.Pod != "" {
		labels["io.kubernetes.pod.name"] = o.Pod
		labels["io.kubernetes.pod.namespace"] = "default"
		labels["io.kubernetes.pod.uid"] = "uid-" + o.Pod
		labels["io.cri-containerd.kind"] = "container"
		if o.Sandbox {
			labels["io.cri-containerd.kind"] = "sandbox"
		} else {
			labels["io.kubernetes.container.name"] = o.Name
		}
	}
	id := fmt.Sprintf("%s-%d", o.Name, time.Now().UnixNano())
	specOpts := append([]oci.SpecOpts{oci.WithImageConfig(image), oci.WithProcessArgs(args...)}, o.SpecOpts...)
	if o.Seccomp != nil || o.NoNewPrivileges || o.NewPrivileges {
		specOpts = append(specOpts, func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
			s.Linux.Seccomp = o.Seccomp
			s.Process.NoNewPrivileges = o.NoNewPrivileges
			return nil
		})
	}
	if len(o.Caps) > 0 {
		specOpts = append(specOpts, oci.WithAddedCapabilities(o.Caps))
	}
	if o.NetNSPath != "" {
		specOpts = append(specOpts, oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: o.NetNSPath}))
	}
	opts := []containerd.NewContainerOpts{}
	if o.Runtime != "" {
		opts = append(opts, containerd.WithRuntime(plugin.RuntimeRuncV2, &runcoptions.Options{BinaryName: o.Runtime}))
	}
	c, err := d.Client.NewContainer(ctx, id, append(opts,
		containerd.WithImage(image),
		containerd.WithNewSnapshot(id+"-snap", image),
		containerd.WithContainerLabels(labels),
		containerd.WithNewSpec(specOpts...),
	)...)
	if err != nil {
		t.Fatalf("creating container %s: %v", o.Name, err)
	}
	task, err := c.NewTask(ctx, io)
	if err != nil {
		removeContainer(ctx, c)
		t.Fatalf("creating task %s: %v\n%s", o.Name, err, d.log)
	}
	if err := task.Start(ctx); err != nil {
		removeContainer(ctx, c)
		t.Fatalf("starting task %s: %v", o.Name, err)
	}
	ct := &Container{ID: id, Name: o.Name, Pod: o.Pod, Pid: int(task.Pid()), c: c, task: task}
	t.Cleanup(func() { removeContainer(ctx, c) })
	return ct
}

// Exec runs a process in the container through containerd and waits for it; it returns its pid.
func (c *Container) Exec(t testing.TB, d *Daemon, args ...string) int {
	t.Helper()
	ctx := d.Context()
	spec, err := c.c.Spec(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p := *spec.Process
	p.Args = args
	proc, err := c.task.Exec(ctx, fmt.Sprintf("exec-%d", time.Now().UnixNano()), &p, cio.NullIO)
	if err != nil {
		t.Fatalf("exec %v: %v", args, err)
	}
	defer proc.Delete(ctx)
	exited, err := proc.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := proc.Start(ctx); err != nil {
		t.Fatalf("exec %v: %v", args, err)
	}
	if st := <-exited; st.ExitCode() != 0 {
		t.Fatalf("exec %v: exit status %d", args, st.ExitCode())
	}
	return int(proc.Pid())
}

// RuncExec runs a process in the container with runc itself, as containerd's shim would: it works
// while containerd is down.
func (c *Container) RuncExec(t testing.TB, args ...string) {
	t.Helper()
	cmd := exec.Command("runc", append([]string{"--root", "/run/containerd/runc/" + Namespace, "exec", c.ID}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v: %s", cmd, err, out)
	}
}

// Remove kills and deletes the container now.
func (c *Container) Remove(d *Daemon) { removeContainer(d.Context(), c.c) }

func removeContainer(ctx context.Context, c containerd.Container) {
	if task, err := c.Task(ctx, nil); err == nil {
		if st, err := task.Status(ctx); err == nil && st.Status == containerd.Running {
			if ch, err := task.Wait(ctx); err == nil {
				task.Kill(ctx, syscall.SIGKILL)
				select {
				case <-ch:
				case <-time.After(10 * time.Second):
				}
			}
		}
		task.Delete(ctx, containerd.WithProcessKill)
	}
	c.Delete(ctx, containerd.WithSnapshotCleanup)
}

// Watch returns a container collection that follows this daemon, until the test ends.
func (d *Daemon) Watch(t testing.TB) *container.Collection {
	t.Helper()
	coll := container.NewCollection()
	w, err := container.WatchContainerd(context.Background(), coll, d.Socket, nil, func(err error) { t.Log(err) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	return coll
}
