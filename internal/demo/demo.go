// Package demo builds the sample traffic `haechi demo` feeds a live
// server: the event contract's own examples, moved so they end just before
// now, on top of a background of ordinary customer and staff activity
// generated relative to now. The simulator issue replaces this with the
// synthetic company; until then this is enough to see both reference
// detectors fire among benign traffic.
//
// The traffic is ordinary contract NDJSON: nothing in it tells haechi what
// is malicious.
package demo

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"time"
)

//go:embed contract.ndjson
var contract []byte

// CanaryRecords are the canary ids the demo configures: one of the
// contract's customer records and a planted demo customer.
var CanaryRecords = []string{"70000003", "90000001"}

// Traffic returns the demo's NDJSON lines in event-time order, ending just
// before now. seed makes the background reproducible.
func Traffic(now time.Time, seed uint64) ([][]byte, error) {
	now = now.UTC().Truncate(time.Second)
	shifted, err := shiftContract(now.Add(-3 * time.Minute))
	if err != nil {
		return nil, err
	}
	g := &gen{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), now: now}
	g.background()
	g.departedContractor()
	g.ghostKeyScraper()
	all := append(g.lines, shifted...)
	sort.SliceStable(all, func(i, j int) bool { return all[i].t.Before(all[j].t) })
	out := make([][]byte, len(all))
	for i, l := range all {
		out[i] = l.b
	}
	return out, nil
}

type line struct {
	t time.Time
	b []byte
}

// timeFields are the contract's time-valued fields, as dotted paths.
var timeFields = [][]string{
	{"@timestamp"},
	{"token", "issued_at"}, {"token", "expires_at"},
	{"identity", "terminated_at"}, {"key", "retired_at"},
}

// shiftContract moves every time in the contract's examples by the same
// amount so that the latest @timestamp becomes end.
func shiftContract(end time.Time) ([]line, error) {
	var objs []map[string]any
	var latest time.Time
	for i, l := range bytes.Split(bytes.TrimSpace(contract), []byte("\n")) {
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil {
			return nil, fmt.Errorf("demo contract line %d: %w", i+1, err)
		}
		t, err := time.Parse(time.RFC3339, m["@timestamp"].(string))
		if err != nil {
			return nil, fmt.Errorf("demo contract line %d: %w", i+1, err)
		}
		if t.After(latest) {
			latest = t
		}
		objs = append(objs, m)
	}
	d := end.Sub(latest)
	var out []line
	for _, m := range objs {
		for _, path := range timeFields {
			obj := m
			for _, k := range path[:len(path)-1] {
				obj, _ = obj[k].(map[string]any)
			}
			if obj == nil {
				continue
			}
			if s, ok := obj[path[len(path)-1]].(string); ok {
				if t, err := time.Parse(time.RFC3339, s); err == nil {
					obj[path[len(path)-1]] = t.Add(d).Format(time.RFC3339)
				}
			}
		}
		b, err := json.Marshal(m)
		if err != nil {
			return nil, err
		}
		t, _ := time.Parse(time.RFC3339, m["@timestamp"].(string))
		out = append(out, line{t, b})
	}
	return out, nil
}

type gen struct {
	rng   *rand.Rand
	now   time.Time
	lines []line
}

func (g *gen) emit(t time.Time, m map[string]any) {
	m["@timestamp"] = t.UTC().Format(time.RFC3339Nano)
	b, _ := json.Marshal(m)
	g.lines = append(g.lines, line{t, b})
}

var userAgents = []string{
	"Mozilla/5.0 (iPhone; CPU iPhone OS 18_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
	"Mozilla/5.0 (Linux; Android 15; SM-S928N) AppleWebKit/537.36 Chrome/138.0 Mobile Safari/537.36",
	"ExampleShop/7.12.0 (Android 14; SM-A546S)",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/138.0 Safari/537.36",
}

var networks = []struct {
	prefix string
	asn    int
	org    string
}{
	{"211.234.", 4766, "Korea Telecom"},
	{"223.38.", 9644, "SK Telecom"},
	{"106.101.", 17858, "LG Uplus"},
}

// background: customers logging in and reading their own data; CS agents
// on the roster looking customers up.
func (g *gen) background() {
	const customers = 400
	for i := 0; i < customers; i++ {
		id := strconv.Itoa(40000000 + g.rng.IntN(9000000))
		net := networks[g.rng.IntN(len(networks))]
		ip := fmt.Sprintf("%s%d.%d", net.prefix, g.rng.IntN(250)+1, g.rng.IntN(250)+1)
		ua := userAgents[g.rng.IntN(len(userAgents))]
		t := g.now.Add(-time.Duration(g.rng.IntN(40*60)+240) * time.Second)
		src := map[string]any{"ip": ip, "geo": map[string]any{"country_iso_code": "KR"}, "as": map[string]any{"number": net.asn, "organization": map[string]any{"name": net.org}}}
		user := map[string]any{"id": "m:" + id}
		g.emit(t, map[string]any{"event": ev("auth.login", "login", "success"), "user": user, "source": src, "user_agent": map[string]any{"original": ua}})
		tok := fmt.Sprintf("tk-%08x", g.rng.Uint32())
		minted := t
		g.emit(t, map[string]any{"event": ev("auth.token", "token.issued", "success"), "user": user, "source": map[string]any{"ip": ip},
			"token": map[string]any{"id": tok, "key_id": "auth-2025-03", "issued_at": t.Format(time.RFC3339), "expires_at": t.Add(12 * time.Hour).Format(time.RFC3339), "issuer": "https://auth.example-shop.kr"}})
		reads := 1 + g.rng.IntN(4)
		for r := 0; r < reads; r++ {
			t = t.Add(time.Duration(2+g.rng.IntN(30)) * time.Second)
			action, typ, path, ids, fields := "member.profile.read", "customer", "/api/v2/members/"+id+"/profile", []string{id}, []string{"name", "email", "phone"}
			switch g.rng.IntN(3) {
			case 1:
				action, typ, path, ids, fields = "member.address.list", "address", "/api/v2/members/"+id+"/addresses", []string{"a:" + id + ":1"}, []string{"name", "phone", "address"}
			case 2:
				action, typ, path, ids, fields = "member.order.list", "order", "/api/v2/members/"+id+"/orders", []string{"o:" + id + ":" + strconv.Itoa(g.rng.IntN(90)+1)}, []string{"name", "address", "order_history"}
			}
			g.emit(t, map[string]any{"event": ev("gateway.access", action, "success"), "user": user, "source": src,
				"token":      map[string]any{"id": tok, "key_id": "auth-2025-03", "issued_at": minted.Format(time.RFC3339)},
				"user_agent": map[string]any{"original": ua}, "http": map[string]any{"request": map[string]any{"method": "GET"}, "response": map[string]any{"status_code": 200, "body": map[string]any{"bytes": 600 + g.rng.IntN(900)}}},
				"url": map[string]any{"path": path}, "records": map[string]any{"type": typ, "ids": ids, "fields": fields}})
		}
	}
	// Staff: CS agents on the roster, working tickets.
	for a := 0; a < 6; a++ {
		id := fmt.Sprintf("e:3%03d", a)
		g.emit(g.now.Add(-30*24*time.Hour), map[string]any{"event": ev("hr.roster", "identity.upsert", "success"),
			"identity": map[string]any{"id": id, "kind": "employee", "roles": []string{"cs-agent"}, "status": "active", "country": "KR"}})
		for k := 0; k < 8; k++ {
			t := g.now.Add(-time.Duration(g.rng.IntN(40*60)+240) * time.Second)
			cust := strconv.Itoa(40000000 + g.rng.IntN(9000000))
			g.emit(t, map[string]any{"event": ev("gateway.access", "admin.customer.view", "success"),
				"user": map[string]any{"id": id, "roles": []string{"cs-agent"}}, "source": map[string]any{"ip": fmt.Sprintf("10.20.4.%d", 10+a)},
				"url": map[string]any{"path": "/admin/customers/" + cust}, "http": map[string]any{"request": map[string]any{"method": "GET"}, "response": map[string]any{"status_code": 200}},
				"records": map[string]any{"type": "customer", "ids": []string{cust}, "fields": []string{"name", "phone"}}})
		}
	}
}

// departedContractor: a contractor who left yesterday whose account is
// used tonight from a hosting network abroad, reading a planted customer.
func (g *gen) departedContractor() {
	id := "c:0315"
	left := g.now.Add(-26 * time.Hour)
	g.emit(g.now.Add(-200*24*time.Hour), map[string]any{"event": ev("hr.roster", "identity.upsert", "success"),
		"identity": map[string]any{"id": id, "kind": "contractor", "roles": []string{"data-engineer"}, "status": "active", "country": "KR"}})
	g.emit(left, map[string]any{"event": ev("hr.roster", "identity.terminated", "success"),
		"identity": map[string]any{"id": id, "kind": "contractor", "roles": []string{"data-engineer"}, "status": "terminated", "terminated_at": left.Format(time.RFC3339), "country": "KR"}})
	t := g.now.Add(-10 * time.Minute)
	for k := 0; k < 5; k++ {
		ids := make([]string, 20)
		for i := range ids {
			ids[i] = strconv.Itoa(90000000 + k*20 + i)
		}
		g.emit(t.Add(time.Duration(k)*7*time.Second), map[string]any{"event": ev("gateway.access", "admin.customer.export", "success"),
			"user": map[string]any{"id": id}, "source": map[string]any{"ip": "45.77.12.201", "geo": map[string]any{"country_iso_code": "SG"}, "as": map[string]any{"number": 20473, "organization": map[string]any{"name": "The Constant Company"}}},
			"user_agent": map[string]any{"original": "python-requests/2.32.3"},
			"url":        map[string]any{"path": "/admin/customers/export"}, "http": map[string]any{"request": map[string]any{"method": "GET"}, "response": map[string]any{"status_code": 200, "body": map[string]any{"bytes": 9000 + g.rng.IntN(2000)}}},
			"records": map[string]any{"type": "customer", "ids": ids, "fields": []string{"name", "email", "phone", "address"}}})
	}
}

// ghostKeyScraper: the 2025 pattern — tokens forged with a retained
// signing key, each impersonating a different customer reading only their
// own data, from one hosting server abroad.
func (g *gen) ghostKeyScraper() {
	t := g.now.Add(-4 * time.Minute)
	src := map[string]any{"ip": "45.77.201.13", "geo": map[string]any{"country_iso_code": "SG"}, "as": map[string]any{"number": 20473, "organization": map[string]any{"name": "The Constant Company"}}}
	for k := 0; k < 60; k++ {
		id := strconv.Itoa(30000000 + g.rng.IntN(9000000))
		at := t.Add(time.Duration(k) * 2 * time.Second)
		g.emit(at, map[string]any{"event": ev("gateway.access", "member.address.list", "success"),
			"user":       map[string]any{"id": "m:" + id},
			"token":      map[string]any{"id": fmt.Sprintf("tk-%08x", g.rng.Uint32()), "key_id": "auth-2022-11", "issued_at": at.Add(-time.Second).Format(time.RFC3339)},
			"source":     src,
			"user_agent": map[string]any{"original": "python-requests/2.32.3"},
			"http":       map[string]any{"request": map[string]any{"method": "GET"}, "response": map[string]any{"status_code": 200, "body": map[string]any{"bytes": 1100 + g.rng.IntN(300)}}},
			"url":        map[string]any{"path": "/api/v2/members/" + id + "/addresses"},
			"records":    map[string]any{"type": "address", "ids": []string{"a:" + id + ":1"}, "fields": []string{"name", "phone", "address", "entrance_code"}}})
	}
}

func ev(dataset, action, outcome string) map[string]any {
	return map[string]any{"dataset": dataset, "action": action, "outcome": outcome}
}
