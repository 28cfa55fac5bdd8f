package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ghostwatch/ghostwatch/tracer/event"
	"github.com/ghostwatch/ghostwatch/tracer/flightrec"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
	"github.com/ghostwatch/ghostwatch/tracer/netns"
	"github.com/ghostwatch/ghostwatch/tracer/setns"
)

// historyEvents are events of two gadgets, of a pod's container, of the host, and of a host
// process entering the pod (found by the pod as its target).
func historyEvents(t0 time.Time) []gadget.Event {
	web := &event.Container{ID: "0123456789abcdef", Name: "web", Runtime: "containerd", Pod: "web-0", K8sNamespace: "shop"}
	head := func(i int, typ, kind string, c *event.Container) event.Header {
		return event.Header{Time: t0.Add(time.Duration(i) * time.Second), Type: typ, Kind: kind, Container: c,
			Proc: event.Proc{PID: uint32(100 + i), TID: uint32(100 + i), PPID: 1, Comm: "proc"},
			NS:   event.Namespaces{Mnt: 4026531832, Net: 4026531840, CgroupID: 1}}
	}
	fd := int32(3)
	return []gadget.Event{
		&setns.Event{Header: head(0, "setns", "", nil), Setns: setns.Details{Syscall: "setns", NSTypes: []string{"net"}, FD: &fd, FDKind: "nsfs",
			Targets: event.NSInodes{Mask: event.NSTypes[1].Flag}, TargetContainer: web, Result: "ok"}},
		&netns.Event{Header: head(1, "netns", "created", web), NetNS: 4026532300, How: "unshare", Owner: web},
		&setns.Event{Header: head(2, "setns", "", nil), Setns: setns.Details{Syscall: "unshare", NSTypes: []string{"uts"}, Result: "ok"}},
		&netns.Event{Header: head(3, "netns", "empty", nil), NetNS: 4026532301, How: "exit"},
	}
}

// writeHistory writes events into a record, as the agent does.
func writeHistory(t *testing.T, dir string, evs []gadget.Event) {
	t.Helper()
	w, err := flightrec.Open(dir, flightrec.Options{Retain: flightrec.MinRetain})
	if err != nil {
		t.Fatal(err)
	}
	w.Mark(flightrec.Marker{Time: evs[0].Head().Time, Kind: flightrec.MarkStart})
	encoders := map[string]*flightrec.Encoder{}
	for _, ev := range evs {
		e := encoders[ev.Head().Type]
		if e == nil {
			e = &flightrec.Encoder{}
			encoders[ev.Head().Type] = e
		}
		w.Append(e.Encode(ev))
	}
	w.Mark(flightrec.Marker{Time: evs[len(evs)-1].Head().Time, Kind: flightrec.MarkStop})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestHistoryAsTrace: history prints the events it reads byte for byte as trace printed them, in
// JSON and, for one gadget, in its table; a pod finds the events about it too.
func TestHistoryAsTrace(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Date(2026, 3, 1, 2, 10, 0, 0, time.Local)
	evs := historyEvents(t0)
	writeHistory(t, dir, evs)

	var jsonWant, setnsTable bytes.Buffer
	jw := newEventWriter("json", &jsonWant, nil)
	tw := newEventWriter("table", &setnsTable, setns.Gadget.TableColumns())
	for _, ev := range evs {
		jw.write(ev)
		if ev.Head().Type == "setns" {
			tw.write(ev)
		}
	}
	jw.flush()
	tw.flush()

	runHistory := func(args ...string) (string, string) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		if code := run(append([]string{"ghostwatch", "history", "--data-dir", dir}, args...), &stdout, &stderr); code != 0 {
			t.Fatalf("history %v: exit %d: %s", args, code, stderr.String())
		}
		return stdout.String(), stderr.String()
	}
	out, stderr := runHistory("-o", "json")
	lines := strings.SplitAfter(out, "\n")
	if got := strings.Join(lines[:len(lines)-2], ""); got != jsonWant.String() {
		t.Errorf("history -o json:\n%s\nwant what trace wrote:\n%s", got, jsonWant.String())
	}
	var sum historySummary
	if err := json.Unmarshal([]byte(lines[len(lines)-2]), &sum); err != nil || sum.Type != "summary" || sum.Events != 4 {
		t.Errorf("summary line %q: %v", lines[len(lines)-2], err)
	}
	if !strings.Contains(stderr, "4 events from") || !strings.Contains(stderr, "no gaps") {
		t.Errorf("summary on stderr: %q", stderr)
	}

	out, _ = runHistory("-o", "table", "--gadget", "setns")
	if out != setnsTable.String() {
		t.Errorf("history -o table --gadget setns:\n%s\nwant what trace printed:\n%s", out, setnsTable.String())
	}

	// The pod: its netns event, and the host's setns into it.
	out, _ = runHistory("-o", "json", "--pod", "web-0")
	lines = strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], `"syscall":"setns"`) || !strings.Contains(lines[1], `"kind":"created"`) {
		t.Errorf("history --pod web-0:\n%s", out)
	}
	out, _ = runHistory("-o", "json", "--host", "--kind", "empty", "--from", t0.Add(time.Second).Format(time.RFC3339))
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 2 || !strings.Contains(lines[0], `"kind":"empty"`) {
		t.Errorf("history --host --kind empty --from:\n%s", out)
	}
}

func TestHistoryUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--since", "10m", "--from", "02:00"}, "--since cannot be combined with --from or --to"},
		{[]string{"--since", "-1m"}, "--since must not be negative"},
		{[]string{"--since", "0s"}, "--since must be positive"},
		{[]string{"--from", "yesterday"}, `--from: "yesterday" is not a time`},
		{[]string{"--from", "2026-03-01 02:15", "--to", "2026-03-01 02:10"}, "is not before --to"},
		{[]string{"--gadget", "bogus"}, `unknown gadget "bogus"`},
		{[]string{"--gadget", "caps", "--kind", "window"}, `unknown kind "window": one of capset, check, exec`},
		{[]string{"--pod", "a b"}, "is not a container id"},
		{[]string{"--host", "--pod", "web-0"}, "--host selects host processes only"},
		{[]string{"-o", "xml"}, `unknown output format "xml"`},
		{[]string{"extra"}, `unexpected argument "extra"`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(append([]string{"ghostwatch", "history"}, tc.args...), &stdout, &stderr); code != 2 {
				t.Errorf("exit status %d, want 2", code)
			}
			oneLineError(t, stderr.String(), tc.want)
		})
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"ghostwatch", "history", "--data-dir", t.TempDir() + "/none"}, &stdout, &stderr); code != 1 {
		t.Errorf("missing data dir: exit status %d, want 1", code)
	}
	oneLineError(t, stderr.String(), "no flight record in")
}

func TestParseTime(t *testing.T) {
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.Local)
	for in, want := range map[string]time.Time{
		"2026-03-01T02:10:00Z":   time.Date(2026, 3, 1, 2, 10, 0, 0, time.UTC),
		"2026-02-28 23:59:30":    time.Date(2026, 2, 28, 23, 59, 30, 0, time.Local),
		"2026-02-28 23:59":       time.Date(2026, 2, 28, 23, 59, 0, 0, time.Local),
		"2026-02-28":             time.Date(2026, 2, 28, 0, 0, 0, 0, time.Local),
		"02:10":                  time.Date(2026, 3, 1, 2, 10, 0, 0, time.Local),
		"10:15:30":               time.Date(2026, 2, 28, 10, 15, 30, 0, time.Local), // later today: yesterday's
		"2026-03-01T02:10:00.5Z": time.Date(2026, 3, 1, 2, 10, 0, 5e8, time.UTC),
	} {
		got, err := parseTime(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseTime(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
}
