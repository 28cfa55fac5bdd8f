package flightrec

import (
	"encoding/json"
	"time"
)

// Marker kinds.
const (
	MarkStart  = "start"  // an agent began writing
	MarkStop   = "stop"   // it stopped, having written what it had
	MarkKilled = "killed" // written by the next agent: the last one ended without stopping
	MarkLost   = "lost"   // events were lost (by the kernel, the agent or the record)
)

// Causes of loss that the record itself counts.
const (
	CauseDiskFull   = "disk_full"    // the data directory's file system was full (or a quota)
	CauseWriteError = "write_error"  // another write error
	CauseKilled     = "agent_killed" // taken by an agent that was killed before writing them
)

// Marker is a frame of the record that is not events: an agent's start or stop, a restart that
// found the last agent killed, a count of events lost. History reads them for its gaps.
type Marker struct {
	Time time.Time `json:"time"`
	Kind string    `json:"kind"`
	PID  int       `json:"pid,omitempty"`
	// Start: the agent's version, its gadgets, and what else it says of itself.
	Version string          `json:"version,omitempty"`
	Gadgets []string        `json:"gadgets,omitempty"`
	Info    json.RawMessage `json:"info,omitempty"`
	// Killed: when the last agent was last seen alive (its last flush).
	LastAlive time.Time `json:"last_alive,omitzero"`
	// Lost, killed: what was lost, since when.
	From time.Time `json:"from,omitzero"`
	Lost []Loss    `json:"lost,omitempty"`
	// Stop: events written by the run.
	Events uint64 `json:"events,omitempty"`
}

// Loss is a count of events lost, by gadget and cause.
type Loss struct {
	Gadget string `json:"gadget"`
	Cause  string `json:"cause"`
	Count  uint64 `json:"count"`
}
