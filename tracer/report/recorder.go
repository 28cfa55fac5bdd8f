package report

import (
	"bufio"
	"fmt"
	"io"
	"os"

	"github.com/ghostwatch/ghostwatch/tracer/gadget"
	"github.com/ghostwatch/ghostwatch/tracer/outfile"
)

// Recorder keeps a trace's events for the report written when it ends: as JSON lines in a file
// that is already unlinked, so that a long trace costs disk rather than memory and a killed one
// leaves nothing behind. The report is written whole or not at all (outfile).
type Recorder struct {
	path   string
	events *os.File
	w      *bufio.Writer
	json   gadget.JSONLines
	out    *outfile.File
	err    error // the first error keeping events; Write reports it
}

// NewRecorder prepares a report at path, failing now if it cannot be written there.
func NewRecorder(path string) (*Recorder, error) {
	out, err := outfile.Create(path)
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	events, err := os.CreateTemp("", "ghostwatch-report-*.jsonl")
	if err == nil {
		err = os.Remove(events.Name())
	}
	if err != nil {
		out.Abort()
		return nil, fmt.Errorf("report: keeping the events: %w", err)
	}
	return &Recorder{path: path, events: events, w: bufio.NewWriterSize(events, 256<<10), out: out}, nil
}

// Add keeps an event.
func (r *Recorder) Add(ev gadget.Event) {
	if r.err != nil {
		return
	}
	r.json.B = r.json.B[:0]
	r.json.Append(ev)
	_, r.err = r.w.Write(r.json.B)
}

// AddLine keeps a line that is already JSON, such as the trace's summary.
func (r *Recorder) AddLine(line []byte) {
	if r.err != nil {
		return
	}
	if _, r.err = r.w.Write(line); r.err == nil {
		r.err = r.w.WriteByte('\n')
	}
}

// Write renders the events kept into the report and puts it in place.
func (r *Recorder) Write(o Options) error {
	if r.err == nil {
		r.err = r.w.Flush()
	}
	if r.err != nil {
		return fmt.Errorf("report: keeping the events: %w", r.err)
	}
	if _, err := r.events.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	out := bufio.NewWriter(r.out)
	err := Write(out, r.events, o)
	if err == nil {
		err = out.Flush()
	}
	if err == nil {
		err = r.out.Commit()
	}
	if err != nil {
		return fmt.Errorf("report %s: %w", r.path, err)
	}
	return nil
}

// Close drops the events kept and, unless Write put it in place, the report.
func (r *Recorder) Close() {
	r.events.Close()
	r.out.Abort()
}
