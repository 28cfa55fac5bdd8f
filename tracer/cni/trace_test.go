package cni_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"golang.org/x/sys/unix"

	"github.com/ghostwatch/ghostwatch/tracer/cni"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
	"github.com/ghostwatch/ghostwatch/tracer/gadget/gadgettest"
	"github.com/ghostwatch/ghostwatch/tracer/testutil"
)

// debianBin is where Debian's containernetworking-plugins are (tools/setup.sh installs them).
const debianBin = "/usr/lib/cni"

func requirePlugins(t *testing.T) {
	t.Helper()
	for _, p := range []string{"bridge", "host-local", "loopback"} {
		if _, err := os.Stat(filepath.Join(debianBin, p)); err != nil {
			t.Fatalf("%s: install Debian's containernetworking-plugins (tools/setup.sh)", err)
		}
	}
}

// netnsAdd makes a named network namespace as a runtime does for a pod (ip netns add: a bind
// mount under /run/netns) and returns its path and inode; it is deleted at cleanup.
func netnsAdd(t *testing.T) (string, uint32) {
	t.Helper()
	name := fmt.Sprintf("gw-cni-%d-%d", os.Getpid(), time.Now().UnixNano()%1e6)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	path := "/run/netns/" + name
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return path, uint32(st.Ino)
}

// requireBridge fails without the kernel's bridge and veth, or skips in vmtest's guests, which
// do not pack modules (Debian builds both as modules).
func requireBridge(t *testing.T) {
	t.Helper()
	name := fmt.Sprintf("gwprobe%d", time.Now().UnixNano()%1e5)
	out, err := exec.Command("ip", "link", "add", name, "type", "bridge").CombinedOutput()
	if err != nil {
		if os.Getenv("GHOSTWATCH_VMTEST") == "1" {
			t.Skipf("no bridge devices in this guest (its kernel's modules are not packed): %s", out)
		}
		t.Fatalf("ip link add type bridge: %v: %s", err, out)
	}
	exec.Command("ip", "link", "del", name).Run()
}

// bridgeConf is a conflist of Debian's bridge plugin with host-local IPAM, its state in a
// directory of the test's, and a bridge of its own deleted at cleanup.
func bridgeConf(t *testing.T, subnet string) *libcni.NetworkConfigList {
	t.Helper()
	requireBridge(t)
	bridge := fmt.Sprintf("gwbr%d", time.Now().UnixNano()%1e5)
	t.Cleanup(func() { exec.Command("ip", "link", "del", bridge).Run() })
	conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"gwtest","plugins":[
		{"type":"bridge","bridge":%q,"isGateway":true,"ipam":{"type":"host-local","subnet":%q,"dataDir":%q}}]}`,
		bridge, subnet, t.TempDir())
	list, err := libcni.ConfListFromBytes([]byte(conf))
	if err != nil {
		t.Fatal(err)
	}
	return list
}

func podRuntime(id, netns, pod string) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{ContainerID: id, NetNS: netns, IfName: "eth0",
		Args: [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", "gw-test"}, {"K8S_POD_NAME", pod}}}
}

// wrapperDir writes a plugin that runs script (sh) and then execs Debian's plugin of the same
// name, into a bin dir of its own.
func wrapperDir(t *testing.T, name, script string) string {
	t.Helper()
	dir := t.TempDir()
	body := "#!/bin/sh\n" + script + "\nexec " + debianBin + "/" + name + "\n"
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

type tracer struct {
	g      *gadget.Gadget
	events *gadgettest.Collector[gadget.Event]
}

func open(t *testing.T, params gadget.Params) *tracer {
	t.Helper()
	g, err := gadget.Open(&cni.Gadget, gadget.Options{Params: params})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	events := gadgettest.Collect(t, func(ctx context.Context, emit func(gadget.Event)) error {
		return g.Run(ctx, nil, emit, nil, nil)
	})
	return &tracer{g, events}
}

// next waits for an invocation event of a kind matching the filter.
func (tr *tracer) next(t *testing.T, kind, what string, match func(v *cni.Invocation) bool) *cni.Invocation {
	t.Helper()
	return tr.events.Next(t, kind+" of "+what, func(ev gadget.Event) bool {
		v, ok := ev.(*cni.Invocation)
		return ok && v.Kind == kind && match(v)
	}, nil).(*cni.Invocation)
}

func forPod(command, pod string) func(v *cni.Invocation) bool {
	return func(v *cni.Invocation) bool { return v.Command == command && v.Pod == pod }
}

// A conflist run the way runtimes run it (libcni, as containerd's and CRI-O's CNI libraries):
// ADD then DEL through Debian's bridge with host-local IPAM, for a pod named in CNI_ARGS.
func TestConflistAddDel(t *testing.T) {
	testutil.RequirePrivileged(t)
	requirePlugins(t)
	tr := open(t, nil)
	netns, inode := netnsAdd(t)
	list := bridgeConf(t, "10.231.7.0/24")
	cfg := libcni.NewCNIConfig([]string{debianBin}, nil)
	rt := podRuntime("gwtest-adddel", netns, "web-0")
	result, err := cfg.AddNetworkList(context.Background(), list, rt)
	if err != nil {
		t.Fatalf("ADD: %v", err)
	}
	t.Logf("ADD result: %v", result)

	start := tr.next(t, cni.KindStart, "ADD web-0", forPod("ADD", "web-0"))
	if start.Plugin != "bridge" || start.FoundBy != "bin_dir" || start.K8sNamespace != "gw-test" ||
		start.ContainerID != "gwtest-adddel" || start.NetNS != netns || start.NetNSInode != inode || start.IfName != "eth0" {
		t.Errorf("start: %+v", start)
	}
	done := tr.next(t, cni.KindDone, "ADD web-0", forPod("ADD", "web-0"))
	if done.ExitCode != 0 || !done.Exited || done.Error != nil || !strings.Contains(string(done.Result), `"10.231.7.2/24"`) {
		t.Errorf("done: exit %+v error %+v result %s stdout %q stderr %q", done.Exit, done.Error, done.Result, done.Text, done.Stderr)
	}
	if done.Duration <= 0 || done.Proc.PID != start.Proc.PID {
		t.Errorf("done after %v by pid %d, started by pid %d", done.Duration, done.Proc.PID, start.Proc.PID)
	}
	ipam := slices.IndexFunc(done.Chain, func(s cni.Step) bool { return filepath.Base(s.File) == "host-local" })
	if ipam < 0 || !done.Chain[ipam].Plugin || !done.Chain[ipam].Exited || done.Chain[ipam].PPID != done.Proc.PID {
		t.Errorf("chain %+v: want host-local, a plugin run by bridge (pid %d), exited", done.Chain, done.Proc.PID)
	}

	if err := cfg.DelNetworkList(context.Background(), list, rt); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	del := tr.next(t, cni.KindDone, "DEL web-0", forPod("DEL", "web-0"))
	if del.ExitCode != 0 || del.NetNSInode != inode {
		t.Errorf("DEL done: %+v", del)
	}
}

// A plugin that fails prints a CNI error: its code and message are reported, and the IPAM plugin
// in the chain that failed first carries its own.
func TestPluginError(t *testing.T) {
	testutil.RequirePrivileged(t)
	requirePlugins(t)
	tr := open(t, nil)
	netns, _ := netnsAdd(t)
	list := bridgeConf(t, "not-a-subnet")
	cfg := libcni.NewCNIConfig([]string{debianBin}, nil)
	_, err := cfg.AddNetworkList(context.Background(), list, podRuntime("gwtest-error", netns, "bad-0"))
	if err == nil {
		t.Fatal("ADD with a bad subnet succeeded")
	}
	done := tr.next(t, cni.KindDone, "ADD bad-0", forPod("ADD", "bad-0"))
	if done.Error == nil || done.ExitCode == 0 || !strings.Contains(err.Error(), done.Error.Msg) {
		t.Errorf("done: exit %+v error %+v; libcni said %v", done.Exit, done.Error, err)
	}
	i := slices.IndexFunc(done.Chain, func(s cni.Step) bool { return filepath.Base(s.File) == "host-local" })
	if i < 0 || done.Chain[i].Error == nil || done.Chain[i].ExitCode == 0 {
		t.Errorf("chain %+v: want host-local's error", done.Chain)
	}
}

// Only what a plugin writes to the stdout and stderr it was given is its output: a wrapper script
// whose shell points fd 1 at a file for a builtin's write (`echo > file`: dash dup2's the file onto
// fd 1, then restores it) has not printed that text, and its `echo >&2` is on stderr, not in the
// result that the plugin it becomes prints.
func TestRedirectedWrite(t *testing.T) {
	testutil.RequirePrivileged(t)
	requirePlugins(t)
	file := filepath.Join(t.TempDir(), "written")
	dir := wrapperDir(t, "loopback", fmt.Sprintf("echo marker-file >%q\necho marker-stderr >&2", file))
	tr := open(t, gadget.Params{cni.ParamBinDir: dir + ":" + debianBin})
	netns, _ := netnsAdd(t)
	conf, err := libcni.ConfListFromBytes([]byte(`{"cniVersion":"1.0.0","name":"lo","plugins":[{"type":"loopback"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := libcni.NewCNIConfig([]string{dir}, nil).AddNetworkList(context.Background(), conf, podRuntime("gwtest-redirect", netns, "redirect-0")); err != nil {
		t.Fatalf("ADD: %v", err)
	}
	if data, err := os.ReadFile(file); err != nil || string(data) != "marker-file\n" {
		t.Fatalf("the wrapper wrote %q to its file (%v)", data, err)
	}
	done := tr.next(t, cni.KindDone, "ADD redirect-0", forPod("ADD", "redirect-0"))
	printed := string(done.Result) + done.Text + done.Stderr
	if strings.Contains(printed, "marker-file") || !strings.Contains(string(done.Result), `"127.0.0.1/8"`) ||
		done.Text != "" || strings.TrimSpace(done.Stderr) != "marker-stderr" {
		t.Errorf("done: result %s stdout %q stderr %q; want loopback's result, and marker-stderr on stderr only", done.Result, done.Text, done.Stderr)
	}
}

// A plugin that takes long is reported while it runs, with where it waits (its child sleep in
// the kernel's nanosleep), then with how long it took. The sleep lasts until the test has seen
// the slow report, whatever the machine's speed: the test then stops the sleep the report named,
// and the ADD goes on.
func TestSlowAdd(t *testing.T) {
	testutil.RequirePrivileged(t)
	requirePlugins(t)
	dir := wrapperDir(t, "loopback", `[ "$CNI_COMMAND" = ADD ] && sleep 1000`)
	tr := open(t, gadget.Params{cni.ParamSlow: 500 * time.Millisecond, cni.ParamBinDir: dir + ":" + debianBin})
	netns, _ := netnsAdd(t)
	conf, err := libcni.ConfListFromBytes([]byte(`{"cniVersion":"1.0.0","name":"lo","plugins":[{"type":"loopback"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	cfg := libcni.NewCNIConfig([]string{dir}, nil)
	added := make(chan error, 1)
	go func() {
		_, err := cfg.AddNetworkList(context.Background(), conf, podRuntime("gwtest-slow", netns, "slow-0"))
		added <- err
	}()
	var addErr error
	ended := false
	// endAdd stops the wrapper's sleep (found by its parent's command line, on a path that did
	// not see it reported) and waits for the ADD, bounded: on every path.
	endAdd := func(sleep int) {
		if ended {
			return
		}
		ended = true
		if sleep == 0 {
			sleep = wrapperSleep(dir)
		}
		if sleep > 0 {
			unix.Kill(sleep, unix.SIGTERM)
		}
		select {
		case addErr = <-added:
		case <-time.After(testutil.Wait):
			addErr = fmt.Errorf("the ADD did not end within %v of its sleep's end (sleep pid %d)", testutil.Wait, sleep)
		}
	}
	t.Cleanup(func() { endAdd(0) })
	slow := tr.next(t, cni.KindSlow, "ADD slow-0", forPod("ADD", "slow-0"))
	if slow.Duration < 500*time.Millisecond || slow.AtStop {
		t.Errorf("slow after %v (at stop %v)", slow.Duration, slow.AtStop)
	}
	i := slices.IndexFunc(slow.Blocked, func(b cni.Blocked) bool { return b.Comm == "sleep" })
	if i < 0 || !strings.Contains(slow.Blocked[i].Syscall, "nanosleep") {
		t.Fatalf("blocked %+v: want sleep in a nanosleep", slow.Blocked)
	}
	endAdd(int(slow.Blocked[i].PID))
	if addErr != nil {
		t.Fatalf("ADD: %v", addErr)
	}
	done := tr.next(t, cni.KindDone, "ADD slow-0", forPod("ADD", "slow-0"))
	if done.Duration < slow.Duration || done.ExitCode != 0 || done.Result == nil {
		t.Errorf("done after %v (slow after %v): %+v, result %s", done.Duration, slow.Duration, done.Exit, done.Result)
	}
	// The wrapper ran sleep, then became Debian's loopback.
	var files []string
	for _, s := range done.Chain {
		files = append(files, s.File)
	}
	if !slices.Contains(files, debianBin+"/loopback") || !slices.ContainsFunc(files, func(f string) bool { return strings.HasSuffix(f, "sleep") }) {
		t.Errorf("chain %v: want sleep, then %s/loopback", files, debianBin)
	}
}

// wrapperSleep is the pid of a sleep whose parent runs a wrapper of dir, or 0.
func wrapperSleep(dir string) int {
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		comm, _ := os.ReadFile(p + "/comm")
		stat, _ := os.ReadFile(p + "/stat")
		fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if string(comm) != "sleep\n" || len(fields) < 2 {
			continue
		}
		parent, _ := os.ReadFile("/proc/" + fields[1] + "/cmdline")
		if bytes.Contains(parent, []byte(dir+"/")) {
			pid, _ := strconv.Atoi(filepath.Base(p))
			return pid
		}
	}
	return 0
}

// A DEL that never returns: already running when tracing starts, it is found in /proc, reported
// as slow with where it waits, and when it is killed, as done by its signal.
func TestHungDelFoundRunning(t *testing.T) {
	testutil.RequirePrivileged(t)
	requirePlugins(t)
	dir := wrapperDir(t, "loopback", `[ "$CNI_COMMAND" = DEL ] && exec sleep 1000`)
	netns, _ := netnsAdd(t)
	cmd := exec.Command(filepath.Join(dir, "loopback"))
	cmd.Env = append(os.Environ(), "CNI_COMMAND=DEL", "CNI_CONTAINERID=gwtest-hung", "CNI_NETNS="+netns,
		"CNI_IFNAME=eth0", "CNI_PATH="+dir, "CNI_ARGS=K8S_POD_NAMESPACE=gw-test;K8S_POD_NAME=hung-0")
	cmd.Stdin = strings.NewReader(`{"cniVersion":"1.0.0","name":"lo","type":"loopback"}`)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// Until the wrapper has exec'd sleep and sleep's environment is in place (an exec sets the
	// command name before it).
	var running []cni.Running
	for deadline := time.Now().Add(testutil.Wait); ; time.Sleep(10 * time.Millisecond) {
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", cmd.Process.Pid))
		running = cni.FindRunning()
		if string(comm) == "sleep\n" && slices.ContainsFunc(running, func(r cni.Running) bool { return r.PID == uint32(cmd.Process.Pid) }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the wrapper did not exec sleep, or FindRunning does not find it: %+v", running)
		}
	}
	i := slices.IndexFunc(running, func(r cni.Running) bool { return r.PID == uint32(cmd.Process.Pid) })
	if running[i].Call.Pod != "hung-0" || running[i].Call.Command != "DEL" || filepath.Base(running[i].File) != "sleep" {
		t.Fatalf("FindRunning: %+v; want pid %d, sleep, DEL of hung-0", running[i], cmd.Process.Pid)
	}

	tr := open(t, gadget.Params{cni.ParamSlow: 300 * time.Millisecond})
	slow := tr.next(t, cni.KindSlow, "DEL hung-0", forPod("DEL", "hung-0"))
	if slow.FoundBy != "running" || len(slow.Blocked) == 0 || !strings.Contains(slow.Blocked[0].Syscall, "nanosleep") {
		t.Errorf("slow: found by %s, blocked %+v; want found running, in nanosleep", slow.FoundBy, slow.Blocked)
	}
	cmd.Process.Kill()
	done := tr.next(t, cni.KindDone, "DEL hung-0", forPod("DEL", "hung-0"))
	if done.Signal != "SIGKILL" {
		t.Errorf("done: %+v; want killed by SIGKILL", done.Exit)
	}
}

// An invocation found running at start keeps the stdout and stderr it has then: what it prints to
// them after is its output, what its shell writes to a file through fd 1 is not.
func TestFoundRunningOutput(t *testing.T) {
	testutil.RequirePrivileged(t)
	requirePlugins(t)
	file := filepath.Join(t.TempDir(), "written")
	dir := wrapperDir(t, "loopback", fmt.Sprintf("sleep 1000\necho marker-file >%q\necho printed-after", file))
	netns, _ := netnsAdd(t)
	cmd := exec.Command(filepath.Join(dir, "loopback"))
	cmd.Env = append(os.Environ(), "CNI_COMMAND=DEL", "CNI_CONTAINERID=gwtest-running", "CNI_NETNS="+netns,
		"CNI_IFNAME=eth0", "CNI_PATH="+dir, "CNI_ARGS=K8S_POD_NAMESPACE=gw-test;K8S_POD_NAME=running-0")
	cmd.Stdin = strings.NewReader(`{"cniVersion":"1.0.0","name":"lo","type":"loopback"}`)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	cmd.WaitDelay = testutil.Wait // bounds Wait where a sleep of the wrapper's outlives it
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Its sleep holds the stdout pipe that Wait reads to its end: on a path that did not end the
	// sleep, the sleep goes first.
	t.Cleanup(func() {
		if sleep := wrapperSleep(dir); sleep > 0 {
			unix.Kill(sleep, unix.SIGKILL)
		}
		cmd.Process.Kill()
		cmd.Wait()
	})
	for deadline := time.Now().Add(testutil.Wait); wrapperSleep(dir) == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the wrapper did not run sleep")
		}
	}

	// Its slow report says it was found running: its sleep ends after that.
	tr := open(t, gadget.Params{cni.ParamSlow: 300 * time.Millisecond})
	slow := tr.next(t, cni.KindSlow, "DEL running-0", forPod("DEL", "running-0"))
	i := slices.IndexFunc(slow.Blocked, func(b cni.Blocked) bool { return b.Comm == "sleep" })
	if slow.FoundBy != "running" || i < 0 {
		t.Fatalf("slow: found by %s, blocked %+v; want found running, in sleep", slow.FoundBy, slow.Blocked)
	}
	unix.Kill(int(slow.Blocked[i].PID), unix.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("the wrapper: %v", err)
	}
	if data, err := os.ReadFile(file); err != nil || string(data) != "marker-file\n" || stdout.String() != "printed-after\n" {
		t.Fatalf("the wrapper wrote %q to its file (%v), %q to its stdout", data, err, stdout.String())
	}
	done := tr.next(t, cni.KindDone, "DEL running-0", forPod("DEL", "running-0"))
	// Its stderr has the shell's word on the killed sleep.
	if done.ExitCode != 0 || done.Text != "printed-after\n" || strings.Contains(done.Stderr, "marker-file") {
		t.Errorf("done: %+v, stdout %q, stderr %q; want exit 0, printed-after only", done.Exit, done.Text, done.Stderr)
	}
}

// Two ADDs for one pod, each with a new namespace (a kubelet retrying RunPodSandbox), are a
// retry loop: the second points at the first and its outcome.
func TestRetriedAdd(t *testing.T) {
	testutil.RequirePrivileged(t)
	requirePlugins(t)
	tr := open(t, nil)
	conf, err := libcni.ConfListFromBytes([]byte(`{"cniVersion":"1.0.0","name":"lo","plugins":[{"type":"loopback"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	cfg := libcni.NewCNIConfig([]string{debianBin}, nil)
	var first *cni.Invocation
	for i, id := range []string{"gwtest-try1", "gwtest-try2"} {
		netns, _ := netnsAdd(t)
		if _, err := cfg.AddNetworkList(context.Background(), conf, podRuntime(id, netns, "retry-0")); err != nil {
			t.Fatal(err)
		}
		start := tr.next(t, cni.KindStart, "ADD "+id, func(v *cni.Invocation) bool { return v.ContainerID == id })
		if i == 0 {
			first = start
			if start.Attempt > 1 || start.Cause != nil {
				t.Errorf("first ADD flagged: attempt %d, cause %+v", start.Attempt, start.Cause)
			}
			continue
		}
		if start.Attempt != 2 || start.Cause == nil || start.Cause.PID != first.Proc.PID ||
			!slices.Contains(start.Cause.Attrs, gadget.Attr{Key: "outcome", Value: "ok"}) {
			t.Errorf("second ADD: attempt %d, cause %+v; want 2, the first (pid %d), ok", start.Attempt, start.Cause, first.Proc.PID)
		}
	}
}

// A file outside the bin dirs is a plugin when exec'd with CNI_COMMAND, with --env-match only.
func TestEnvMatch(t *testing.T) {
	testutil.RequirePrivileged(t)
	requirePlugins(t)
	dir := t.TempDir()
	data, err := os.ReadFile(filepath.Join(debianBin, "loopback"))
	if err != nil {
		t.Fatal(err)
	}
	elsewhere := filepath.Join(dir, "lo-elsewhere")
	if err := os.WriteFile(elsewhere, data, 0o755); err != nil {
		t.Fatal(err)
	}
	run := func(file, id string) {
		cmd := exec.Command(file)
		// Many variables before it, so that the scan crosses its chunks.
		cmd.Env = append(os.Environ(), "FILLER="+strings.Repeat("x", 3000), "CNI_COMMAND=VERSION", "CNI_CONTAINERID="+id)
		cmd.Stdin = strings.NewReader(`{"cniVersion":"1.0.0"}`)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", file, err, out)
		}
	}
	for _, match := range []bool{false, true} {
		t.Run(fmt.Sprint("env-match=", match), func(t *testing.T) {
			tr := open(t, gadget.Params{cni.ParamEnvMatch: match})
			// Plugins in a bin dir are always seen: one before, so that the processes running
			// at start have been looked for (where this one would be found by its environment
			// whatever the option), and one after.
			run(filepath.Join(debianBin, "loopback"), "before")
			tr.next(t, cni.KindDone, "the first marker", func(v *cni.Invocation) bool { return v.ContainerID == "before" })
			run(elsewhere, "elsewhere")
			run(filepath.Join(debianBin, "loopback"), "after")
			seen := map[string]*cni.Invocation{}
			tr.events.Next(t, "the second marker's done", func(ev gadget.Event) bool {
				v, ok := ev.(*cni.Invocation)
				if ok && v.Kind == cni.KindDone {
					seen[v.ContainerID] = v
				}
				return ok && v.Kind == cni.KindDone && v.ContainerID == "after"
			}, nil)
			v := seen["elsewhere"]
			if match && (v == nil || v.FoundBy != "env" || v.Command != "VERSION" || !strings.Contains(string(v.Result), "supportedVersions")) {
				t.Errorf("--env-match: the file outside the bin dirs: %+v", v)
			}
			if !match && v != nil {
				t.Errorf("without --env-match, a file outside the bin dirs was taken for a plugin: %+v", v)
			}
		})
	}
}

// The JSON of a done event carries the result as the plugin printed it.
func TestDoneJSON(t *testing.T) {
	testutil.RequirePrivileged(t)
	requirePlugins(t)
	tr := open(t, nil)
	cmd := exec.Command(filepath.Join(debianBin, "loopback"))
	cmd.Env = append(os.Environ(), "CNI_COMMAND=VERSION", "CNI_CONTAINERID=json-test")
	cmd.Stdin = strings.NewReader(`{"cniVersion":"1.0.0"}`)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	done := tr.next(t, cni.KindDone, "VERSION", func(v *cni.Invocation) bool { return v.ContainerID == "json-test" })
	var w gadget.JSONLines
	w.Append(done)
	var got struct {
		CNI struct {
			Command string          `json:"command"`
			Result  json.RawMessage `json:"result"`
			Exit    *int            `json:"exit_code"`
		} `json:"cni"`
	}
	if err := json.Unmarshal(w.B, &got); err != nil {
		t.Fatalf("%v: %s", err, w.B)
	}
	if got.CNI.Command != "VERSION" || got.CNI.Exit == nil || *got.CNI.Exit != 0 || !strings.Contains(string(got.CNI.Result), "supportedVersions") {
		t.Errorf("JSON: %s", w.B)
	}
}
