package setns

import (
	"time"

	gen "github.com/ghostwatch/ghostwatch/gen/setns"
	"github.com/ghostwatch/ghostwatch/tracer/encode"
	"github.com/ghostwatch/ghostwatch/tracer/event"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
)

// Then is what a process that entered namespaces with setns did first (it or the child it
// forked): its first exec that succeeded, else its last that failed (execvp tries each PATH
// directory), else its exit without any exec.
type Then struct {
	event.Header
	Then ThenDetails `json:"setns"`
}

// ThenDetails is the gadget-specific part of a then event.
type ThenDetails struct {
	// EnteredAt is the time of the setns event that began the session, EnteredBy its tid: they
	// name that event.
	EnteredAt time.Time `json:"entered_at"`
	EnteredBy uint32    `json:"entered_by"`
	Exec      bool      `json:"exec"`           // false: the process exited without exec
	File      string    `json:"file,omitempty"` // as passed to execve
	Argv      []string  `json:"argv,omitempty"` // its first 6 arguments, 47 bytes of each
	Result    string    `json:"result"`         // ok or the errno name; "exit" without exec
	Ret       int64     `json:"ret"`
	ExitCode  *int32    `json:"exit_code,omitempty"` // without exec: the kernel's exit code
	exitCode  int32
	argv      [len(gen.SetnsThenEvent{}.Args)]string
}

// Decode fills the event from a kernel record.
func (ev *Then) Decode(rec *gen.SetnsThenEvent, h *event.Header, _ event.Resolver) {
	ev.Header = *h
	d := &ev.Then
	// Both on the boot-time clock: the session began this long before the event.
	at := h.Time.Add(-time.Duration(rec.Hdr.TsBootNs - rec.Session))
	*d = ThenDetails{EnteredAt: at, EnteredBy: rec.EnteredBy, Exec: rec.Exec != 0, Ret: rec.Ret,
		File: event.CString(rec.File[:]), Result: "ok"}
	n := min(int(rec.Argc), len(rec.Args))
	for i := range n {
		d.argv[i] = event.CString(rec.Args[i][:])
	}
	d.Argv = d.argv[:n]
	switch {
	case !d.Exec:
		d.Result, d.exitCode = "exit", rec.ExitCode
		d.ExitCode = &d.exitCode
	case rec.Ret < 0:
		d.Result = event.ErrnoName(rec.Ret)
	}
}

// Head returns the common part.
func (ev *Then) Head() *event.Header { return &ev.Header }

// Clone returns a copy that later decoding leaves alone.
func (ev *Then) Clone() gadget.Event {
	c := *ev
	c.Then.Argv = append([]string(nil), ev.Then.Argv...)
	if c.Then.ExitCode != nil {
		c.Then.ExitCode = &c.Then.exitCode
	}
	return &c
}

// AppendJSON appends the setns object of a then event.
func (ev *Then) AppendJSON(j *encode.JSON) {
	d := &ev.Then
	j.Object()
	j.Time("entered_at", d.EnteredAt)
	j.Uint("entered_by", uint64(d.EnteredBy))
	j.Bool("exec", d.Exec)
	j.OmitEmpty("file", d.File)
	if len(d.Argv) > 0 {
		j.Strings("argv", d.Argv)
	}
	j.String("result", d.Result)
	j.Int("ret", d.Ret)
	if d.ExitCode != nil {
		j.Int("exit_code", int64(*d.ExitCode))
	}
	j.End()
}

// AppendRow appends the setns columns: SYSCALL execve or exit, ENTRY "then" and the argv, and the
// result.
func (ev *Then) AppendRow(r *encode.Row) {
	d := &ev.Then
	if d.Exec {
		r.Cell("execve")
	} else {
		r.Cell("exit")
	}
	r.Cell("-")
	r.Cell("-")
	r.Cell("-")
	r.Begin()
	r.Str("then")
	for _, a := range d.Argv {
		r.Str(" ")
		r.Str(a)
	}
	r.Begin()
	r.Str(d.Result)
	if d.ExitCode != nil {
		r.Str(" ")
		r.Int(int64(*d.ExitCode))
	}
}
