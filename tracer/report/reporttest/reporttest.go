// Package reporttest opens reports in a real browser for tests: headless Chromium from Debian's
// packages loads the file, runs its script, and gives back the page it drew and a screenshot.
package reporttest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ghostwatch/ghostwatch/tracer/testutil"
)

// Page is a report as the browser drew it.
type Page struct {
	DOM        string // the document after its script ran
	Screenshot []byte // PNG
}

// Open loads the report at path in headless Chromium, with a fresh profile and no network
// activity of its own, and returns the document it drew and a screenshot of width x height. A
// fragment after the path ("#show=window") is passed to the page.
func Open(t testing.TB, path string, width, height int) Page {
	t.Helper()
	browser := testutil.RequireTool(t, "chromium-headless-shell")
	path, fragment, _ := strings.Cut(path, "#")
	if fragment != "" {
		fragment = "#" + fragment
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(t.TempDir(), "screenshot.png")
	run := func(args ...string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, browser, append([]string{"--headless", "--no-sandbox", "--disable-gpu",
			"--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update",
			"--disable-sync", "--user-data-dir=" + t.TempDir(), "--window-size=" + strconv.Itoa(width) + "," + strconv.Itoa(height)},
			append(args, "file://"+abs+fragment)...)...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v: %s", filepath.Base(browser), err, stderr.String())
		}
		return string(out)
	}
	dom := run("--dump-dom")
	run("--screenshot=" + shot)
	png, err := os.ReadFile(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	if !strings.Contains(dom, `data-rendered="1"`) {
		t.Fatalf("the report's script did not draw the timeline (no data-rendered=\"1\"):\n%.2000s", dom)
	}
	return Page{DOM: dom, Screenshot: png}
}

var markRE = regexp.MustCompile(`<rect class="(span|mark)[^"]*" data-kind="([^"]+)"(?: data-count="(\d+)")?`)

// Count returns how many elements of a kind ("window", "denied") the page drew, spans and marks
// alike, and how many events they stand for (a mark may stand for several close together).
func (p Page) Count(kind string) (elements, events int) {
	for _, m := range markRE.FindAllStringSubmatch(p.DOM, -1) {
		if m[2] != kind {
			continue
		}
		elements++
		n := 1
		if m[3] != "" {
			n, _ = strconv.Atoi(m[3])
		}
		events += n
	}
	return elements, events
}
