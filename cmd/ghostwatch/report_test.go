package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ghostwatch/ghostwatch/tracer/container/containertest"
	"github.com/ghostwatch/ghostwatch/tracer/report/reporttest"
	"github.com/ghostwatch/ghostwatch/tracer/testutil"
)

// The incident of a deny-all window, end to end: a container of pod db-0 reads /dev/urandom in a
// loop while, on the host, its device cgroup is rewritten "deny all, wait, allow each rule again";
// `trace devices --report` writes the timeline when it is stopped, and headless Chromium draws it
// with one deny-all window span and a denial mark for every denied event ghostwatch printed.
// GHOSTWATCH_RECORD_INCIDENT=FILE keeps the run's JSON lines (tracer/report/testdata comes from
// such a run).
func TestTraceReportShowsDenyAllWindow(t *testing.T) {
	testutil.RequirePrivileged(t)
	containertest.SkipInVM(t)
	d := containertest.Start(t)
	c := d.Run(t, containertest.Options{Name: "db", Pod: "db-0", Args: []string{"sh", "-c",
		`while true; do head -c1 /dev/urandom >/tmp/x 2>/tmp/err; sleep 0.01; done`}})
	path := filepath.Join(t.TempDir(), "incident.html")
	tr := startTracing(t, "trace", "devices", "-o", "json", "--report", path, "--containerd-socket", d.Socket)

	containertest.DenyAllDevices(t, c.Pid, 300*time.Millisecond)

	var lines []string
	windows, denied := 0, 0
	count := func(line string) {
		lines = append(lines, line)
		var ev struct {
			Type, Kind string
			Devices    struct {
				DenyAll bool `json:"deny_all"`
			}
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("not JSON: %q", line)
		}
		switch {
		case ev.Kind == "window" && ev.Devices.DenyAll:
			windows++
		case ev.Kind == "denied":
			denied++
		}
	}
	timeout := time.After(testutil.Wait)
	for windows == 0 {
		select {
		case line, ok := <-tr.lines:
			if !ok {
				t.Fatalf("output ended before the window; stderr: %s", tr.stderr)
			}
			count(line)
		case <-timeout:
			t.Fatalf("no deny-all window within %v; stderr: %s", testutil.Wait, tr.stderr)
		}
	}
	tr.cmd.Process.Signal(os.Interrupt)
	for line := range tr.lines {
		if !strings.Contains(line, `"type":"summary"`) {
			count(line)
		}
	}
	if code := tr.wait(t); code != 0 {
		t.Fatalf("exit %d; stderr: %s", code, tr.stderr)
	}
	if !strings.Contains(tr.stderr.String(), "report in "+path) {
		t.Errorf("stderr does not say where the report is: %s", tr.stderr)
	}
	if denied == 0 {
		t.Fatal("no denial during the window: the container's loop did not run into it")
	}
	if out := os.Getenv("GHOSTWATCH_RECORD_INCIDENT"); out != "" {
		if err := os.WriteFile(out, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	page := reporttest.Open(t, path, 1400, 500)
	if n, _ := page.Count("window"); n != windows {
		t.Errorf("the page drew %d window spans, ghostwatch printed %d deny-all windows", n, windows)
	}
	if _, n := page.Count("denied"); n != denied {
		t.Errorf("the page's denial marks stand for %d denials, ghostwatch printed %d", n, denied)
	}
	if !strings.Contains(page.DOM, "pod db-0 (default)") || !strings.Contains(page.DOM, "DENY-ALL WINDOW") {
		t.Errorf("the page has no lane for pod db-0 with a DENY-ALL WINDOW in it")
	}
	if len(page.Screenshot) < 1000 {
		t.Errorf("screenshot of %d bytes", len(page.Screenshot))
	}
}

// A report that cannot be written fails before anything is loaded, in one line.
func TestTraceReportPathError(t *testing.T) {
	var stderr strings.Builder
	cmd := command("trace", "setns", "--report", "/nonexistent-dir/r.html")
	cmd.Stderr = &stderr
	cmd.Run()
	if code := cmd.ProcessState.ExitCode(); code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	oneLineError(t, stderr.String(), "report: open /nonexistent-dir/")
}

// history --report: the events read (JSON kept for the report even when the table is printed), in
// their pods' lanes, and the record's gap between two agent runs drawn across them.
func TestHistoryReport(t *testing.T) {
	dir := t.TempDir()
	evs := historyEvents(time.Date(2026, 3, 1, 2, 10, 0, 0, time.UTC))
	writeHistory(t, dir, evs[:2])
	writeHistory(t, dir, evs[2:])
	path := filepath.Join(t.TempDir(), "history.html")
	var stdout, stderr strings.Builder
	if code := run([]string{"ghostwatch", "history", "--data-dir", dir, "-o", "table", "--report", path}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if !strings.HasPrefix(stdout.String(), "TIME ") || !strings.Contains(stderr.String(), "report in "+path) {
		t.Errorf("stdout %q, stderr %q: want the table, and where the report is", stdout.String(), stderr.String())
	}
	html, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, data, _ := strings.Cut(string(html), `<script id="data" type="application/json">`)
	data, _, _ = strings.Cut(data, "</script>")
	var page struct {
		Events int
		Gaps   []struct{ Label string }
		Lanes  []struct{ Title string }
	}
	if err := json.Unmarshal([]byte(data), &page); err != nil {
		t.Fatalf("the report's data: %v", err)
	}
	var lanes []string
	for _, l := range page.Lanes {
		lanes = append(lanes, l.Title)
	}
	if page.Events != len(evs) || len(page.Gaps) != 1 || !strings.Contains(page.Gaps[0].Label, "no agent ran") ||
		!slices.Contains(lanes, "pod web-0 (shop)") {
		t.Errorf("report of %d events, gaps %+v, lanes %q: want %d events, the gap between the runs, pod web-0's lane",
			page.Events, page.Gaps, lanes, len(evs))
	}
}
