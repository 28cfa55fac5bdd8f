package metrics

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/ghostwatch/ghostwatch/tracer/attach"
)

// get asks h for path, as a scrape would, without a network (the vmtest guests have none).
func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	b, err := io.ReadAll(rec.Result().Body)
	if err != nil {
		t.Fatal(err)
	}
	return rec.Code, string(b)
}

// series is one a scrape must show, with its value.
type series struct {
	name   string
	labels map[string]string
	want   float64
}

// TestEndpoint checks what a scrape of the metrics sees: the series counted, with no
// container or pod label, in a text format Prometheus parses; and the health checks.
func TestEndpoint(t *testing.T) {
	for _, nsLabel := range []bool{false, true} {
		m := New(Options{Version: "v1.2.3", K8sNamespaceLabel: nsLabel})
		caps := m.Events("caps")
		caps.Inc("check", "shop")
		caps.Inc("check", "shop")
		caps.Inc("check", "")
		caps.Inc("exec", "data")
		m.Lost("caps", "ring_full", 5)
		m.LostSoFar("devices", "ring_full", "disk_full")
		m.Attach("caps", []attach.Choice{{Hook: "check", Kind: "tp_btf"}, {Hook: "capset", Kind: ""}})
		m.Gauge("record_bytes", "Bytes of the flight record on disk.", nil, func() float64 { return 1234 })

		var ready atomic.Pointer[error]
		notYet := errors.New("devices: not attached yet")
		ready.Store(&notYet)
		var alive atomic.Pointer[error]
		var none error
		alive.Store(&none)
		h := m.Handler(func() error { return *alive.Load() }, func() error { return *ready.Load() })

		code, body := get(t, h, "/metrics")
		if code != 200 {
			t.Fatalf("/metrics: %d", code)
		}
		p := expfmt.NewTextParser(model.LegacyValidation)
		families, err := p.TextToMetricFamilies(strings.NewReader(body))
		if err != nil {
			t.Fatalf("the exposition does not parse: %v", err)
		}
		value := func(name string, labels map[string]string) (float64, bool) {
			f, ok := families[name]
			if !ok {
				return 0, false
			}
		next:
			for _, s := range f.Metric {
				got := map[string]string{}
				for _, l := range s.Label {
					got[l.GetName()] = l.GetValue()
				}
				if len(got) != len(labels) {
					continue
				}
				for k, v := range labels {
					if got[k] != v {
						continue next
					}
				}
				switch {
				case s.Counter != nil:
					return s.Counter.GetValue(), true
				case s.Gauge != nil:
					return s.Gauge.GetValue(), true
				}
			}
			return 0, false
		}
		checks := []series{
			{"ghostwatch_events_lost_total", map[string]string{"gadget": "caps", "cause": "ring_full"}, 5},
			{"ghostwatch_events_lost_total", map[string]string{"gadget": "devices", "cause": "disk_full"}, 0},
			{"ghostwatch_attach_info", map[string]string{"gadget": "caps", "hook": "check", "attach": "tp_btf"}, 1},
			{"ghostwatch_attach_info", map[string]string{"gadget": "caps", "hook": "capset", "attach": "none"}, 1},
			{"ghostwatch_record_bytes", map[string]string{}, 1234},
			{"ghostwatch_build_info", map[string]string{"version": "v1.2.3"}, 1},
		}
		if nsLabel {
			checks = append(checks,
				series{"ghostwatch_events_total", map[string]string{"gadget": "caps", "kind": "check", "k8s_namespace": "shop"}, 2},
				series{"ghostwatch_events_total", map[string]string{"gadget": "caps", "kind": "check", "k8s_namespace": ""}, 1})
		} else {
			checks = append(checks, series{"ghostwatch_events_total", map[string]string{"gadget": "caps", "kind": "check"}, 3})
		}
		for _, c := range checks {
			if v, ok := value(c.name, c.labels); !ok || v != c.want {
				t.Errorf("k8s namespace label %v: %s%v = %v (found %v), want %v", nsLabel, c.name, c.labels, v, ok, c.want)
			}
		}
		if _, ok := families["process_resident_memory_bytes"]; !ok {
			t.Error("no process metrics")
		}
		for name, f := range families {
			for _, s := range f.Metric {
				for _, l := range s.Label {
					if n := l.GetName(); n == "pod" || n == "container" || n == "container_id" || (n == "k8s_namespace" && !nsLabel) {
						t.Errorf("%s has a %s label", name, n)
					}
					if !model.LegacyValidation.IsValidLabelName(l.GetName()) {
						t.Errorf("%s: label %q", name, l.GetName())
					}
				}
			}
		}

		if code, _ := get(t, h, "/healthz"); code != 200 {
			t.Errorf("/healthz: %d", code)
		}
		if code, body := get(t, h, "/readyz"); code != 503 || !strings.Contains(body, "not attached") {
			t.Errorf("/readyz before ready: %d %q", code, body)
		}
		ready.Store(&none)
		if code, _ := get(t, h, "/readyz"); code != 200 {
			t.Errorf("/readyz when ready: %d", code)
		}
		stuck := errors.New("the flight record has not been written for 12s")
		alive.Store(&stuck)
		if code, body := get(t, h, "/healthz"); code != 503 || !strings.Contains(body, "not been written") {
			t.Errorf("/healthz when stuck: %d %q", code, body)
		}
	}
}

// TestPortInUse: an address taken is an error at start, not later.
func TestPortInUse(t *testing.T) {
	a, err := Serve("127.0.0.1:0", http.NotFoundHandler())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if b, err := Serve(a.Addr.String(), http.NotFoundHandler()); err == nil {
		b.Close()
		t.Fatal("a second server on the same address started")
	}
}
