package gadget

import (
	"strconv"
	"time"

	"github.com/ghostwatch/ghostwatch/tracer/encode"
)

// Cause points at the earlier event that explains an event: what a join (a Processor) adds.
// Joins keep what they may point at in bounded caches (tracer/lru), per process or cgroup.
type Cause struct {
	Time   time.Time
	Kind   string        // the earlier event's kind
	Before time.Duration // how long before the event it explains
	PID    uint32        // the earlier event's actor
	Comm   string
	// Attrs are the fields of the earlier event that matter here, in order.
	Attrs []Attr
}

// Attr is one field of a cause.
type Attr struct{ Key, Value string }

// AppendJSON appends the cause as an object: time, kind, before_ns, pid, comm, then its attrs. A
// cause with no time (a state found, not an event seen) has only its kind and attrs.
func (c *Cause) AppendJSON(j *encode.JSON) {
	j.Object()
	if !c.Time.IsZero() {
		j.Time("time", c.Time)
	}
	j.String("kind", c.Kind)
	if !c.Time.IsZero() {
		j.Int("before_ns", int64(c.Before))
		j.Uint("pid", uint64(c.PID))
		j.String("comm", c.Comm)
	}
	for _, a := range c.Attrs {
		j.String(a.Key, a.Value)
	}
	j.End()
}

// Label is the cause in a table cell: "exec 1.2s before by python3 (pid 7): file=/tmp/bad".
func (c *Cause) Label() string {
	if c == nil {
		return "-"
	}
	s := c.Kind
	if !c.Time.IsZero() {
		s += " " + c.Before.Round(time.Millisecond).String() + " before by " + c.Comm + " (pid " + strconv.FormatUint(uint64(c.PID), 10) + ")"
	}
	for i, a := range c.Attrs {
		if i == 0 {
			s += ":"
		}
		s += " " + a.Key + "=" + a.Value
	}
	return s
}
