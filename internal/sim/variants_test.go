package sim

import (
	"bytes"
	"io"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/decode"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/truth"
)

func TestVariantsDeterministic(t *testing.T) {
	o := Options{Seed: 7, Days: 3, Customers: 5000, Variants: true}
	a, ta := run(t, o)
	b, tb := run(t, o)
	if !bytes.Equal(a, b) || !reflect.DeepEqual(ta, tb) {
		t.Fatal("same options with variants, different output or truth")
	}
	c, tc := run(t, Options{Seed: 7, Days: 3, Customers: 5000})
	if bytes.Equal(a, c) {
		t.Fatal("variants on and off gave the same stream")
	}
	for _, s := range tc.Scenarios {
		if s.Variant != "" {
			t.Errorf("%s: canonical run names a variant %q", s.Name, s.Variant)
		}
	}
	notes := map[string]string{}
	for _, s := range ta.Scenarios {
		if s.Variant == "" {
			t.Errorf("%s: no variant named", s.Name)
		}
		notes[s.Name] = s.Variant
	}
	_, t8 := run(t, Options{Seed: 8, Days: 3, Customers: 5000, Variants: true})
	same := 0
	for _, s := range t8.Scenarios {
		if notes[s.Name] == s.Variant {
			same++
		}
	}
	if same == len(t8.Scenarios) {
		t.Error("seeds 7 and 8 drew the same variant of every scenario")
	}
}

var eventID = regexp.MustCompile(`"event":\{"id":"sim-[0-9]+",`)

// lines returns the stream's lines without their event ids, sorted.
func lines(b []byte) []string {
	out := strings.Split(string(eventID.ReplaceAll(b, []byte(`"event":{`))), "\n")
	slices.Sort(out)
	return out
}

// TestNewerClassesLeaveTheRestAlone: the newer classes run on their own
// random stream, so adding them changes no other event (only the ids,
// which number the merged stream).
func TestNewerClassesLeaveTheRestAlone(t *testing.T) {
	for _, variants := range []bool{false, true} {
		classic := ScenarioNames()[:6]
		a, _ := run(t, Options{Seed: 5, Days: 2, Customers: 4000, Scenarios: classic, Variants: variants})
		b, tb := run(t, Options{Seed: 5, Days: 2, Customers: 4000, Variants: variants})
		if len(tb.Scenarios) != len(ScenarioNames()) {
			t.Fatalf("variants %v: %d scenarios, want %d", variants, len(tb.Scenarios), len(ScenarioNames()))
		}
		all := lines(b)
		for _, l := range lines(a) {
			if _, ok := slices.BinarySearch(all, l); !ok {
				t.Fatalf("variants %v: with the newer scenarios, this event is gone: %s", variants, l)
			}
		}
	}
}

// TestVariantsMeanTheScenario: over several seeds, each drawn variant is
// still the attack it names.
func TestVariantsMeanTheScenario(t *testing.T) {
	seoul := time.FixedZone("KST", 9*3600)
	seeds := uint64(4)
	if raceEnabled {
		seeds = 1 // eight days each, on one goroutine
	}
	for seed := uint64(1); seed <= seeds; seed++ {
		out, tr := run(t, Options{Seed: seed, Days: 8, Customers: 6000, Variants: true})
		if len(tr.Scenarios) != len(ScenarioNames()) {
			t.Fatalf("seed %d: %d scenarios", seed, len(tr.Scenarios))
		}
		mal := map[string]string{}
		for _, s := range tr.Scenarios {
			if len(s.MaliciousEventIDs) == 0 || len(s.AttackerEntities) == 0 || s.RecordsTouched == 0 {
				t.Errorf("seed %d %s: %d events, %d entities, %d records", seed, s.Name, len(s.MaliciousEventIDs), len(s.AttackerEntities), s.RecordsTouched)
			}
			for _, id := range s.MaliciousEventIDs {
				mal[id] = s.Name
			}
		}
		benign := map[string]string{}
		for _, b := range tr.HardBenign {
			for _, id := range b.EventIDs {
				benign[id] = b.Name
			}
		}
		type mint struct {
			at  time.Time
			src event.Source
		}
		mints := map[string]mint{}
		var workloadASN uint32
		r := decode.NewReader(bytes.NewReader(out), 0, 0)
		var ev event.Event
		for {
			err := r.Next(&ev)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if ev.Dataset == event.DatasetToken && ev.Action == event.ActionTokenIssued {
				mints[ev.Token.ID] = mint{ev.Time, ev.Source}
			}
			switch name := mal[ev.ID]; {
			case benign[ev.ID] == "instance-credentials-in-provider":
				workloadASN = ev.Source.ASN
			case name == "cloud-credential-theft":
				if !strings.HasPrefix(ev.Token.ID, "ASIA") || !strings.HasPrefix(ev.User.Name, "i-") || ev.Dataset != "aws.cloudtrail" {
					t.Errorf("seed %d: cloud theft event without instance-role credentials: %+v", seed, ev)
				}
				if ev.Source.ASN == 16509 && ev.Source.Country == "KR" {
					t.Errorf("seed %d: cloud theft from the workload's own network %v", seed, ev.Source.IP)
				}
			case name == "token-hijack":
				m, ok := mints[ev.Token.ID]
				if !ok || !m.at.Before(ev.Time) {
					t.Errorf("seed %d: hijacked token %s used before its mint", seed, ev.Token.ID)
				} else if m.src.IP == ev.Source.IP {
					t.Errorf("seed %d: hijacked token replayed from its own mint address", seed)
				}
			case name == "privileged-takeover" && ev.Dataset == event.DatasetLogin:
				if h := ev.Time.In(seoul).Hour(); h > 5 && h < 22 {
					t.Errorf("seed %d: takeover login at %02d:xx Seoul", seed, h)
				}
			case benign[ev.ID] == "token-roams-within-carrier" && ev.Dataset == event.DatasetGateway:
				m := mints[ev.Token.ID]
				if m.src.ASN != ev.Source.ASN || m.src.Country != ev.Source.Country {
					t.Errorf("seed %d: a roaming token left its carrier: %v → %v", seed, m.src, ev.Source)
				}
			}
		}
		if workloadASN != 16509 {
			t.Errorf("seed %d: the workload's own use is not in AWS (AS %d)", seed, workloadASN)
		}
		for _, name := range []string{"token-roams-within-carrier", "instance-credentials-in-provider", "admin-weekend-maintenance", "approved-large-export"} {
			if !slices.ContainsFunc(tr.HardBenign, func(b truth.Benign) bool { return b.Name == name && len(b.EventIDs) > 0 }) {
				t.Errorf("seed %d: hard benign %s missing", seed, name)
			}
		}
	}
}
