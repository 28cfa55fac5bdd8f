// Package report renders events, as JSON lines in the schema `ghostwatch trace -o json` writes,
// into one self-contained HTML file: a timeline per container or pod, with device windows and
// network namespaces' lives as spans, denials, OOM kills, capability denials and entries as
// marks, each opening its event's JSON. It needs no network: the styles, the script and the
// events are all in the file.
package report

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Options say what the report is of.
type Options struct {
	// Title heads the page, e.g. "ghostwatch trace devices".
	Title string
}

// Limits on what the file carries beyond the marks themselves, which are all kept: the JSON of
// the first events of each kind in each row, within a total.
const (
	detailsPerKind = 500
	detailBytes    = 16 << 20
	maxLineBytes   = 4 << 20
	// netnsRows is how many namespaces of a lane get a row of their own; the rest share one.
	netnsRows = 16
)

// Write reads events from r, one JSON object per line, and writes the report to w. Lines that are
// not events (a truncated last line) are counted and said in the report, not fatal; a `summary`
// line (the end of a trace) puts its counts, lost events included, at the top.
func Write(w io.Writer, r io.Reader, o Options) error {
	m := newModel()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLineBytes)
	for sc.Scan() {
		m.add(sc.Bytes())
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading events: %w", err)
	}
	return writeHTML(w, m.finish(o))
}

// kinds are what marks and spans are, in the order of the legend; the page styles each and the
// tests count them by name (data-kind).
var kinds = []struct{ name, legend string }{
	{"window", "device window: access that was allowed is removed (red: deny-all)"},
	{"denied", "device access denied (EPERM)"},
	{"rule", "device rule write or program attach"},
	{"netns-alive", "network namespace with tasks"},
	{"netns-empty", "network namespace empty, not yet destroyed"},
	{"netns-lingering", "network namespace lingering, with its holder"},
	{"netns-destroyed", "network namespace destroyed"},
	{"oom", "OOM kill"},
	{"exit", "exit (after an OOM kill: the container's)"},
	{"signal", "signal across containers or to a container's init"},
	{"signal-failed", "kill that found no process (ESRCH) or was refused (EPERM)"},
	{"cap-denied", "capability denied"},
	{"cap", "capability check allowed, capset, exec with file capabilities"},
	{"entry", "entry into the container's namespaces"},
	{"cni", "CNI plugin invocation, exec to exit (red: failed)"},
	{"cni-slow", "CNI plugin still running, with where it waits"},
	{"netlink-refused", "netlink request refused, with the kernel's message"},
	{"netlink", "netlink message on a request not refused, or whose ack was not read"},
	{"other", "any other event"},
}

func kindIndex(name string) int {
	for i, k := range kinds {
		if k.name == name {
			return i
		}
	}
	panic("report: unknown kind " + name)
}

type span struct {
	from, to      time.Time
	kind          int
	strong        bool // deny-all, for a window
	label, detail int
}

type mark struct {
	at            time.Time
	kind          int
	label, detail int
}

type row struct {
	name   string
	order  int
	first  time.Time
	spans  []span
	marks  []mark
	kept   map[int]int // details kept per kind
	counts map[int]int // events per kind
}

type lane struct {
	title string
	host  bool
	first time.Time
	rows  map[string]*row
}

// life is what was seen of one network namespace, joined into spans at the end.
type life struct {
	inode                                uint64
	lane                                 string
	created, empty, lingering, destroyed *nsEvent
	first                                time.Time
}

type nsEvent struct {
	at    time.Time
	label int
	obj   netnsObj
	line  []byte // kept for the span's detail, whose row is known at the end
}

type model struct {
	lanes      map[string]*lane
	labels     []string
	labelIndex map[string]int
	details    []string
	detailSize int
	summaries  []summary
	badLines   int
	events     int
	start, end time.Time
	lives      map[uint64]*life
	lifeOrder  []*life
	// laneTitles names lanes by their keys.
	laneTitles map[string]string
	// entries are the last entry per thread, for the then event that follows it.
	entries map[uint32]entered
}

// entered is an entry's place: a then event that follows it goes beside it.
type entered struct {
	at           time.Time
	laneKey, row string
}

func newModel() *model {
	return &model{lanes: map[string]*lane{}, labelIndex: map[string]int{}, lives: map[uint64]*life{},
		laneTitles: map[string]string{}, entries: map[uint32]entered{}}
}

func (m *model) label(s string) int {
	if i, ok := m.labelIndex[s]; ok {
		return i
	}
	m.labels = append(m.labels, s)
	m.labelIndex[s] = len(m.labels) - 1
	return len(m.labels) - 1
}

func (m *model) seen(t time.Time) {
	if t.IsZero() {
		return
	}
	if m.start.IsZero() || t.Before(m.start) {
		m.start = t
	}
	if t.After(m.end) {
		m.end = t
	}
}

// laneOf returns the key of the lane of a container, a pod, a cgroup with no known container, or
// the host.
func (m *model) laneOf(o *owner, cgroupPath string) string {
	var key, title string
	switch {
	case o != nil && o.Pod != "":
		ns := o.K8sNamespace
		if ns == "" {
			ns = "-"
		}
		key, title = "pod/"+ns+"/"+o.Pod, "pod "+o.Pod+" ("+ns+")"
	case o != nil && o.ID != "":
		key, title = "container/"+o.ID, "container "+o.label()
		if o.Name != "" {
			title += " (" + shortID(o.ID) + ")"
		}
	case cgroupPath != "":
		key, title = "cgroup/"+cgroupPath, "cgroup "+cgroupPath
	default:
		key, title = "host", "host (no container)"
	}
	m.laneTitles[key] = title
	return key
}

func (m *model) row(laneKey, name string, order int, at time.Time) *row {
	l := m.lanes[laneKey]
	if l == nil {
		l = &lane{title: m.laneTitles[laneKey], host: laneKey == "host", first: at, rows: map[string]*row{}}
		m.lanes[laneKey] = l
	}
	if at.Before(l.first) {
		l.first = at
	}
	r := l.rows[name]
	if r == nil {
		r = &row{name: name, order: order, first: at, kept: map[int]int{}, counts: map[int]int{}}
		l.rows[name] = r
	}
	return r
}

// detail keeps an event's JSON for its mark, within the limits, and returns its index or -1.
func (m *model) detail(r *row, kind int, line []byte) int {
	r.counts[kind]++
	if r.kept[kind] >= detailsPerKind || m.detailSize+len(line) > detailBytes {
		return -1
	}
	r.kept[kind]++
	m.detailSize += len(line)
	m.details = append(m.details, string(line))
	return len(m.details) - 1
}

// Row order within a lane: the device cgroup first, then namespaces, kills, capabilities, entries.
const (
	orderDevices = iota
	orderNetns
	orderOOM
	orderCNI
	orderNetlink
	orderCaps
	orderEntries
	orderOther
)

func (m *model) add(line []byte) {
	var h header
	var all map[string]json.RawMessage
	if json.Unmarshal(line, &all) != nil || json.Unmarshal(line, &h) != nil || h.Type == "" {
		m.badLines++
		return
	}
	if h.Type == "summary" {
		var s summary
		json.Unmarshal(line, &s)
		m.summaries = append(m.summaries, s)
		return
	}
	if h.Time.IsZero() {
		m.badLines++
		return
	}
	m.events++
	m.seen(h.Time)
	obj := all[h.Type]
	actor := h.Proc.Comm + " (pid " + strconv.FormatUint(uint64(h.Proc.PID), 10) + ")"
	switch h.Type {
	case "devices":
		var d devicesObj
		if json.Unmarshal(obj, &d) == nil {
			m.addDevices(&h, &d, actor, line)
			return
		}
	case "netns":
		var n netnsObj
		if json.Unmarshal(obj, &n) == nil && n.NetNS != 0 {
			m.addNetns(&h, &n, actor, line)
			return
		}
	case "caps":
		var c capsObj
		if json.Unmarshal(obj, &c) == nil {
			m.addCaps(&h, &c, actor, line)
			return
		}
	case "setns":
		var s setnsObj
		if json.Unmarshal(obj, &s) == nil && h.Kind == "then" {
			if m.addThen(&h, &s, line) {
				return
			}
		} else if json.Unmarshal(obj, &s) == nil {
			m.addSetns(&h, &s, actor, line)
			return
		}
	case "oom":
		var o oomObj
		if json.Unmarshal(obj, &o) == nil && h.Kind == "kill" {
			m.addOOM(&h, &o, actor, line)
			return
		}
		if json.Unmarshal(obj, &o) == nil && h.Kind == "exit" {
			m.addOOMExit(&h, &o, actor, line)
			return
		}
	case "signals":
		var s signalsObj
		if json.Unmarshal(obj, &s) == nil && s.Signal != "" {
			m.addSignal(&h, &s, actor, line)
			return
		}
	case "cni":
		var c cniObj
		if json.Unmarshal(obj, &c) == nil && !c.Start.IsZero() {
			m.addCNI(&h, &c, line)
			return
		}
	case "netlink":
		var n netlinkObj
		if json.Unmarshal(obj, &n) == nil && n.Message != "" {
			m.addNetlink(&h, &n, actor, line)
			return
		}
	}
	m.addOther(&h, obj, actor, line)
}

func (m *model) addMark(laneKey, rowName string, order int, at time.Time, kind string, label string, line []byte) {
	r := m.row(laneKey, rowName, order, at)
	k := kindIndex(kind)
	r.marks = append(r.marks, mark{at: at, kind: k, label: m.label(label), detail: m.detail(r, k, line)})
}

func (m *model) addDevices(h *header, d *devicesObj, actor string, line []byte) {
	target := m.laneOf(d.Cgroup.Container, d.Cgroup.Path)
	switch h.Kind {
	case "rule":
		m.addMark(target, "devices", orderDevices, h.Time, "rule",
			fmt.Sprintf("%s %q by %s: %s", d.File, d.Written, actor, d.Result), line)
	case "program":
		m.addMark(target, "devices", orderDevices, h.Time, "rule",
			fmt.Sprintf("device program %s (id %d) by %s: %s", d.Op, d.ProgramID, actor, d.Result), line)
	case "denied":
		s := d.Path + " (" + strings.TrimSpace(d.Device+" "+d.Access) + ") denied in " + d.Syscall
		if c := causeLabel(d.Cause); c != "" {
			s += "; cause: " + c
		} else {
			s += "; no known cause"
		}
		m.addMark(m.laneOf(h.Container, ""), "devices", orderDevices, h.Time, "denied", s, line)
	case "window":
		m.addWindow(h, d, target, line)
	default:
		m.addMark(target, "devices", orderDevices, h.Time, "other", "devices "+h.Kind+" by "+actor, line)
	}
}

func (m *model) addWindow(h *header, d *devicesObj, laneKey string, line []byte) {
	to := d.Closed
	if d.StillOpen || to.IsZero() {
		to = h.Time
	}
	from := d.Opened
	if from.IsZero() {
		from = to
	}
	m.seen(from)
	what := "DENY WINDOW"
	if d.DenyAll {
		what = "DENY-ALL WINDOW"
	}
	s := fmt.Sprintf("%s %s", what, duration(to.Sub(from)))
	if w := d.OpenedBy; w != nil {
		s += fmt.Sprintf(" opened by %s (pid %d): %s %q", w.Comm, w.PID, w.File, w.Rule)
	}
	if w := d.ClosedBy; w != nil {
		s += fmt.Sprintf(", closed by %s (pid %d)", w.Comm, w.PID)
	}
	if d.StillOpen {
		s += ", still open at the end"
	}
	s += fmt.Sprintf(": %d denied", d.Denied)
	if len(d.DeniedPaths) > 0 {
		s += " (" + strings.Join(d.DeniedPaths, ", ") + ")"
	}
	r := m.row(laneKey, "devices", orderDevices, from)
	k := kindIndex("window")
	r.spans = append(r.spans, span{from: from, to: to, kind: k, strong: d.DenyAll, label: m.label(s), detail: m.detail(r, k, line)})
}

func (m *model) addNetns(h *header, n *netnsObj, actor string, line []byte) {
	l := m.lives[n.NetNS]
	if l == nil {
		l = &life{inode: n.NetNS, first: h.Time}
		m.lives[n.NetNS] = l
		m.lifeOrder = append(m.lifeOrder, l)
	}
	// The namespace's lane is its owner's when any event names one, else its first actor's.
	if n.Owner != nil {
		l.lane = m.laneOf(n.Owner, "")
	} else if l.lane == "" {
		l.lane = m.laneOf(h.Container, "")
	}
	var s string
	switch h.Kind {
	case "created":
		s = "created by " + n.How + " by " + actor
	case "empty":
		s = "empty: its last task left by " + n.How + " (" + actor + ")"
	case "lingering":
		s = "LINGERING, empty " + duration(time.Duration(n.Empty)) + ": " + n.HeldBy
	case "destroyed":
		s = "destroyed"
		if n.Lived > 0 {
			s += " after " + duration(time.Duration(n.Lived))
		}
	default:
		s = "netns " + h.Kind + " by " + actor
	}
	e := &nsEvent{at: h.Time, label: m.label(fmt.Sprintf("netns %d %s", n.NetNS, s)), obj: *n, line: append([]byte(nil), line...)}
	switch h.Kind {
	case "created":
		l.created = e
	case "empty":
		l.empty = e
	case "lingering":
		l.lingering = e
	case "destroyed":
		l.destroyed = e
	}
}

func (m *model) addCaps(h *header, c *capsObj, actor string, line []byte) {
	laneKey := m.laneOf(h.Container, "")
	switch h.Kind {
	case "check":
		s := c.Cap + " " + c.Verdict + " in " + c.Syscall + " (" + actor + ")"
		kind := "cap"
		if c.Verdict == "denied" {
			kind = "cap-denied"
			if cause := causeLabel(c.Cause); cause != "" {
				s += "; cause: " + cause
			}
		}
		m.addMark(laneKey, "capabilities", orderCaps, h.Time, kind, s, line)
	case "exec":
		s := "exec " + c.File + " by " + actor + ": file capabilities "
		if c.Applied {
			s += "applied"
		} else {
			s += "NOT applied (" + c.IgnoredBecause + ")"
		}
		m.addMark(laneKey, "capabilities", orderCaps, h.Time, "cap", s, line)
	case "capset":
		m.addMark(laneKey, "capabilities", orderCaps, h.Time, "cap", fmt.Sprintf("capset by %s: %s, added %v, dropped %v", actor, c.Result, c.Added, c.Dropped), line)
	default:
		m.addMark(laneKey, "capabilities", orderCaps, h.Time, "other", "caps "+h.Kind+" by "+actor, line)
	}
}

func (m *model) addSetns(h *header, s *setnsObj, actor string, line []byte) {
	// An entry belongs to the container entered; an unshare or clone, to its actor's.
	laneKey := m.laneOf(s.TargetContainer, "")
	if s.TargetContainer == nil {
		laneKey = m.laneOf(h.Container, "")
	}
	rowName := "entries"
	from := "the host"
	if h.Container != nil {
		from = h.Container.label()
	}
	label := fmt.Sprintf("%s %s by %s from %s: %s", s.Syscall, strings.Join(s.NSTypes, ","), actor, from, s.Result)
	if e := s.Entry; e != nil {
		rowName = "entries: " + e.Class
		if about := e.about(); about != "" {
			label = e.Class + " (" + about + "): " + label
		}
		m.entries[h.Proc.TID] = entered{at: h.Time, laneKey: laneKey, row: rowName}
	}
	m.addMark(laneKey, rowName, orderEntries, h.Time, "entry", label, line)
}

// addThen marks what followed an entry beside it: the command run, and how it went ("then
// tcpdump -i eth0: ENOENT"). It reports false for one whose entry the report has not seen.
func (m *model) addThen(h *header, s *setnsObj, line []byte) bool {
	e, ok := m.entries[s.EnteredBy]
	if !ok || e.at.Sub(s.EnteredAt).Abs() > time.Microsecond {
		return false
	}
	label := "then "
	if len(s.Argv) > 0 {
		label += strings.Join(s.Argv, " ") + ": " + s.Result
	} else {
		label += "no exec: " + s.Result
	}
	if s.ExitCode != nil {
		label += fmt.Sprintf(" (exit code %d)", *s.ExitCode)
	}
	m.addMark(e.laneKey, e.row, orderEntries, h.Time, "entry", label, line)
	return true
}

// addOther places an event of a kind the report has no rule for (yet): a mark on a row named after
// its type in its actor's lane, labelled with its first plain fields. OOM kills and exits, by
// their names, get their own marks.
func (m *model) addOther(h *header, obj json.RawMessage, actor string, line []byte) {
	name := h.Type
	if h.Kind != "" {
		name += " " + h.Kind
	}
	kind, order := "other", orderOther
	switch {
	case strings.Contains(name, "oom"):
		kind, order = "oom", orderOOM
	case strings.Contains(name, "exit"):
		kind, order = "exit", orderOOM
	}
	s := name + " by " + actor
	if fields, _ := scalars(obj); len(fields) > 0 {
		var parts []string
		for i, f := range fields {
			if i == 6 {
				break
			}
			parts = append(parts, f[0]+"="+f[1])
		}
		s += ": " + strings.Join(parts, " ")
	}
	// An event about another container (a signal's target, a victim) is in that container's lane,
	// where the event names it.
	laneKey := m.laneOf(h.Container, "")
	var about struct {
		Victim          *owner          `json:"victim_container"`
		TargetContainer *owner          `json:"target_container"`
		Target          json.RawMessage `json:"target"`
	}
	if json.Unmarshal(obj, &about) == nil {
		var target struct {
			Container *owner `json:"container"`
		}
		json.Unmarshal(about.Target, &target) // a target that is not an object names no container
		for _, o := range []*owner{about.Victim, about.TargetContainer, target.Container} {
			if o != nil {
				laneKey = m.laneOf(o, "")
				break
			}
		}
	}
	m.addMark(laneKey, h.Type, order, h.Time, kind, s, line)
}

// addCNI draws a plugin's invocation in its pod's lane: a span from its exec to its exit (or to
// the report of it still running), red when it failed; its start alone as a mark.
func (m *model) addCNI(h *header, c *cniObj, line []byte) {
	laneKey := m.laneOf(h.Container, "")
	if c.Pod != "" {
		laneKey = m.laneOf(&owner{Pod: c.Pod, K8sNamespace: c.K8sNamespace}, "")
	}
	what := strings.TrimSpace("CNI " + c.Command + " " + c.Plugin)
	if c.Attempt > 1 {
		what += fmt.Sprintf(" (ADD number %d for the pod: a retry loop)", c.Attempt)
	}
	m.seen(c.Start)
	r := m.row(laneKey, "cni", orderCNI, c.Start)
	switch h.Kind {
	case "done":
		failed := c.Error != nil || c.ExitCode != 0 || c.Signal != ""
		s := what + ": ok"
		switch {
		case c.Error != nil:
			s = fmt.Sprintf("%s: error %d %s", what, c.Error.Code, c.Error.Msg)
		case c.Signal != "":
			s = what + ": killed by " + c.Signal
		case c.ExitCode != 0:
			s = fmt.Sprintf("%s: exit %d", what, c.ExitCode)
		}
		s += ", " + duration(time.Duration(c.Duration))
		k := kindIndex("cni")
		r.spans = append(r.spans, span{from: c.Start, to: c.Start.Add(time.Duration(c.Duration)), kind: k, strong: failed,
			label: m.label(s), detail: m.detail(r, k, line)})
	case "slow":
		s := what + ": still running after " + duration(time.Duration(c.Running))
		for i, b := range c.Blocked {
			if i == 2 {
				break
			}
			s += fmt.Sprintf("; %s (pid %d) waits in %s", b.Comm, b.PID, strings.TrimSpace(b.Syscall+" "+b.Wchan))
		}
		k := kindIndex("cni-slow")
		r.spans = append(r.spans, span{from: c.Start, to: h.Time, kind: k, label: m.label(s), detail: m.detail(r, k, line)})
	default:
		k := kindIndex("cni")
		r.marks = append(r.marks, mark{at: h.Time, kind: k, label: m.label(what + " started"), detail: m.detail(r, k, line)})
	}
}

// addOOMExit marks, beside the kill, its container's exit (or why none was joined).
func (m *model) addOOMExit(h *header, o *oomObj, actor string, line []byte) {
	s := "after the OOM kill of " + actor + ": "
	switch {
	case o.GaveUp != "":
		s += "no exit joined (" + o.GaveUp + ")"
	case o.ExitStatus != nil:
		s += fmt.Sprintf("its container exited with %d", *o.ExitStatus)
		if o.RuntimeOOM {
			s += " (the runtime reported the OOM)"
		}
		if o.RestartCount != nil {
			s += fmt.Sprintf(", restart count %d", *o.RestartCount)
		}
	}
	m.addMark(m.laneOf(h.Container, ""), "oom", orderOOM, h.Time, "exit", s, line)
}

// addSignal marks a signal in its target's lane (its sender's where no target is named): one
// sent across containers or to an init, or a kill that failed, drawn apart so that the signal
// that never arrived stands out.
func (m *model) addSignal(h *header, s *signalsObj, actor string, line []byte) {
	laneKey := m.laneOf(h.Container, "")
	kind := "signal"
	var label string
	if s.Call != "" {
		kind = "signal-failed"
		label = fmt.Sprintf("%s by %s: %s(%d", s.Signal, actor, s.Call, s.PID)
		if s.Call == "tkill" || s.Call == "tgkill" {
			label += fmt.Sprintf(", %d", s.TID)
		}
		label += ") " + s.Result
		if s.Result == "ESRCH" {
			label += ": no such process in the sender's pid namespace"
		}
	} else {
		label = fmt.Sprintf("%s by %s: %s", s.Signal, actor, s.Result)
	}
	if t := s.Target; t != nil {
		label += fmt.Sprintf(", to %s (pid %d", t.Comm, t.PID)
		if t.Container != nil {
			label += " in " + t.Container.label()
			laneKey = m.laneOf(t.Container, "")
		}
		label += ")"
	}
	if s.CrossContainer {
		label += ", cross-container"
	}
	if s.ToInit {
		label += ", to its init"
	}
	m.addMark(laneKey, "signals", orderOOM, h.Time, kind, label, line)
}

// addOOM marks a kill in its victim's lane (the event's actor is the victim) with what ran out.
func (m *model) addOOM(h *header, o *oomObj, actor string, line []byte) {
	s := "OOM kill of " + actor + ": " + o.Constraint
	if o.Memcg.Path != "" {
		s += " " + o.Memcg.Path
	}
	if o.Memcg.Limit > 0 {
		s += fmt.Sprintf(" at %d of %d MiB", o.Memcg.Usage>>20, o.Memcg.Limit>>20)
	}
	if o.Victim.RSS > 0 {
		s += fmt.Sprintf(", victim rss %d MiB", o.Victim.RSS>>20)
	}
	if t := o.Trigger; t != nil && !t.Same && t.Comm != "" {
		s += fmt.Sprintf(", triggered by %s (pid %d)", t.Comm, t.PID)
	}
	m.addMark(m.laneOf(h.Container, ""), "oom", orderOOM, h.Time, "oom", s, line)
}

// addNetlink marks a request the kernel answered with a message in its actor's lane, red when it
// was refused: "RTM_NEWROUTE 10.99.0.0/24 via 192.0.2.1 refused (ENETUNREACH): Nexthop has invalid
// gateway, by ip (pid 7)".
func (m *model) addNetlink(h *header, n *netlinkObj, actor string, line []byte) {
	what := "netlink request"
	if n.Request != nil {
		what = n.Request.summary()
	}
	switch {
	case n.Errno != "":
		what += " refused (" + n.Errno + ")"
	case n.Ack == "":
		what += " (no ack read)"
	}
	s := what + ": " + n.Message + ", by " + actor
	r := m.row(m.laneOf(h.Container, ""), "netlink", orderNetlink, h.Time)
	k := kindIndex("netlink")
	if n.Errno != "" {
		k = kindIndex("netlink-refused")
	}
	r.marks = append(r.marks, mark{at: h.Time, kind: k, label: m.label(s), detail: m.detail(r, k, line)})
}
