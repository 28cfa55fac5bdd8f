package ociruntime

import "testing"

func TestVersionLine(t *testing.T) {
	for out, want := range map[string][2]string{
		"runc version 1.1.5+ds1\ncommit: 1.1.5+ds1-1+deb12u1\n": {"runc", "1.1.5"},
		"crun version 1.8.1\ncommit: f8a096be\n":                {"crun", "1.8.1"},
		"runc version v1.2.0-rc.1\n":                            {"runc", "1.2.0"},
	} {
		m := versionLine.FindStringSubmatch(out)
		if m == nil || m[1] != want[0] || m[2] != want[1] {
			t.Errorf("%q: got %q, want %v", out, m, want)
		}
	}
	if versionLine.MatchString("usage: runc\n") {
		t.Error("a usage line read as a version")
	}
}
