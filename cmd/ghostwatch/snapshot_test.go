package main

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ghostwatch/ghostwatch/tracer/testutil"
)

// `netns holders`, made from the registry, prints a namespace of the test's own from each source,
// as a JSON line and as a table row.
func TestNetnsHolders(t *testing.T) {
	testutil.RequirePrivileged(t)
	member := testutil.StartHolder(t, unix.CLONE_NEWNET)
	inode := strconv.Itoa(int(testutil.NSInode(t, member.Pid, "net")))
	for _, source := range []string{"auto", "iterators", "proc"} {
		t.Run(source, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run([]string{"ghostwatch", "netns", "holders", "--netns", inode, "--source", source, "-o", "json"}, &stdout, &stderr); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			var ns map[string]any
			if err := json.Unmarshal(stdout.Bytes(), &ns); err != nil || strings.Count(stdout.String(), "\n") != 1 {
				t.Fatalf("want one JSON line: %v: %s", err, stdout.String())
			}
			if strconv.Itoa(int(num(ns["netns"]))) != inode || num(ns["members"]) != 2 {
				t.Errorf("netns %s with the holder and its child: %s", inode, stdout.String())
			}
			stdout.Reset()
			if code := run([]string{"ghostwatch", "netns", "holders", "--netns", inode, "--source", source, "-o", "table"}, &stdout, &stderr); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			lines := strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
			if len(lines) != 2 || !strings.HasPrefix(lines[0], "NETNS      CONTAINER        HOLDERS") ||
				!strings.HasPrefix(lines[1], inode+" -                held by 2 processes in it (pid "+strconv.Itoa(member.Pid)+" sh, ") {
				t.Errorf("table:\n%s", stdout.String())
			}
		})
	}
}
