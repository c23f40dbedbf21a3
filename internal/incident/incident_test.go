package incident

import (
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/event"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.json")

var t0 = time.Date(2025, 6, 4, 5, 0, 0, 0, time.UTC)

// facts is a table of event facts and source popularity.
type facts struct {
	events  map[string]EventFacts
	sources map[string]int
}

func (f *facts) Event(ref string) (EventFacts, bool) { x, ok := f.events[ref]; return x, ok }
func (f *facts) Source(ip string) (int, bool)        { n, ok := f.sources[ip]; return n, ok }

func newFacts() *facts { return &facts{events: map[string]EventFacts{}, sources: map[string]int{}} }

func ent(kind event.EntityKind, id string) event.EntityKey {
	return event.EntityKey{Kind: kind, ID: id}
}

// mk makes an alert of one finding.
func mk(at time.Time, subject event.EntityKey, detector, kind string, sev event.Severity, evidence []string, related ...event.EntityKey) event.Alert {
	f := event.Finding{Detector: detector, Kind: kind, Entity: subject, Time: at, Score: 80, Severity: sev,
		Evidence: evidence, Related: related}
	id := fmt.Sprintf("al-%s-%s-%d", subject, detector, at.UnixNano())
	return event.Alert{ID: id, Time: at, Entity: subject, Severity: sev, Score: 80, Title: kind, State: event.AlertOpen,
		Detector: detector, LastTime: at, FindingCount: 1, Findings: []event.Finding{f}}
}

// ghostKey: a forged-token flood — key alerts naming sources, and hundreds
// of alerts about the sources whose evidence are requests with tokens
// signed by the key.
func ghostKey(fx *facts, prefix string, start time.Time, n int) []event.Alert {
	key := ent(event.EntitySigningKey, prefix+"key")
	var out []event.Alert
	for i := range n {
		at := start.Add(time.Duration(i) * 7 * time.Minute)
		src := fmt.Sprintf("45.77.%d.%d", i%40, i%7)
		ref := fmt.Sprintf("%sev-%d", prefix, i)
		fx.events[ref] = EventFacts{Success: true, Principal: fmt.Sprintf("m:%d", 1000+i), Token: fmt.Sprintf("%stk-%d", prefix, i),
			Key: key.ID, Source: src, ASN: 20473, UserAgent: "python-requests/2.31.0"}
		fx.sources[src] = 300 // the forger impersonates hundreds of customers from each address
		if i%10 == 0 {
			out = append(out, mk(at, key, "token_provenance", "token_never_minted", event.SeverityCritical, []string{ref}, ent(event.EntitySource, src)))
			continue
		}
		out = append(out, mk(at, ent(event.EntitySource, src), "principal_geo", "hosting_network", event.SeverityHigh, []string{ref}))
	}
	return out
}

// stuffing: bots over addresses in the given ASes, one user-agent family
// (versions vary), failing to log in as victims from a shared list.
func stuffing(fx *facts, prefix string, start time.Time, bots int, asns []uint32) []event.Alert {
	var out []event.Alert
	for i := range bots {
		at := start.Add(time.Duration(i) * 20 * time.Second)
		src := fmt.Sprintf("%s.%d.%d", prefix, i/250, i%250)
		var refs []string
		for j := range 4 {
			ref := fmt.Sprintf("%s-login-%d-%d", prefix, i, j)
			fx.events[ref] = EventFacts{Success: false, Principal: fmt.Sprintf("m:%d", 50000+i*4+j), Source: src,
				ASN: asns[i%len(asns)], UserAgent: fmt.Sprintf("Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/%d.0.0.0 Safari/537.36", 118+i%4)}
			refs = append(refs, ref)
		}
		fx.sources[src] = 0
		out = append(out, mk(at, ent(event.EntitySource, src), "source_fanout", "login_failure_fanout", event.SeverityCritical, refs))
	}
	return out
}

// hijacks: one thief replaying n customers' stolen tokens, one alert per
// token, every `every`; each alert cites the replay, from the AS asn(i)
// with the user agent ua(i), and carries a finding of each kind.
func hijacks(fx *facts, prefix string, start time.Time, n int, every time.Duration, asn func(int) uint32, ua func(int) string, kinds ...string) []event.Alert {
	var out []event.Alert
	for i := range n {
		at := start.Add(time.Duration(i) * every)
		tok := ent(event.EntityToken, fmt.Sprintf("%stk-%d", prefix, i))
		src := ent(event.EntitySource, fmt.Sprintf("%s.%d.%d", prefix, i/200, i%200+1))
		ref := fmt.Sprintf("%s-replay-%d", prefix, i)
		fx.events[ref] = EventFacts{Success: true, Principal: fmt.Sprintf("m:%s%d", prefix, i), Token: tok.ID, Key: "prod-key",
			Source: src.ID, ASN: asn(i), UserAgent: ua(i)}
		a := mk(at, tok, "token_binding", kinds[0], event.SeverityCritical, []string{ref}, src)
		for _, k := range kinds[1:] {
			f := a.Findings[0]
			f.Kind = k
			a.Findings = append(a.Findings, f)
		}
		out = append(out, a)
	}
	return out
}

// from sets the country of the events alerts cite: country(i) for the
// i-th alert.
func from(fx *facts, alerts []event.Alert, country func(int) string) []event.Alert {
	for i := range alerts {
		for _, ref := range alerts[i].Findings[0].Evidence {
			ef := fx.events[ref]
			ef.Country = country(i)
			fx.events[ref] = ef
		}
	}
	return alerts
}

var appUAs = []string{
	"ExampleShop/8.4.1 (iPhone15,2; iOS 18.5) CFNetwork/1568.100.1 Darwin/24.0.0",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 18_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.5 Mobile/15E148 Safari/604.1",
	"ExampleShop/8.4.1 (Android 14; SM-S918N) okhttp/4.12.0",
}

func TestGroupStolenTokenCampaigns(t *testing.T) {
	day := 24 * time.Hour
	oneAS := func(n uint32) func(int) uint32 { return func(int) uint32 { return n } }
	rotating := func(i int) uint32 { return []uint32{4766, 9318, 17858, 7922}[i%4] }
	victimsApp := func(i int) string { return appUAs[i%len(appUAs)] }
	sg := func(int) string { return "SG" }
	jp := func(int) string { return "JP" }
	kr := func(int) string { return "KR" }
	script := func(i int) string { return fmt.Sprintf("python-requests/2.%d.0", 30+i%3) }
	cases := []struct {
		name string
		make func(*facts) []event.Alert
		want []int
	}{
		{
			name: "replays from one data centre's AS, days apart, victims' own apps, are one incident",
			make: func(fx *facts) []event.Alert {
				return hijacks(fx, "10.9", t0, 6, 3*day, oneAS(14061), victimsApp, "token_binding_country", "token_binding_hosting")
			},
			want: []int{6},
		},
		{
			name: "a script over rotating residential networks, days apart, is one incident",
			make: func(fx *facts) []event.Alert {
				return hijacks(fx, "10.8", t0, 8, 2*day, rotating, script, "token_binding_client")
			},
			want: []int{8},
		},
		{
			name: "a pause longer than TokenCampaignGap splits the campaign",
			make: func(fx *facts) []event.Alert {
				a := hijacks(fx, "10.7", t0, 2, day, oneAS(14061), victimsApp, "token_binding_hosting")
				return append(a, hijacks(fx, "10.6", t0.Add(DefaultTokenCampaignGap+3*day), 2, day, oneAS(14061), victimsApp, "token_binding_hosting")...)
			},
			want: []int{2, 2},
		},
		{
			name: "two data centres' ASes are two campaigns",
			make: func(fx *facts) []event.Alert {
				a := hijacks(fx, "10.7", t0, 3, day, oneAS(14061), victimsApp, "token_binding_hosting")
				return append(a, hijacks(fx, "10.6", t0.Add(time.Hour), 3, day, oneAS(16276), victimsApp, "token_binding_hosting")...)
			},
			want: []int{3, 3},
		},
		{
			// A thief renting servers near the victims from whichever
			// provider is at hand (issue 21, seed 2: three providers in
			// one country, the same provider seven days apart).
			name: "replays from several providers' data centres in one foreign country are one incident",
			make: func(fx *facts) []event.Alert {
				return from(fx, hijacks(fx, "10.9", t0, 9, 3*day, func(i int) uint32 { return []uint32{20473, 16276, 14061}[i%3] },
					victimsApp, "token_binding_country", "token_binding_hosting"), sg)
			},
			want: []int{9},
		},
		{
			// The campaign's activity keeps its keys joinable: a replay
			// from a provider the thief used eight days before, now in
			// another country, joins while the thief kept replaying from
			// its other providers in between (issue 21, seed 2).
			name: "a key stays joinable while its campaign is active through another",
			make: func(fx *facts) []event.Alert {
				a := from(fx, hijacks(fx, "10.9", t0, 4, 2*day+12*time.Hour, func(i int) uint32 { return []uint32{20473, 16276, 16276, 14061}[i] },
					victimsApp, "token_binding_country", "token_binding_hosting"), sg)
				return append(a, from(fx, hijacks(fx, "10.8", t0.Add(8*day), 1, day, oneAS(20473), victimsApp,
					"token_binding_country", "token_binding_hosting"), jp)...)
			},
			want: []int{5},
		},
		{
			// Twin: the same replay once the campaign has been quiet for
			// longer than TokenCampaignGap is another attack.
			name: "a key's alert after its campaign went quiet stays apart",
			make: func(fx *facts) []event.Alert {
				a := from(fx, hijacks(fx, "10.9", t0, 4, 12*time.Hour, func(i int) uint32 { return []uint32{20473, 16276, 16276, 14061}[i] },
					victimsApp, "token_binding_country", "token_binding_hosting"), sg)
				return append(a, from(fx, hijacks(fx, "10.8", t0.Add(2*day+DefaultTokenCampaignGap), 1, day, oneAS(20473), victimsApp,
					"token_binding_country", "token_binding_hosting"), jp)...)
			},
			want: []int{4, 1},
		},
		{
			// Hard benign: two thieves, or a thief and a customer's VPN
			// exit, in data centres in two countries the same week.
			name: "data centres in two foreign countries are two campaigns",
			make: func(fx *facts) []event.Alert {
				a := from(fx, hijacks(fx, "10.7", t0, 3, day, oneAS(14061), victimsApp, "token_binding_country", "token_binding_hosting"), sg)
				return append(a, from(fx, hijacks(fx, "10.6", t0.Add(time.Hour), 3, day, oneAS(16276), victimsApp, "token_binding_country", "token_binding_hosting"), jp)...)
			},
			want: []int{3, 3},
		},
		{
			// Hard benign: corporate proxies and VPN exits in the home
			// country — a crowd's data centres. Without a country finding
			// the use is not abroad, and only the AS joins.
			name: "data centres of several providers at home stay apart",
			make: func(fx *facts) []event.Alert {
				return from(fx, hijacks(fx, "10.5", t0, 3, day, func(i int) uint32 { return []uint32{9318, 38661, 4766}[i] },
					victimsApp, "token_binding_hosting"), kr)
			},
			want: []int{1, 1, 1},
		},
		{
			// Two attacks on the same foreign country's data centres weeks
			// apart, sharing nothing else, stay two.
			name: "a pause longer than TokenCampaignGap splits a country's campaign",
			make: func(fx *facts) []event.Alert {
				a := from(fx, hijacks(fx, "10.7", t0, 2, day, oneAS(14061), victimsApp, "token_binding_country", "token_binding_hosting"), sg)
				return append(a, from(fx, hijacks(fx, "10.6", t0.Add(DefaultTokenCampaignGap+3*day), 2, day, oneAS(16276), victimsApp,
					"token_binding_country", "token_binding_hosting"), sg)...)
			},
			want: []int{2, 2},
		},
		{
			// Hard benign next to an attack: customers behind a popular
			// VPN provider's data centres in the thief's country, the same
			// week, with the findings VPN users raise — a hosting network
			// or a new country for the principal (principal_geo), a token
			// used from two places (token_multi_location), a token bound on
			// the VPN and used abroad (token_binding_country alone) — stay
			// out of the thief's incident and apart from each other.
			name: "customers behind the thief's hosting AS with benign findings stay apart",
			make: func(fx *facts) []event.Alert {
				a := from(fx, hijacks(fx, "10.9", t0, 4, 2*day, oneAS(20473), victimsApp, "token_binding_country", "token_binding_hosting"), sg)
				for i, kind := range []string{"hosting_network", "new_country", "token_multi_location", "token_binding_country"} {
					ref := fmt.Sprintf("vpn-%d", i)
					fx.events[ref] = EventFacts{Success: true, Principal: fmt.Sprintf("m:vpn%d", i), Token: fmt.Sprintf("tk-vpn%d", i),
						Source: fmt.Sprintf("139.180.9.%d", i+1), ASN: 20473, Country: "SG", UserAgent: appUAs[i%len(appUAs)]}
					subject, detector := ent(event.EntityPrincipal, fmt.Sprintf("m:vpn%d", i)), "principal_geo"
					if i >= 2 {
						subject, detector = ent(event.EntityToken, fmt.Sprintf("tk-vpn%d", i)), "token_binding"
					}
					a = append(a, mk(t0.Add(time.Duration(i)*day+time.Hour), subject, detector, kind, event.SeverityHigh, []string{ref},
						ent(event.EntitySource, fmt.Sprintf("139.180.9.%d", i+1))))
				}
				return a
			},
			want: []int{4, 1, 1, 1, 1},
		},
		{
			// Hard benign: customers abroad on one carrier, with the same
			// phone and browser, days apart — a crowd's network and client.
			name: "travellers on one foreign carrier with the same client stay apart",
			make: func(fx *facts) []event.Alert {
				return hijacks(fx, "10.5", t0, 4, day, oneAS(2516), func(int) string { return appUAs[1] }, "token_binding_country")
			},
			want: []int{1, 1, 1, 1},
		},
		{
			// Hard benign next to an attack: a traveller on the residential
			// network the thief's script also used, the same week.
			name: "a traveller sharing the script's residential AS stays out of its campaign",
			make: func(fx *facts) []event.Alert {
				a := hijacks(fx, "10.8", t0, 4, day, oneAS(7922), script, "token_binding_country", "token_binding_client")
				return append(a, hijacks(fx, "10.4", t0.Add(36*time.Hour), 1, day, oneAS(7922), func(int) string { return appUAs[1] }, "token_binding_country")...)
			},
			want: []int{4, 1},
		},
		{
			// A browser copied by the thief is a crowd's client: the client
			// key only comes from token_binding_client, whose use is a program.
			name: "country alerts sharing a browser family do not join",
			make: func(fx *facts) []event.Alert {
				return hijacks(fx, "10.3", t0, 3, day, rotating, func(int) string { return appUAs[1] }, "token_binding_country")
			},
			want: []int{1, 1, 1},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFacts()
			alerts := tc.make(fx)
			var sizes []int
			for _, in := range Group(alerts, fx, Options{}) {
				sizes = append(sizes, len(in.AlertIDs))
			}
			slices.SortFunc(sizes, func(x, y int) int { return y - x })
			if !slices.Equal(sizes, tc.want) {
				t.Fatalf("incident sizes %v, want %v", sizes, tc.want)
			}
		})
	}
}

func TestGroup(t *testing.T) {
	cases := []struct {
		name string
		make func(*facts) []event.Alert
		// want: alerts per incident, largest first.
		want []int
		// apart: alert subjects that must land in different incidents.
		apart [][2]event.EntityKey
	}{
		{
			name: "ghost-key flood is one incident",
			make: func(fx *facts) []event.Alert { return ghostKey(fx, "", t0, 400) },
			want: []int{400},
		},
		{
			name: "stuffing over 200 addresses in two ASes with one UA family is one incident",
			make: func(fx *facts) []event.Alert { return stuffing(fx, "10.1", t0, 200, []uint32{7922, 45899}) },
			want: []int{200},
		},
		{
			name: "two stuffing waves a day apart are two incidents",
			make: func(fx *facts) []event.Alert {
				return append(stuffing(fx, "10.1", t0, 50, []uint32{7922}), stuffing(fx, "10.2", t0.Add(24*time.Hour), 50, []uint32{7922})...)
			},
			want: []int{50, 50},
		},
		{
			name: "two attacks sharing a popular CGNAT address are two incidents",
			make: func(fx *facts) []event.Alert {
				cgnat := ent(event.EntitySource, "100.64.1.1")
				fx.sources[cgnat.ID] = 5000
				tok := ent(event.EntityToken, "tk-hijacked")
				insider := ent(event.EntityPrincipal, "e:1016")
				return []event.Alert{
					mk(t0, tok, "token_binding", "token_binding_country", event.SeverityCritical, nil, cgnat),
					mk(t0.Add(time.Hour), tok, "token_binding", "token_multi_location", event.SeverityCritical, nil, cgnat),
					mk(t0.Add(2*time.Hour), insider, "record_volume", "record_volume", event.SeverityCritical, nil, cgnat),
				}
			},
			want:  []int{2, 1},
			apart: [][2]event.EntityKey{{ent(event.EntityToken, "tk-hijacked"), ent(event.EntityPrincipal, "e:1016")}},
		},
		{
			name: "a source named by more than HubFanIn subjects glues nothing",
			make: func(fx *facts) []event.Alert {
				src := ent(event.EntitySource, "203.0.113.9") // unknown to Facts
				var out []event.Alert
				for i := range 5 {
					out = append(out, mk(t0.Add(time.Duration(i)*time.Minute), ent(event.EntityPrincipal, fmt.Sprintf("e:%d", i)),
						"principal_geo", "new_network", event.SeverityHigh, nil, src))
				}
				return out
			},
			want: []int{1, 1, 1, 1, 1},
		},
		{
			name: "a customer both hijacked and a stuffing victim does not glue the two attacks",
			make: func(fx *facts) []event.Alert {
				cust := ent(event.EntityPrincipal, "m:50001") // also one of the stuffing's victims
				tok := ent(event.EntityToken, "tk-of-m50001")
				fx.events["hijack-1"] = EventFacts{Success: true, Principal: cust.ID, Token: tok.ID, Key: "prod-key", Source: "139.180.1.1", ASN: 20473, UserAgent: "curl/8.0"}
				out := stuffing(fx, "10.1", t0, 30, []uint32{7922})
				out = append(out,
					mk(t0.Add(5*time.Minute), tok, "token_binding", "token_binding_hosting", event.SeverityCritical, []string{"hijack-1"}, ent(event.EntitySource, "139.180.1.1")),
					mk(t0.Add(6*time.Minute), cust, "principal_geo", "impossible_travel", event.SeverityHigh, []string{"hijack-1"}),
					// Both read the same popular record: records glue nothing.
					mk(t0.Add(7*time.Minute), cust, "canary", "canary_record_access", event.SeverityCritical, nil, ent(event.EntityRecord, "customer:1")),
				)
				out[0].Findings[0].Related = append(out[0].Findings[0].Related, ent(event.EntityRecord, "customer:1"))
				return out
			},
			want:  []int{30, 3},
			apart: [][2]event.EntityKey{{ent(event.EntityToken, "tk-of-m50001"), ent(event.EntitySource, "10.1.0.1")}},
		},
		{
			name: "a production key in evidence glues nothing unless accused",
			make: func(fx *facts) []event.Alert {
				var out []event.Alert
				for i := range 3 {
					ref := fmt.Sprintf("ok-%d", i)
					fx.events[ref] = EventFacts{Success: true, Principal: fmt.Sprintf("e:%d", i), Key: "prod-key", Token: fmt.Sprintf("tk-%d", i)}
					out = append(out, mk(t0.Add(time.Duration(i)*time.Hour), ent(event.EntityPrincipal, fmt.Sprintf("e:%d", i)),
						"record_volume", "record_volume", event.SeverityHigh, []string{ref}))
				}
				return out
			},
			want: []int{1, 1, 1},
		},
		{
			name: "the ghost key and a stuffing wave at the same time stay apart",
			make: func(fx *facts) []event.Alert {
				out := append(ghostKey(fx, "g-", t0, 100), stuffing(fx, "10.1", t0.Add(time.Hour), 100, []uint32{20473})...)
				// The forger also impersonated one of the bots' victims,
				// minutes apart: a victim joins only alerts of one behaviour.
				ef := fx.events["g-ev-11"]
				ef.Principal = "m:50000"
				fx.events["g-ev-11"] = ef
				return out
			},
			want: []int{100, 100},
		},
		{
			name: "a network's campaign alert joins its bots' alerts; a CGNAT address of the same carrier does not",
			make: func(fx *facts) []event.Alert {
				out := stuffing(fx, "10.1", t0, 20, []uint32{7922})
				cgnat := ent(event.EntitySource, "100.64.9.9")
				fx.sources[cgnat.ID] = 500 // hundreds of the carrier's customers log in through it
				var refs []string
				for j := range 3 {
					ref := fmt.Sprintf("net-login-%d", j)
					fx.events[ref] = EventFacts{Principal: fmt.Sprintf("m:%d", 90000+j), Source: fmt.Sprintf("10.9.0.%d", j),
						ASN: 7922, UserAgent: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/119.0.0.0 Safari/537.36"}
					refs = append(refs, ref)
				}
				// The network's alert names bots it saw that no alert is
				// about, and the CGNAT address (a few of its customers gave
				// up): it joins the bots' alerts through their AS, not
				// through the CGNAT address.
				netw := mk(t0.Add(10*time.Minute), ent("network", "AS7922"), "login_campaign", "login_failure_campaign", event.SeverityCritical,
					refs, ent(event.EntitySource, "10.9.0.0"), cgnat)
				// A follow-up names a token minted to a bot.
				netw.Findings = append(netw.Findings, event.Finding{Detector: "login_campaign", Kind: "login_failure_campaign",
					Entity: netw.Entity, Time: t0.Add(20 * time.Minute), Score: 90, Severity: event.SeverityCritical,
					Related: []event.EntityKey{ent(event.EntitySource, "10.9.0.1"), ent(event.EntityToken, "tk-bot-1")}})
				fx.events["cg-1"] = EventFacts{Principal: "m:70001", Source: cgnat.ID, ASN: 7922,
					UserAgent: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120.0.0.0 Safari/537.36"}
				fx.events["cg-2"] = EventFacts{Principal: "m:70002", Source: cgnat.ID, ASN: 7922,
					UserAgent: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/121.0.0.0 Safari/537.36"}
				return append(out, netw,
					// The CGNAT address's own failed-login alert, in the same
					// hour, same AS and browsers.
					mk(t0.Add(15*time.Minute), cgnat, "source_fanout", "login_failure_fanout", event.SeverityHigh, []string{"cg-1", "cg-2"}),
					// A session alert about the token the follow-up names.
					mk(t0.Add(30*time.Minute), ent(event.EntityToken, "tk-bot-1"), "token_binding", "token_binding_country", event.SeverityHigh, nil))
			},
			want:  []int{22, 1},
			apart: [][2]event.EntityKey{{ent("network", "AS7922"), ent(event.EntitySource, "100.64.9.9")}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFacts()
			alerts := tc.make(fx)
			incs := Group(alerts, fx, Options{})
			var sizes []int
			where := map[event.EntityKey]map[string]bool{}
			for _, in := range incs {
				sizes = append(sizes, len(in.AlertIDs))
				for _, e := range in.Timeline {
					if where[e.Entity] == nil {
						where[e.Entity] = map[string]bool{}
					}
					where[e.Entity][in.ID] = true
				}
			}
			slices.SortFunc(sizes, func(x, y int) int { return y - x })
			if !slices.Equal(sizes, tc.want) {
				t.Fatalf("incident sizes %v, want %v", sizes, tc.want)
			}
			for _, p := range tc.apart {
				for id := range where[p[0]] {
					if where[p[1]][id] {
						t.Errorf("%s and %s share incident %s", p[0], p[1], id)
					}
				}
			}
			// Any order of the same alerts gives the same incidents.
			r := rand.New(rand.NewPCG(1, 2))
			for range 3 {
				shuffled := slices.Clone(alerts)
				r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
				again := Group(shuffled, fx, Options{})
				a, _ := json.Marshal(incs)
				b, _ := json.Marshal(again)
				if string(a) != string(b) {
					t.Fatal("shuffled alerts give different incidents")
				}
			}
		})
	}
}

// TestGolden pins an incident's form: id, title, timeline and graph of a
// small ghost-key attack.
func TestGolden(t *testing.T) {
	fx := newFacts()
	incs := Group(ghostKey(fx, "", t0, 12), fx, Options{})
	got, err := json.MarshalIndent(incs, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join("testdata", "ghost_key.golden.json")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update)", err)
	}
	if string(got) != string(want) {
		t.Errorf("incidents differ from %s (run with -update and review the diff):\n%s", path, got)
	}
}

func TestIDFollowsFounder(t *testing.T) {
	fx := newFacts()
	alerts := ghostKey(fx, "", t0, 30)
	first := Group(alerts, fx, Options{})
	// A replay gives the same ID; dropping later alerts keeps it.
	again := Group(alerts[:10], fx, Options{})
	if len(first) != 1 || len(again) != 1 || first[0].ID != again[0].ID || first[0].ID != IDFor(alerts[0].ID) {
		t.Fatalf("ids %v / %v, want one incident %s", first, again, IDFor(alerts[0].ID))
	}
}

func TestWithdrawnAndDuplicates(t *testing.T) {
	fx := newFacts()
	alerts := ghostKey(fx, "", t0, 5)
	w := alerts[1]
	w.State = event.AlertWithdrawn
	alerts = append(alerts, alerts[2]) // the same alert twice
	alerts[1] = w
	incs := Group(alerts, fx, Options{})
	if len(incs) != 1 || len(incs[0].AlertIDs) != 4 {
		t.Fatalf("got %d incidents, first with %v; want 1 with 4 alerts", len(incs), incs[0].AlertIDs)
	}
	if got := Group(nil, nil, Options{}); got == nil || len(got) != 0 {
		t.Fatalf("no alerts: %v, want an empty list", got)
	}
}

func TestUAFamily(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"python-requests/2.31.0", "python-requests/#.#.#"},
		{"python-requests/2.32.3", "python-requests/#.#.#"},
		{"Mozilla/5.0 (Windows NT 10.0) Chrome/124.0.0.0", "mozilla/#.# (windows nt #.#) chrome/#.#.#.#"},
		{"  ", ""},
	} {
		if got := UAFamily(c.in); got != c.want {
			t.Errorf("UAFamily(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
