// Package encode appends events to reused buffers, as JSON or as table cells, without reflection
// and without allocating: the formats are those encoding/json and a fixed-width table give, byte for
// byte, so that a stream keeps up with the kernel.
package encode

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// JSON appends a JSON object's members to a buffer. The zero value is not usable: start with Object.
type JSON struct {
	B     []byte
	first bool
}

// Object starts an object: {.
func (j *JSON) Object() { j.B = append(j.B, '{'); j.first = true }

// End ends the object started last: }.
func (j *JSON) End() { j.B = append(j.B, '}'); j.first = false }

// Key starts a member: "key":. The caller appends the value.
func (j *JSON) Key(k string) {
	if !j.first {
		j.B = append(j.B, ',')
	}
	j.first = false
	j.B = append(j.B, '"')
	j.B = append(j.B, k...) // keys are constants of ours: no escaping needed
	j.B = append(j.B, '"', ':')
}

// ObjectKey starts a member whose value is an object: "key":{.
func (j *JSON) ObjectKey(k string) { j.Key(k); j.Object() }

// String appends a member with a string value.
func (j *JSON) String(k, v string) { j.Key(k); j.B = AppendString(j.B, v) }

// OmitEmpty appends a string member unless it is empty, as encoding/json's omitempty does.
func (j *JSON) OmitEmpty(k, v string) {
	if v != "" {
		j.String(k, v)
	}
}

// Uint appends a member with an unsigned value.
func (j *JSON) Uint(k string, v uint64) { j.Key(k); j.B = strconv.AppendUint(j.B, v, 10) }

// Int appends a member with a signed value.
func (j *JSON) Int(k string, v int64) { j.Key(k); j.B = strconv.AppendInt(j.B, v, 10) }

// Bool appends a member with a boolean value.
func (j *JSON) Bool(k string, v bool) { j.Key(k); j.B = strconv.AppendBool(j.B, v) }

// Time appends a member with a time, as encoding/json writes one (RFC 3339 with nanoseconds).
func (j *JSON) Time(k string, t time.Time) {
	j.Key(k)
	j.B = append(j.B, '"')
	j.B = t.AppendFormat(j.B, time.RFC3339Nano)
	j.B = append(j.B, '"')
}

// Strings appends a member with an array of strings; nil is null, as encoding/json writes it.
func (j *JSON) Strings(k string, v []string) {
	j.Key(k)
	if v == nil {
		j.B = append(j.B, "null"...)
		return
	}
	j.B = append(j.B, '[')
	for i, s := range v {
		if i > 0 {
			j.B = append(j.B, ',')
		}
		j.B = AppendString(j.B, s)
	}
	j.B = append(j.B, ']')
}

// Array appends a member with an array of n elements, each appended by elem.
func (j *JSON) Array(k string, n int, elem func(i int)) {
	j.Key(k)
	j.B = append(j.B, '[')
	for i := range n {
		if i > 0 {
			j.B = append(j.B, ',')
		}
		elem(i)
	}
	j.B = append(j.B, ']')
}

// AppendString appends s as a JSON string, escaped as encoding/json escapes it (HTML characters
// included, invalid UTF-8 replaced), so that both give the same bytes.
func AppendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

const hex = "0123456789abcdef"

// Memo keeps the last rendering of a fragment of an object, with the values it was written from,
// so that a fragment that is the same from one object to the next (an event's actor and its
// namespaces, in a storm from one task) is copied instead of formatted again. The zero value is
// ready; one Memo serves one writer.
type Memo[K comparable] struct {
	key           K
	before, after bool // the writer's state before and after the fragment (first member or not)
	b             []byte
	ok            bool
}

// Append appends the fragment for key: the bytes render appended last time, if that was for the
// same key from the same writer state; else what render appends now, which is remembered.
func (m *Memo[K]) Append(j *JSON, key K, render func(*JSON)) {
	if m.ok && m.key == key && m.before == j.first {
		j.B = append(j.B, m.b...)
		j.first = m.after
		return
	}
	before, start := j.first, len(j.B)
	render(j)
	m.key, m.before, m.after, m.ok = key, before, j.first, true
	m.b = append(m.b[:0], j.B[start:]...)
}
