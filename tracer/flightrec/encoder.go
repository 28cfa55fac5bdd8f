package flightrec

import (
	"bytes"

	"github.com/ghostwatch/ghostwatch/tracer/encode"
	"github.com/ghostwatch/ghostwatch/tracer/event"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
)

// Encoder makes records of decoded events: the JSON line and table cells trace writes of them.
// One serves one gadget's goroutine; its record is reused by the next Encode.
type Encoder struct {
	json    gadget.JSONLines
	row     encode.Row
	rec     Record
	targets []*event.Container
}

// Encode returns the record of an event, valid until the next call.
func (e *Encoder) Encode(ev gadget.Event) *Record {
	h := ev.Head()
	e.json.B = e.json.B[:0]
	e.json.Append(ev)
	// TIME is written by the reader, in its own time zone.
	e.row.Sep = rowSep
	e.row.Start()
	gadget.AppendCells(&e.row, ev)
	e.targets = e.targets[:0]
	if t, ok := ev.(gadget.Targeted); ok {
		for _, c := range t.Targets(e.targets) {
			if c != nil && (h.Container == nil || c.ID != h.Container.ID) {
				e.targets = append(e.targets, c)
			}
		}
	}
	e.rec = Record{Time: h.Time, Gadget: h.Type, Kind: h.Kind, Container: h.Container, Targets: e.targets,
		JSON: e.json.B[:len(e.json.B)-1], Row: e.row.B}
	return &e.rec
}

// AppendRow appends an entry read with Query.Rows as the table row trace prints, laid out in
// r.Columns (the gadget's, gadget.Descriptor.TableColumns). With gadgetCell, the gadget's name is
// a cell after COMM, for a table of several gadgets.
func AppendRow(r *encode.Row, e *Entry, gadgetCell bool) {
	r.Start()
	r.Begin()
	r.Clock(e.Time)
	cells := e.Row
	for n := 0; ; n++ {
		if gadgetCell && n == 3 {
			r.Cell(e.Gadget)
		}
		r.Begin()
		i := bytes.IndexByte(cells, rowSep)
		if i < 0 {
			r.B = append(r.B, cells...)
			break
		}
		r.B = append(r.B, cells[:i]...)
		cells = cells[i+1:]
	}
	r.End()
}
