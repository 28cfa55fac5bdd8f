package clidoc

import (
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

func testApp() *cli.App {
	return &cli.App{
		Name:  "tool",
		Usage: "does things",
		Commands: []*cli.Command{
			{Name: "run", Usage: ".starts with a dot, has a \\ and µs", Flags: []cli.Flag{
				&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "where: it's here"},
				&cli.StringSliceFlag{Name: "tag", Usage: "a tag (repeatable)"},
				&cli.BoolFlag{Name: "secret", Hidden: true},
				&cli.PathFlag{Name: "config"},
			}},
			{Name: "internal", Hidden: true},
		},
	}
}

func TestTree(t *testing.T) {
	root, err := Tree(testApp(), Hints{Values: func(cmd []string, f cli.Flag) []string {
		if f.Names()[0] == "output" {
			return []string{"a", "b"}
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(root.Subs) != 1 || root.Subs[0].Name() != "tool run" {
		t.Fatalf("commands %v, want only tool run (hidden ones left out)", root.Subs)
	}
	var got []string
	for _, f := range root.Subs[0].Flags {
		got = append(got, strings.Join(f.Names(), ","))
	}
	if want := "--output,-o --tag --config --help,-h"; strings.Join(got, " ") != want {
		t.Errorf("flags %q, want %q", got, want)
	}
	f := root.Subs[0].Flags
	if !f[0].TakesValue || strings.Join(f[0].Values, " ") != "a b" || !f[1].Repeatable || !f[2].File || f[3].TakesValue {
		t.Errorf("flags %+v: want output with values a b, tag repeatable, config a file, help without a value", f)
	}

	bad := testApp()
	bad.Commands[0].Name = "run it"
	if _, err := Tree(bad, Hints{}); err == nil {
		t.Error("a command name with a space was accepted: no script could carry it unquoted")
	}
}

func TestManEscapes(t *testing.T) {
	root, err := Tree(testApp(), Hints{})
	if err != nil {
		t.Fatal(err)
	}
	pages := Man(root, Section{Title: "EXIT STATUS", Text: "0: fine.\n\n1: not."})
	if len(pages) != 2 {
		t.Fatalf("pages %v, want tool.1 and tool-run.1", pages)
	}
	page := string(pages["tool-run.1"])
	for _, want := range []string{
		`.TH "TOOL\-RUN" "1" "" "tool" "tool manual"`,
		`tool\-run \- \&.starts with a dot, has a \e and \[u00B5]s`,
		`\fB\-\-output\fR, \fB\-o\fR \fIvalue\fR`,
		"a tag (repeatable)\n",
		".SH EXIT STATUS\n0: fine.\n.PP\n1: not.\n",
		".SH SEE ALSO\n\\fBtool\\fR(1)\n",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("tool-run.1 lacks %q:\n%s", want, page)
		}
	}
}

func TestCompletionQuotes(t *testing.T) {
	root, err := Tree(testApp(), Hints{})
	if err != nil {
		t.Fatal(err)
	}
	for shell, want := range map[string]string{
		"zsh":  `'(--output -o)'{--output=,-o+}'[where\: it'\''s here]:output: '`,
		"fish": `-l output -s o -x -d 'where: it\'s here'`,
		"bash": `['tool/run']='--output -o --tag --config'`,
	} {
		s, err := Completion(root, shell)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(s, want) {
			t.Errorf("%s script lacks %s:\n%s", shell, want, s)
		}
	}
	if _, err := Completion(root, "tcsh"); err == nil {
		t.Error("tcsh accepted")
	}
}
