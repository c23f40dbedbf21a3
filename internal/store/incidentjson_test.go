package store

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/event"
)

// jsonTexts are strings encoding/json writes otherwise than as they are,
// and some it does not.
var jsonTexts = []string{"", "plain", "m:1001", "10.0.0.1", `quo"te`, `back\slash`, "<script>&amp;", "tab\tnew\nline\r",
	"\x00\x01\x1f\x7f", "한국어", "\u2028\u2029", "bad \xff\xfe utf-8", "emoji 🙂", "a&b", "a<b", "x>y", "\\u003c"}

// jsonTimes are times in other zones, with monotonic readings, at the
// limits MarshalJSON accepts and past them.
var jsonTimes = []time.Time{
	{},
	time.Date(2025, 6, 4, 5, 6, 7, 891011121, time.UTC),
	time.Date(2025, 6, 4, 5, 6, 7, 0, time.FixedZone("KST", 9*3600)),
	time.Date(2025, 6, 4, 5, 6, 7, 100, time.FixedZone("odd", -(3*3600+30*60+15))),
	time.Now(),
	time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
	time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), // MarshalJSON refuses it
	time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
	time.Date(2025, 1, 1, 0, 0, 0, 0, time.FixedZone("far", 25*3600)),
}

func randomScope(r *rand.Rand, depth int) *IncidentScope {
	sc := &IncidentScope{}
	if r.IntN(6) > 0 {
		sc.Terms = randomTerms(r, depth)
	}
	if r.IntN(3) == 0 {
		sc.LeftOut = []ScopeLeftOut{}
		for range r.IntN(4) {
			sc.LeftOut = append(sc.LeftOut, ScopeLeftOut{Entity: randomEntity(r), Why: jsonTexts[r.IntN(len(jsonTexts))]})
		}
	}
	return sc
}

func randomEntity(r *rand.Rand) event.EntityKey {
	return event.EntityKey{Kind: event.EntityKind(jsonTexts[r.IntN(len(jsonTexts))]), ID: jsonTexts[r.IntN(len(jsonTexts))]}
}

func randomTerms(r *rand.Rand, depth int) []ScopeTerm {
	ts := []ScopeTerm{}
	for range r.IntN(5) {
		t := ScopeTerm{Entity: randomEntity(r), From: jsonTimes[r.IntN(6)], To: jsonTimes[r.IntN(6)],
			Why: jsonTexts[r.IntN(len(jsonTexts))]}
		if depth > 0 && r.IntN(2) == 0 {
			t.Within = randomTerms(r, depth-1)
		}
		ts = append(ts, t)
	}
	return ts
}

// TestEncodeIncidentEntities: the entities column encodeIncidentEntities
// writes is json.Marshal's byte for byte — over random scopes with every
// kind of text encoding/json escapes, times in other zones and with
// monotonic readings, nil and empty lists — and it refuses what
// json.Marshal refuses (times MarshalJSON cannot write).
func TestEncodeIncidentEntities(t *testing.T) {
	r := rand.New(rand.NewPCG(22, 36))
	for i := range 2000 {
		var ents []event.EntityKey
		if r.IntN(4) > 0 {
			ents = []event.EntityKey{}
			for range r.IntN(4) {
				ents = append(ents, randomEntity(r))
			}
		}
		sc := randomScope(r, 2)
		want, werr := json.Marshal(incidentEntities{Entities: ents, Scope: sc})
		got, gerr := encodeIncidentEntities(ents, sc)
		if werr != nil || gerr != nil {
			t.Fatalf("case %d: errors %v, %v", i, werr, gerr)
		}
		if string(got) != string(want) {
			t.Fatalf("case %d:\n got %s\nwant %s", i, got, want)
		}
	}
	for _, tm := range jsonTimes {
		sc := &IncidentScope{Terms: []ScopeTerm{{From: tm, To: tm, Within: []ScopeTerm{{From: tm}}}}}
		want, werr := json.Marshal(incidentEntities{Entities: []event.EntityKey{}, Scope: sc})
		got, gerr := encodeIncidentEntities([]event.EntityKey{}, sc)
		if (werr != nil) != (gerr != nil) || string(got) != string(want) {
			t.Errorf("time %v: got %s, %v; want %s, %v", tm, got, gerr, want, werr)
		}
	}
}

// FuzzEncodeIncidentEntities: any texts encode as json.Marshal does.
func FuzzEncodeIncidentEntities(f *testing.F) {
	for _, s := range jsonTexts {
		f.Add(s, s, int64(0))
	}
	f.Fuzz(func(t *testing.T, kind, text string, nanos int64) {
		at := time.Unix(0, nanos)
		sc := &IncidentScope{Terms: []ScopeTerm{{Entity: event.EntityKey{Kind: event.EntityKind(kind), ID: text}, From: at, To: at,
			Within: []ScopeTerm{{Why: text}}, Why: kind}}, LeftOut: []ScopeLeftOut{{Why: text}}}
		ents := []event.EntityKey{{Kind: event.EntityKind(text), ID: kind}}
		want, werr := json.Marshal(incidentEntities{Entities: ents, Scope: sc})
		got, gerr := encodeIncidentEntities(ents, sc)
		if (werr != nil) != (gerr != nil) || string(got) != string(want) {
			t.Fatalf("%s", fmt.Sprintf("got %s, %v; want %s, %v", got, gerr, want, werr))
		}
	})
}
