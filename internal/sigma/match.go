package sigma

import (
	"net/netip"
	"regexp"
	"strconv"
	"time"

	"github.com/haechi-sec/haechi/internal/event"
)

// node is a compiled piece of a detection: a search identifier, a field
// condition, or a boolean combination from the condition.
type node interface {
	eval(ev *event.Event) bool
}

type andNode []node

func (n andNode) eval(ev *event.Event) bool {
	for _, c := range n {
		if !c.eval(ev) {
			return false
		}
	}
	return true
}

type orNode []node

func (n orNode) eval(ev *event.Event) bool {
	for _, c := range n {
		if c.eval(ev) {
			return true
		}
	}
	return false
}

type notNode struct{ n node }

func (n notNode) eval(ev *event.Event) bool { return !n.n.eval(ev) }

// fieldCond is one "field|modifiers: values" entry of a search identifier.
type fieldCond struct {
	acc accessor
	ms  []matcher // OR of the values, AND with |all
	all bool
	neg bool // |neq
}

func (c *fieldCond) eval(ev *event.Event) bool {
	return c.test(ev) != c.neg
}

func (c *fieldCond) test(ev *event.Event) bool {
	ms := c.ms
	switch c.acc.kind {
	case event.KindString:
		s := c.acc.str(ev)
		for i := range ms {
			if ms[i].str(s) != c.all {
				return !c.all
			}
		}
	case event.KindStrings:
		ss := c.acc.strs(ev)
		for i := range ms {
			if ms[i].strs(ss) != c.all {
				return !c.all
			}
		}
	case event.KindInt:
		n := c.acc.num(ev)
		for i := range ms {
			if ms[i].int(n) != c.all {
				return !c.all
			}
		}
	case event.KindFloat:
		f, ok := c.acc.flt(ev)
		for i := range ms {
			if ms[i].float(f, ok) != c.all {
				return !c.all
			}
		}
	case event.KindIP:
		a := c.acc.ip(ev)
		for i := range ms {
			if ms[i].ip(a) != c.all {
				return !c.all
			}
		}
	case event.KindTime:
		t := c.acc.tm(ev)
		for i := range ms {
			if ms[i].time(t) != c.all {
				return !c.all
			}
		}
	default:
		return false
	}
	return c.all
}

// keywordCond is a keyword search: each value is looked for (as
// *value*) in every keyword field of the logsource.
type keywordCond struct {
	fields []accessor // all KindString
	pats   []*pattern
	all    bool
}

func (k *keywordCond) eval(ev *event.Event) bool {
	for _, p := range k.pats {
		hit := false
		for i := range k.fields {
			if s := k.fields[i].str(ev); s != "" && p.match(s) {
				hit = true
				break
			}
		}
		if hit != k.all {
			return hit
		}
	}
	return k.all
}

type mop uint8

const (
	opNull     mop = iota + 1 // the field is absent (value null)
	opExists                  // |exists: want
	opPat                     // a Sigma string value (wildcards)
	opRe                      // |re
	opCIDR                    // |cidr
	opIPEq                    // an IP address literal on an IP field
	opNum                     // a number on a numeric field (cmp: = < <= > >=)
	opTimePart                // |minute … |year, compared with cmp
)

type cmpOp uint8

const (
	cmpEq cmpOp = iota
	cmpLt
	cmpLte
	cmpGt
	cmpGte
)

type timePart uint8

const (
	partMinute timePart = iota + 1
	partHour
	partDay
	partWeek
	partMonth
	partYear
)

// matcher is one compiled value. Absent fields (the zero value, as
// event.Field reports) match only null, |exists: false and the empty
// string ”.
type matcher struct {
	op      mop
	want    bool // opExists
	pat     *pattern
	emptyOK bool // opPat: the value is '' and so matches an absent field
	re      *regexp.Regexp
	prefix  netip.Prefix
	addr    netip.Addr
	cmp     cmpOp
	isInt   bool
	i       int64
	f       float64
	part    timePart
}

func (m *matcher) presence(present bool) (result, decided bool) {
	switch m.op {
	case opNull:
		return !present, true
	case opExists:
		return present == m.want, true
	}
	if !present {
		return m.op == opPat && m.emptyOK, true
	}
	return false, false
}

func (m *matcher) str(s string) bool {
	if r, ok := m.presence(s != ""); ok {
		return r
	}
	switch m.op {
	case opPat:
		return m.pat.match(s)
	case opRe:
		return m.re.MatchString(s)
	case opCIDR:
		a, err := netip.ParseAddr(s)
		return err == nil && m.prefix.Contains(a.Unmap())
	}
	return false
}

// strs matches a list field: null and exists test the list, any other
// value matches when one element does.
func (m *matcher) strs(ss []string) bool {
	if m.op == opNull || m.op == opExists || len(ss) == 0 {
		r, _ := m.presence(len(ss) > 0)
		return r
	}
	for _, s := range ss {
		if m.str(s) {
			return true
		}
	}
	return false
}

// The renderings of non-string fields for pattern and regular-expression
// values. They are separate functions with separate buffers because
// regexp keeps its input (so a buffer passed to it escapes to the heap),
// while a pattern match can take a stack buffer: string(b) of at most 32
// bytes that does not escape costs no allocation.

func (m *matcher) intText(n int64) bool {
	if m.op == opPat {
		var buf [24]byte
		return m.pat.match(string(strconv.AppendInt(buf[:0], n, 10)))
	}
	return m.op == opRe && m.re.Match(strconv.AppendInt(nil, n, 10))
}

func (m *matcher) floatText(f float64) bool {
	if m.op == opPat {
		var buf [32]byte
		return m.pat.match(string(strconv.AppendFloat(buf[:0], f, 'f', -1, 64)))
	}
	return m.op == opRe && m.re.Match(strconv.AppendFloat(nil, f, 'f', -1, 64))
}

func (m *matcher) ipText(a netip.Addr) bool {
	if m.op == opPat {
		var buf [48]byte
		return m.pat.match(string(a.AppendTo(buf[:0])))
	}
	return m.op == opRe && m.re.Match(a.AppendTo(nil))
}

func (m *matcher) timeText(t time.Time) bool {
	if m.op == opPat {
		var buf [40]byte
		return m.pat.match(string(t.UTC().AppendFormat(buf[:0], time.RFC3339Nano)))
	}
	return m.op == opRe && m.re.Match(t.UTC().AppendFormat(nil, time.RFC3339Nano))
}

func (m *matcher) int(n int64) bool {
	if r, ok := m.presence(n != 0); ok {
		return r
	}
	if m.op == opNum {
		if m.isInt {
			return compare(m.cmp, n, m.i)
		}
		return compare(m.cmp, float64(n), m.f)
	}
	return m.intText(n)
}

func (m *matcher) float(f float64, present bool) bool {
	if r, ok := m.presence(present); ok {
		return r
	}
	if m.op == opNum {
		return compare(m.cmp, f, m.f)
	}
	return m.floatText(f)
}

func (m *matcher) ip(a netip.Addr) bool {
	if r, ok := m.presence(a.IsValid()); ok {
		return r
	}
	switch m.op {
	case opIPEq:
		return a == m.addr
	case opCIDR:
		return m.prefix.Contains(a)
	}
	return m.ipText(a)
}

func (m *matcher) time(t time.Time) bool {
	if r, ok := m.presence(!t.IsZero()); ok {
		return r
	}
	if m.op == opTimePart {
		t = t.UTC()
		var v int
		switch m.part {
		case partMinute:
			v = t.Minute()
		case partHour:
			v = t.Hour()
		case partDay:
			v = t.Day()
		case partWeek:
			_, v = t.ISOWeek()
		case partMonth:
			v = int(t.Month())
		case partYear:
			v = t.Year()
		}
		return compare(m.cmp, int64(v), m.i)
	}
	return m.timeText(t)
}

func compare[T int64 | float64](op cmpOp, a, b T) bool {
	switch op {
	case cmpLt:
		return a < b
	case cmpLte:
		return a <= b
	case cmpGt:
		return a > b
	case cmpGte:
		return a >= b
	}
	return a == b
}
