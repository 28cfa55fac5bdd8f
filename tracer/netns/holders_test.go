package netns_test

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ghostwatch/ghostwatch/tracer/event"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
	"github.com/ghostwatch/ghostwatch/tracer/netns"
	"github.com/ghostwatch/ghostwatch/tracer/testutil"
)

// receiverEnv makes the test binary a process that receives one fd over SCM_RIGHTS on fd 3,
// prints "ready FD" and keeps it until its stdin closes.
const receiverEnv = "GHOSTWATCH_NETNS_RECEIVER"

// agentEnv makes the test binary a node agent: it enters the network namespace at the path
// given, opens a NETLINK_ROUTE socket there, comes back, prints "ready FD" and keeps the socket
// until its stdin closes.
const agentEnv = "GHOSTWATCH_NETNS_AGENT"

func TestMain(m *testing.M) {
	if os.Getenv(receiverEnv) == "1" {
		os.Exit(receive())
	}
	if path := os.Getenv(agentEnv); path != "" {
		os.Exit(agent(path))
	}
	os.Exit(m.Run())
}

func agent(path string) int {
	runtime.LockOSThread() // the namespace changes stay on this thread
	home, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY, 0)
	if err == nil {
		var target int
		if target, err = unix.Open(path, unix.O_RDONLY, 0); err == nil {
			err = unix.Setns(target, unix.CLONE_NEWNET)
			unix.Close(target) // the socket alone will hold the namespace
		}
	}
	if err != nil {
		fmt.Println("agent:", err)
		return 1
	}
	sock, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_ROUTE)
	if err == nil {
		err = unix.Setns(home, unix.CLONE_NEWNET)
		unix.Close(home)
	}
	if err != nil {
		fmt.Println("agent:", err)
		return 1
	}
	fmt.Printf("ready %d\n", sock)
	io.Copy(io.Discard, os.Stdin)
	return 0
}

func receive() int {
	oob := make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := unix.Recvmsg(3, make([]byte, 1), oob, 0)
	if err != nil {
		fmt.Println("recvmsg:", err)
		return 1
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		fmt.Println("control message:", err)
		return 1
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		fmt.Println("rights:", err)
		return 1
	}
	fmt.Printf("ready %d\n", fds[0])
	io.Copy(io.Discard, os.Stdin)
	return 0
}

// testNS is a network namespace of the test's own: a process lives in it, and it has an address
// (on its loopback device: veth is a module guests of vmtest do not have).
type testNS struct {
	member *testutil.Holder
	inode  uint32
}

const testAddr = "10.99.0.7/24"

func newTestNS(t *testing.T) *testNS {
	t.Helper()
	n := &testNS{member: testutil.StartHolder(t, unix.CLONE_NEWNET)}
	n.inode = testutil.NSInode(t, n.member.Pid, "net")
	run(t, "nsenter", "-t", strconv.Itoa(n.member.Pid), "-n", "ip", "addr", "add", testAddr, "dev", "lo")
	return n
}

func run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%v: %v: %s", args, err, out)
	}
}

func TestHolders(t *testing.T) {
	testutil.RequirePrivileged(t)
	for _, source := range []string{gadget.SourceIterators, gadget.SourceProc} {
		for _, tc := range []struct {
			name string
			// generate makes a holder of the namespace, then ends its member unless the case is
			// about members; it returns the holder wanted (nil: a member).
			generate func(t *testing.T, n *testNS) *netns.Holder
		}{
			{"member", func(t *testing.T, n *testNS) *netns.Holder { return nil }},
			{"nsfs-fd", func(t *testing.T, n *testNS) *netns.Holder {
				f, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", n.member.Pid))
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				cmd := exec.Command("sh", "-c", "echo ready; exec cat") // keeps its fd 3 until the test ends
				cmd.ExtraFiles = []*os.File{f}
				testutil.StartProcess(t, cmd)
				n.member.Stop()
				return &netns.Holder{Kind: netns.KindFD, Proc: netns.Proc{PID: uint32(cmd.Process.Pid)}, FD: 3}
			}},
			{"socket-passed-with-scm-rights", func(t *testing.T, n *testNS) *netns.Holder {
				sock := socketIn(t, n)
				pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
				if err != nil {
					t.Fatal(err)
				}
				theirs := os.NewFile(uintptr(pair[1]), "pair")
				defer theirs.Close()
				defer unix.Close(pair[0])
				cmd := exec.Command(os.Args[0])
				cmd.Env = append(os.Environ(), receiverEnv+"=1")
				cmd.ExtraFiles = []*os.File{theirs}
				if err := unix.Sendmsg(pair[0], []byte{0}, unix.UnixRights(sock), nil, 0); err != nil {
					t.Fatal(err)
				}
				unix.Close(sock)
				_, line := testutil.StartProcess(t, cmd)
				fd, err := strconv.Atoi(strings.TrimPrefix(line, "ready "))
				if err != nil {
					t.Fatalf("receiver: %q", line)
				}
				n.member.Stop()
				return &netns.Holder{Kind: netns.KindSocket, Proc: netns.Proc{PID: uint32(cmd.Process.Pid)}, FD: fd, Socket: "netlink(route)"}
			}},
			{"bind-mount", func(t *testing.T, n *testNS) *netns.Holder {
				path := filepath.Join(t.TempDir(), "ns")
				if err := os.WriteFile(path, nil, 0o644); err != nil {
					t.Fatal(err)
				}
				if err := unix.Mount(fmt.Sprintf("/proc/%d/ns/net", n.member.Pid), path, "", unix.MS_BIND, ""); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { unix.Unmount(path, unix.MNT_DETACH) })
				n.member.Stop()
				return &netns.Holder{Kind: netns.KindMount, Mount: path}
			}},
		} {
			t.Run(source+"/"+tc.name, func(t *testing.T) {
				n := newTestNS(t)
				want := tc.generate(t, n)
				items := holders(t, source, gadget.Params{netns.ParamNetNS: uint64(n.inode)}, nil)
				if len(items) != 1 {
					t.Fatalf("%s snapshot of netns %d: %d namespaces", source, n.inode, len(items))
				}
				got := items[0].(*netns.Namespace)
				if addrs := got.Addresses(); addrs != testAddr+" on lo" {
					t.Errorf("addresses %q, want %s on lo", addrs, testAddr)
				}
				if want == nil {
					// The member is a shell and its child.
					if got.Members != 2 || got.Sample[0].PID != uint32(n.member.Pid) || len(got.Holders) != 0 {
						t.Errorf("members %d %+v, holders %+v; want pid %d and its child", got.Members, got.Sample, got.Holders, n.member.Pid)
					}
					return
				}
				if !got.Orphan() || len(got.Holders) != 1 {
					t.Fatalf("%d members, holders %+v; want no member and one holder %+v", got.Members, got.Holders, want)
				}
				h := got.Holders[0]
				if h.Kind != want.Kind || (want.PID != 0 && h.PID != want.PID) || (want.Kind != netns.KindMount && h.FD != want.FD) ||
					h.Socket != want.Socket || h.Mount != want.Mount {
					t.Errorf("holder %+v, want %+v", h, *want)
				}
				if s := got.HeldBy(); !strings.HasPrefix(s, "held by ") {
					t.Errorf("HeldBy: %q", s)
				}
			})
		}
	}
}

// holders takes `netns holders` through the framework, as the CLI does.
func holders(t *testing.T, source string, p gadget.Params, r event.Resolver) []gadget.Item {
	t.Helper()
	g, err := gadget.Open(&netns.Holders, gadget.Options{Source: source, Params: p})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if iters := g.Kind(netns.HookHolders) != ""; iters != (source != gadget.SourceProc) {
		t.Fatalf("source %s: iterators attached: %v (%v)", source, iters, g.Choices())
	}
	items, err := g.Snapshot(r)
	if err != nil {
		t.Fatal(err)
	}
	return items
}

// socketIn makes a NETLINK_ROUTE socket in the namespace, as a node agent would from a thread
// that entered it.
func socketIn(t *testing.T, n *testNS) int {
	t.Helper()
	nsfd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/net", n.member.Pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(nsfd)
	var sock int
	if _, err := testutil.OnOwnThread(func() error {
		if err := unix.Setns(nsfd, unix.CLONE_NEWNET); err != nil {
			return err
		}
		sock, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return sock
}
