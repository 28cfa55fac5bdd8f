package netns

import "testing"

func TestNsfsMount(t *testing.T) {
	for _, tc := range []struct {
		line  string
		inode uint32
		point string
		ok    bool
	}{
		{"651 29 0:4 net:[4026532181] /run/netns/cni-1\\0402 rw shared:5 - nsfs nsfs rw", 4026532181, "/run/netns/cni-1 2", true},
		{"652 29 0:4 mnt:[4026532180] /run/mnt rw - nsfs nsfs rw", 0, "", false},
		{"25 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw", 0, "", false},
	} {
		inode, point, ok := nsfsMount(tc.line)
		if inode != tc.inode || point != tc.point || ok != tc.ok {
			t.Errorf("%q: %d %q %v, want %d %q %v", tc.line, inode, point, ok, tc.inode, tc.point, tc.ok)
		}
	}
}

func TestGroupAndSentence(t *testing.T) {
	const self = 99
	recs := []record{
		{kind: KindMember, netns: 7, proc: Proc{PID: 10, TID: 10, Comm: "sh"}},
		{kind: KindMember, netns: 7, proc: Proc{PID: 10, TID: 11, Comm: "sh"}}, // another thread
		{kind: KindMember, netns: 8, proc: Proc{PID: self, TID: 100, Comm: "ghostwatch"}},
		{kind: KindSocket, netns: 8, proc: Proc{PID: 812, Comm: "agent"}, fd: 5, sock: SocketName(16, 3, 0)},
		{kind: KindFD, netns: 8, proc: Proc{PID: self, Comm: "ghostwatch"}, fd: 9},
		{kind: KindMount, netns: 9, proc: Proc{PID: self, MntNS: 4026531841}, mount: "/run/netns/x", fd: -1},
	}
	got := group(recs, self)
	if len(got) != 3 || got[0].Inode != 7 || got[0].Members != 1 || got[1].Members != 0 || len(got[1].Holders) != 1 {
		t.Fatalf("group: %+v", got)
	}
	want := []string{
		"held by 1 process in it (pid 10 sh)",
		"held by pid 812 agent fd 5 netlink(route)",
		"held by mount /run/netns/x (mnt ns 4026531841)",
	}
	for i, n := range got {
		if s := n.HeldBy(); s != want[i] {
			t.Errorf("netns %d: %q, want %q", n.Inode, s, want[i])
		}
	}
	if s := (&Namespace{}).HeldBy(); s != "no holder visible from processes, open files or mounts: the kernel holds it" {
		t.Errorf("nothing visible: %q", s)
	}
	n := Namespace{Interfaces: []Interface{{"lo", []string{"127.0.0.1/8", "::1/128"}}, {"eth0", []string{"10.99.0.7/24"}}}}
	if s := n.Addresses(); s != "10.99.0.7/24 on eth0" {
		t.Errorf("addresses: %q", s)
	}
}
