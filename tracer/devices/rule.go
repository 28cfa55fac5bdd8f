package devices

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Device types and access bits, with the kernel's values (DEVCG_DEV_*, DEVCG_ACC_*), which are also
// those of a cgroup device program's context (access_type = access<<16 | type).
const (
	TypeBlock = 1
	TypeChar  = 2
	TypeAll   = 4

	AccMknod = 1
	AccRead  = 2
	AccWrite = 4
	AccAll   = AccMknod | AccRead | AccWrite
)

// Any is a major or minor number written as "*".
const Any = -1

// Rule is one device cgroup rule, in the form of devices.allow and devices.list ("c 1:9 rwm"),
// with whether it allows or denies.
type Rule struct {
	Type   int // TypeBlock, TypeChar or TypeAll
	Major  int64
	Minor  int64
	Access int // AccMknod|AccRead|AccWrite
	Allow  bool
}

// TypeLetter is "a", "b" or "c".
func TypeLetter(t int) string {
	switch t {
	case TypeBlock:
		return "b"
	case TypeChar:
		return "c"
	case TypeAll:
		return "a"
	}
	return "?"
}

// AccessString is the access in "rwm" order, "" for none.
func AccessString(a int) string {
	s := ""
	if a&AccRead != 0 {
		s += "r"
	}
	if a&AccWrite != 0 {
		s += "w"
	}
	if a&AccMknod != 0 {
		s += "m"
	}
	return s
}

func number(n int64) string {
	if n == Any {
		return "*"
	}
	return strconv.FormatInt(n, 10)
}

// String writes the rule as devices.list does: "c 1:9 rwm", "a *:* rwm".
func (r Rule) String() string {
	return TypeLetter(r.Type) + " " + number(r.Major) + ":" + number(r.Minor) + " " + AccessString(r.Access)
}

// Matches says whether the rule covers an access of a device (type TypeBlock or TypeChar).
func (r Rule) Matches(typ int, major, minor int64, access int) bool {
	return r.names(typ, major, minor) && access&^r.Access == 0
}

// names says whether the rule's type, major and minor include the device's.
func (r Rule) names(typ int, major, minor int64) bool {
	return (r.Type == TypeAll || r.Type == typ) && (r.Major == Any || r.Major == major) && (r.Minor == Any || r.Minor == minor)
}

// ParseRule parses a rule as written to devices.allow or devices.deny ("c 1:9 rw", "a", "b *:* m"),
// by the kernel's grammar (devcgroup_update_access): "a" alone means every device and access.
func ParseRule(s string, allow bool) (Rule, error) {
	s = strings.TrimRight(s, "\n")
	r := Rule{Allow: allow, Major: Any, Minor: Any, Access: AccAll}
	if s == "" {
		return r, errors.New("empty rule")
	}
	switch s[0] {
	case 'a':
		r.Type = TypeAll
		return r, nil // the kernel ignores the rest
	case 'b':
		r.Type = TypeBlock
	case 'c':
		r.Type = TypeChar
	default:
		return r, fmt.Errorf("rule %q: type is not a, b or c", s)
	}
	fields := strings.Fields(s[1:])
	if len(fields) != 2 || !strings.HasPrefix(s[1:], " ") {
		return r, fmt.Errorf("rule %q: want TYPE MAJOR:MINOR ACCESS", s)
	}
	maj, min, ok := strings.Cut(fields[0], ":")
	if !ok {
		return r, fmt.Errorf("rule %q: want MAJOR:MINOR", s)
	}
	var err error
	if r.Major, err = parseNumber(maj); err != nil {
		return r, fmt.Errorf("rule %q: major: %w", s, err)
	}
	if r.Minor, err = parseNumber(min); err != nil {
		return r, fmt.Errorf("rule %q: minor: %w", s, err)
	}
	r.Access = 0
	for _, c := range fields[1] {
		bit := map[rune]int{'r': AccRead, 'w': AccWrite, 'm': AccMknod}[c]
		if bit == 0 {
			return r, fmt.Errorf("rule %q: access %q is not r, w or m", s, c)
		}
		r.Access |= bit
	}
	return r, nil
}

func parseNumber(s string) (int64, error) {
	if s == "*" {
		return Any, nil
	}
	n, err := strconv.ParseUint(s, 10, 32)
	return int64(n), err
}
