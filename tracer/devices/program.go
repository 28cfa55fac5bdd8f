package devices

import (
	"fmt"

	"github.com/cilium/ebpf/asm"
)

// Program is what a cgroup device program decides: the first rule that matches an access gives
// the verdict, and Default is the verdict when none does.
type Program struct {
	Rules   []Rule
	Default bool
}

// Allows says whether the program allows an access of a device (type TypeBlock or TypeChar).
func (p Program) Allows(typ int, major, minor int64, access int) bool {
	for _, r := range p.Rules {
		if r.Matches(typ, major, minor, access) {
			return r.Allow
		}
	}
	return p.Default
}

// DecodeProgram reads a cgroup device program's rules from its instructions, by what each
// instruction means rather than by the byte pattern of one generator: it follows every path of the
// program (which has no loops) with the context's fields as symbols, turns each comparison into a
// condition on the device's type, major, minor or access, and each exit into a verdict. Anything
// that does not map to a rule (another context field, a helper call, an exact comparison of the
// access, a verdict computed at run time) is an error naming the instruction: never a guess.
func DecodeProgram(insns asm.Instructions) (Program, error) {
	d, err := newDecoder(insns)
	if err != nil {
		return Program{}, err
	}
	var regs [asm.R10 + 1]value
	regs[asm.R1] = value{kind: ctxPointer}
	list, err := d.run(0, regs)
	if err != nil {
		return Program{}, err
	}
	var p Program
	for e := list; e != nil; e = e.next {
		if len(e.conds) == 0 {
			p.Default = e.allow
			break // what follows an unconditional verdict never runs
		}
		if r, ok := e.rule(); ok {
			p.Rules = append(p.Rules, r)
		}
	}
	return p, nil
}

// The context of a cgroup device program (struct bpf_cgroup_dev_ctx): access_type is
// access<<16 | type.
const (
	offAccessType = 0
	offMajor      = 4
	offMinor      = 8
)

type valueKind uint8

const (
	unknown valueKind = iota
	ctxPointer
	constant
	field // (the u32 at offset off >> shift) & mask
)

type value struct {
	kind  valueKind
	c     uint64
	off   int16
	shift uint8
	mask  uint64
}

func (v value) isType() bool {
	return v.kind == field && v.off == offAccessType && v.shift == 0 && v.mask == 0xffff
}

// accessMask is m when v is the requested access masked by m (0xffff: not masked).
func (v value) accessMask() (uint64, bool) {
	return v.mask, v.kind == field && v.off == offAccessType && v.shift == 16
}

func (v value) isNumber(off int16) bool {
	return v.kind == field && v.off == off && v.shift == 0 && v.mask == 0xffffffff
}

type condKind uint8

const (
	condType condKind = iota
	condMajor
	condMinor
	condAccessIn // the access requested is a subset of v
)

type cond struct {
	kind condKind
	v    uint64
}

// entry is one rule of a decision list: the first entry whose conditions all hold decides.
type entry struct {
	conds []cond
	allow bool
	next  *entry
}

// rule is the entry in the form of a device rule; false when its conditions contradict each
// other (it never matches).
func (e *entry) rule() (Rule, bool) {
	r := Rule{Type: TypeAll, Major: Any, Minor: Any, Access: AccAll, Allow: e.allow}
	set := func(n *int64, v uint64) bool {
		if *n != Any && *n != int64(v) {
			return false
		}
		*n = int64(v)
		return true
	}
	for _, c := range e.conds {
		switch c.kind {
		case condType:
			if r.Type != TypeAll && r.Type != int(c.v) {
				return r, false
			}
			r.Type = int(c.v)
		case condMajor:
			if !set(&r.Major, c.v) {
				return r, false
			}
		case condMinor:
			if !set(&r.Minor, c.v) {
				return r, false
			}
		case condAccessIn:
			r.Access &= int(c.v)
		}
	}
	return r, true
}

// maxEntries bounds the work on a program whose paths do not share their tails.
const maxEntries = 1 << 14

type memoKey struct {
	pc   int
	regs [asm.R10 + 1]value
}

type decoder struct {
	insns   asm.Instructions
	index   map[int]int // raw offset (in 8-byte slots) to instruction index
	raw     []int       // instruction index to raw offset
	live    []uint16    // registers read before written from each instruction on
	memo    map[memoKey]*entry
	entries int
}

func newDecoder(insns asm.Instructions) (*decoder, error) {
	d := &decoder{insns: insns, index: map[int]int{}, raw: make([]int, len(insns)+1), memo: map[memoKey]*entry{}}
	for i, ins := range insns {
		d.index[d.raw[i]] = i
		d.raw[i+1] = d.raw[i] + int(ins.Size()/asm.InstructionSize)
	}
	d.index[d.raw[len(insns)]] = len(insns)
	return d, d.liveness()
}

func (d *decoder) fail(i int, format string, args ...any) error {
	return fmt.Errorf("instruction %d (%v): %s", i, d.insns[i], fmt.Sprintf(format, args...))
}

// target is the index a jump at i goes to; only forward jumps are decoded (no loops).
func (d *decoder) target(i int) (int, error) {
	ins := d.insns[i]
	if ins.Offset < 0 {
		return 0, d.fail(i, "jumps backwards")
	}
	t, ok := d.index[d.raw[i+1]+int(ins.Offset)]
	if !ok || t >= len(d.insns) {
		return 0, d.fail(i, "jumps outside the program")
	}
	return t, nil
}

// liveness finds, for each instruction, the registers read before being written on some path
// from it, so that paths joining at an instruction with the same live values share one decoding.
func (d *decoder) liveness() error {
	d.live = make([]uint16, len(d.insns)+1)
	for i := len(d.insns) - 1; i >= 0; i-- {
		ins := d.insns[i]
		bit := func(r asm.Register) uint16 { return 1 << r }
		var out, use, def uint16
		if i+1 < len(d.insns) {
			out = d.live[i+1]
		}
		switch cls := ins.OpCode.Class(); {
		case ins.OpCode.JumpOp() == asm.Exit:
			out, use = 0, bit(asm.R0)
		case ins.OpCode.JumpOp() == asm.Ja:
			t, err := d.target(i)
			if err != nil {
				return err
			}
			out = d.live[t]
		case cls.IsJump():
			if ins.OpCode.JumpOp() == asm.Call {
				return d.fail(i, "calls a function")
			}
			t, err := d.target(i)
			if err != nil {
				return err
			}
			out |= d.live[t]
			use = bit(ins.Dst)
			if ins.OpCode.Source() == asm.RegSource {
				use |= bit(ins.Src)
			}
		case cls.IsALU():
			def, use = bit(ins.Dst), bit(ins.Dst)
			if ins.OpCode.ALUOp() == asm.Mov {
				use = 0
			}
			if ins.OpCode.Source() == asm.RegSource {
				use |= bit(ins.Src)
			}
		case cls == asm.LdXClass:
			def, use = bit(ins.Dst), bit(ins.Src)
		case ins.OpCode.IsDWordLoad():
			def = bit(ins.Dst)
		default:
			return d.fail(i, "is not a load, an arithmetic operation or a jump")
		}
		d.live[i] = use | out&^def
	}
	return nil
}

// run decodes the program from instruction pc with registers regs into a decision list that ends
// with an unconditional entry.
func (d *decoder) run(pc int, regs [asm.R10 + 1]value) (*entry, error) {
	for ; pc < len(d.insns); pc++ {
		key := memoKey{pc: pc}
		for r := range regs {
			if d.live[pc]&(1<<r) != 0 {
				key.regs[r] = regs[r]
			}
		}
		if e, ok := d.memo[key]; ok {
			return e, nil
		}
		ins := d.insns[pc]
		op := ins.OpCode
		switch cls := op.Class(); {
		case op.JumpOp() == asm.Exit:
			if regs[asm.R0].kind != constant {
				return nil, d.fail(pc, "returns a verdict computed at run time")
			}
			return d.remember(key, &entry{allow: regs[asm.R0].c != 0}), nil
		case op.JumpOp() == asm.Ja:
			t, _ := d.target(pc)
			pc = t - 1
		case cls.IsJump():
			list, err := d.branch(pc, regs)
			if err != nil {
				return nil, err
			}
			return d.remember(key, list), nil
		case cls.IsALU():
			v, err := d.alu(pc, regs)
			if err != nil {
				return nil, err
			}
			regs[ins.Dst] = v
		case cls == asm.LdXClass:
			v, err := d.load(pc, regs[ins.Src])
			if err != nil {
				return nil, err
			}
			regs[ins.Dst] = v
		default: // a 64-bit immediate load, as liveness checked
			regs[ins.Dst] = value{kind: constant, c: uint64(ins.Constant)}
		}
	}
	return nil, fmt.Errorf("the program runs past its last instruction")
}

func (d *decoder) remember(key memoKey, e *entry) *entry {
	d.memo[key] = e
	return e
}

// branch decodes a conditional jump: the entries where its condition holds, each with the
// condition added, then those where it does not. The entries of the two sides share their tail
// (the rules after a block that failed to match), which is kept once.
func (d *decoder) branch(pc int, regs [asm.R10 + 1]value) (*entry, error) {
	ins := d.insns[pc]
	jop := ins.OpCode.JumpOp()
	if jop != asm.JEq && jop != asm.JNE {
		return nil, d.fail(pc, "compares other than for equality")
	}
	lhs, rhs := regs[ins.Dst], value{kind: constant, c: uint64(ins.Constant)}
	if ins.OpCode.Source() == asm.RegSource {
		rhs = regs[ins.Src]
	}
	if ins.OpCode.Class() == asm.Jump32Class { // compares the low halves
		for _, v := range []*value{&lhs, &rhs} {
			if v.kind == constant {
				v.c = uint64(uint32(v.c))
			}
		}
	}
	c, static, err := condition(lhs, rhs)
	if err != nil {
		return nil, d.fail(pc, "%v", err)
	}
	t, err := d.target(pc)
	if err != nil {
		return nil, err
	}
	eq, ne := t, pc+1
	if jop == asm.JNE {
		eq, ne = ne, eq
	}
	if static != nil {
		if *static {
			return d.run(eq, regs)
		}
		return d.run(ne, regs)
	}
	yes, err := d.run(eq, regs)
	if err != nil {
		return nil, err
	}
	no, err := d.run(ne, regs)
	if err != nil {
		return nil, err
	}
	head := &entry{}
	tail := head
	for e := yes; e != no; e = e.next {
		if e == nil {
			tail.next = no // no shared tail: everything else falls to the other side
			return head.next, nil
		}
		if d.entries++; d.entries > maxEntries {
			return nil, d.fail(pc, "the program has too many paths to decode")
		}
		tail.next = &entry{conds: append([]cond{c}, e.conds...), allow: e.allow}
		tail = tail.next
	}
	tail.next = no
	return head.next, nil
}

// condition is what "a == b" says about the access: a condition, or, when both sides are
// constants, whether it always holds.
func condition(a, b value) (cond, *bool, error) {
	if a.kind == constant && b.kind == constant {
		eq := a.c == b.c
		return cond{}, &eq, nil
	}
	if a.kind == constant {
		a, b = b, a
	}
	if a.kind != field || (b.kind != constant && b.kind != field) {
		return cond{}, nil, fmt.Errorf("compares a value that is not the device's type, major, minor or access")
	}
	if b.kind == constant && b.c&^a.mask != 0 {
		never := false // a number the field cannot hold
		return cond{}, &never, nil
	}
	am, aIsAccess := a.accessMask()
	bm, bIsAccess := b.accessMask()
	switch {
	case b.kind == field && aIsAccess && bIsAccess && (am == 0xffff || bm == 0xffff):
		// (access & m) == access: the access requested is within m.
		return cond{kind: condAccessIn, v: am & bm & AccAll}, nil, nil
	case b.kind == field:
	case a.isType():
		return cond{kind: condType, v: b.c}, nil, nil
	case a.isNumber(offMajor):
		return cond{kind: condMajor, v: b.c}, nil, nil
	case a.isNumber(offMinor):
		return cond{kind: condMinor, v: b.c}, nil, nil
	case aIsAccess && am != 0xffff && b.c == 0:
		// (access & m) == 0: the access requested is outside m.
		return cond{kind: condAccessIn, v: AccAll &^ am}, nil, nil
	}
	return cond{}, nil, fmt.Errorf("compares the device's fields in a way that is not a device rule")
}

// alu applies an arithmetic instruction: on constants, and the masks and shifts that take the
// type and the access out of the context's access_type.
func (d *decoder) alu(pc int, regs [asm.R10 + 1]value) (value, error) {
	ins := d.insns[pc]
	op := ins.OpCode.ALUOp()
	src := value{kind: constant, c: uint64(ins.Constant)}
	if ins.OpCode.Source() == asm.RegSource {
		src = regs[ins.Src]
	}
	wide := ins.OpCode.Class() == asm.ALU64Class
	narrow := func(v value) value {
		if !wide && v.kind == constant {
			v.c = uint64(uint32(v.c))
		}
		return v
	}
	if op == asm.Mov {
		if src.kind == ctxPointer && !wide || src.kind == unknown {
			return value{}, d.fail(pc, "moves a value the decoder does not know")
		}
		return narrow(src), nil
	}
	dst := regs[ins.Dst]
	if src.kind != constant {
		return value{}, d.fail(pc, "operates with a value that is not a constant")
	}
	switch dst.kind {
	case constant:
		c, ok := fold(op, dst.c, src.c)
		if !ok {
			return value{}, d.fail(pc, "operation not decoded")
		}
		return narrow(value{kind: constant, c: c}), nil
	case field:
		switch op {
		case asm.And:
			dst.mask &= narrow(src).c
			return dst, nil
		case asm.RSh:
			if src.c >= 32 {
				return value{kind: constant}, nil
			}
			dst.shift += uint8(src.c)
			dst.mask >>= src.c
			return dst, nil
		}
	}
	return value{}, d.fail(pc, "operation on the context's fields not decoded")
}

func fold(op asm.ALUOp, a, b uint64) (uint64, bool) {
	switch op {
	case asm.Add:
		return a + b, true
	case asm.Sub:
		return a - b, true
	case asm.And:
		return a & b, true
	case asm.Or:
		return a | b, true
	case asm.Xor:
		return a ^ b, true
	case asm.LSh:
		return a << (b & 63), true
	case asm.RSh:
		return a >> (b & 63), true
	}
	return 0, false
}

// load reads a field of the context: the whole of access_type, major or minor, or the type or
// access half of access_type.
func (d *decoder) load(pc int, src value) (value, error) {
	ins := d.insns[pc]
	if src.kind != ctxPointer || ins.OpCode.Mode() != asm.MemMode {
		return value{}, d.fail(pc, "loads from memory other than the program's context")
	}
	switch sz, off := ins.OpCode.Size(), ins.Offset; {
	case sz == asm.Word && (off == offAccessType || off == offMajor || off == offMinor):
		return value{kind: field, off: off, mask: 0xffffffff}, nil
	case sz == asm.Half && off == offAccessType:
		return value{kind: field, off: offAccessType, mask: 0xffff}, nil
	case sz == asm.Half && off == offAccessType+2:
		return value{kind: field, off: offAccessType, shift: 16, mask: 0xffff}, nil
	}
	return value{}, d.fail(pc, "loads a part of the context that is not a device's type, access, major or minor")
}
