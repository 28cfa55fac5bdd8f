package devices

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"os"
	"strings"
	"testing"

	"github.com/cilium/ebpf/asm"
)

// readProgram reads a program captured from a runtime: hex, 8 bytes a line, "#" comments.
func readProgram(t *testing.T, name string) asm.Instructions {
	t.Helper()
	f, err := os.Open("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var raw []byte
	s := bufio.NewScanner(f)
	for s.Scan() {
		if line := strings.TrimSpace(s.Text()); line != "" && !strings.HasPrefix(line, "#") {
			b, err := hex.DecodeString(line)
			if err != nil {
				t.Fatal(err)
			}
			raw = append(raw, b...)
		}
	}
	insns, err := asm.AppendInstructions(nil, bytes.NewReader(raw), binary.LittleEndian, "linux")
	if err != nil {
		t.Fatal(err)
	}
	return insns
}

type access struct {
	typ          int
	major, minor int64
	acc          int
	allowed      bool
}

func TestDecodeRuntimePrograms(t *testing.T) {
	runtimeDefaults := []access{
		{TypeChar, 1, 9, AccRead | AccWrite | AccMknod, true}, {TypeChar, 136, 4, AccRead | AccWrite, true},
		{TypeChar, 5, 2, AccRead, true}, {TypeBlock, 8, 0, AccMknod, true}, {TypeChar, 4, 1, AccMknod, true},
		{TypeBlock, 8, 0, AccRead | AccWrite, false}, {TypeBlock, 8, 0, AccRead | AccMknod, false},
		{TypeChar, 4, 1, AccRead, false}, {TypeChar, 1, 1, AccWrite, false},
	}
	for _, tc := range []struct {
		file, rules string
		def         bool
		accesses    []access
	}{
		{"runc-1.1.5-default.hex", "b *:* m, c *:* m, c 1:3 rwm, c 1:5 rwm, c 1:7 rwm, c 1:8 rwm, c 1:9 rwm, c 5:0 rwm, c 5:2 rwm, c 10:200 rwm, c 136:* rwm",
			false, runtimeDefaults},
		{"crun-1.8.1-default.hex", "c 5:2 rwm, c 136:* rwm, c 5:1 rwm, c 1:9 rwm, c 1:5 rwm, c 5:0 rwm, c 1:7 rwm, c 1:8 rwm, c 1:3 rwm, b *:* m, c *:* m",
			false, runtimeDefaults},
		// runc folds its rules into a default and the exceptions to it; the later allow of c 1:9
		// (runc's defaults come last) wins over the deny of c 1:9 w.
		{"runc-1.1.5-mixed.hex", "deny b 8:* rw", true, []access{
			{TypeBlock, 8, 0, AccRead, false}, {TypeBlock, 8, 16, AccWrite, false}, {TypeBlock, 8, 0, AccMknod, true},
			{TypeChar, 1, 9, AccWrite, true}, {TypeBlock, 9, 0, AccRead | AccWrite, true}}},
		// crun's program is first-match in its own order: runtime defaults, then the spec's rules.
		{"crun-1.8.1-mixed.hex", "c 5:2 rwm, c 136:* rwm, c 5:1 rwm, c 1:9 rwm, c 1:5 rwm, c 5:0 rwm, c 1:7 rwm, c 1:8 rwm, c 1:3 rwm, b *:* m, c *:* m, c 1:9 r, deny c 1:9 w, deny b 8:* rw",
			true, []access{{TypeBlock, 8, 0, AccRead, false}, {TypeBlock, 8, 0, AccMknod, true}, {TypeChar, 1, 9, AccWrite, true},
				{TypeChar, 4, 1, AccRead | AccWrite, true}}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			p, err := DecodeProgram(readProgram(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if got := rulesText(p.Rules); got != tc.rules || p.Default != tc.def {
				t.Errorf("decoded %s; else %v\nwant    %s; else %v", got, verdict(p.Default), tc.rules, verdict(tc.def))
			}
			for _, a := range tc.accesses {
				if got := p.Allows(a.typ, a.major, a.minor, a.acc); got != a.allowed {
					t.Errorf("%s %d:%d %s: allowed %v, want %v", TypeLetter(a.typ), a.major, a.minor, AccessString(a.acc), got, a.allowed)
				}
			}
		})
	}
}

// Programs of other shapes than runc's and crun's decode by what they mean; those that do not map
// to rules are refused with the instruction that does not.
func TestDecodeOtherPrograms(t *testing.T) {
	ctx := func(dst asm.Register, off int16) asm.Instruction { return asm.LoadMem(dst, asm.R1, off, asm.Word) }
	ret := func(v int32) asm.Instructions { return asm.Instructions{asm.Mov.Imm32(asm.R0, v), asm.Return()} }
	cat := func(parts ...asm.Instructions) asm.Instructions {
		var all asm.Instructions
		for _, p := range parts {
			all = append(all, p...)
		}
		return all
	}
	for _, tc := range []struct {
		name  string
		insns asm.Instructions
		want  string // rules; else the default, or "error: " and the start of the error
	}{
		{"allow all", ret(1), "; else allow"},
		{"half loads, jump on match, access outside a mask is zero", cat(
			asm.Instructions{
				asm.LoadMem(asm.R2, asm.R1, 0, asm.Half), // type
				asm.LoadMem(asm.R3, asm.R1, 2, asm.Half), // access
				ctx(asm.R4, 4),
				asm.JEq.Imm(asm.R2, TypeChar, "char"),
				asm.Ja.Label("deny"),
				asm.JEq.Imm(asm.R4, 1, "mem").WithSymbol("char"),
				asm.Ja.Label("deny"),
				asm.Mov.Reg(asm.R5, asm.R3).WithSymbol("mem"),
				asm.And.Imm(asm.R5, ^(AccRead | AccWrite)),
				asm.JNE.Imm(asm.R5, 0, "deny"),
			},
			ret(1), cat(asm.Instructions{asm.Mov.Imm(asm.R0, 0).WithSymbol("deny"), asm.Return()})),
			"c 1:* rw; else deny"},
		{"a constant comparison is decided, not a rule", cat(
			asm.Instructions{asm.Mov.Imm(asm.R2, 3), asm.JEq.Imm(asm.R2, 3, "yes")}, ret(0),
			asm.Instructions{asm.Mov.Imm(asm.R0, 1).WithSymbol("yes"), asm.Return()}), "; else allow"},
		{"a number a u32 cannot be never matches", cat(
			asm.Instructions{ctx(asm.R2, 8), asm.LoadImm(asm.R3, 1<<40, asm.DWord), asm.JEq.Reg(asm.R2, asm.R3, "yes")}, ret(0),
			asm.Instructions{asm.Mov.Imm(asm.R0, 1).WithSymbol("yes"), asm.Return()}), "; else deny"},
		{"verdict from a field", asm.Instructions{ctx(asm.R0, 4), asm.Return()}, "error: instruction 1"},
		{"helper call", asm.Instructions{asm.FnGetPrandomU32.Call(), asm.Return()}, "error: instruction 0"},
		{"loop", asm.Instructions{asm.Mov.Imm(asm.R0, 0).WithSymbol("top"), asm.JEq.Imm(asm.R0, 0, "top"), asm.Return()}, "error: instruction 1"},
		{"exact access", cat(asm.Instructions{ctx(asm.R2, 0), asm.RSh.Imm32(asm.R2, 16), asm.JEq.Imm(asm.R2, AccRead, "yes")}, ret(0),
			asm.Instructions{asm.Mov.Imm(asm.R0, 1).WithSymbol("yes"), asm.Return()}), "error: instruction 2"},
		{"ordering comparison", cat(asm.Instructions{ctx(asm.R2, 4), asm.JGT.Imm(asm.R2, 7, "yes")}, ret(0),
			asm.Instructions{asm.Mov.Imm(asm.R0, 1).WithSymbol("yes"), asm.Return()}), "error: instruction 1"},
		{"past the end", asm.Instructions{asm.Mov.Imm(asm.R0, 0)}, "error: the program runs past"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := DecodeProgram(resolve(t, tc.insns))
			got := rulesText(p.Rules) + "; else " + verdict(p.Default)
			if err != nil {
				got = "error: " + err.Error()
			}
			if !strings.HasPrefix(got, tc.want) {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

// resolve turns the labels of hand-written jumps into offsets, as loading would.
func resolve(t *testing.T, insns asm.Instructions) asm.Instructions {
	t.Helper()
	var buf bytes.Buffer
	if err := insns.Marshal(&buf, binary.LittleEndian); err != nil {
		t.Fatal(err)
	}
	out, err := asm.AppendInstructions(nil, &buf, binary.LittleEndian, "linux")
	if err != nil {
		t.Fatal(err)
	}
	return out
}
