package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"
)

// outputFlag is -o: table on a terminal, JSON lines otherwise.
var outputFlag = &cli.StringFlag{
	Name:    "output",
	Aliases: []string{"o"},
	Usage:   "output format: table or json (one object per line); default: table on a terminal, else json",
}

// outputFormat validates -o, choosing the default by whether stdout is a terminal.
func outputFormat(c *cli.Context) (string, error) {
	switch f := c.String("output"); f {
	case "table", "json":
		return f, nil
	case "":
		if f, ok := c.App.Writer.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			return "table", nil
		}
		return "json", nil
	default:
		return "", usagef("unknown output format %q: use table or json", f)
	}
}

// column is a table column and its width; the last column is not padded.
type column struct {
	name  string
	width int
}

// printer writes events as JSON lines or as a table with fixed columns (a stream cannot be
// aligned after the fact).
type printer struct {
	json    *json.Encoder
	out     *bufio.Writer
	columns []column
	header  bool
}

func newPrinter(format string, w io.Writer, columns ...column) *printer {
	out := bufio.NewWriter(w)
	p := &printer{out: out, columns: columns}
	if format == "json" {
		p.json = json.NewEncoder(out)
	}
	return p
}

func (p *printer) writeRow(cells []string) {
	for i, c := range cells {
		if i == len(cells)-1 || i >= len(p.columns) {
			p.out.WriteString(c)
			break
		}
		fmt.Fprintf(p.out, "%-*s ", p.columns[i].width, c)
	}
	p.out.WriteByte('\n')
}

// print writes one event: v as JSON, or row in the table. Each event is flushed at once, so a
// reader of a pipe sees it while the incident is going on.
func (p *printer) print(v any, row []string) error {
	if p.json != nil {
		if err := p.json.Encode(v); err != nil {
			return err
		}
		return p.out.Flush()
	}
	if !p.header {
		p.header = true
		names := make([]string, len(p.columns))
		for i, c := range p.columns {
			names[i] = c.name
		}
		p.writeRow(names)
	}
	p.writeRow(row)
	return p.out.Flush()
}
