package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/ghostwatch/ghostwatch/tracer/registry"
	"github.com/ghostwatch/ghostwatch/tracer/testutil"
)

// completionCase is a line typed before Tab and what the shell must then propose: exactly want,
// or at least those words when some is set.
type completionCase struct {
	line       string
	want, some []string
}

func completionCases() []completionCase {
	var gadgets []string
	for _, d := range registry.Streams() {
		gadgets = append(gadgets, d.Name)
	}
	return []completionCase{
		{line: "ghostwatch trace ", want: gadgets},
		{line: "ghostwatch ", some: []string{"trace", "ps", "netns", "seccomp", "doctor", "completion", "man"}},
		{line: "ghostwatch netns ", want: []string{"holders"}},
		{line: "ghostwatch trace netns --li", want: []string{"--linger"}},
		{line: "ghostwatch trace setns -o ", want: []string{"table", "json"}},
		{line: "ghostwatch trace setns --container db -o json --dur", want: []string{"--duration"}},
		{line: "ghostwatch netns holders --source ", want: []string{"auto", "iterators", "proc"}},
		{line: "ghostwatch completion ", want: []string{"bash", "zsh", "fish"}},
	}
}

// script is what `ghostwatch completion SHELL` prints, written to a file.
func script(t *testing.T, shell string) string {
	out, err := command("completion", shell).Output()
	if err != nil {
		t.Fatalf("ghostwatch completion %s: %v", shell, err)
	}
	path := filepath.Join(t.TempDir(), "ghostwatch."+shell)
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func checkProposed(t *testing.T, tc completionCase, got []string) {
	t.Helper()
	sort.Strings(got)
	got = slices.Compact(got)
	if tc.want != nil {
		want := slices.Clone(tc.want)
		sort.Strings(want)
		if !slices.Equal(got, want) {
			t.Errorf("%q<Tab> proposed %q, want %q", tc.line, got, want)
		}
	}
	for _, w := range tc.some {
		if !slices.Contains(got, w) {
			t.Errorf("%q<Tab> proposed %q, want %q among them", tc.line, got, w)
		}
	}
}

// bash runs the function the script registers for ghostwatch with the words as bash splits them
// (on spaces, and around "="), and prints what it proposed.
func TestCompletionBash(t *testing.T) {
	bash := testutil.RequireTool(t, "bash")
	path := script(t, "bash")
	cases := append(completionCases(),
		completionCase{line: "ghostwatch trace setns --output=j", want: []string{"json"}},
		completionCase{line: "ghostwatch trace setns --output=json --ho", want: []string{"--host"}},
	)
	for _, tc := range cases {
		var words []string
		for _, w := range strings.Split(tc.line, " ") {
			if before, after, ok := strings.Cut(w, "="); ok {
				words = append(words, before, "=", after)
			} else {
				words = append(words, w)
			}
		}
		args := append([]string{"--norc", "--noprofile", "-c",
			`source "$0" && COMP_WORDS=("$@") && COMP_CWORD=$(($# - 1)) && _ghostwatch && printf '%s\n' "${COMPREPLY[@]}"`,
			path}, words...)
		cmd := exec.Command(bash, args...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%q: %v", tc.line, err)
		}
		checkProposed(t, tc, strings.Fields(string(out)))
	}
}

// fish completes a line itself (complete -C), printing each candidate with its description.
func TestCompletionFish(t *testing.T) {
	fish := testutil.RequireTool(t, "fish")
	path := script(t, "fish")
	for _, tc := range completionCases() {
		out, err := exec.Command(fish, "--no-config", "-c", `source $argv[1]; complete -C $argv[2]`, path, tc.line).Output()
		if err != nil {
			t.Fatalf("%q: %v", tc.line, err)
		}
		var got []string
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if c, _, _ := strings.Cut(l, "\t"); c != "" {
				got = append(got, c)
			}
		}
		checkProposed(t, tc, got)
	}
}

// zsh completes only in its line editor: testdata/complete.zsh types the line and Tab into an
// interactive zsh on a pseudo-terminal and records what completion offered.
func TestCompletionZsh(t *testing.T) {
	zsh := testutil.RequireTool(t, "zsh")
	path := script(t, "zsh")
	driver, err := filepath.Abs("testdata/complete.zsh")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range completionCases() {
		out := filepath.Join(t.TempDir(), "offered")
		if err := os.WriteFile(out, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if b, err := exec.Command(zsh, "-f", driver, path, out, tc.line).CombinedOutput(); err != nil {
			t.Fatalf("%q: %v: %s", tc.line, err, b)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		checkProposed(t, tc, strings.Fields(string(b)))
	}
}

func TestCompletionUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"completion"}, "name a shell: ghostwatch completion bash|zsh|fish"},
		{[]string{"completion", "tcsh"}, `no completion for shell "tcsh"`},
		{[]string{"completion", "bash", "zsh"}, "name a shell"},
		{[]string{"man"}, "name the directory"},
	} {
		var stderr bytes.Buffer
		cmd := command(tc.args...)
		cmd.Stderr = &stderr
		cmd.Run()
		if code := cmd.ProcessState.ExitCode(); code != 2 {
			t.Errorf("%q: exit %d, want 2 (usage)", tc.args, code)
		}
		oneLineError(t, stderr.String(), tc.want)
	}
}
