package bench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ghostwatch/ghostwatch/tracer/event"
	"github.com/ghostwatch/ghostwatch/tracer/flightrec"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
	"github.com/ghostwatch/ghostwatch/tracer/netns"
	"github.com/ghostwatch/ghostwatch/tracer/setns"
)

// historyBytes is the size of the record history is timed on.
const historyBytes = 1 << 30

// BenchmarkHistory writes a flight record of 1 GiB as the agent writes it (setns and netns events
// of 200 pods' containers and of the host, 3 ms apart: about ten million over eight hours) and
// times `ghostwatch history` on it: one pod's events, as JSON and as a table, and a ten-minute
// window of the whole node. The target is under 2 s for one pod.
func BenchmarkHistory(b *testing.B) {
	dir := b.TempDir()
	ghostwatch := build(b, dir, "ghostwatch", "../../cmd/ghostwatch")
	rec := filepath.Join(dir, "record")
	t0 := time.Now().Add(-24 * time.Hour)
	start := time.Now()
	events, span := writeRecord(b, rec, t0)
	fmt.Printf("\nhistory: a record of %d MiB (%d events of 201 actors over %v), written in %.0f s\n",
		dirSize(b, rec)>>20, events, span.Round(time.Minute), time.Since(start).Seconds())
	from := t0.Add(span / 2).Format(time.RFC3339)
	to := t0.Add(span/2 + 10*time.Minute).Format(time.RFC3339)
	fmt.Printf("%-58s %9s %9s %10s\n", "median of 5, page cache warm", "wall s", "cpu s", "events")
	for _, q := range []struct {
		name string
		args []string
		goal float64
	}{
		{"history --pod web-17 -o json", []string{"--pod", "web-17", "-o", "json"}, 2},
		{"history --pod web-17 -o table", []string{"--pod", "web-17", "-o", "table"}, 2},
		{"history --pod web-17 --gadget netns -o json", []string{"--pod", "web-17", "--gadget", "netns", "-o", "json"}, 0},
		{"history --from T --to T+10m -o json (the node)", []string{"--from", from, "--to", to, "-o", "json"}, 0},
	} {
		var walls, cpus []float64
		var n string
		for range rounds {
			cmd := exec.Command(ghostwatch, append([]string{"history", "--data-dir", rec}, q.args...)...)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			begin := time.Now()
			if err := cmd.Run(); err != nil {
				b.Fatalf("%s: %v: %s", q.name, err, stderr.String())
			}
			walls = append(walls, time.Since(begin).Seconds())
			u := cmd.ProcessState.SysUsage().(*syscall.Rusage)
			cpus = append(cpus, time.Duration(u.Utime.Nano()+u.Stime.Nano()).Seconds())
			fmt.Sscanf(stderr.String(), "ghostwatch: history: %s events", &n)
		}
		line := fmt.Sprintf("%-58s %9.2f %9.2f %10s", q.name, median(walls), median(cpus), n)
		if q.goal > 0 {
			line += fmt.Sprintf("   target < %.0f s: %s", q.goal, verdict(median(walls) < q.goal))
		}
		fmt.Println(line)
	}
}

// writeRecord writes about historyBytes of record: setns and netns events, as the gadgets encode
// them, of 200 pods' containers and of the host, in the agent's order and blocks, 3 ms apart from
// t0. Returns how many, over what span.
func writeRecord(b *testing.B, dir string, t0 time.Time) (uint64, time.Duration) {
	w, err := flightrec.Open(dir, flightrec.Options{Retain: 2 * historyBytes})
	if err != nil {
		b.Fatal(err)
	}
	conts := make([]*event.Container, 201) // the last: the host
	for i := range 200 {
		conts[i] = &event.Container{ID: fmt.Sprintf("%064x", 0xc0ffee+i), Name: "app", Runtime: "containerd",
			Image: "registry.example/app:1.4." + fmt.Sprint(i%7), Pod: fmt.Sprintf("web-%d", i), K8sNamespace: fmt.Sprintf("team-%d", i%12)}
	}
	comms := []string{"nginx", "python3", "runc:[2:INIT]", "sh", "curl", "containerd-shim", "iptables"}
	var encs [2]flightrec.Encoder
	fd := int32(3)
	setnsEv := &setns.Event{}
	netnsEv := &netns.Event{}
	var n uint64
	const step = 3 * time.Millisecond // ~29M events a day
	for i := 0; ; i++ {
		c := conts[(i*7919)%len(conts)]
		at := t0.Add(time.Duration(i) * step)
		h := event.Header{Time: at, Container: c,
			Proc: event.Proc{PID: uint32(1000 + i%30000), TID: uint32(1000 + i%30000), PPID: uint32(900 + i%50), UID: uint32(i % 3 * 1000), GID: uint32(i % 3 * 1000), Comm: comms[i%len(comms)]},
			NS: event.Namespaces{Mnt: 4026532000 + uint32(i%400), Net: 4026533000 + uint32(i%200), PID: 4026534000 + uint32(i%400),
				User: 4026531837, UTS: 4026535000 + uint32(i%400), IPC: 4026536000 + uint32(i%400), Cgroup: 4026531835, Time: 4026531834, CgroupID: uint64(9000 + i%400)}}
		var ev gadget.Event
		enc := &encs[1]
		if i%4 == 0 {
			enc = &encs[0]
			h.Type, h.Kind = "netns", []string{"created", "empty", "destroyed"}[i%3]
			*netnsEv = netns.Event{Header: h, NetNS: h.NS.Net, How: "unshare", Owner: c, Lived: time.Duration(i % 5000 * int(time.Millisecond))}
			ev = netnsEv
		} else {
			h.Type = "setns"
			*setnsEv = setns.Event{Header: h, Setns: setns.Details{Syscall: "setns", Flags: 1 << 30, NSTypes: []string{"net"}, FD: &fd, FDKind: "nsfs",
				Targets: event.NSInodes{Mask: event.NSTypes[1].Flag}, TargetContainer: conts[(i*31)%200], Result: "ok"}}
			ev = setnsEv
		}
		w.Append(enc.Encode(ev))
		n++
		if n%200000 == 0 && w.Stats().Bytes >= historyBytes {
			break
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	return n, time.Duration(n) * step
}

func dirSize(b *testing.B, dir string) int64 {
	entries, err := os.ReadDir(dir)
	if err != nil {
		b.Fatal(err)
	}
	var n int64
	for _, e := range entries {
		if info, err := e.Info(); err == nil {
			n += info.Size()
		}
	}
	return n
}
