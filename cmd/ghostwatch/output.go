package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/ghostwatch/ghostwatch/tracer/encode"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
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

// flushAt is how much output is kept before it is written without waiting for the ring buffer to
// run dry.
const flushAt = 64 << 10

// eventWriter writes a stream of events as JSON lines or table rows into one reused buffer,
// written out when the kernel has nothing more to read (so a reader of a pipe sees each event
// while the incident is going on) or when it grows past flushAt. It allocates nothing per event.
type eventWriter struct {
	out    io.Writer
	isJSON bool
	json   gadget.JSONLines
	buf    []byte
	row    encode.Row
	header bool
	err    error // the first write error; later events are dropped and it is reported at stop
	// pending counts the events in buf; unwritten those a write error kept from the output.
	pending, unwritten uint64
	// onError, if not nil, is told of the first write error: nothing more can be written.
	onError func()
}

func newEventWriter(format string, w io.Writer, columns []encode.Column) *eventWriter {
	return &eventWriter{out: w, isJSON: format == "json", buf: make([]byte, 0, 2*flushAt),
		row: encode.Row{Columns: columns}}
}

func (w *eventWriter) write(ev gadget.Event) {
	if w.err != nil {
		w.unwritten++
		return
	}
	w.pending++
	if w.isJSON {
		w.json.B = w.buf
		w.json.Append(ev)
		w.buf = w.json.B
	} else {
		if !w.header {
			w.header = true
			w.row.Header()
			w.buf = append(w.buf, w.row.B...)
		}
		gadget.AppendRow(&w.row, ev)
		w.buf = append(w.buf, w.row.B...)
	}
	if len(w.buf) >= flushAt {
		w.flush()
	}
}

func (w *eventWriter) idle() {
	if len(w.buf) > 0 {
		w.flush()
	}
}

// flush writes what is buffered and returns the first write error so far. The events of a
// buffer whose write failed count as not written, even if some of its bytes were.
func (w *eventWriter) flush() error {
	if w.err == nil && len(w.buf) > 0 {
		if _, w.err = w.out.Write(w.buf); w.err != nil {
			w.unwritten += w.pending
			if w.onError != nil {
				w.onError()
			}
		}
	}
	w.buf, w.pending = w.buf[:0], 0
	return w.err
}

// outputClosed tells a write error that means the reader of the output went away (a pipe to
// `head`): the output was wanted no further, which is no failure.
func outputClosed(err error) bool { return errors.Is(err, syscall.EPIPE) }
