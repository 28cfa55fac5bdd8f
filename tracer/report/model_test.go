package report

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
)

func modelOf(t *testing.T, lines ...string) *page {
	t.Helper()
	m := newModel()
	for _, l := range lines {
		m.add([]byte(l))
	}
	return m.finish(Options{})
}

func at(ms int) string {
	return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).Add(time.Duration(ms) * time.Millisecond).Format(time.RFC3339Nano)
}

func findRow(t *testing.T, p *page, lane, row string) pageRow {
	t.Helper()
	var seen []string
	for _, l := range p.Lanes {
		for _, r := range l.Rows {
			if l.Title == lane && r.Name == row {
				return r
			}
			seen = append(seen, l.Title+" · "+r.Name)
		}
	}
	t.Fatalf("no row %q in lane %q; rows: %q", row, lane, seen)
	return pageRow{}
}

// spanKinds lists a row's spans as "kind from-to" in milliseconds.
func spanKinds(p *page, r pageRow) []string {
	var out []string
	for i := 0; i < len(r.Spans); i += 6 {
		out = append(out, fmt.Sprintf("%s %d-%d", p.Kinds[r.Spans[i+2]].Name, r.Spans[i]/1000, r.Spans[i+1]/1000))
	}
	return out
}

const db = `{"id":"d1","name":"db","pod":"db-0","k8s_namespace":"prod"}`

// A namespace's life is joined into spans in its owner's lane: alive until its last task left,
// empty until it was found lingering (its holder named), lingering until destroyed; the creation a
// trace did not see is worked out from the age the later events carry.
func TestNetnsLifeSpans(t *testing.T) {
	p := modelOf(t,
		`{"time":"`+at(100)+`","type":"netns","kind":"empty","proc":{"pid":7,"comm":"sleep"},"netns":{"netns":42,"how":"exit","owner":`+db+`,"lived_ns":100000000}}`,
		`{"time":"`+at(300)+`","type":"netns","kind":"lingering","proc":{"pid":7,"comm":"sleep"},"netns":{"netns":42,"lived_ns":300000000,"empty_ns":200000000,"held_by":"held by pid 9 sleep fd 5 (nsfs)"}}`,
		`{"time":"`+at(500)+`","type":"netns","kind":"destroyed","proc":{"pid":0,"comm":""},"netns":{"netns":42,"lived_ns":500000000,"empty_ns":400000000}}`,
	)
	r := findRow(t, p, "pod db-0 (prod)", "netns 42")
	// The report starts at the creation worked out: 500 ms before the destruction, at 0.
	want := []string{"netns-alive 0-100", "netns-empty 100-300", "netns-lingering 300-500"}
	if got := spanKinds(p, r); strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Errorf("spans %q, want %q", got, want)
	}
	if len(r.Marks) != 4 || p.Kinds[r.Marks[1]].Name != "netns-destroyed" {
		t.Errorf("marks %v, want the destruction", r.Marks)
	}
	if l := p.Labels[r.Spans[2*6+4]]; !strings.Contains(l, "held by pid 9 sleep fd 5") {
		t.Errorf("lingering span says %q: want its holder", l)
	}
}

// Events go to the lane of the container they are about: a device window and rule to the
// cgroup's container (not the writer's, the host here), an entry to the container entered, a
// kind the report has no rule for to its actor's, OOM kills and their exits with their own marks,
// a signal to its target's, a failed kill to its sender's.
func TestLanesAndGenericMarks(t *testing.T) {
	p := modelOf(t,
		`{"time":"`+at(0)+`","type":"devices","kind":"rule","proc":{"pid":5,"comm":"runc"},"devices":{"file":"devices.deny","written":"a","cgroup":{"path":"/k8s.io/d1","container":`+db+`},"result":"ok"}}`,
		`{"time":"`+at(10)+`","type":"devices","kind":"denied","proc":{"pid":6,"comm":"head"},"container":`+db+`,"devices":{"path":"/dev/urandom","device":"c 1:9","access":"r","syscall":"openat","cause":{"time":"`+at(0)+`","kind":"rule","before_ns":10000000,"pid":5,"comm":"runc","file":"devices.deny","rule":"a"}}}`,
		`{"time":"`+at(20)+`","type":"devices","kind":"window","proc":{"pid":5,"comm":"runc"},"devices":{"cgroup":{"path":"/k8s.io/d1","container":`+db+`},"opened":"`+at(0)+`","closed":"`+at(20)+`","deny_all":true,"opened_by":{"pid":5,"comm":"runc","file":"devices.deny","rule":"a"},"denied":1,"denied_paths":["/dev/urandom"]}}`,
		`{"time":"`+at(30)+`","type":"setns","proc":{"pid":8,"tid":8,"comm":"nsenter"},"setns":{"syscall":"setns","ns_types":["net"],"target_container":`+db+`,"result":"ok","entry":{"class":"nsenter","ancestry":[{"pid":7,"comm":"bash"},{"pid":6,"comm":"sshd"}]}}}`,
		`{"time":"`+at(31)+`","type":"setns","kind":"then","proc":{"pid":8,"tid":8,"comm":"tcpdump"},"setns":{"entered_at":"`+at(30)+`","entered_by":8,"exec":true,"file":"/usr/bin/tcpdump","argv":["tcpdump","-i","eth0"],"result":"ENOENT","ret":-2}}`,
		`{"time":"`+at(40)+`","type":"oom","kind":"kill","proc":{"pid":77,"comm":"postgres"},"container":`+db+`,"oom":{"constraint":"memcg","memcg":{"path":"/k8s.io/d1","usage_bytes":104857600,"limit_bytes":104857600,"at_limit":true},"victim":{"rss_bytes":99614720},"trigger":{"pid":78,"comm":"psql","same":false}}}`,
		`{"time":"`+at(45)+`","type":"oom","kind":"exit","proc":{"pid":77,"comm":"postgres"},"container":`+db+`,"oom":{"killed_at":"`+at(40)+`","exit_status":137,"exited_at":"`+at(45)+`","runtime_oom":true,"restart_count":3}}`,
		`{"time":"`+at(50)+`","type":"signals","kind":"failed","proc":{"pid":3,"comm":"sh"},"signals":{"signal":"SIGHUP","signo":1,"result":"ESRCH","call":"kill","pid":7}}`,
		`{"time":"`+at(60)+`","type":"signals","kind":"sent","proc":{"pid":3,"comm":"kill"},"signals":{"signal":"SIGHUP","signo":1,"result":"delivered","code":"SI_USER","group":true,"cross_container":true,"to_init":false,"target":{"pid":78,"ns_pid":5,"comm":"postgres","container":`+db+`}}}`,
		`{"time":"`+at(70)+`","type":"future","proc":{"pid":3,"comm":"kill"},"future":{"what":"x","pid":77}}`,
		`not json at all`,
		`{"type":"summary","gadget":"devices","events":6,"lost":3,"duration":"1s"}`,
	)
	if p.Events != 10 || p.BadLines != 1 || len(p.Summaries) != 1 || p.Summaries[0].Lost != 3 {
		t.Errorf("events %d, bad lines %d, summaries %+v: want 10, 1 and one with 3 lost", p.Events, p.BadLines, p.Summaries)
	}
	devices := findRow(t, p, "pod db-0 (prod)", "devices")
	if got := spanKinds(p, devices); len(got) != 1 || got[0] != "window 0-20" || devices.Spans[3] != 1 {
		t.Errorf("device spans %q (strong %v), want one deny-all window 0-20", got, devices.Spans)
	}
	var kinds []string
	for i := 0; i < len(devices.Marks); i += 4 {
		kinds = append(kinds, p.Kinds[devices.Marks[i+1]].Name+": "+p.Labels[devices.Marks[i+2]])
	}
	want := []string{`rule: devices.deny "a" by runc (pid 5): ok`,
		"denied: /dev/urandom (c 1:9 r) denied in openat; cause: rule by runc (pid 5): file=devices.deny rule=a"}
	if strings.Join(kinds, "\n") != strings.Join(want, "\n") {
		t.Errorf("device marks:\n%s\nwant:\n%s", strings.Join(kinds, "\n"), strings.Join(want, "\n"))
	}
	entry := findRow(t, p, "pod db-0 (prod)", "entries: nsenter")
	if l := p.Labels[entry.Marks[2]]; l != "nsenter (via sshd>bash): setns net by nsenter (pid 8) from the host: ok" {
		t.Errorf("entry says %q", l)
	}
	if len(entry.Marks) != 8 || p.Labels[entry.Marks[6]] != "then tcpdump -i eth0: ENOENT" {
		t.Errorf("entry row %v: want the entry, then the exec that failed beside it", entry.Marks)
	}
	oom := findRow(t, p, "pod db-0 (prod)", "oom")
	if p.Kinds[oom.Marks[1]].Name != "oom" || p.Labels[oom.Marks[2]] != "OOM kill of postgres (pid 77): memcg /k8s.io/d1 at 100 of 100 MiB, victim rss 95 MiB, triggered by psql (pid 78)" {
		t.Errorf("oom mark %v %q", oom.Marks, p.Labels[oom.Marks[2]])
	}
	if len(oom.Marks) != 8 || p.Kinds[oom.Marks[5]].Name != "exit" ||
		p.Labels[oom.Marks[6]] != "after the OOM kill of postgres (pid 77): its container exited with 137 (the runtime reported the OOM), restart count 3" {
		t.Errorf("oom marks %v: want the kill, then its exit; the exit says %q", oom.Marks, p.Labels[oom.Marks[len(oom.Marks)-2]])
	}
	failed := findRow(t, p, "host (no container)", "signals")
	if p.Kinds[failed.Marks[1]].Name != "signal-failed" || p.Labels[failed.Marks[2]] != "SIGHUP by sh (pid 3): kill(7) ESRCH: no such process in the sender's pid namespace" {
		t.Errorf("a failed kill: %v %q", failed.Marks, p.Labels[failed.Marks[2]])
	}
	toDB := findRow(t, p, "pod db-0 (prod)", "signals")
	if p.Kinds[toDB.Marks[1]].Name != "signal" || p.Labels[toDB.Marks[2]] != "SIGHUP by kill (pid 3): delivered, to postgres (pid 78 in db-0/db), cross-container" {
		t.Errorf("a signal to db's container: %v %q in db-0's lane", toDB.Marks, p.Labels[toDB.Marks[2]])
	}
	other := findRow(t, p, "host (no container)", "future")
	if p.Kinds[other.Marks[1]].Name != "other" || p.Labels[other.Marks[2]] != "future by kill (pid 3): what=x pid=77" {
		t.Errorf("generic mark %v %q", other.Marks, p.Labels[other.Marks[2]])
	}
	if p.Lanes[len(p.Lanes)-1].Title != "host (no container)" {
		t.Errorf("lanes %v: the host's comes last", p.Lanes)
	}
}

// The JSON kept is bounded per kind and row; every event still has its mark.
func TestDetailsBounded(t *testing.T) {
	var lines []string
	for i := range detailsPerKind + 10 {
		lines = append(lines, `{"time":"`+at(i)+`","type":"caps","kind":"check","proc":{"pid":1,"comm":"a"},"caps":{"cap":"CAP_CHOWN","verdict":"denied","syscall":"chown"}}`)
	}
	p := modelOf(t, lines...)
	r := findRow(t, p, "host (no container)", "capabilities")
	kept := 0
	for i := 3; i < len(r.Marks); i += 4 {
		if r.Marks[i] >= 0 {
			kept++
		}
	}
	if len(r.Marks)/4 != detailsPerKind+10 || kept != detailsPerKind || p.Kept != detailsPerKind {
		t.Errorf("%d marks, %d with JSON (page: %d): want %d and %d", len(r.Marks)/4, kept, p.Kept, detailsPerKind+10, detailsPerKind)
	}
}

func TestEmptyInput(t *testing.T) {
	var out bytes.Buffer
	if err := Write(&out, strings.NewReader(""), Options{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"events":0`) {
		t.Error("an empty trace gives no page saying so")
	}
}

// A flight record's gaps that overlap the events are kept with their words; others are not drawn.
func TestGaps(t *testing.T) {
	p := modelOf(t,
		`{"time":"`+at(0)+`","type":"setns","proc":{"pid":1,"comm":"a"},"setns":{"syscall":"unshare","ns_types":["uts"],"result":"ok"}}`,
		`{"time":"`+at(1000)+`","type":"setns","proc":{"pid":1,"comm":"a"},"setns":{"syscall":"unshare","ns_types":["uts"],"result":"ok"}}`,
		`{"type":"summary","events":2,"gaps":[{"from":"`+at(200)+`","to":"`+at(700)+`","reason":"killed","lost":[{"gadget":"setns","cause":"agent_killed","count":12}]},{"from":"`+at(5000)+`","to":"`+at(6000)+`","reason":"stopped"}]}`,
	)
	if len(p.Gaps) != 1 || p.Gaps[0].From != 200_000 || p.Gaps[0].To != 700_000 ||
		p.Gaps[0].Label != "gap: the agent was killed for 500ms (12 setns agent killed): the record may miss events here" {
		t.Errorf("gaps %+v", p.Gaps)
	}
}

// A CNI plugin's invocation is a span in its pod's lane (named by CNI_ARGS, not its actor, the
// runtime), red when it failed, with its error; one still running, with where it waits.
func TestCNISpans(t *testing.T) {
	p := modelOf(t,
		`{"time":"`+at(10)+`","type":"cni","kind":"start","proc":{"pid":5,"comm":"bridge"},"cni":{"command":"ADD","plugin":"bridge","pod":"db-0","k8s_namespace":"prod","start":"`+at(10)+`"}}`,
		`{"time":"`+at(110)+`","type":"cni","kind":"done","proc":{"pid":5,"comm":"bridge"},"cni":{"command":"ADD","plugin":"bridge","pod":"db-0","k8s_namespace":"prod","start":"`+at(10)+`","duration_ns":100000000,"exit_code":1,"error":{"code":11,"msg":"address already in use"},"attempt":3,"retry_loop":true}}`,
		`{"time":"`+at(400)+`","type":"cni","kind":"slow","proc":{"pid":6,"comm":"bridge"},"cni":{"command":"DEL","plugin":"bridge","pod":"db-0","k8s_namespace":"prod","start":"`+at(200)+`","running_ns":200000000,"blocked":[{"pid":6,"comm":"bridge","syscall":"flock","wchan":"locks_lock_inode_wait"}]}}`,
	)
	r := findRow(t, p, "pod db-0 (prod)", "cni")
	// Times are from the first event, the ADD's start.
	if got := spanKinds(p, r); strings.Join(got, ", ") != "cni 0-100, cni-slow 190-390" || r.Spans[3] != 1 {
		t.Errorf("spans %q (failed %d), want the failed ADD and the DEL still running", got, r.Spans[3])
	}
	want := []string{"CNI ADD bridge (ADD number 3 for the pod: a retry loop): error 11 address already in use, 100ms",
		"CNI DEL bridge: still running after 200ms; bridge (pid 6) waits in flock locks_lock_inode_wait"}
	for i, w := range want {
		if l := p.Labels[r.Spans[6*i+4]]; l != w {
			t.Errorf("span %d says %q, want %q", i, l, w)
		}
	}
	if len(r.Marks) != 4 || p.Labels[r.Marks[2]] != "CNI ADD bridge started" {
		t.Errorf("start marks %v", r.Marks)
	}
}

// A netlink request the kernel refused with a message is a red mark in its actor's lane, with the
// request, the errno and the message; a message with no ack read is a mark of its own kind.
func TestNetlinkMarks(t *testing.T) {
	cni := `{"id":"c1","runtime":"containerd","pod":"db-0","k8s_namespace":"prod"}`
	p := modelOf(t,
		`{"time":"`+at(10)+`","type":"netlink","kind":"extack","proc":{"pid":7,"comm":"ip"},"container":`+cni+`,"netlink":{"message":"Nexthop has invalid gateway","error":-101,"errno":"ENETUNREACH","ack":"error","protocol":"route","request":{"type":"RTM_NEWROUTE","flags":1541,"seq":1,"family":2,"prefix_len":24,"dst":"10.99.0.0","gateway":"192.0.2.1"},"netns":4026532999}}`,
		`{"time":"`+at(20)+`","type":"netlink","kind":"extack","proc":{"pid":8,"comm":"bridge"},"container":`+cni+`,"netlink":{"message":"some warning","netns":4026532999}}`,
	)
	r := findRow(t, p, "pod db-0 (prod)", "netlink")
	want := []struct{ kind, label string }{
		{"netlink-refused", "RTM_NEWROUTE 10.99.0.0/24 via 192.0.2.1 refused (ENETUNREACH): Nexthop has invalid gateway, by ip (pid 7)"},
		{"netlink", "netlink request (no ack read): some warning, by bridge (pid 8)"},
	}
	if len(r.Marks) != 4*len(want) {
		t.Fatalf("marks %v", r.Marks)
	}
	for i, w := range want {
		if k, l := p.Kinds[r.Marks[4*i+1]].Name, p.Labels[r.Marks[4*i+2]]; k != w.kind || l != w.label {
			t.Errorf("mark %d: %s %q, want %s %q", i, k, l, w.kind, w.label)
		}
	}
}
