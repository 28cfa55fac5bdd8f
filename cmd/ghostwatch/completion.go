package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/ghostwatch/ghostwatch/cmd/ghostwatch/clidoc"
	"github.com/ghostwatch/ghostwatch/tracer/container"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
	"github.com/ghostwatch/ghostwatch/tracer/registry"
)

func completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print a shell completion script: source <(ghostwatch completion bash)",
		ArgsUsage: strings.Join(clidoc.Shells, "|"),
		Description: "Print the completion script of a shell: commands, gadgets, flags and the values of flags that take\n" +
			"one of a few. bash: source <(ghostwatch completion bash), or save it as\n" +
			"/etc/bash_completion.d/ghostwatch. zsh: source <(ghostwatch completion zsh) after compinit, or save it\n" +
			"as _ghostwatch in a directory of $fpath. fish: ghostwatch completion fish | source, or save it as\n" +
			"~/.config/fish/completions/ghostwatch.fish.",
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("name a shell: ghostwatch completion %s", strings.Join(clidoc.Shells, "|"))
			}
			shell := c.Args().First()
			if !slices.Contains(clidoc.Shells, shell) {
				return usagef("no completion for shell %q: want %s", shell, strings.Join(clidoc.Shells, ", "))
			}
			tree, err := cliTree(c.App)
			if err != nil {
				return err
			}
			script, err := clidoc.Completion(tree, shell)
			if err != nil {
				return err
			}
			_, err = fmt.Fprint(c.App.Writer, script)
			return err
		},
	}
}

func manCommand() *cli.Command {
	return &cli.Command{
		Name:      "man",
		Usage:     "write a man page per command into a directory (make man: docs/man)",
		ArgsUsage: "DIR",
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("name the directory: ghostwatch man DIR")
			}
			pages, err := manPages(c.App)
			if err != nil {
				return err
			}
			dir := c.Args().First()
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			names := make([]string, 0, len(pages))
			for name := range pages {
				names = append(names, name)
			}
			sort.Strings(names)
			for _, name := range names {
				if err := os.WriteFile(filepath.Join(dir, name), pages[name], 0o644); err != nil {
					return err
				}
			}
			fmt.Fprintf(c.App.ErrWriter, "ghostwatch: %d man pages in %s\n", len(pages), dir)
			return nil
		},
	}
}

// manPages are the man pages of app, by file name.
func manPages(app *cli.App) (map[string][]byte, error) {
	tree, err := cliTree(app)
	if err != nil {
		return nil, err
	}
	return clidoc.Man(tree, clidoc.Section{Title: "EXIT STATUS", Text: "0: done (a trace: stopped by Ctrl-C, SIGTERM or --duration).\n\n" +
		"1: a runtime error, such as missing privileges, one line on stderr.\n\n" +
		"2: a usage error (an unknown flag, command or gadget, or a bad value), one line on stderr."},
		clidoc.Section{Title: "DOCUMENTATION", Text: "https://github.com/ghostwatch/ghostwatch: README.md and docs/."}), nil
}

// cliTree is the command line as completion scripts and man pages see it, with what the flags'
// definitions do not say: the values some take, and which name files.
func cliTree(app *cli.App) (*clidoc.Command, error) {
	return clidoc.Tree(app, clidoc.Hints{
		Values: func(cmd []string, f cli.Flag) []string {
			switch name := f.Names()[0]; {
			case f == outputFlag:
				return []string{"table", "json"}
			case name == "containerd-namespace":
				return append(slices.Clone(container.ContainerdNamespaces), "all")
			case name == "source" && len(cmd) == 3 && slices.ContainsFunc(registry.Snapshots(), func(d *gadget.Descriptor) bool {
				return cmd[1] == d.Group && cmd[2] == d.Name
			}):
				return gadget.Sources
			}
			return nil
		},
		Files: func(cmd []string, f cli.Flag) bool {
			switch name := f.Names()[0]; {
			case name == "report", name == "containerd-socket":
				return true
			case len(cmd) > 1 && cmd[1] == "seccomp":
				return name == "output" || name == "base" || name == "output-root"
			}
			return false
		},
		Args: func(cmd []string) ([]string, bool) {
			switch strings.Join(cmd, " ") {
			case "ghostwatch completion":
				return clidoc.Shells, false
			case "ghostwatch man", "ghostwatch seccomp merge":
				return nil, true
			}
			return nil, false
		},
	})
}
