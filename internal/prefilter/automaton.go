package prefilter

// automaton is an Aho-Corasick automaton over bytes, compiled to a
// deterministic table over byte classes (bytes no pattern holds share one
// class), that reports every pattern occurring in a text — overlapping
// ones included — in one pass and without allocating.
//
// Why not a library: of the Aho-Corasick modules this project can use,
// the one served (github.com/coregx/ahocorasick) reports overlapping
// matches only as a freshly allocated slice of positions, and the literal
// of a dataset test matches on nearly every event; what is needed here is
// a set of pattern ids, which this small automaton marks in place.
type automaton struct {
	// class maps a byte to its class; an ASCII upper-case letter has its
	// lower-case letter's, so ASCII text is matched case-insensitively
	// without folding it first (patterns are folded: Fold).
	class [256]uint16
	ncls  int
	// trans[s*ncls + class] is the next state, premultiplied by ncls,
	// and complemented (negative) when that state marks clauses.
	trans []int32
	// The clauses a state marks: clauses[off[s]:off[s+1]], those of every
	// pattern ending there (failure links included).
	off     []int32
	clauses []int32
	states  int
}

// newAutomaton compiles the patterns (non-empty, folded byte strings);
// patClauses[i] are the clauses pattern i marks.
func newAutomaton(pats []string, patClauses [][]int32) *automaton {
	a := &automaton{}
	// Byte classes: one per byte some pattern holds, class 0 for the rest.
	for _, p := range pats {
		for i := 0; i < len(p); i++ {
			if a.class[p[i]] == 0 {
				a.ncls++
				a.class[p[i]] = uint16(a.ncls)
			}
		}
	}
	for b := 'A'; b <= 'Z'; b++ {
		a.class[b] = a.class[b+'a'-'A']
	}
	a.ncls++
	// The trie: gotos[state][class], -1 for none.
	newNode := func() []int32 {
		n := make([]int32, a.ncls)
		for i := range n {
			n[i] = -1
		}
		return n
	}
	gotos := [][]int32{newNode()}
	outs := [][]int32{nil} // pattern ids ending at each state
	for id, p := range pats {
		s := int32(0)
		for i := 0; i < len(p); i++ {
			c := a.class[p[i]]
			if gotos[s][c] < 0 {
				gotos[s][c] = int32(len(gotos))
				gotos = append(gotos, newNode())
				outs = append(outs, nil)
			}
			s = gotos[s][c]
		}
		outs[s] = append(outs[s], int32(id))
	}
	// Failure links by breadth-first search, completing the table into a
	// DFA; each state inherits the outputs of its failure state (which is
	// shallower, so complete by then).
	n := len(gotos)
	fail := make([]int32, n)
	a.trans = make([]int32, n*a.ncls)
	queue := make([]int32, 0, n)
	for c := 0; c < a.ncls; c++ {
		if t := gotos[0][c]; t >= 0 {
			a.trans[c] = t
			queue = append(queue, t)
		}
	}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		outs[s] = append(outs[s], outs[fail[s]]...)
		for c := 0; c < a.ncls; c++ {
			t := gotos[s][c]
			if t < 0 {
				a.trans[int(s)*a.ncls+c] = a.trans[int(fail[s])*a.ncls+c]
				continue
			}
			a.trans[int(s)*a.ncls+c] = t
			fail[t] = a.trans[int(fail[s])*a.ncls+c]
			queue = append(queue, t)
		}
	}
	// Premultiply the states and complement those that mark clauses, so
	// the scan loads one entry per byte.
	for i, t := range a.trans {
		p := t * int32(a.ncls)
		if len(outs[t]) > 0 && hasClauses(outs[t], patClauses) {
			p = ^p
		}
		a.trans[i] = p
	}
	a.off = make([]int32, n+1)
	for s := range n {
		seen := map[int32]bool{}
		for _, p := range outs[s] {
			for _, c := range patClauses[p] {
				if !seen[c] {
					seen[c] = true
					a.clauses = append(a.clauses, c)
				}
			}
		}
		a.off[s+1] = int32(len(a.clauses))
	}
	a.states = n
	return a
}

func hasClauses(pats []int32, patClauses [][]int32) bool {
	for _, p := range pats {
		if len(patClauses[p]) > 0 {
			return true
		}
	}
	return false
}

// scan marks hit[c] for every clause c of every pattern occurring in
// text, case-insensitively. ASCII text is scanned as it is; other text is
// folded into buf first (the returned buffer, for reuse).
func (a *automaton) scan(text string, buf []byte, hit []bool) []byte {
	if a.scanASCII(text, hit) {
		return buf
	}
	buf = Fold(buf[:0], text)
	a.scanBytes(buf, hit)
	return buf
}

// scanASCII scans text until its first non-ASCII byte; it reports whether
// it reached the end.
func (a *automaton) scanASCII(text string, hit []bool) bool {
	s := int32(0)
	for i := 0; i < len(text); i++ {
		b := text[i]
		if b >= 0x80 {
			return false
		}
		s = a.trans[s+int32(a.class[b])]
		if s < 0 {
			s = ^s
			a.mark(s, hit)
		}
	}
	return true
}

func (a *automaton) scanBytes(text []byte, hit []bool) {
	s := int32(0)
	for _, b := range text {
		s = a.trans[s+int32(a.class[b])]
		if s < 0 {
			s = ^s
			a.mark(s, hit)
		}
	}
}

// mark marks the clauses of the state premultiplied as s.
func (a *automaton) mark(s int32, hit []bool) {
	st := s / int32(a.ncls)
	for _, c := range a.clauses[a.off[st]:a.off[st+1]] {
		hit[c] = true
	}
}
