package report_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ghostwatch/ghostwatch/tracer/report"
	"github.com/ghostwatch/ghostwatch/tracer/report/reporttest"
)

var updateScreenshot = flag.Bool("update-screenshot", false, "write the recorded incident's screenshot into docs/")

// screenshotPath is the example in the documentation.
const screenshotPath = "../../docs/report-deny-all-window.png"

// incident is a deny-all window recorded by `ghostwatch trace devices -o json` in
// cmd/ghostwatch's TestTraceReportShowsDenyAllWindow (GHOSTWATCH_RECORD_INCIDENT).
const incident = "testdata/deny-all-window.jsonl"

func writeReport(t *testing.T, events []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "report.html")
	var out bytes.Buffer
	if err := report.Write(&out, bytes.NewReader(events), report.Options{Title: "test"}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// countKinds counts the events of a recording by kind, deny-all windows apart.
func countKinds(t *testing.T, events []byte) map[string]int {
	t.Helper()
	n := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(events))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var ev struct {
			Kind    string
			Devices struct {
				DenyAll bool `json:"deny_all"`
			}
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatal(err)
		}
		n[ev.Kind]++
		if ev.Kind == "window" && ev.Devices.DenyAll {
			n["deny-all"]++
		}
	}
	return n
}

// The recorded incident in a real browser: the page draws the deny-all window as a span in the
// pod's lane, a denial mark for each denied open, and opens an event's JSON in its side panel.
func TestRecordedIncidentInBrowser(t *testing.T) {
	events, err := os.ReadFile(incident)
	if err != nil {
		t.Fatal(err)
	}
	want := countKinds(t, events)
	if want["deny-all"] != 1 || want["denied"] == 0 {
		t.Fatalf("the recording has %d deny-all windows and %d denials: want one window and its denials", want["deny-all"], want["denied"])
	}
	path := writeReport(t, events)
	page := reporttest.Open(t, path+"#show=window", 1400, 330)
	if n, _ := page.Count("window"); n != want["window"] {
		t.Errorf("%d window spans drawn, the recording has %d windows", n, want["window"])
	}
	if _, n := page.Count("denied"); n != want["denied"] {
		t.Errorf("denial marks stand for %d denials, the recording has %d", n, want["denied"])
	}
	if _, n := page.Count("rule"); n != want["rule"] {
		t.Errorf("rule marks stand for %d writes, the recording has %d", n, want["rule"])
	}
	for _, s := range []string{`class="span hit k-window strong`, "pod db-0 (default)", "DENY-ALL WINDOW", `"deny_all": true`} {
		if !strings.Contains(page.DOM, s) {
			t.Errorf("the page lacks %q (the deny-all span, its lane, its words, its JSON in the panel)", s)
		}
	}
	if *updateScreenshot {
		if err := os.WriteFile(screenshotPath, reporttest.Open(t, path+"#show=denied", 1400, 330).Screenshot, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// The page loads nothing: no source, link, stylesheet import or URL but to a part of itself, so it
// opens the same on a laptop without network as on the node.
func TestReportIsSelfContained(t *testing.T) {
	events, err := os.ReadFile(incident)
	if err != nil {
		t.Fatal(err)
	}
	html, err := os.ReadFile(writeReport(t, events))
	if err != nil {
		t.Fatal(err)
	}
	if m := regexp.MustCompile(`(?i)(\bsrc=|\bhref=|url\([^#]|@import|https?:|//[a-z0-9.-]+\.[a-z]{2,}/)`).Find(html); m != nil {
		t.Errorf("the report refers to something outside itself: %q", m)
	}
}

// hundredThousand makes a recording of 100,000 capability checks in one container over 10 s, half
// of them denied, around a deny-all window.
func hundredThousand() ([]byte, int) {
	var b bytes.Buffer
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ctr := `{"id":"c0ffee","name":"app","pod":"app-0","k8s_namespace":"default"}`
	denied := 0
	for i := range 100_000 {
		verdict := "allowed"
		if i%2 == 0 {
			verdict = "denied"
			denied++
		}
		fmt.Fprintf(&b, `{"time":%q,"type":"caps","kind":"check","proc":{"pid":%d,"comm":"app"},"container":%s,"caps":{"cap":"CAP_SYS_ADMIN","verdict":%q,"syscall":"mmap"}}`+"\n",
			start.Add(time.Duration(i)*100*time.Microsecond).Format(time.RFC3339Nano), 100+i%7, ctr, verdict)
	}
	fmt.Fprintf(&b, `{"time":%q,"type":"devices","kind":"window","proc":{"pid":9,"comm":"runc"},"devices":{"cgroup":{"path":"/k8s.io/c0ffee","container":%s},"opened":%q,"closed":%q,"deny_all":true,"opened_by":{"pid":9,"comm":"runc","file":"devices.deny","rule":"a"},"denied":0}}`+"\n",
		start.Add(5*time.Second).Format(time.RFC3339Nano), ctr, start.Add(2*time.Second).Format(time.RFC3339Nano), start.Add(5*time.Second).Format(time.RFC3339Nano))
	return b.Bytes(), denied
}

// 100,000 events stay readable: marks closer than a few pixels are drawn as one with their count,
// so the page holds a few hundred marks that together stand for every event, and the file stays
// small (the JSON of the first events of each kind only).
func TestHundredThousandEventsInBrowser(t *testing.T) {
	events, denied := hundredThousand()
	path := writeReport(t, events)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() > 8<<20 {
		t.Errorf("report of %d MB for 100,000 events", st.Size()>>20)
	}
	page := reporttest.Open(t, path, 1400, 400)
	marks, n := page.Count("cap-denied")
	if n != denied {
		t.Errorf("denied-check marks stand for %d checks, %d were denied", n, denied)
	}
	if allowedMarks, m := page.Count("cap"); m != 100_000-denied || marks+allowedMarks > 2000 {
		t.Errorf("%d + %d marks for 100,000 checks standing for %d allowed (want %d): not aggregated", marks, allowedMarks, m, 100_000-denied)
	}
	if w, _ := page.Count("window"); w != 1 {
		t.Errorf("%d window spans, want 1", w)
	}
	if !strings.Contains(page.DOM, "JSON kept for") {
		t.Error("the page does not say that it keeps the JSON of some events only")
	}
}
