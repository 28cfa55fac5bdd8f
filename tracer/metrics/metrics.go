// Package metrics holds the agent's Prometheus metrics and serves them with its health checks.
//
// Labels are few on purpose: gadget, kind, cause, hook. A label per pod or container multiplies
// the series by the node's churn (Tetragon's pod label did, and its users complained); the one
// opt-in is the Kubernetes namespace on the event counter, which a cluster has few of.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ghostwatch/ghostwatch/tracer/attach"
)

const namespace = "ghostwatch"

// Options configure the metrics.
type Options struct {
	// K8sNamespaceLabel adds k8s_namespace to the event counter (empty for the host and for
	// containers outside Kubernetes).
	K8sNamespaceLabel bool
	Version           string
}

// Metrics are the agent's metrics, in a registry of their own (with the Go runtime's and the
// process's).
type Metrics struct {
	reg     *prometheus.Registry
	events  *prometheus.CounterVec
	lost    *prometheus.CounterVec
	attach  *prometheus.GaugeVec
	nsLabel bool
}

// New makes the metrics.
func New(o Options) *Metrics {
	labels := []string{"gadget", "kind"}
	if o.K8sNamespaceLabel {
		labels = append(labels, "k8s_namespace")
	}
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "events_total",
			Help: "Events recorded, by gadget and kind."}, labels),
		lost: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "events_lost_total",
			Help: "Events lost, by gadget and cause: ring_full (the kernel's ring buffer), " +
				"table_full (a kernel table of calls in flight or processes followed: their events not written), " +
				"recursion (a program the kernel skipped), join_queue_full (the queue from the reader to the join), " +
				"forgotten (a join or a kernel table dropped what it held for want of room: later events may lack their cause), " +
				"disk_full, write_error, agent_killed (taken by an agent killed before writing them)."},
			[]string{"gadget", "cause"}),
		attach: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "attach_info",
			Help: "The attach point each gadget's hook got on this kernel (value 1; attach=\"none\" when it has none)."},
			[]string{"gadget", "hook", "attach"}),
		nsLabel: o.K8sNamespaceLabel,
	}
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "build_info",
		Help: "The agent's version (value 1)."}, []string{"version"})
	build.WithLabelValues(o.Version).Set(1)
	m.reg.MustRegister(m.events, m.lost, m.attach, build,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is where the metrics are, for more (and for tests).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Events returns the event counter of a gadget. Each gadget's goroutine has its own: it keeps the
// series it used, so that counting an event is an increment, not a lookup by labels.
func (m *Metrics) Events(gadget string) *EventCounter {
	return &EventCounter{m: m, gadget: gadget, series: map[seriesKey]prometheus.Counter{}}
}

// EventCounter counts one gadget's events. It is not safe for concurrent use.
type EventCounter struct {
	m      *Metrics
	gadget string
	series map[seriesKey]prometheus.Counter
}

type seriesKey struct{ kind, k8sNamespace string }

// Inc counts an event of a kind, of a container in a Kubernetes namespace ("" when none); the
// namespace is a label only when the metrics were made with K8sNamespaceLabel.
func (c *EventCounter) Inc(kind, k8sNamespace string) {
	if !c.m.nsLabel {
		k8sNamespace = ""
	}
	key := seriesKey{kind, k8sNamespace}
	s, ok := c.series[key]
	if !ok {
		if c.m.nsLabel {
			s = c.m.events.WithLabelValues(c.gadget, kind, k8sNamespace)
		} else {
			s = c.m.events.WithLabelValues(c.gadget, kind)
		}
		c.series[key] = s
	}
	s.Inc()
}

// Lost counts lost events.
func (m *Metrics) Lost(gadget, cause string, n uint64) {
	m.lost.WithLabelValues(gadget, cause).Add(float64(n))
}

// LostSoFar makes a gadget's series of a cause exist at 0, so that a rate over it is defined
// before the first loss.
func (m *Metrics) LostSoFar(gadget string, causes ...string) {
	for _, c := range causes {
		m.lost.WithLabelValues(gadget, c)
	}
}

// Attach records the attach points a gadget got.
func (m *Metrics) Attach(gadget string, choices []attach.Choice) {
	for _, c := range choices {
		kind := c.Kind
		if kind == "" {
			kind = "none"
		}
		m.attach.WithLabelValues(gadget, c.Hook, kind).Set(1)
	}
}

// Gauge adds a gauge whose value f gives at each scrape.
func (m *Metrics) Gauge(name, help string, labels prometheus.Labels, f func() float64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help, ConstLabels: labels}, f))
}

// Handler serves /metrics, /healthz (200 while alive returns nil) and /readyz (200 while ready
// returns nil); else 503 with the error.
func (m *Metrics) Handler(alive, ready func() error) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg}))
	mux.HandleFunc("/healthz", check(alive))
	mux.HandleFunc("/readyz", check(ready))
	return mux
}

func check(f func() error) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		if err := f(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	}
}

// Server is a running metrics endpoint.
type Server struct {
	srv  *http.Server
	done chan error
	once sync.Once
	err  error
	Addr net.Addr // where it listens (a ":0" address gets its port here)
}

// Serve listens on addr now (so that a port in use is an error at start) and serves h until Close.
func Serve(addr string, h http.Handler) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	s := &Server{srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}, done: make(chan error, 1), Addr: ln.Addr()}
	go func() { s.done <- s.srv.Serve(ln) }()
	return s, nil
}

// Close stops serving, letting requests under way finish for a moment.
func (s *Server) Close() error {
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s.err = s.srv.Shutdown(ctx)
		if err := <-s.done; !errors.Is(err, http.ErrServerClosed) {
			s.err = errors.Join(s.err, err)
		}
	})
	return s.err
}
