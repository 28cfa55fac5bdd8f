package cni

import (
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	gen "github.com/ghostwatch/ghostwatch/gen/cni"
	"github.com/ghostwatch/ghostwatch/tracer/container"
	"github.com/ghostwatch/ghostwatch/tracer/event"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
)

// feeder builds the kernel's records of one invocation for the tracker, without a kernel.
type feeder struct {
	t        *testing.T
	tr       *tracker
	now      time.Time
	events   []*Invocation
	resolver event.Resolver // given to the exec records, as the gadget's run does
}

func newFeeder(t *testing.T, slow time.Duration) *feeder {
	p, err := Gadget.WithDefaults(gadget.Params{ParamSlow: slow})
	if err != nil {
		t.Fatal(err)
	}
	tr := newTrackerFor(p)
	tr.blocked = func(pid uint32) (Blocked, bool) {
		return Blocked{PID: pid, TID: pid, Comm: "fake", Syscall: "flock", Target: "/run/xtables.lock"}, true
	}
	return &feeder{t: t, tr: tr, now: time.Unix(1000, 0)}
}

func (f *feeder) emit(ev gadget.Event) { f.events = append(f.events, ev.Clone().(*Invocation)) }

func (f *feeder) header(pid, ppid uint32, comm string) event.Header {
	return event.Header{Time: f.now, Type: Type, Proc: event.Proc{PID: pid, TID: pid, PPID: ppid, Comm: comm}}
}

func fill(dst []int8, s string) uint32 {
	for i := range len(s) {
		dst[i] = int8(s[i])
	}
	return uint32(len(s))
}

func (f *feeder) exec(pid, ppid, root uint32, file string, inBinDir bool, env ...string) {
	rec := &gen.CniExecEvent{Root: root, Found: uint32(gen.CniCniFoundFOUND_BIN_DIR)}
	if pid != root {
		rec.Found = uint32(gen.CniCniFoundFOUND_TREE)
	}
	if inBinDir {
		rec.InBinDir = 1
	}
	fill(rec.File[:], file)
	rec.ArgsLen = fill(rec.Args[:], file+"\x00-x\x00")
	rec.EnvLen = fill(rec.Env[:], strings.Join(env, "\x00"))
	f.tr.Process(&ExecRecord{Folded: gadget.Folded{Header: f.header(pid, ppid, base(file))}, rec: rec, resolver: f.resolver}, f.emit)
}

func (f *feeder) output(pid, root, fd uint32, data string) {
	rec := &gen.CniOutputEvent{Root: root, Fd: fd, Count: uint32(len(data))}
	rec.Len = fill(rec.Data[:], data)
	f.tr.Process(&OutputRecord{Folded: gadget.Folded{Header: f.header(pid, 0, "")}, rec: rec}, f.emit)
}

func (f *feeder) exit(pid, root uint32, code int32) {
	f.tr.Process(&ExitRecord{Folded: gadget.Folded{Header: f.header(pid, 0, "")}, Root: root, Code: code}, f.emit)
}

func (f *feeder) last(kind string) *Invocation {
	f.t.Helper()
	for i := len(f.events) - 1; i >= 0; i-- {
		if f.events[i].Kind == kind {
			return f.events[i]
		}
	}
	f.t.Fatalf("no %s event in %d events", kind, len(f.events))
	return nil
}

func cniEnv(command, id, netns, pod string) []string {
	return []string{"PATH=/usr/bin", "CNI_COMMAND=" + command, "CNI_CONTAINERID=" + id, "CNI_NETNS=" + netns,
		"CNI_IFNAME=eth0", "CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=prod;K8S_POD_NAME=" + pod + ";K8S_POD_UID=u1"}
}

func TestTrackerFoldsAnInvocation(t *testing.T) {
	f := newFeeder(t, 10*time.Second)
	f.exec(100, 1, 100, "/opt/cni/bin/bridge", true, cniEnv("ADD", "abc", "/var/run/netns/cni-1", "web-0")...)
	start := f.last(KindStart)
	if start.Command != "ADD" || start.Pod != "web-0" || start.K8sNamespace != "prod" || start.PodUID != "u1" ||
		start.ContainerID != "abc" || start.Plugin != "bridge" || start.FoundBy != "bin_dir" {
		t.Errorf("start: %+v", start)
	}
	f.now = f.now.Add(10 * time.Millisecond)
	f.exec(101, 100, 100, "/opt/cni/bin/host-local", true)
	f.output(101, 100, 1, `{"code":11,"msg":"no IP addresses available in range set"}`)
	f.exit(101, 100, 1<<8)
	f.output(100, 100, 2, "some log\n")
	f.output(100, 100, 1, `{"cniVersion":"1.0.0","code":11,"msg":"failed to allocate","details":"range full"}`)
	f.now = f.now.Add(20 * time.Millisecond)
	f.exit(100, 100, 1<<8)

	done := f.last(KindDone)
	if done.Duration != 30*time.Millisecond || done.ExitCode != 1 || done.Error == nil || done.Error.Code != 11 ||
		done.Error.Details != "range full" || done.Stderr != "some log\n" {
		t.Errorf("done: %+v", done)
	}
	if len(done.Chain) != 1 || done.Chain[0].PID != 101 || !done.Chain[0].Plugin || done.Chain[0].ExitCode != 1 ||
		done.Chain[0].Error == nil || done.Chain[0].Duration != 0 || !slices.Equal(done.Chain[0].Args, []string{"/opt/cni/bin/host-local", "-x"}) {
		t.Errorf("chain: %+v", done.Chain)
	}
	if w := done.What(); !strings.Contains(w, "failed (exit 1)") || !strings.Contains(w, "[11] failed to allocate: range full") {
		t.Errorf("row: %s", w)
	}
	if len(f.tr.inflight) != 0 {
		t.Errorf("%d invocations left in flight", len(f.tr.inflight))
	}
}

func TestTrackerReportsSlowAndAtStop(t *testing.T) {
	f := newFeeder(t, time.Second)
	f.exec(200, 1, 200, "/opt/cni/bin/bridge", true, cniEnv("DEL", "d", "/nonexistent", "db-0")...)
	f.exec(201, 200, 200, "/usr/sbin/iptables", false)
	f.tr.Flush(f.now.Add(500*time.Millisecond), false, f.emit)
	if len(f.events) != 1 {
		t.Fatalf("reported before --slow: %d events", len(f.events))
	}
	f.tr.Flush(f.now.Add(1100*time.Millisecond), false, f.emit)
	slow := f.last(KindSlow)
	if slow.Duration != 1100*time.Millisecond || len(slow.Blocked) != 2 || slow.Blocked[1].PID != 201 ||
		len(slow.Chain) != 1 || slow.Chain[0].Exited || slow.AtStop {
		t.Errorf("slow: %+v", slow)
	}
	f.tr.Flush(f.now.Add(1500*time.Millisecond), false, f.emit)
	if len(f.events) != 2 {
		t.Errorf("reported again before another --slow: %d events", len(f.events))
	}
	f.tr.Flush(f.now.Add(2200*time.Millisecond), false, f.emit)
	f.tr.Flush(f.now.Add(2300*time.Millisecond), true, f.emit)
	if len(f.events) != 4 || !f.events[3].AtStop {
		t.Errorf("want a second slow, then one at stop: %d events, last %+v", len(f.events), f.events[len(f.events)-1])
	}
}

// An invocation whose plugin is gone without its exit seen ends as done, exit not seen.
func TestTrackerGoneWithoutExit(t *testing.T) {
	f := newFeeder(t, time.Second)
	f.tr.blocked = func(uint32) (Blocked, bool) { return Blocked{}, false }
	f.exec(300, 1, 300, "/opt/cni/bin/bridge", true, cniEnv("ADD", "x", "/n", "p")...)
	// Found gone before its exit was read: the exit may still be on its way (a slow reader).
	f.tr.Flush(f.now.Add(2*time.Second), false, f.emit)
	f.tr.Flush(f.now.Add(4*time.Second), false, f.emit)
	if len(f.events) != 1 || len(f.tr.inflight) != 1 {
		t.Fatalf("given up on before a later record was read: %d events", len(f.events))
	}
	// Another invocation's record, made after it was found gone, is read: its exit was lost.
	f.now = f.now.Add(3 * time.Second)
	f.exec(301, 1, 301, "/opt/cni/bin/bridge", true, cniEnv("DEL", "y", "/n", "q")...)
	f.tr.Flush(f.now.Add(2*time.Second), false, f.emit)
	done := f.last(KindDone)
	if done.Exited || !strings.Contains(done.What(), "exit not seen") || done.Proc.PID != 300 || f.tr.inflight[300] != nil {
		t.Errorf("done: %+v (%s)", done, done.What())
	}
}

func TestTrackerRetryLoop(t *testing.T) {
	f := newFeeder(t, time.Minute)
	add := func(pid uint32, id, netns string, code int32) *Invocation {
		f.exec(pid, 1, pid, "/opt/cni/bin/bridge", true, cniEnv("ADD", id, netns, "web-0")...)
		start := f.last(KindStart)
		f.now = f.now.Add(10 * time.Second)
		if code >= 0 {
			f.exit(pid, pid, code)
		}
		return start
	}
	first := add(10, "s1", "/run/netns/a", -1) // still running when the next comes
	if first.Attempt != 0 || first.Cause != nil {
		t.Errorf("first: attempt %d cause %+v", first.Attempt, first.Cause)
	}
	second := add(11, "s2", "/run/netns/b", 1<<8)
	if second.Attempt != 2 || second.Cause == nil || second.Cause.PID != 10 || second.Cause.Before != 10*time.Second ||
		!slices.Contains(second.Cause.Attrs, gadget.Attr{Key: "outcome", Value: "running"}) {
		t.Errorf("second: attempt %d cause %+v", second.Attempt, second.Cause)
	}
	third := add(12, "s3", "/run/netns/c", 0)
	if third.Attempt != 3 || !slices.Contains(third.Cause.Attrs, gadget.Attr{Key: "outcome", Value: "failed (exit 1)"}) {
		t.Errorf("third: attempt %d cause %+v", third.Attempt, third.Cause)
	}
	if !strings.Contains(third.What(), "RETRY: ADD number 3") {
		t.Errorf("row: %s", third.What())
	}
	// The same sandbox again (its other network: containerd adds loopback beside the main one, in
	// either order) is the same attempt, not a new one; another pod is no retry.
	if again := add(13, "s3", "/run/netns/c", 0); again.Attempt != 3 || again.Cause == nil || again.Cause.PID != 11 {
		t.Errorf("the same sandbox's other ADD: attempt %d cause %+v, want 3 caused by pid 11", again.Attempt, again.Cause)
	}
	f.exec(14, 1, 14, "/opt/cni/bin/bridge", true, cniEnv("ADD", "o", "/run/netns/o", "other-0")...)
	if other := f.last(KindStart); other.Cause != nil {
		t.Errorf("another pod flagged: %+v", other.Cause)
	}
}

func TestParseEnv(t *testing.T) {
	c := parseEnv([]byte("A=1\x00CNI_COMMAND=DEL\x00CNI_COMMAND=ADD\x00CNI_ARGS=K8S_POD_NAME=p;K8S_POD_NAMESPACE=n\x00CNI_PATH=/a:/b"))
	if c.Command != "DEL" || c.Pod != "p" || c.K8sNamespace != "n" || c.PodKey() != "n/p" || c.Path != "/a:/b" {
		t.Errorf("parsed %+v", c)
	}
	if c := parseEnv(nil); c.PodKey() != "" {
		t.Errorf("empty environment: %+v", c)
	}
}

func TestParseStdout(t *testing.T) {
	for _, tc := range []struct {
		out          string
		result, text string
		code         int
	}{
		{"", "", "", 0},
		{`{"code":7,"msg":"bad"}`, "", "", 7},
		{"{\n  \"cniVersion\": \"1.0.0\",\n  \"ips\": []\n}\n", `{"cniVersion":"1.0.0","ips":[]}`, "", 0},
		{"panic: oops\n", "", "panic: oops\n", 0},
		{`{"msg":"no code: a result"}`, `{"msg":"no code: a result"}`, "", 0},
	} {
		p := parseStdout([]byte(tc.out))
		code := 0
		if p.Error != nil {
			code = p.Error.Code
		}
		if string(p.Result) != tc.result || p.Text != tc.text || code != tc.code {
			t.Errorf("%q: %+v", tc.out, p)
		}
	}
	if s := summary([]byte(`{"interfaces":[{"name":"eth0","sandbox":"/x"}],"ips":[{"address":"10.1.0.5/24","interface":0}]}`)); s != "10.1.0.5/24 on eth0" {
		t.Errorf("summary %q", s)
	}
}

func TestExitOf(t *testing.T) {
	if x := exitOf(9); x.Signal != "SIGKILL" {
		t.Errorf("9: %+v", x)
	}
	if x := exitOf(3 << 8); x.ExitCode != 3 || x.Signal != "" {
		t.Errorf("3<<8: %+v", x)
	}
}

// An ADD tells the resolver, where it keeps them (the container index), the pod of the namespace
// it is for: netns's created event of that namespace takes it. A DEL, or an ADD without a pod,
// tells nothing.
func TestAddNamesItsNetwork(t *testing.T) {
	f := newFeeder(t, 10*time.Second)
	coll := container.NewCollection()
	f.resolver = coll
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &st); err != nil {
		t.Fatal(err)
	}
	inode := uint32(st.Ino)
	f.exec(100, 1, 100, "/opt/cni/bin/bridge", true, cniEnv("DEL", "abc", "/proc/self/ns/net", "web-0")...)
	if got := coll.Network(inode, f.now); got != nil {
		t.Fatalf("a DEL named the namespace's pod: %+v", got)
	}
	f.exec(200, 1, 200, "/opt/cni/bin/bridge", true, cniEnv("ADD", "abc", "/proc/self/ns/net", "web-0")...)
	got := coll.Network(inode, f.now)
	if got == nil || got.ID != "abc" || got.Pod != "web-0" || got.K8sNamespace != "prod" || got.PodUID != "u1" {
		t.Fatalf("the ADD's pod: %+v", got)
	}
}
