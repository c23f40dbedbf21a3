package rules

import (
	"fmt"
	"math/rand"
	"strings"
	"testing"

	"cel.dev/cel-go/common/types"

	"github.com/haechi-sec/haechi/internal/event"
)

// rgen generates random conditions of the subset native programs
// evaluate, and some just outside it (exists_one, filter, map), tracking
// the names bound in scope and their kinds (s string, i int, l list, b
// bool, m a map with "id" and "type").
type rgen struct {
	r     *rand.Rand
	scope []struct{ name, kind string }
}

var rstrLits = []string{`""`, `"a"`, `"m:"`, `"é"`, `"1"`, `"ab"`, `"m:1"`}
var rstrFields = []string{"user.id", "records.type", "event.action", "url.path", ".user.id", ".records.type"}
var rlistFields = []string{"records.ids", "user.roles"}
var rintFields = []string{"http.response.status_code"}
var rnames = []string{"a", "b", "c", "a", "b", "user", "timestamp", "records"}

func (g *rgen) pick(xs []string) string { return xs[g.r.Intn(len(xs))] }

func (g *rgen) vars(kind string) []string {
	var out []string
	for i := len(g.scope) - 1; i >= 0; i-- {
		v := g.scope[i]
		shadowed := false
		for j := i + 1; j < len(g.scope); j++ {
			if g.scope[j].name == v.name {
				shadowed = true
			}
		}
		if !shadowed && v.kind == kind {
			out = append(out, v.name)
		}
	}
	return out
}

func (g *rgen) push(name, kind string) {
	g.scope = append(g.scope, struct{ name, kind string }{name, kind})
}
func (g *rgen) pop() { g.scope = g.scope[:len(g.scope)-1] }

func (g *rgen) str(d int) string {
	if vs := g.vars("s"); len(vs) > 0 && g.r.Intn(3) == 0 {
		return g.pick(vs)
	}
	if vs := g.vars("m"); len(vs) > 0 && g.r.Intn(3) == 0 {
		return g.pick(vs) + g.pick([]string{".id", ".type"})
	}
	if d <= 0 {
		if g.r.Intn(2) == 0 {
			return g.pick(rstrLits)
		}
		return g.pick(rstrFields)
	}
	switch g.r.Intn(6) {
	case 0:
		return g.str(d-1) + " + " + g.str(d-1)
	case 1:
		return "(" + g.str(d-1) + ").substring(" + g.int(d-1) + ")"
	case 2:
		return "(" + g.str(d-1) + ").substring(" + g.int(d-1) + ", " + g.int(d-1) + ")"
	case 3:
		return g.pick(rstrLits)
	}
	return g.pick(rstrFields)
}

func (g *rgen) int(d int) string {
	if vs := g.vars("i"); len(vs) > 0 && g.r.Intn(3) == 0 {
		return g.pick(vs)
	}
	if d <= 0 {
		return fmt.Sprint(g.r.Intn(6) - 1)
	}
	switch g.r.Intn(4) {
	case 0:
		return "size(" + g.str(d-1) + ")"
	case 1:
		return "size(" + g.list(d-1) + ")"
	case 2:
		return g.pick(rintFields)
	}
	return fmt.Sprint(g.r.Intn(6) - 1)
}

func (g *rgen) list(d int) string {
	if vs := g.vars("l"); len(vs) > 0 && g.r.Intn(3) == 0 {
		return g.pick(vs)
	}
	if d <= 0 || g.r.Intn(2) == 0 {
		return g.pick(rlistFields)
	}
	n := g.r.Intn(3)
	var el []string
	for i := 0; i < n; i++ {
		el = append(el, g.str(d-1))
	}
	return "[" + strings.Join(el, ", ") + "]"
}

func (g *rgen) boolean(d int) string {
	if vs := g.vars("b"); len(vs) > 0 && g.r.Intn(4) == 0 {
		return g.pick(vs)
	}
	if d <= 0 {
		switch g.r.Intn(3) {
		case 0:
			return g.pick([]string{"true", "false"})
		case 1:
			return g.str(0) + " == " + g.str(0)
		}
		return g.int(0) + " < " + g.int(0)
	}
	switch g.r.Intn(17) {
	case 0:
		return "(" + g.boolean(d-1) + " && " + g.boolean(d-1) + ")"
	case 1:
		return "(" + g.boolean(d-1) + " || " + g.boolean(d-1) + ")"
	case 2:
		return "!(" + g.boolean(d-1) + ")"
	case 3:
		return g.str(d-1) + g.pick([]string{" == ", " != "}) + g.str(d-1)
	case 4:
		return g.int(d-1) + g.pick([]string{" == ", " != ", " < ", " <= ", " > ", " >= "}) + g.int(d-1)
	case 5:
		return "(" + g.str(d-1) + ")." + g.pick([]string{"startsWith", "endsWith", "contains"}) + "(" + g.str(d-1) + ")"
	case 6:
		return g.str(d-1) + " in " + g.list(d-1)
	case 7:
		return g.list(d-1) + g.pick([]string{" == ", " != "}) + g.list(d-1)
	case 8, 9:
		rng := g.list(d - 1)
		v := g.pick(rnames)
		g.push(v, "s")
		p := g.boolean(d - 1)
		g.pop()
		return rng + "." + g.pick([]string{"exists", "all"}) + "(" + v + ", " + p + ")"
	case 10, 11:
		v := g.pick(rnames)
		var init, k string
		switch g.r.Intn(5) {
		case 4: // a map: v.id and v.type shadow user.id, records.type
			init, k = `{"id": `+g.str(d-1)+`, "type": `+g.str(d-1)+`}`, "m"
		case 0:
			init, k = g.str(d-1), "s"
		case 1:
			init, k = g.int(d-1), "i"
		case 2:
			init, k = g.list(d-1), "l"
		default:
			init, k = g.boolean(d-1), "b"
		}
		g.push(v, k)
		body := g.boolean(d - 1)
		g.pop()
		return "cel.bind(" + v + ", " + init + ", " + body + ")"
	case 12:
		return "(" + g.boolean(d-1) + ")" + g.pick([]string{" == ", " != "}) + "(" + g.boolean(d-1) + ")"
	case 13:
		rng := g.list(d - 1)
		v := g.pick(rnames)
		g.push(v, "s")
		p := g.boolean(d - 1)
		g.pop()
		return rng + "." + g.pick([]string{"exists_one", "filter", "map"}) + "(" + v + ", " + p + ")" + g.pick([]string{" == true", ".size() > 0", " == []"})
	case 14:
		return "(" + g.str(d-1) + ").size() " + g.pick([]string{"==", "<"}) + " " + g.list(d-1) + ".size()"
	case 15: // guard shapes native programs leave to cel-go
		switch g.r.Intn(3) {
		case 0:
			return g.pick(rstrFields) + ".lowerAscii()." + g.pick([]string{"startsWith", "endsWith", "contains"}) + "(" + g.pick([]string{`"a"`, `"m:"`, `"é"`}) + ")"
		case 1:
			return g.pick(rintFields) + " in [" + fmt.Sprint(g.r.Intn(3)-1) + ", " + fmt.Sprint(g.r.Intn(3)) + "]"
		}
		return g.pick(rstrLits) + " in " + g.pick(rlistFields)
	}
	return g.boolean(0)
}

var rEvStrs = []string{"", "a", "m:1", "m:", "1", "é", "m:é1", "a\xff", "\xff", "ab", "m"}

func randEvent(r *rand.Rand) event.Event {
	s := func() string { return rEvStrs[r.Intn(len(rEvStrs))] }
	l := func() []string {
		n := r.Intn(4)
		var out []string
		for i := 0; i < n; i++ {
			out = append(out, s())
		}
		return out
	}
	return event.Event{User: event.User{ID: s(), Roles: l()}, Records: event.Records{Type: s(), IDs: l()},
		Action: s(), URLPath: s(), HTTP: event.HTTP{StatusCode: r.Intn(4) - 1}}
}

// TestNativeRandomDifferential holds native programs, and guards, to cel-go on
// conditions generated from the whole subset native programs evaluate —
// nested cel.bind and quantifiers, shadowed names (also names of contract
// fields), substring out of range, x in [] — and on events of short
// strings with multi-byte and malformed characters: every verdict and
// error the same. (It found cel.bind's lazy initialiser and cel-go's
// folding of x in [].)
func TestNativeRandomDifferential(t *testing.T) {
	n := 3000
	if testing.Short() {
		n = 300
	}
	for seed := int64(1); seed <= 2; seed++ {
		nat := nativeRandom(t, seed, n, 100)
		if nat < n/2 {
			t.Errorf("seed %d: only %d of %d generated conditions are native", seed, nat, n)
		}
	}
}

// FuzzNativeRandom is TestNativeRandomDifferential with fuzzed seeds.
func FuzzNativeRandom(f *testing.F) {
	f.Add(int64(1))
	f.Add(int64(2))
	f.Fuzz(func(t *testing.T, seed int64) {
		nativeRandom(t, seed, 20, 30)
	})
}

// nativeRandom generates conds conditions and evs events from seed and
// compares native programs to cel-go on them; it returns how many of the
// conditions compiled natively.
func nativeRandom(t *testing.T, seed int64, conds, nevs int) int {
	t.Helper()
	c, err := newCompiler(Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewSource(seed))
	g := &rgen{r: r}
	evs := make([]event.Event, nevs)
	for i := range evs {
		evs[i] = randEvent(r)
	}
	a := newActivation(c.names)
	nat := 0
	for range conds {
		g.scope = g.scope[:0]
		src := g.boolean(1 + r.Intn(4))
		cc, issues := c.compile(src)
		if len(issues) > 0 {
			continue // ill-typed: the generator does not check
		}
		if cc.nat != nil {
			nat++
		}
		for i := range evs {
			ev := &evs[i]
			a.reset(ev)
			a.lists = cc.lists
			prg, unaccounted := cc.program(a)
			out, _, celErr := prg.Eval(a)
			// The guard (read through cel.bind) never rejects a match,
			// and an exact guard is the verdict.
			if match := celErr == nil && out == types.True; match && !cc.guard.pass(ev) || cc.exact && match != cc.guard.pass(ev) {
				t.Fatalf("%s\non user.id %q, user.roles %q, records.type %q, records.ids %q: cel-go %v (error %v), guard passes %v (exact %v)",
					src, ev.User.ID, ev.User.Roles, ev.Records.Type, ev.Records.IDs, out, celErr, cc.guard.pass(ev), cc.exact)
			}
			if cc.nat == nil || !unaccounted {
				continue
			}
			got, natErr := cc.nat.eval(ev, &a.nat)
			if (celErr != nil) != (natErr != nil) || celErr == nil && fmt.Sprint(out) != fmt.Sprint(got) || natErr != nil && got {
				t.Fatalf("%s\non user.id %q, user.roles %q, records.type %q, records.ids %q, event.action %q, url.path %q, status %d:\ncel-go %v (error %v), native %v (error %v)",
					src, ev.User.ID, ev.User.Roles, ev.Records.Type, ev.Records.IDs, ev.Action, ev.URLPath, ev.HTTP.StatusCode, out, celErr, got, natErr)
			}
		}
	}
	return nat
}
