package report

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"sort"
	"strings"
	"time"
)

// page is what the page's script draws, as JSON in the file. Times are microseconds from Start,
// which a double holds exactly for centuries; marks and spans are flat arrays of numbers, so that
// 100,000 events stay a few megabytes.
type page struct {
	Title     string    `json:"title"`
	Start     string    `json:"start"`
	SpanUS    int64     `json:"span_us"`
	Events    int       `json:"events"`
	BadLines  int       `json:"bad_lines"`
	Kept      int       `json:"kept"`
	Summaries []summary `json:"summaries"`
	// Gaps are the flight record's, as times from Start (from, to) with their words, for every
	// gap that overlaps the events.
	Gaps    []pageGap  `json:"gaps"`
	Kinds   []pageKind `json:"kinds"`
	Labels  []string   `json:"labels"`
	Details []string   `json:"details"`
	Lanes   []pageLane `json:"lanes"`
}

type pageGap struct {
	From  int64  `json:"from"`
	To    int64  `json:"to"`
	Label string `json:"label"`
}

type pageKind struct {
	Name   string `json:"name"`
	Legend string `json:"legend"`
}

type pageLane struct {
	Title string    `json:"title"`
	Rows  []pageRow `json:"rows"`
}

type pageRow struct {
	Name string `json:"name"`
	// Spans: from, to, kind, strong (1 or 0), label, detail (-1: not kept), for each.
	Spans []int64 `json:"spans"`
	// Marks: at, kind, label, detail, for each, in time order.
	Marks []int64 `json:"marks"`
}

// finish joins what was seen into the page: namespaces' lives into spans, lanes and rows in order.
func (m *model) finish(o Options) *page {
	m.addLives()
	p := &page{Title: o.Title, Events: m.events, BadLines: m.badLines, Summaries: m.summaries,
		Labels: m.labels, Details: m.details, Kept: len(m.details)}
	if p.Title == "" {
		p.Title = "ghostwatch report"
	}
	for _, k := range kinds {
		p.Kinds = append(p.Kinds, pageKind{k.name, k.legend})
	}
	if !m.start.IsZero() {
		p.Start = m.start.UTC().Format(time.RFC3339Nano)
		p.SpanUS = m.us(m.end)
	}
	keys := make([]string, 0, len(m.lanes))
	for k := range m.lanes {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := m.lanes[keys[i]], m.lanes[keys[j]]
		if a.host != b.host {
			return b.host
		}
		if !a.first.Equal(b.first) {
			return a.first.Before(b.first)
		}
		return keys[i] < keys[j]
	})
	for _, k := range keys {
		l := m.lanes[k]
		pl := pageLane{Title: l.title}
		rows := make([]*row, 0, len(l.rows))
		for _, r := range l.rows {
			rows = append(rows, r)
		}
		sort.Slice(rows, func(i, j int) bool {
			a, b := rows[i], rows[j]
			if a.order != b.order {
				return a.order < b.order
			}
			if !a.first.Equal(b.first) {
				return a.first.Before(b.first)
			}
			return a.name < b.name
		})
		for _, r := range rows {
			pr := pageRow{Name: r.name, Spans: []int64{}, Marks: make([]int64, 0, 4*len(r.marks))}
			for _, s := range r.spans {
				strong := int64(0)
				if s.strong {
					strong = 1
				}
				pr.Spans = append(pr.Spans, m.us(s.from), m.us(s.to), int64(s.kind), strong, int64(s.label), int64(s.detail))
			}
			sort.SliceStable(r.marks, func(i, j int) bool { return r.marks[i].at.Before(r.marks[j].at) })
			for _, mk := range r.marks {
				pr.Marks = append(pr.Marks, m.us(mk.at), int64(mk.kind), int64(mk.label), int64(mk.detail))
			}
			pl.Rows = append(pl.Rows, pr)
		}
		p.Lanes = append(p.Lanes, pl)
	}
	p.Kept = len(m.details)
	p.Details = m.details
	p.Gaps = []pageGap{}
	for _, s := range m.summaries {
		for _, g := range s.Gaps {
			if m.start.IsZero() || g.To.Before(m.start) || g.From.After(m.end) {
				continue
			}
			p.Gaps = append(p.Gaps, pageGap{From: m.us(g.From), To: m.us(g.To), Label: g.label()})
		}
	}
	return p
}

func (g gap) label() string {
	s := map[string]string{"stopped": "no agent ran", "killed": "the agent was killed", "lost": "events were lost"}[g.Reason]
	if s == "" {
		s = g.Reason
	}
	s = "gap: " + s + " for " + duration(g.To.Sub(g.From))
	for i, l := range g.Lost {
		if i == 0 {
			s += " ("
		} else {
			s += ", "
		}
		s += fmt.Sprintf("%d %s %s", l.Count, l.Gadget, strings.ReplaceAll(l.Cause, "_", " "))
	}
	if len(g.Lost) > 0 {
		s += ")"
	}
	return s + ": the record may miss events here"
}

func (m *model) us(t time.Time) int64 { return t.Sub(m.start).Microseconds() }

// addLives turns each namespace's events into spans: alive from its creation until its last task
// left, empty from then, lingering from when that was reported, each until it was destroyed or
// the report ends. Times not seen are worked out from the ages the later events carry.
func (m *model) addLives() {
	perLane := map[string]int{}
	for _, l := range m.lifeOrder {
		name := fmt.Sprintf("netns %d", l.inode)
		if perLane[l.lane]++; perLane[l.lane] > netnsRows {
			name = "netns (others)"
		}
		r := m.row(l.lane, name, orderNetns, l.first)
		end := m.end
		if d := l.destroyed; d != nil {
			end = d.at
		}
		created, empty := l.first, time.Time{}
		for _, e := range []*nsEvent{l.destroyed, l.lingering} {
			if e != nil && e.obj.Lived > 0 {
				created = e.at.Add(-time.Duration(e.obj.Lived))
			}
			if e != nil && e.obj.Empty > 0 {
				empty = e.at.Add(-time.Duration(e.obj.Empty))
			}
		}
		if l.created != nil {
			created = l.created.at
		}
		if l.empty != nil {
			empty = l.empty.at
		}
		m.seen(created)
		aliveTo := end
		if !empty.IsZero() {
			aliveTo = empty
		}
		first := l.created
		if first == nil {
			first = m.firstOf(l)
		}
		m.addSpan(r, created, aliveTo, "netns-alive", first)
		if !empty.IsZero() {
			emptyTo := end
			if l.lingering != nil {
				emptyTo = l.lingering.at
			}
			ev := l.empty
			if ev == nil {
				ev = m.firstOf(l)
			}
			if emptyTo.After(empty) || l.lingering == nil {
				m.addSpan(r, empty, emptyTo, "netns-empty", ev)
			}
		}
		if l.lingering != nil {
			m.addSpan(r, l.lingering.at, end, "netns-lingering", l.lingering)
		}
		if d := l.destroyed; d != nil {
			k := kindIndex("netns-destroyed")
			r.marks = append(r.marks, mark{at: d.at, kind: k, label: d.label, detail: m.detail(r, k, d.line)})
		}
	}
}

func (m *model) firstOf(l *life) *nsEvent {
	for _, e := range []*nsEvent{l.created, l.empty, l.lingering, l.destroyed} {
		if e != nil {
			return e
		}
	}
	return nil
}

func (m *model) addSpan(r *row, from, to time.Time, kind string, e *nsEvent) {
	if to.Before(from) {
		to = from
	}
	k := kindIndex(kind)
	r.spans = append(r.spans, span{from: from, to: to, kind: k, label: e.label, detail: m.detail(r, k, e.line)})
}

//go:embed page.html
var pageHTML string

func writeHTML(w io.Writer, p *page) error {
	data, err := json.Marshal(p) // escapes <, > and &: the data cannot close its script element
	if err != nil {
		return err
	}
	before, after, ok := strings.Cut(pageHTML, "{{DATA}}")
	if !ok {
		return fmt.Errorf("report: the page has no place for its data")
	}
	before = strings.ReplaceAll(before, "{{TITLE}}", html.EscapeString(p.Title))
	for _, s := range []string{before, string(data), after} {
		if _, err := io.WriteString(w, s); err != nil {
			return err
		}
	}
	return nil
}
