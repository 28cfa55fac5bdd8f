package netns

import (
	"net"
	"strconv"
	"strings"
)

// HeldBy says in one phrase what keeps the namespace alive: "held by pid 812 agent fd 5
// netlink(route)", "2 processes (pid 4242 sleep, ...)", or that nothing visible does.
func (n *Namespace) HeldBy() string {
	var parts []string
	if n.Members > 0 {
		procs := make([]string, len(n.Sample))
		for i, p := range n.Sample {
			procs[i] = "pid " + strconv.Itoa(int(p.PID)) + " " + p.Comm
		}
		more := ""
		if n.Members > len(n.Sample) {
			more = ", ..."
		}
		parts = append(parts, plural(n.Members, "process", "processes")+" in it ("+strings.Join(procs, ", ")+more+")")
	}
	for _, h := range n.Holders {
		switch h.Kind {
		case KindMount:
			parts = append(parts, "mount "+h.Mount+" (mnt ns "+strconv.Itoa(int(h.MntNS))+")")
		case KindFD:
			parts = append(parts, "pid "+strconv.Itoa(int(h.PID))+" "+h.Comm+" fd "+strconv.Itoa(h.FD)+" (nsfs)")
		case KindSocket:
			parts = append(parts, "pid "+strconv.Itoa(int(h.PID))+" "+h.Comm+" fd "+strconv.Itoa(h.FD)+" "+h.Socket)
		}
	}
	if len(parts) == 0 {
		return "no holder visible from processes, open files or mounts: the kernel holds it"
	}
	return "held by " + strings.Join(parts, ", ")
}

// Addresses lists its addresses but loopback ones (127.0.0.0/8, ::1), which every namespace
// has: "10.99.0.7/24 on eth0".
func (n *Namespace) Addresses() string {
	if n.InterfacesError != "" {
		return "interfaces not read: " + n.InterfacesError
	}
	var out []string
	for _, i := range n.Interfaces {
		for _, a := range i.Addrs {
			if ip, _, err := net.ParseCIDR(a); err == nil && !ip.IsLoopback() {
				out = append(out, a+" on "+i.Name)
			}
		}
	}
	if len(out) == 0 {
		return "no address"
	}
	return strings.Join(out, ", ")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}
