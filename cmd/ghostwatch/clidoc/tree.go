// Package clidoc writes what people read and type around a command line from its definition (a
// urfave/cli App): a man page per command and completion scripts for bash, zsh and fish. Since the
// CLI's trace commands come from the gadget registry, a new gadget appears in both by itself.
package clidoc

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/urfave/cli/v2"
)

// Hints say what the CLI definition does not: which values a flag takes, whether it names a file,
// and what a command's arguments are. A nil function is no hint.
type Hints struct {
	// Values are the words a flag's value is one of.
	Values func(cmd []string, f cli.Flag) []string
	// Files reports whether a flag's value is a path.
	Files func(cmd []string, f cli.Flag) bool
	// Args are the words a command's arguments are one of, or files when they are paths.
	Args func(cmd []string) (words []string, files bool)
}

// Command is one visible command, with its path from the program's name.
type Command struct {
	Path        []string // "ghostwatch", "trace", "setns"
	Usage       string   // one line
	Description string   // more, if the definition has it
	ArgsUsage   string
	Flags       []Flag
	Subs        []*Command
	Args        []string // the words its arguments are one of
	ArgFiles    bool     // its arguments are paths
}

// Name is the path joined by spaces, as typed.
func (c *Command) Name() string { return strings.Join(c.Path, " ") }

// Flag is one visible flag of a command.
type Flag struct {
	Long       string   // the first name, e.g. "output"
	Short      []string // one-letter aliases, e.g. "o"
	Other      []string // longer aliases
	Usage      string
	TakesValue bool
	Default    string // as help shows it; empty when none
	Repeatable bool
	Values     []string // the words its value is one of
	File       bool     // its value is a path
}

// Names are every spelling of the flag with its dashes: "--output", "-o".
func (f *Flag) Names() []string {
	out := []string{"--" + f.Long}
	for _, o := range f.Other {
		out = append(out, "--"+o)
	}
	for _, s := range f.Short {
		out = append(out, "-"+s)
	}
	return out
}

// helpFlag is what urfave/cli adds to every command.
var helpFlag = Flag{Long: "help", Short: []string{"h"}, Usage: "show help"}

// word is what may appear unquoted in a generated script: a command or flag name, or a value.
var word = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:+-]*$`)

// Tree returns the app's visible commands as a tree rooted at the app itself. It fails on a name
// that a script could not carry unquoted.
func Tree(app *cli.App, h Hints) (*Command, error) {
	root := &Command{Path: []string{app.Name}, Usage: app.Usage, Description: app.Description, ArgsUsage: app.ArgsUsage}
	if err := fill(root, app.Flags, app.Commands, h); err != nil {
		return nil, err
	}
	return root, nil
}

func fill(c *Command, flags []cli.Flag, subs []*cli.Command, h Hints) error {
	for _, n := range c.Path {
		if !word.MatchString(n) {
			return fmt.Errorf("command name %q is not a plain word", n)
		}
	}
	for _, f := range flags {
		// urfave/cli adds its help flag and command to the definition as it runs it: the tree has
		// its own, so that it is the same before and after.
		if v, ok := f.(cli.VisibleFlag); ok && !v.IsVisible() || f.Names()[0] == helpFlag.Long {
			continue
		}
		fl, err := newFlag(c.Path, f, h)
		if err != nil {
			return fmt.Errorf("%s: %w", c.Name(), err)
		}
		c.Flags = append(c.Flags, fl)
	}
	c.Flags = append(c.Flags, helpFlag)
	if h.Args != nil {
		c.Args, c.ArgFiles = h.Args(c.Path)
	}
	for _, s := range subs {
		if s.Hidden || s.Name == "help" {
			continue
		}
		sub := &Command{Path: append(append([]string{}, c.Path...), s.Name), Usage: s.Usage,
			Description: s.Description, ArgsUsage: s.ArgsUsage}
		if err := fill(sub, s.Flags, s.Subcommands, h); err != nil {
			return err
		}
		c.Subs = append(c.Subs, sub)
	}
	return nil
}

func newFlag(cmd []string, f cli.Flag, h Hints) (Flag, error) {
	names := f.Names()
	fl := Flag{Long: names[0]}
	for _, n := range names[1:] {
		if len(n) == 1 {
			fl.Short = append(fl.Short, n)
		} else {
			fl.Other = append(fl.Other, n)
		}
	}
	for _, n := range names {
		if !word.MatchString(n) {
			return fl, fmt.Errorf("flag name %q is not a plain word", n)
		}
	}
	if d, ok := f.(cli.DocGenerationFlag); ok {
		fl.Usage = d.GetUsage()
		fl.TakesValue = d.TakesValue()
		if fl.TakesValue {
			fl.Default = d.GetDefaultText()
			switch fl.Default {
			case "0", "0s", `""`: // a zero value is no default worth showing
				fl.Default = ""
			}
		}
	}
	if m, ok := f.(cli.DocGenerationSliceFlag); ok {
		fl.Repeatable = m.IsSliceFlag()
	}
	if h.Values != nil {
		fl.Values = h.Values(cmd, f)
		for _, v := range fl.Values {
			if !word.MatchString(v) {
				return fl, fmt.Errorf("--%s value %q is not a plain word", fl.Long, v)
			}
		}
	}
	_, isPath := f.(*cli.PathFlag)
	fl.File = isPath || h.Files != nil && h.Files(cmd, f)
	return fl, nil
}

// Walk calls fn for c and every command below it, parents first.
func (c *Command) Walk(fn func(*Command) error) error {
	if err := fn(c); err != nil {
		return err
	}
	for _, s := range c.Subs {
		if err := s.Walk(fn); err != nil {
			return err
		}
	}
	return nil
}
