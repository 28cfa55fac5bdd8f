package clidoc

import (
	"fmt"
	"strings"
)

// Section is a part of every man page after OPTIONS, such as EXIT STATUS.
type Section struct{ Title, Text string }

// Man returns a man page (section 1) for every command of the tree, by file name:
// "ghostwatch.1", "ghostwatch-trace.1", "ghostwatch-trace-setns.1". The pages carry no date and
// no version, so the same definition always gives the same bytes; extra sections end every page.
func Man(root *Command, extra ...Section) map[string][]byte {
	pages := map[string][]byte{}
	var walk func(c, parent *Command)
	walk = func(c, parent *Command) {
		pages[pageName(c)+".1"] = manPage(c, parent, extra)
		for _, s := range c.Subs {
			walk(s, c)
		}
	}
	walk(root, nil)
	return pages
}

func pageName(c *Command) string { return strings.Join(c.Path, "-") }

func manPage(c, parent *Command, extra []Section) []byte {
	var b strings.Builder
	name := pageName(c)
	fmt.Fprintf(&b, ".TH \"%s\" \"1\" \"\" \"%s\" \"%s manual\"\n", roffWord(strings.ToUpper(name)), roffWord(c.Path[0]), roffWord(c.Path[0]))
	b.WriteString(".SH NAME\n")
	fmt.Fprintf(&b, "%s \\- %s\n", roffWord(name), roffText(c.Usage))

	b.WriteString(".SH SYNOPSIS\n")
	fmt.Fprintf(&b, ".B %s\n", roffWord(c.Name()))
	if len(c.Subs) > 0 {
		b.WriteString("\\fICOMMAND\\fR [\\fIOPTIONS\\fR]\n")
	} else {
		b.WriteString("[\\fIOPTIONS\\fR]")
		if c.ArgsUsage != "" {
			b.WriteString(" " + roffText(c.ArgsUsage))
		}
		b.WriteString("\n")
	}

	b.WriteString(".SH DESCRIPTION\n")
	desc := c.Description
	if desc == "" {
		desc = upperFirst(c.Usage) + "."
	}
	writeParagraphs(&b, desc)

	if len(c.Subs) > 0 {
		b.WriteString(".SH COMMANDS\n")
		for _, s := range c.Subs {
			fmt.Fprintf(&b, ".TP\n.B %s\n%s\n", roffWord(s.Path[len(s.Path)-1]), roffText(upperFirst(s.Usage)+"."))
			fmt.Fprintf(&b, "See \\fB%s\\fR(1).\n", roffWord(pageName(s)))
		}
	}

	b.WriteString(".SH OPTIONS\n")
	for _, f := range c.Flags {
		b.WriteString(".TP\n")
		var names []string
		for _, n := range f.Names() {
			names = append(names, "\\fB"+roffWord(n)+"\\fR")
		}
		b.WriteString(strings.Join(names, ", "))
		if f.TakesValue {
			b.WriteString(" \\fIvalue\\fR")
		}
		b.WriteString("\n")
		text := f.Usage
		if f.Default != "" {
			text += " (default: " + f.Default + ")"
		}
		if f.Repeatable && !strings.Contains(text, "repeatable") {
			text += " (repeatable)"
		}
		b.WriteString(roffText(text) + "\n")
	}

	for _, s := range extra {
		fmt.Fprintf(&b, ".SH %s\n", roffWord(s.Title))
		writeParagraphs(&b, s.Text)
	}

	var see []*Command
	if parent != nil {
		see = append(see, parent)
	}
	see = append(see, c.Subs...)
	if len(see) > 0 {
		b.WriteString(".SH SEE ALSO\n")
		for i, s := range see {
			sep := ",\n"
			if i == len(see)-1 {
				sep = "\n"
			}
			fmt.Fprintf(&b, "\\fB%s\\fR(1)%s", roffWord(pageName(s)), sep)
		}
	}
	return []byte(b.String())
}

// writeParagraphs writes text whose paragraphs are separated by blank lines.
func writeParagraphs(b *strings.Builder, text string) {
	for i, p := range strings.Split(strings.TrimSpace(text), "\n\n") {
		if i > 0 {
			b.WriteString(".PP\n")
		}
		for _, line := range strings.Split(p, "\n") {
			b.WriteString(roffText(strings.TrimSpace(line)) + "\n")
		}
	}
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// roffText escapes a line of prose: backslashes, a leading control character, and every rune
// outside ASCII (as \[uXXXX], so the page reads the same whatever the reader's locale).
func roffText(s string) string {
	var b strings.Builder
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		b.WriteString("\\&")
	}
	for _, r := range s {
		switch {
		case r == '\\':
			b.WriteString("\\e")
		case r > 0x7e:
			fmt.Fprintf(&b, "\\[u%04X]", r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// roffWord escapes a name, whose hyphens are minus signs (so it can be copied and typed).
func roffWord(s string) string { return strings.ReplaceAll(roffText(s), "-", "\\-") }
