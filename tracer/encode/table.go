package encode

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// Column is a table column and its width; the last column of a row is not padded.
type Column struct {
	Name  string
	Width int
}

// Row writes the cells of table rows into B, padding each cell to its column's width as
// fmt's %-*s does, with one space between columns. A cell is begun with Begin (or Cell) and
// written with the appending methods.
type Row struct {
	B       []byte
	Columns []Column
	// Sep, when not 0, separates cells instead of padding and a space: the cells of a row kept
	// to be laid out later (the flight record keeps rows so).
	Sep   byte
	col   int // the column of the cell being written, -1 before the first
	start int // where it began in B
}

// Start begins a row in a reused buffer.
func (r *Row) Start() { r.B, r.col, r.start = r.B[:0], -1, 0 }

// Begin starts the next cell, finishing the one before it.
func (r *Row) Begin() {
	r.pad()
	r.col++
	r.start = len(r.B)
}

func (r *Row) pad() {
	if r.col < 0 {
		return
	}
	if r.Sep != 0 {
		r.B = append(r.B, r.Sep)
		return
	}
	if r.col < len(r.Columns) {
		for n := utf8.RuneCount(r.B[r.start:]); n < r.Columns[r.col].Width; n++ {
			r.B = append(r.B, ' ')
		}
	}
	r.B = append(r.B, ' ')
}

// End finishes the row with a newline; the last cell is not padded.
func (r *Row) End() { r.B = append(r.B, '\n') }

// Cell writes a whole cell.
func (r *Row) Cell(s string) { r.Begin(); r.B = append(r.B, s...) }

// Str appends to the current cell.
func (r *Row) Str(s string) { r.B = append(r.B, s...) }

// Uint appends a number to the current cell.
func (r *Row) Uint(n uint64) { r.B = strconv.AppendUint(r.B, n, 10) }

// Int appends a signed number to the current cell.
func (r *Row) Int(n int64) { r.B = strconv.AppendInt(r.B, n, 10) }

// Clock appends a time of day with milliseconds, as tables show event times.
func (r *Row) Clock(t time.Time) { r.B = t.AppendFormat(r.B, "15:04:05.000") }

// Header writes the column names as a row.
func (r *Row) Header() {
	r.Start()
	for _, c := range r.Columns {
		r.Cell(c.Name)
	}
	r.End()
}
