// Package agent runs gadgets in one process over one container index, with their joins, and
// keeps their events in the flight record and their counts in the metrics: `ghostwatch agent`.
package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ghostwatch/ghostwatch/tracer/attach"
	"github.com/ghostwatch/ghostwatch/tracer/caps"
	"github.com/ghostwatch/ghostwatch/tracer/container"
	"github.com/ghostwatch/ghostwatch/tracer/flightrec"
	"github.com/ghostwatch/ghostwatch/tracer/gadget"
	"github.com/ghostwatch/ghostwatch/tracer/kernel"
	"github.com/ghostwatch/ghostwatch/tracer/metrics"
	"github.com/ghostwatch/ghostwatch/tracer/netns"
)

// Defaults are the agent's options of each gadget where they differ from trace's: what costs the
// node least and still catches the stories (README: the agent's defaults and their cost).
var Defaults = map[string]gadget.Params{
	// Denied checks only, each once per container, capability and syscall, decided in the kernel:
	// allowed checks are most of a node's and say little. Without capset, which on kernels that
	// refuse fexit (6.14+ here) needs syscall tracepoints of its own.
	caps.Gadget.Name: {caps.ParamDenied: true, caps.ParamUnique: true, caps.ParamCapset: false},
	// A namespace empty for 30 s is worth a holders snapshot (about 0.1 s of reading /proc or
	// iterating a busy node's fds); 5 s catches every CNI teardown in progress.
	netns.Gadget.Name: {netns.ParamLinger: 30 * time.Second},
}

// Options configure an agent.
type Options struct {
	Gadgets []*gadget.Descriptor
	// Params override Defaults and the gadgets' own defaults, by gadget name.
	Params     map[string]gadget.Params
	BufferSize uint32 // each gadget's ring buffer; 0: the gadget's
	DataDir    string
	// Record sets the flight record's bounds (its OnLost and OnWriteError are the agent's).
	Record flightrec.Options
	// MetricsAddr is where /metrics, /healthz and /readyz are served; "": nowhere.
	MetricsAddr string
	Metrics     metrics.Options
	// ContainerdSocket and ContainerdNamespaces say where containers come from (nil: all).
	ContainerdSocket     string
	ContainerdNamespaces []string
	// Warn is told what goes wrong while the agent keeps running, in one line each.
	Warn func(string)
}

// Agent is a started agent.
type Agent struct {
	o       Options
	m       *metrics.Metrics
	rec     *flightrec.Writer
	srv     *metrics.Server
	coll    *container.Collection
	watch   *container.Watcher
	running []*running
	failed  map[string]error // gadgets that did not load or stopped with an error
	mu      sync.Mutex       // guards failed and ready
	ready   bool
	start   time.Time
	lostMu  sync.Mutex
	lost    map[[2]string]uint64 // by gadget and cause, for the summary
}

// running is one gadget of the agent.
type running struct {
	d        *gadget.Descriptor
	g        *gadget.Gadget
	params   gadget.Params
	kind     string // the kind of a gadget with one (its events leave it out)
	enc      flightrec.Encoder
	count    *metrics.EventCounter
	events   atomic.Uint64
	lastWarn time.Time
	seen     gadget.Lost // the gadget's losses told so far
}

// Start opens the flight record, the metrics endpoint, the container index and the gadgets. A
// gadget that does not load is left out (a warning, and /readyz says so); none loading is an
// error. Run then records until its context ends.
func Start(ctx context.Context, o Options) (*Agent, error) {
	if o.Warn == nil {
		o.Warn = func(string) {}
	}
	if err := kernel.CheckPrivileges(); err != nil { // before anything is made on disk
		return nil, err
	}
	a := &Agent{o: o, m: metrics.New(o.Metrics), failed: map[string]error{}, lost: map[[2]string]uint64{}, start: time.Now()}
	var err error
	if o.MetricsAddr != "" {
		if a.srv, err = metrics.Serve(o.MetricsAddr, a.m.Handler(a.alive, a.readiness)); err != nil {
			return nil, err
		}
	}
	ro := o.Record
	ro.OnLost = a.countLost
	ro.OnWriteError = func(err error) {
		if err != nil {
			o.Warn(fmt.Sprintf("flight record: %v: events are dropped (counted) until it can write again", err))
		} else {
			o.Warn("flight record: writing again")
		}
	}
	if a.rec, err = flightrec.Open(o.DataDir, ro); err != nil {
		a.closeServer()
		return nil, fmt.Errorf("flight record: %w", err)
	}
	if killed, pid, at, lost := a.rec.Previous(); killed {
		o.Warn(fmt.Sprintf("the agent before this one (pid %d) ended without stopping, last seen %s: %d events it had taken were lost (counted in the record)",
			pid, at.Format(time.RFC3339), lost))
	}
	a.coll = container.NewCollection()
	a.watch = container.Watch(ctx, a.coll, o.ContainerdSocket, o.ContainerdNamespaces, func(err error) { o.Warn(err.Error()) })
	for _, d := range o.Gadgets {
		if err := a.open(d); err != nil {
			a.failed[d.Name] = err
			o.Warn(fmt.Sprintf("%s not recorded: %v", d.Name, err))
		}
	}
	if len(a.running) == 0 {
		a.Close()
		return nil, errors.New("no gadget could be loaded")
	}
	a.gauges()
	a.rec.Mark(flightrec.Marker{Time: time.Now(), Kind: flightrec.MarkStart, PID: os.Getpid(), Version: o.Metrics.Version,
		Gadgets: a.Gadgets(), Info: a.info()})
	return a, nil
}

// open loads one gadget with the agent's options.
func (a *Agent) open(d *gadget.Descriptor) error {
	params := gadget.Params{}
	maps.Copy(params, Defaults[d.Name])
	maps.Copy(params, a.o.Params[d.Name])
	g, err := gadget.Open(d, gadget.Options{Params: params, BufferSize: a.o.BufferSize})
	if err != nil {
		return err
	}
	r := &running{d: d, g: g, params: g.Params, count: a.m.Events(d.Name)}
	if len(d.Kinds)+len(d.Derived) == 1 {
		r.kind = d.Kinds[0].Name
	}
	a.running = append(a.running, r)
	a.m.Attach(d.Name, g.Choices())
	causes := []string{flightrec.CauseDiskFull, flightrec.CauseWriteError}
	for _, c := range gadget.LossCauses {
		causes = append(causes, c.String())
	}
	a.m.LostSoFar(d.Name, causes...)
	a.m.Gauge("ring_buffer_fill_ratio", "The fullest a gadget's ring buffer was seen since the last scrape (0 to 1).",
		prometheus.Labels{"gadget": d.Name}, g.PeakFill)
	return nil
}

func (a *Agent) gauges() {
	a.m.Gauge("containers", "Containers in the agent's index.", nil, func() float64 { return float64(len(a.coll.List())) })
	a.m.Gauge("record_bytes", "Bytes of the flight record's segments on disk.", nil, func() float64 { return float64(a.rec.Stats().Bytes) })
	a.m.Gauge("record_oldest_event_timestamp_seconds", "When the oldest event the flight record keeps happened (Unix time; 0: none).", nil,
		func() float64 {
			if t := a.rec.Stats().Oldest; !t.IsZero() {
				return float64(t.UnixNano()) / 1e9
			}
			return 0
		})
}

// Gadgets names the gadgets recording.
func (a *Agent) Gadgets() []string {
	var out []string
	for _, r := range a.running {
		out = append(out, r.d.Name)
	}
	return out
}

// Choices are the attach points each recording gadget got.
func (a *Agent) Choices() map[string][]attach.Choice {
	out := map[string][]attach.Choice{}
	for _, r := range a.running {
		out[r.d.Name] = r.g.Choices()
	}
	return out
}

// MetricsAddr is where the metrics are served ("" when nowhere).
func (a *Agent) MetricsAddr() string {
	if a.srv == nil {
		return ""
	}
	return a.srv.Addr.String()
}

// info is what the start marker says of the agent: attach points, options, gadgets left out.
func (a *Agent) info() json.RawMessage {
	type gadgetInfo struct {
		Attach []attach.Choice   `json:"attach"`
		Params map[string]string `json:"params,omitempty"`
	}
	info := struct {
		Gadgets map[string]gadgetInfo `json:"gadgets"`
		Failed  map[string]string     `json:"failed,omitempty"`
	}{Gadgets: map[string]gadgetInfo{}, Failed: map[string]string{}}
	for _, r := range a.running {
		gi := gadgetInfo{Attach: r.g.Choices(), Params: map[string]string{}}
		for k, v := range r.params {
			gi.Params[k] = fmt.Sprint(v)
		}
		info.Gadgets[r.d.Name] = gi
	}
	for name, err := range a.failed {
		info.Failed[name] = err.Error()
	}
	b, _ := json.Marshal(info)
	return b
}

// Run records until ctx ends, then writes out what the kernel and the joins still hold, writes
// the stop marker, and closes everything: nothing of the agent stays loaded.
func (a *Agent) Run(ctx context.Context) Summary {
	var wg sync.WaitGroup
	for _, r := range a.running {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.record(ctx, r)
		}()
	}
	a.mu.Lock()
	a.ready = true
	a.mu.Unlock()
	wg.Wait()
	var events uint64
	for _, r := range a.running {
		events += r.events.Load()
	}
	a.rec.Mark(flightrec.Marker{Time: time.Now(), Kind: flightrec.MarkStop, PID: os.Getpid(), Events: events})
	a.Close()
	return a.summary()
}

// record runs one gadget until ctx ends.
func (a *Agent) record(ctx context.Context, r *running) {
	emit := func(ev gadget.Event) {
		rec := r.enc.Encode(ev)
		a.rec.Append(rec)
		kind := rec.Kind
		if kind == "" {
			kind = r.kind
		}
		ns := ""
		if rec.Container != nil {
			ns = rec.Container.K8sNamespace
		}
		r.count.Inc(kind, ns)
		r.events.Add(1)
	}
	err := r.g.Run(ctx, a.coll, emit, nil, func(uint64) { a.gadgetLost(r) })
	a.gadgetLost(r) // what the last look before the stop missed
	if err != nil {
		a.mu.Lock()
		a.failed[r.d.Name] = err
		a.mu.Unlock()
		a.o.Warn(fmt.Sprintf("%s stopped recording: %v", r.d.Name, err))
	}
}

// gadgetLost counts what the gadget lost (in the kernel, or in its joins) since it was last told.
// It runs on the gadget's reading goroutine (or after its Run returned).
func (a *Agent) gadgetLost(r *running) {
	now, err := r.g.Lost()
	if err != nil {
		return
	}
	for _, c := range gadget.LossCauses {
		if n := now[c] - r.seen[c]; now[c] > r.seen[c] {
			a.rec.Lost(r.d.Name, c.String(), n)
			a.countLost(r.d.Name, c.String(), n)
		}
	}
	r.seen = now
	if t := time.Now(); now.Total() > 0 && t.Sub(r.lastWarn) > time.Minute {
		r.lastWarn = t
		a.o.Warn(fmt.Sprintf("%s: %d events lost so far (%s): raise --buffer-size, or narrow its options", r.d.Name, now.Total(), now))
	}
}

// countLost counts losses of any cause, in the metrics and for the summary.
func (a *Agent) countLost(gadget, cause string, n uint64) {
	a.m.Lost(gadget, cause, n)
	a.lostMu.Lock()
	a.lost[[2]string{gadget, cause}] += n
	a.lostMu.Unlock()
}

// alive is /healthz: the flight record is written every second while the agent works.
func (a *Agent) alive() error {
	every := a.o.Record.FlushEvery
	if every == 0 {
		every = flightrec.DefaultFlushEvery
	}
	if late := time.Since(a.rec.Stats().Flushed); late > 10*every {
		return fmt.Errorf("the flight record has not been flushed for %v", late.Round(time.Second))
	}
	return nil
}

// readiness is /readyz: every gadget asked for is recording.
func (a *Agent) readiness() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.ready {
		return errors.New("starting")
	}
	if len(a.failed) == 0 {
		return nil
	}
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(a.failed)) {
		parts = append(parts, name+": "+a.failed[name].Error())
	}
	return errors.New("not recording " + strings.Join(parts, "; "))
}

// Close stops serving metrics, stops the container watch, closes the record and unloads the
// gadgets. Run calls it; call it only for an agent that is not run.
func (a *Agent) Close() error {
	err := a.closeServer()
	a.watch.Stop()
	if a.rec != nil {
		err = errors.Join(err, a.rec.Close())
	}
	for _, r := range a.running {
		err = errors.Join(err, r.g.Close())
	}
	return err
}

func (a *Agent) closeServer() error {
	if a.srv == nil {
		return nil
	}
	return a.srv.Close()
}

// Summary is what a run of the agent did.
type Summary struct {
	Duration time.Duration
	Events   map[string]uint64 // by gadget
	Lost     []flightrec.Loss  // by gadget and cause
	Record   flightrec.Stats
	Failed   map[string]string // gadgets not recorded, or stopped, and why
}

func (a *Agent) summary() Summary {
	s := Summary{Duration: time.Since(a.start), Events: map[string]uint64{}, Record: a.rec.Stats(), Failed: map[string]string{}}
	for _, r := range a.running {
		s.Events[r.d.Name] = r.events.Load()
	}
	a.lostMu.Lock()
	for k, n := range a.lost {
		s.Lost = append(s.Lost, flightrec.Loss{Gadget: k[0], Cause: k[1], Count: n})
	}
	a.lostMu.Unlock()
	slices.SortFunc(s.Lost, func(x, y flightrec.Loss) int {
		return strings.Compare(x.Gadget+"/"+x.Cause, y.Gadget+"/"+y.Cause)
	})
	a.mu.Lock()
	for name, err := range a.failed {
		s.Failed[name] = err.Error()
	}
	a.mu.Unlock()
	return s
}
