//go:build linux

package seccomp

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Offsets in struct seccomp_data: int nr; u32 arch; u64 instruction_pointer;
// u64 args[6]. Classic BPF loads 32-bit words in the host's byte order.
const (
	offNr   = 0
	offArch = 4
	offArgs = 16
	maxArgs = 6
)

// arch is what the filter needs to know of an architecture.
type arch struct {
	audit uint32 // seccomp_data.arch of native system calls (AUDIT_ARCH_*)
	// x32Bit is set in the numbers of the x32 ABI, whose calls carry the native audit
	// architecture (amd64 only; 0 elsewhere).
	x32Bit uint32
	sysnum map[string]uint32 // system call numbers
	absent []string          // names that rules use and the architecture lacks
}

// argLow returns the offset of the low 32 bits of argument i. Both supported
// architectures are little-endian: the high word follows at +4.
func argLow(i int) uint32 { return offArgs + 8*uint32(i) }

func retErrno(e unix.Errno) uint32 {
	return unix.SECCOMP_RET_ERRNO | uint32(e)&unix.SECCOMP_RET_DATA
}

// compile builds the filter for rules on architecture a:
//
//	check the architecture, kill on a foreign one
//	load the number; on amd64, ENOSYS for x32
//	for each system call with rules:
//		if the number differs, go to the next system call
//		for each rule: load and test each argument; if all checks pass, return its errno
//		return ALLOW, unless the last rule had no checks
//	return ALLOW
func compile(a arch, rules []rule) ([]bpf.RawInstruction, error) {
	if a.sysnum == nil {
		return nil, fmt.Errorf("seccomp: %w: no system call table for %s", errors.ErrUnsupported, runtime.GOARCH)
	}
	type group struct {
		nr    uint32
		rules []rule
	}
	var groups []*group
	byName := make(map[string]*group)
	for _, r := range rules {
		if err := r.validate(); err != nil {
			return nil, err
		}
		g := byName[r.name]
		if g == nil {
			nr, ok := a.sysnum[r.name]
			if !ok {
				if slices.Contains(a.absent, r.name) {
					continue
				}
				return nil, fmt.Errorf("seccomp: unknown system call %q", r.name)
			}
			g = &group{nr: nr}
			byName[r.name] = g
			groups = append(groups, g)
		}
		g.rules = append(g.rules, r)
	}

	var p assembler
	archOK := p.newLabel()
	p.emit(bpf.LoadAbsolute{Off: offArch, Size: 4})
	p.jumpIf(bpf.JumpEqual, a.audit, archOK, next)
	p.emit(bpf.RetConstant{Val: unix.SECCOMP_RET_KILL_PROCESS})
	p.place(archOK)
	p.emit(bpf.LoadAbsolute{Off: offNr, Size: 4})
	if a.x32Bit != 0 {
		notX32 := p.newLabel()
		p.jumpIf(bpf.JumpBitsSet, a.x32Bit, next, notX32)
		p.emit(bpf.RetConstant{Val: retErrno(unix.ENOSYS)})
		p.place(notX32)
	}
	for _, g := range groups {
		nextSyscall := p.newLabel()
		p.jumpIf(bpf.JumpEqual, g.nr, next, nextSyscall)
		for _, r := range g.rules {
			nextRule := p.newLabel()
			for _, c := range r.when {
				p.test(c, nextRule)
			}
			p.emit(bpf.RetConstant{Val: retErrno(r.errno)})
			p.place(nextRule)
		}
		if len(g.rules[len(g.rules)-1].when) > 0 {
			p.emit(bpf.RetConstant{Val: unix.SECCOMP_RET_ALLOW})
		}
		p.place(nextSyscall)
	}
	p.emit(bpf.RetConstant{Val: unix.SECCOMP_RET_ALLOW})
	return p.assemble()
}

func (r rule) validate() error {
	if r.errno == 0 || r.errno > unix.SECCOMP_RET_DATA {
		return fmt.Errorf("seccomp: rule for %s: bad errno %d", r.name, r.errno)
	}
	for _, c := range r.when {
		if c.arg < 0 || c.arg >= maxArgs || (len(c.values) == 0) != (c.op == opNonZero64) || (c.op == opAnyOf && len(c.values) != 1) {
			return fmt.Errorf("seccomp: rule for %s: bad check %+v", r.name, c)
		}
	}
	return nil
}

// test emits check c: it falls through when c holds and jumps to fail when it does not.
func (p *assembler) test(c check, fail label) {
	if c.op == opNonZero64 {
		// A pointer: all 64 bits count, or a buffer mapped at a multiple of 4 GiB
		// would pass for NULL.
		pass := p.newLabel()
		p.emit(bpf.LoadAbsolute{Off: argLow(c.arg), Size: 4})
		p.jumpIf(bpf.JumpEqual, 0, next, pass)
		p.emit(bpf.LoadAbsolute{Off: argLow(c.arg) + 4, Size: 4})
		p.jumpIf(bpf.JumpEqual, 0, fail, pass)
		p.place(pass)
		return
	}
	p.emit(bpf.LoadAbsolute{Off: argLow(c.arg), Size: 4})
	if c.mask != 0 {
		p.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: c.mask})
	}
	pass := p.newLabel()
	for i, v := range c.values {
		last := i == len(c.values)-1
		switch {
		case c.op == opAnyOf:
			p.jumpIf(bpf.JumpBitsSet, v, pass, fail)
		case c.op == opIn && last:
			p.jumpIf(bpf.JumpEqual, v, pass, fail)
		case c.op == opIn:
			p.jumpIf(bpf.JumpEqual, v, pass, next)
		case c.op == opNotIn && last:
			p.jumpIf(bpf.JumpEqual, v, fail, pass)
		case c.op == opNotIn:
			p.jumpIf(bpf.JumpEqual, v, fail, next)
		}
	}
	p.place(pass)
}

// A label is a position in the program that jumps can target before it is placed.
type label int

// next is the instruction that follows a jump.
const next label = -1

// assembler lays out a program with forward jumps to labels and resolves them into
// the relative skips of classic BPF.
type assembler struct {
	ins    []bpf.Instruction
	labels []int // index of the instruction each label marks; -1 until placed
	jumps  []jump
}

type jump struct {
	at              int // index of the JumpIf
	ifTrue, ifFalse label
}

func (p *assembler) newLabel() label {
	p.labels = append(p.labels, -1)
	return label(len(p.labels) - 1)
}

// place makes l mark the next instruction emitted.
func (p *assembler) place(l label) { p.labels[l] = len(p.ins) }

func (p *assembler) emit(ins bpf.Instruction) { p.ins = append(p.ins, ins) }

func (p *assembler) jumpIf(cond bpf.JumpTest, val uint32, ifTrue, ifFalse label) {
	p.jumps = append(p.jumps, jump{at: len(p.ins), ifTrue: ifTrue, ifFalse: ifFalse})
	p.emit(bpf.JumpIf{Cond: cond, Val: val})
}

// assemble resolves the jumps and assembles the program.
func (p *assembler) assemble() ([]bpf.RawInstruction, error) {
	for _, j := range p.jumps {
		skip := func(l label) (uint8, error) {
			if l == next {
				return 0, nil
			}
			to := p.labels[l]
			if to <= j.at {
				return 0, fmt.Errorf("seccomp: jump at %d to unplaced or earlier label %d", j.at, l)
			}
			d := to - j.at - 1
			if d > math.MaxUint8 {
				return 0, fmt.Errorf("seccomp: jump at %d over %d instructions, more than classic BPF can", j.at, d)
			}
			return uint8(d), nil
		}
		ins := p.ins[j.at].(bpf.JumpIf)
		var err1, err2 error
		ins.SkipTrue, err1 = skip(j.ifTrue)
		ins.SkipFalse, err2 = skip(j.ifFalse)
		if err := errors.Join(err1, err2); err != nil {
			return nil, err
		}
		p.ins[j.at] = ins
	}
	raw, err := bpf.Assemble(p.ins)
	if err != nil {
		return nil, fmt.Errorf("seccomp: %w", err)
	}
	return raw, nil
}
