package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The parts of the JSON events schema (README, "JSON events") the report reads. Fields it does not
// name are still shown: every event's own JSON is what its mark opens.

// header is what every event has.
type header struct {
	Time      time.Time `json:"time"`
	Type      string    `json:"type"`
	Kind      string    `json:"kind"`
	Proc      proc      `json:"proc"`
	Container *owner    `json:"container"`
}

type proc struct {
	PID  uint32 `json:"pid"`
	TID  uint32 `json:"tid"`
	Comm string `json:"comm"`
}

// owner is a container, as `container`, `target_container` and `owner` write it.
type owner struct {
	ID           string `json:"id"`
	Name         string `json:"name"`
	Pod          string `json:"pod"`
	K8sNamespace string `json:"k8s_namespace"`
}

// summary is the last line of a trace (what it saw and lost) or of history (what it read, and the
// record's gaps).
type summary struct {
	Gadget   string `json:"gadget,omitempty"`
	Events   uint64 `json:"events"`
	Lost     uint64 `json:"lost"`
	Duration string `json:"duration,omitempty"`
	Gaps     []gap  `json:"gaps,omitempty"`
}

// gap is a time in which a flight record may miss events: no agent ran ("stopped"), it was killed,
// or events were lost.
type gap struct {
	From   time.Time `json:"from"`
	To     time.Time `json:"to"`
	Reason string    `json:"reason"`
	Lost   []struct {
		Gadget string `json:"gadget"`
		Cause  string `json:"cause"`
		Count  uint64 `json:"count"`
	} `json:"lost,omitempty"`
}

type cgroup struct {
	Path      string `json:"path"`
	Container *owner `json:"container"`
}

type writer struct {
	PID  uint32 `json:"pid"`
	Comm string `json:"comm"`
	File string `json:"file"`
	Rule string `json:"rule"`
}

// devicesObj holds the fields of every devices kind (rule, program, denied, window): their names
// do not clash.
type devicesObj struct {
	File        string          `json:"file"`
	Written     string          `json:"written"`
	Result      string          `json:"result"`
	Cgroup      cgroup          `json:"cgroup"`
	Op          string          `json:"op"`
	ProgramID   uint32          `json:"program_id"`
	Path        string          `json:"path"`
	Device      string          `json:"device"`
	Access      string          `json:"access"`
	Syscall     string          `json:"syscall"`
	Cause       json.RawMessage `json:"cause"`
	Opened      time.Time       `json:"opened"`
	Closed      time.Time       `json:"closed"`
	StillOpen   bool            `json:"still_open"`
	DenyAll     bool            `json:"deny_all"`
	OpenedBy    *writer         `json:"opened_by"`
	ClosedBy    *writer         `json:"closed_by"`
	Denied      int             `json:"denied"`
	DeniedPaths []string        `json:"denied_paths"`
}

type netnsObj struct {
	NetNS  uint64 `json:"netns"`
	How    string `json:"how"`
	Owner  *owner `json:"owner"`
	Lived  int64  `json:"lived_ns"`
	Empty  int64  `json:"empty_ns"`
	HeldBy string `json:"held_by"`
}

type capsObj struct {
	Cap            string          `json:"cap"`
	Verdict        string          `json:"verdict"`
	Syscall        string          `json:"syscall"`
	Cause          json.RawMessage `json:"cause"`
	Result         string          `json:"result"`
	Added          []string        `json:"added"`
	Dropped        []string        `json:"dropped"`
	File           string          `json:"file"`
	Applied        bool            `json:"applied"`
	IgnoredBecause string          `json:"ignored_because"`
}

type setnsObj struct {
	Syscall         string   `json:"syscall"`
	NSTypes         []string `json:"ns_types"`
	TargetContainer *owner   `json:"target_container"`
	Result          string   `json:"result"`
	// Entry is how the entry came about (an exec, nsenter, a debug container...), where the
	// gadget says.
	Entry *entryObj `json:"entry"`
	// A then event: what followed the entry made by thread EnteredBy at EnteredAt.
	EnteredAt time.Time `json:"entered_at"`
	EnteredBy uint32    `json:"entered_by"`
	Argv      []string  `json:"argv"`
	ExitCode  *int      `json:"exit_code"`
}

type entryObj struct {
	Class     string     `json:"class"`
	Heuristic bool       `json:"heuristic"`
	Why       string     `json:"why"`
	Container *owner     `json:"container"`
	ExecID    string     `json:"exec_id"`
	Ancestry  []ancestor `json:"ancestry"`
}

type ancestor struct {
	Comm string `json:"comm"`
}

// about is what names an entry beside its class: the exec id, the container created (and, for a
// guess, why), or the ancestry of a host tool (sshd>bash).
func (e *entryObj) about() string {
	switch {
	case e.ExecID != "":
		return "exec id " + e.ExecID
	case e.Heuristic && e.Container != nil:
		return e.Container.label() + ", a guess: " + e.Why
	case e.Container != nil:
		return e.Container.label()
	}
	var up []string
	for i := len(e.Ancestry) - 1; i >= 0; i-- {
		up = append(up, e.Ancestry[i].Comm)
	}
	if len(up) == 0 {
		return ""
	}
	return "via " + strings.Join(up, ">")
}

// causeLabel is a cause as a person reads it: "rule by sh (pid 10930): file=devices.deny rule=a".
// Its time and how long before are left out, so that the marks it explains share one label.
func causeLabel(raw json.RawMessage) string {
	fields, err := scalars(raw)
	if err != nil || len(fields) == 0 {
		return ""
	}
	var kind, comm, pid string
	var rest []string
	for _, f := range fields {
		switch f[0] {
		case "kind":
			kind = f[1]
		case "comm":
			comm = f[1]
		case "pid":
			pid = f[1]
		case "time", "before_ns":
		default:
			rest = append(rest, f[0]+"="+f[1])
		}
	}
	s := kind
	if comm != "" {
		s += " by " + comm + " (pid " + pid + ")"
	}
	if len(rest) > 0 {
		s += ": " + strings.Join(rest, " ")
	}
	return s
}

// scalars returns the fields of a JSON object whose values are strings, numbers or booleans, in
// the order they are written.
func scalars(raw json.RawMessage) ([][2]string, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, fmt.Errorf("not an object")
	}
	var out [][2]string
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return nil, err
		}
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		switch v := v.(type) {
		case string:
			out = append(out, [2]string{k.(string), v})
		case json.Number:
			out = append(out, [2]string{k.(string), v.String()})
		case bool:
			out = append(out, [2]string{k.(string), strconv.FormatBool(v)})
		}
	}
	return out, nil
}

func (o *owner) label() string {
	switch {
	case o.Pod != "" && o.Name != "":
		return o.Pod + "/" + o.Name
	case o.Name != "":
		return o.Name
	}
	return shortID(o.ID)
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func duration(d time.Duration) string {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(time.Microsecond * 100).String()
	}
	return d.String()
}

// cniObj is what the report reads of a CNI plugin's invocation (start, done, slow).
type cniObj struct {
	Command      string    `json:"command"`
	Plugin       string    `json:"plugin"`
	Pod          string    `json:"pod"`
	K8sNamespace string    `json:"k8s_namespace"`
	Start        time.Time `json:"start"`
	Duration     int64     `json:"duration_ns"`
	Running      int64     `json:"running_ns"`
	ExitCode     int       `json:"exit_code"`
	Signal       string    `json:"signal"`
	Error        *struct {
		Code int    `json:"code"`
		Msg  string `json:"msg"`
	} `json:"error"`
	Attempt int `json:"attempt"`
	Blocked []struct {
		PID     uint32 `json:"pid"`
		Comm    string `json:"comm"`
		Syscall string `json:"syscall"`
		Wchan   string `json:"wchan"`
	} `json:"blocked"`
}

// oomObj is what the report reads of an OOM kill.
type oomObj struct {
	Constraint string `json:"constraint"`
	Memcg      struct {
		Path  string `json:"path"`
		Usage uint64 `json:"usage_bytes"`
		Limit uint64 `json:"limit_bytes"`
	} `json:"memcg"`
	Victim struct {
		RSS uint64 `json:"rss_bytes"`
	} `json:"victim"`
	Trigger *struct {
		PID  uint32 `json:"pid"`
		Comm string `json:"comm"`
		Same bool   `json:"same"`
	} `json:"trigger"`
	// An exit (kind exit) after a kill.
	ExitStatus   *uint32 `json:"exit_status"`
	RuntimeOOM   bool    `json:"runtime_oom"`
	RestartCount *uint32 `json:"restart_count"`
	GaveUp       string  `json:"gave_up"`
}

// signalsObj is what the report reads of a signal sent or a kill that failed.
type signalsObj struct {
	Signal         string `json:"signal"`
	Result         string `json:"result"`
	Call           string `json:"call"`
	PID            int32  `json:"pid"`
	TID            int32  `json:"tid"`
	CrossContainer bool   `json:"cross_container"`
	ToInit         bool   `json:"to_init"`
	Target         *struct {
		PID       uint32 `json:"pid"`
		Comm      string `json:"comm"`
		Container *owner `json:"container"`
	} `json:"target"`
}

// netlinkObj is what the report reads of a netlink request answered with an extended-ack message.
type netlinkObj struct {
	Message string          `json:"message"`
	Errno   string          `json:"errno"`
	Ack     string          `json:"ack"`
	Request *netlinkRequest `json:"request"`
}

type netlinkRequest struct {
	Type      string `json:"type"`
	Address   string `json:"address"`
	Local     string `json:"local"`
	Dst       string `json:"dst"`
	PrefixLen int    `json:"prefix_len"`
	Gateway   string `json:"gateway"`
	IfName    string `json:"ifname"`
}

// summary is the request in a few words, as trace netlink's table writes it.
func (q *netlinkRequest) summary() string {
	s := q.Type
	switch {
	case q.Dst != "":
		s += " " + q.Dst + "/" + strconv.Itoa(q.PrefixLen)
	case q.Local != "":
		s += " " + q.Local + "/" + strconv.Itoa(q.PrefixLen)
	case q.Address != "":
		s += " " + q.Address
	}
	if q.Gateway != "" {
		s += " via " + q.Gateway
	}
	if q.IfName != "" {
		s += " " + q.IfName
	}
	return s
}
