package rules

import (
	"fmt"
	"testing"

	"github.com/haechi-sec/haechi/internal/event"
)

// nativeConds are conditions written to exercise every operation native
// programs evaluate, errors included (substring out of range, errors
// inside && / || / exists / all, which CEL absorbs when the other side
// decides).
var nativeConds = []string{
	`user.id.startsWith("m:") && size(records.ids) > 0 && cel.bind(me, user.id.substring(2), (records.type == "customer" && records.ids.exists(id, id != me)) || (records.type == "address" && cel.bind(mine, "a:" + me + ":", records.ids.exists(id, !id.startsWith(mine)))))`,
	`records.ids.all(id, id.substring(2) != "x")`,
	`records.ids.exists(id, id.substring(3) == "1") || user.id == "m:1"`,
	`user.id.substring(5) == "" && records.type != "order"`,
	`user.id.substring(1, 3) == ":1" || user.id.substring(3, 1) == "x"`,
	`!(user.id.substring(4) == "2") && event.action.contains("read")`,
	`size(user.id) >= 3 && size(user.id) < 7 && size(records.ids) <= 2`,
	`cel.bind(n, size(records.ids), n > 1 && n != 3)`,
	`cel.bind(l, records.ids, l.exists(x, x == user.id.substring(2)))`,
	`cel.bind(t, records.type == "customer", t || event.dataset == "auth.login")`,
	`user.id in ["m:1", "m:2", event.action] && "admin" in user.roles`,
	`records.ids == ["1"] || records.ids != user.roles`,
	`http.response.status_code == 404 || http.response.status_code > 499`,
	`url.path.endsWith("/export") && user_agent.original.contains("curl")`,
	`records.ids.exists(a, records.ids.exists(b, a != b && a.startsWith(b)))`,
	`user.id + "/" + records.type == "m:1/customer"`,
	`records.ids.all(id, id.substring(0, 1) == "a") && size(records.ids) > 0`,
	`cel.bind(me, user.id.substring(2), me.substring(1) == "é" || me == "")`,
	// cel-go initialises a cel.bind variable when the body first reads
	// it: an initialiser that fails is no error where the body decides
	// without it (user.id "m": substring(2) is out of range).
	`cel.bind(me, user.id.substring(2), records.type == "customer" || me == "1")`,
	`cel.bind(t, user.id.substring(3) == "x", t || size(records.ids) > 1)`,
	`cel.bind(x, user.id.substring(4), records.ids.exists(y, y == "1" || y == x))`,
	`cel.bind(x, user.id, cel.bind(x, x.substring(2), records.type == "customer" || x == "1"))`,
	`cel.bind(n, size(user.id.substring(3)), records.type == "address" || n > 0)`,
	`cel.bind(l, [user.id.substring(3)], size(records.ids) > 1 || l == records.ids)`,
	`records.ids.exists(y, cel.bind(z, y.substring(1), y == "1" || z == ""))`,
	// cel-go's optimiser turns x in [] into false without evaluating x.
	`!(user.id.substring(4) in []) && records.type == "customer"`,
	`records.ids.exists(y, y.substring(2) in []) || size(records.ids) > 0`,
	// An error is never a match, whatever ! made of the value beside it.
	`!(user.id.substring(4) == "2")`,
}

// nativeEvents are hand-made edge cases: absent fields, unicode, invalid
// UTF-8, ids that make substring fail.
var nativeEvents = []event.Event{
	{},
	{User: event.User{ID: "m:1"}, Records: event.Records{Type: "customer", IDs: []string{"1"}}},
	{User: event.User{ID: "m:1"}, Records: event.Records{Type: "customer", IDs: []string{"1", "2"}}},
	{User: event.User{ID: "m:1"}, Records: event.Records{Type: "address", IDs: []string{"a:1:1", "a:2:1"}}},
	{User: event.User{ID: "m:1"}, Records: event.Records{Type: "address", IDs: []string{"a:1:1", "a:1:2"}}},
	{User: event.User{ID: "m"}, Records: event.Records{Type: "customer", IDs: []string{"", "x", "abc1"}}},
	{User: event.User{ID: "m:é1"}, Action: "member.read", Records: event.Records{Type: "order", IDs: []string{"aé", "a\xff"}}},
	{User: event.User{ID: "m:\xffé"}, Records: event.Records{Type: "customer", IDs: []string{"\xff\xfe", "a"}}},
	// substring turns an invalid byte into U+FFFD, as cel-go's extension
	// does: this customer reads their own record.
	{User: event.User{ID: "m:\xff1"}, Records: event.Records{Type: "customer", IDs: []string{"\ufffd1"}}},
	{User: event.User{ID: "m:2", Roles: []string{"admin"}}, Action: "m:2", Dataset: "auth.login", Records: event.Records{IDs: []string{"admin"}}},
	{HTTP: event.HTTP{StatusCode: 503}, URLPath: "/x/export", UserAgent: "curl/8", User: event.User{ID: "s:svc-a"}},
	{HTTP: event.HTTP{StatusCode: 404}, Records: event.Records{IDs: []string{"ab", "a", "abc"}}},
}

// Native programs give cel-go's verdict, and an error exactly where cel-go
// gives one, for every condition at hand that they support — the shipped
// pack, the benchmark pack and nativeConds — on the simulated corpus and
// the edge cases.
func TestNativeDifferential(t *testing.T) {
	c, err := newCompiler(Options{})
	if err != nil {
		t.Fatal(err)
	}
	srcs := append([]string(nil), nativeConds...)
	set := dispatchSet(t)
	for _, r := range set.Rules {
		if cc, ok := r.Cond.(*celCondition); ok {
			srcs = append(srcs, cc.src)
		}
	}
	n := 20000
	if testing.Short() {
		n = 2000
	}
	evs := append(dispatchCorpus(t, set, n), nativeEvents...)
	native, cases, tracked := 0, 0, 0
	for _, src := range srcs {
		cc, issues := c.compile(src)
		if len(issues) > 0 {
			// rules of the set compiled with their own lists; skip those
			// this compiler does not declare.
			continue
		}
		if cc.nat == nil {
			continue
		}
		native++
		a := newActivation(c.names)
		for i := range evs {
			a.reset(&evs[i])
			a.lists = cc.lists
			prg, unaccounted := cc.program(a)
			if !unaccounted {
				tracked++
				continue // cel-go accounts it; the native program is not used
			}
			out, _, celErr := prg.Eval(a)
			got, natErr := cc.nat.eval(&evs[i], &a.nat)
			cases++
			if (celErr != nil) != (natErr != nil) {
				t.Fatalf("%s\non event %d (%+v): cel-go error %v, native error %v", src, i, evs[i].User, celErr, natErr)
			}
			if natErr != nil && got {
				t.Fatalf("%s\non event %d (%+v): native error %v with a match", src, i, evs[i].User, natErr)
			}
			if celErr == nil && fmt.Sprint(out) != fmt.Sprint(got) {
				t.Fatalf("%s\non event %d (%+v %+v): cel-go %v, native %v", src, i, evs[i].User, evs[i].Records, out, got)
			}
		}
	}
	if native < len(nativeConds) {
		t.Errorf("only %d conditions compiled natively; every one of nativeConds (%d) should", native, len(nativeConds))
	}
	t.Logf("%d conditions natively, %d evaluations identical (%d left to cel-go's accounting)", native, cases, tracked)
}

// Conditions native programs do not know are left to cel-go.
func TestNativeUnsupported(t *testing.T) {
	c, err := newCompiler(Options{Lists: map[string][]string{"corporate_networks": {"10.0.0.0/8"}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, src := range []string{
		`cidr(source.ip, lists.corporate_networks)`,
		`source.ip == "10.0.0.1"`,
		`timestamp.getHours("Asia/Seoul") < 8`,
		`user.id.matches("^m:[0-9]+$")`,
		`records.ids.map(x, x + "!").exists(y, y == "1!")`,
		`present(token.expires_at)`,
		`cel.bind(m, {"id": "m:1"}, m.id == user.id)`,
		`user.id.lowerAscii() == "m:1"`,
	} {
		cc, issues := c.compile(src)
		if len(issues) > 0 {
			t.Fatalf("%s: %v", src, issues)
		}
		if cc.nat != nil {
			t.Errorf("%s: compiled natively", src)
		}
	}
	// The shipped rule that most customer traffic reaches runs natively.
	pack, err := Pack(Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range pack.Rules {
		if r.ID == "customer-reads-other-customer" {
			if cc, ok := r.Cond.(*celCondition); !ok || cc.nat == nil {
				t.Errorf("%s is not evaluated natively", r.ID)
			}
		}
	}
}

// FuzzNativeDifferential holds native programs to cel-go on events made
// of fuzzed strings.
func FuzzNativeDifferential(f *testing.F) {
	f.Add("m:1", "customer", "1", "2", "/x", "curl", int64(200))
	f.Add("m:\xffé", "address", "a:1:1", "a:\xff", "", "", int64(404))
	f.Add("", "", "", "", "", "", int64(0))
	f.Add("m:\xff1", "customer", "\ufffd1", "a:\ufffd1:", "", "", int64(0))
	c, err := newCompiler(Options{})
	if err != nil {
		f.Fatal(err)
	}
	var conds []*celCondition
	for _, src := range nativeConds {
		cc, issues := c.compile(src)
		if len(issues) > 0 || cc.nat == nil {
			f.Fatalf("%s: not native (%v)", src, issues)
		}
		conds = append(conds, cc)
	}
	a := newActivation(c.names)
	f.Fuzz(func(t *testing.T, user, rtype, id1, id2, path, ua string, status int64) {
		ev := event.Event{User: event.User{ID: user, Roles: []string{id2}}, Records: event.Records{Type: rtype, IDs: []string{id1, id2}},
			URLPath: path, UserAgent: ua, Action: id1, HTTP: event.HTTP{StatusCode: int(status % 1000)}}
		for _, cc := range conds {
			a.reset(&ev)
			a.lists = cc.lists
			prg, unaccounted := cc.program(a)
			if !unaccounted {
				continue
			}
			out, _, celErr := prg.Eval(a)
			got, natErr := cc.nat.eval(&ev, &a.nat)
			if (celErr != nil) != (natErr != nil) || natErr != nil && got {
				t.Fatalf("%s: cel-go error %v, native %v, error %v", cc.src, celErr, got, natErr)
			}
			if celErr == nil && fmt.Sprint(out) != fmt.Sprint(got) {
				t.Fatalf("%s: cel-go %v, native %v", cc.src, out, got)
			}
		}
	})
}
