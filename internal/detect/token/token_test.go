package token_test

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/decode"
	"github.com/haechi-sec/haechi/internal/detect/detecttest"
	"github.com/haechi-sec/haechi/internal/detect/token"
	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
)

func TestGolden(t *testing.T) {
	detecttest.Golden(t, "testdata", func() []engine.Detector {
		return []engine.Detector{token.New(token.Options{ClockSkew: time.Minute})}
	})
}

func TestKey(t *testing.T) {
	d := token.New(token.Options{})
	tok := event.Token{ID: "tk-1", KeyID: "k1"}
	for _, tc := range []struct {
		name string
		ev   event.Event
		ok   bool
	}{
		{"use", event.Event{Dataset: event.DatasetGateway, Action: "read", Token: tok}, true},
		{"use success", event.Event{Dataset: event.DatasetGateway, Action: "read", Outcome: event.OutcomeSuccess, Token: tok}, true},
		{"use rejected", event.Event{Dataset: event.DatasetGateway, Action: "read", Outcome: event.OutcomeFailure, Token: tok}, false},
		{"use without token", event.Event{Dataset: event.DatasetGateway, Action: "read"}, false},
		{"mint", event.Event{Dataset: event.DatasetToken, Action: event.ActionTokenIssued, Token: tok}, true},
		{"failed mint", event.Event{Dataset: event.DatasetToken, Action: event.ActionTokenIssued, Outcome: event.OutcomeFailure, Token: tok}, false},
		{"token revoked", event.Event{Dataset: event.DatasetToken, Action: "token.revoked", Token: tok}, false},
		{"login with token", event.Event{Dataset: event.DatasetLogin, Action: "login", Token: tok}, false},
	} {
		key, ok := d.Key(&tc.ev)
		if ok != tc.ok {
			t.Errorf("%s: ok = %v, want %v", tc.name, ok, tc.ok)
		}
		if ok && key != (event.EntityKey{Kind: event.EntityToken, ID: "tk-1"}) {
			t.Errorf("%s: key = %v", tc.name, key)
		}
		if d.Broadcast(&tc.ev) {
			t.Errorf("%s: broadcast", tc.name)
		}
	}
	inv := &event.Event{Dataset: event.DatasetKeys, Action: event.ActionKeyCreated, Key: event.Key{ID: "k1"}}
	if !d.Broadcast(inv) {
		t.Error("key inventory event not broadcast")
	}
	if d.Broadcast(&event.Event{Dataset: event.DatasetKeys, Action: event.ActionKeyCreated}) {
		t.Error("inventory event without key.id broadcast")
	}
}

func TestKeyDoesNotAllocate(t *testing.T) {
	d := token.New(token.Options{})
	use := &event.Event{Dataset: event.DatasetGateway, Action: "read", Token: event.Token{ID: "tk-1", KeyID: "k1"}}
	other := &event.Event{Dataset: event.DatasetLogin, Action: "login", User: event.User{ID: "m:1"}}
	if n := testing.AllocsPerRun(100, func() {
		d.Key(use)
		d.Key(other)
		d.Broadcast(use)
	}); n != 0 {
		t.Fatalf("Key allocates %.0f times per event", n)
	}
}

// TestInventory covers the ways the key feed says a key is retired.
func TestInventory(t *testing.T) {
	const use = `{"@timestamp":"2025-05-02T00:00:00Z","event":{"id":"use","dataset":"gateway.access","action":"read"},"user":{"id":"m:1"},"token":{"id":"tk-1","key_id":"k1"}}
{"@timestamp":"2025-05-02T00:00:00Z","event":{"dataset":"auth.token","action":"token.issued"},"token":{"id":"tk-1","key_id":"k1"}}
`
	for _, tc := range []struct {
		name, inventory string
		want            string // kinds, comma-separated
	}{
		{"active", `{"@timestamp":"2025-01-01T00:00:00Z","event":{"dataset":"keys.inventory","action":"key.created"},"key":{"id":"k1","status":"active"}}`, ""},
		{"retired action", `{"@timestamp":"2025-05-01T00:00:00Z","event":{"dataset":"keys.inventory","action":"key.retired"},"key":{"id":"k1"}}`, token.KindKeyRetired},
		{"retired status", `{"@timestamp":"2025-05-01T00:00:00Z","event":{"dataset":"keys.inventory","action":"key.updated"},"key":{"id":"k1","status":"retired"}}`, token.KindKeyRetired},
		{"retired_at", `{"@timestamp":"2025-01-01T00:00:00Z","event":{"dataset":"keys.inventory","action":"key.created"},"key":{"id":"k1","status":"active","retired_at":"2025-05-01T00:00:00Z"}}`, token.KindKeyRetired},
		{"retired after use", `{"@timestamp":"2025-06-01T00:00:00Z","event":{"dataset":"keys.inventory","action":"key.retired"},"key":{"id":"k1"}}`, ""},
		{"other key", `{"@timestamp":"2025-01-01T00:00:00Z","event":{"dataset":"keys.inventory","action":"key.created"},"key":{"id":"k2"}}`, token.KindUnknownKey},
	} {
		got := detecttest.Findings(t, strings.NewReader(tc.inventory+"\n"+use), 2, token.New(token.Options{}))
		var kinds []string
		for _, f := range got {
			kinds = append(kinds, f.Kind)
			if f.Entity != (event.EntityKey{Kind: event.EntitySigningKey, ID: "k1"}) || !f.Immediate || f.Severity != event.SeverityCritical {
				t.Errorf("%s: finding %+v is not a critical immediate finding about key k1", tc.name, f)
			}
		}
		if strings.Join(kinds, ",") != tc.want {
			t.Errorf("%s: kinds %v, want %q", tc.name, kinds, tc.want)
		}
	}
}

// TestRetiredKeyClockSkew: at the retirement boundary a token minted by the
// retired key, or used past its expiry, is judged with ClockSkew's tolerance
// — issued 40 s after the retirement or used 30 s past its expiry is within
// a minute's skew and not within none. tk-d's mint is logged 2m40s after
// the issue time it states: the issuer's logging delay is not issuance.
func TestRetiredKeyClockSkew(t *testing.T) {
	const events = `{"@timestamp":"2025-01-01T00:00:00Z","event":{"dataset":"keys.inventory","action":"key.created"},"key":{"id":"k-old","status":"active"}}
{"@timestamp":"2025-04-30T22:00:00Z","event":{"dataset":"auth.token","action":"token.issued"},"token":{"id":"tk-a","key_id":"k-old","issued_at":"2025-04-30T22:00:00Z","expires_at":"2025-05-01T01:00:00Z"}}
{"@timestamp":"2025-05-01T00:00:00Z","event":{"dataset":"keys.inventory","action":"key.retired"},"key":{"id":"k-old","status":"retired","retired_at":"2025-05-01T00:00:00Z"}}
{"@timestamp":"2025-05-01T00:00:40Z","event":{"dataset":"auth.token","action":"token.issued"},"token":{"id":"tk-c","key_id":"k-old","issued_at":"2025-05-01T00:00:40Z","expires_at":"2025-05-01T12:00:40Z"}}
{"@timestamp":"2025-05-01T00:02:00Z","event":{"id":"use-c","dataset":"gateway.access","action":"read"},"token":{"id":"tk-c","key_id":"k-old"}}
{"@timestamp":"2025-05-01T00:03:00Z","event":{"id":"use-d","dataset":"gateway.access","action":"read"},"token":{"id":"tk-d","key_id":"k-old","issued_at":"2025-05-01T00:00:50Z"}}
{"@timestamp":"2025-05-01T00:03:30Z","event":{"dataset":"auth.token","action":"token.issued"},"token":{"id":"tk-d","key_id":"k-old","issued_at":"2025-05-01T00:00:50Z"}}
{"@timestamp":"2025-05-01T01:00:30Z","event":{"id":"use-a","dataset":"gateway.access","action":"read"},"token":{"id":"tk-a","key_id":"k-old"}}
`
	for _, tc := range []struct {
		skew time.Duration
		want string // evidence of the token_key_retired findings
	}{
		{time.Minute, ""},
		{0, "use-c,use-d,use-a"},
	} {
		got := detecttest.Findings(t, strings.NewReader(events), 2, token.New(token.Options{ClockSkew: tc.skew}))
		var refs []string
		for _, f := range got {
			if f.Kind == token.KindKeyRetired {
				refs = append(refs, f.Evidence[0])
			}
		}
		if strings.Join(refs, ",") != tc.want {
			t.Errorf("skew %v: retired-key findings on %v, want %q", tc.skew, refs, tc.want)
		}
	}
}

// TestLateness: the detector waits its own Lateness after the first use.
func TestLateness(t *testing.T) {
	const events = `{"@timestamp":"2025-05-02T00:00:00Z","event":{"id":"use","dataset":"gateway.access","action":"read"},"token":{"id":"tk-1","issued_at":"2025-05-02T00:00:00Z"}}
{"@timestamp":"2025-05-02T00:16:00Z","event":{"dataset":"auth.login","action":"login"},"user":{"id":"m:2"}}
{"@timestamp":"2025-05-02T00:00:00Z","event":{"dataset":"auth.token","action":"token.issued"},"token":{"id":"tk-1"}}
`
	for _, tc := range []struct {
		lateness time.Duration
		want     int
	}{
		{0, 1},                // default 5m: the watermark (00:11) passes 00:05
		{15 * time.Minute, 0}, // the mint arrives before the watermark passes 00:15
	} {
		got := detecttest.Findings(t, strings.NewReader(events), 1, token.New(token.Options{Lateness: tc.lateness}))
		// A verdict the late mint then withdraws (TestWithdrawal) counts
		// as one: the lateness decided when it was made.
		got = slices.DeleteFunc(got, func(f event.Finding) bool { return f.Withdraws != 0 })
		if len(got) != tc.want {
			t.Errorf("lateness %v: %d findings, want %d: %+v", tc.lateness, len(got), tc.want, got)
		}
	}
}

// TestTokensMintedBeforeWatching: uses of tokens that may have been minted
// before haechi saw its first event are not judged never-minted.
func TestTokensMintedBeforeWatching(t *testing.T) {
	const events = `{"@timestamp":"2025-05-02T00:00:00Z","event":{"id":"start","dataset":"auth.login","action":"login"},"user":{"id":"m:0"}}
{"@timestamp":"2025-05-02T00:01:00Z","event":{"id":"claims-before","dataset":"gateway.access","action":"read"},"token":{"id":"tk-old","issued_at":"2025-05-01T23:00:00Z"}}
{"@timestamp":"2025-05-02T00:02:00Z","event":{"id":"no-claim-early","dataset":"gateway.access","action":"read"},"token":{"id":"tk-nc"}}
{"@timestamp":"2025-05-02T00:03:00Z","event":{"id":"claims-after","dataset":"gateway.access","action":"read"},"token":{"id":"tk-new","issued_at":"2025-05-02T00:02:59Z"}}
{"@timestamp":"2025-05-03T00:30:00Z","event":{"id":"no-claim-late","dataset":"gateway.access","action":"read"},"token":{"id":"tk-nc2"}}
{"@timestamp":"2025-05-03T01:00:00Z","event":{"id":"end","dataset":"auth.login","action":"login"},"user":{"id":"m:0"}}
`
	got := detecttest.Findings(t, strings.NewReader(events), 2, token.New(token.Options{}))
	var refs []string
	for _, f := range got {
		refs = append(refs, f.Evidence[0])
	}
	if strings.Join(refs, ",") != "claims-after,no-claim-late" {
		t.Fatalf("never-minted findings for %v, want claims-after and no-claim-late", refs)
	}
}

// TestIssuerRuleSkew: the first half of the hard-benign twin of
// testdata/issuer_rule holds thanks to MintSkew — with a skew smaller than
// the issuer stream's disorder (a mint 20 s after its use, behind a mint
// 25 s after it) that genuine token is judged never minted. The second half
// (the issuer's stream behind the gateway's by two minutes, then catching
// up) holds whatever the skew: the verdict waits for the issuer's own
// stream, not for the newest event time.
func TestIssuerRuleSkew(t *testing.T) {
	events, err := os.ReadFile("testdata/issuer_rule_benign/events.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		opts token.Options
		want string // evidence of the never-minted findings, then the figure
	}{
		{"default skew", token.Options{}, ""},
		{"skew 5s", token.Options{MintSkew: 5 * time.Second}, "use-trailing mint_skew_seconds"},
		{"skew 1s", token.Options{MintSkew: time.Second}, "use-trailing mint_skew_seconds"},
	} {
		for _, shards := range []int{1, 3} {
			got := detecttest.Findings(t, strings.NewReader(string(events)), shards, token.New(tc.opts))
			var refs []string
			for _, f := range got {
				if f.Kind != token.KindNeverMinted || len(f.Figures) != 1 {
					t.Fatalf("%s: unexpected finding %+v", tc.name, f)
				}
				refs = append(refs, f.Evidence[0]+" "+f.Figures[0].Name)
			}
			if strings.Join(refs, ",") != tc.want {
				t.Errorf("%s, %d shards: %q, want %q", tc.name, shards, strings.Join(refs, ","), tc.want)
			}
		}
	}
}

// TestIssuerRuleBatching: which rule decides does not depend on how the
// events are batched. The issuer's stream is silent for ten minutes after
// a forged token's use; when the watermark passes the use + lateness
// before the stream passes the token's deadline, the lateness rule
// decides — in one batch as with one event per batch (the engine splits
// a batch where a stream behind the watermark moves) — and when the
// stream passes first, the issuer rule.
func TestIssuerRuleBatching(t *testing.T) {
	const head = `{"@timestamp":"2025-06-23T08:00:00Z","event":{"dataset":"auth.login","action":"login"},"user":{"id":"m:0"}}
{"@timestamp":"2025-06-24T09:59:50Z","event":{"dataset":"auth.token","action":"token.issued"},"token":{"id":"tk-a","issued_at":"2025-06-24T09:59:50Z"}}
{"@timestamp":"2025-06-24T10:00:00Z","event":{"id":"use","dataset":"gateway.access","action":"read"},"user":{"id":"m:1"},"token":{"id":"tk-forged","issued_at":"2025-06-24T09:59:58Z"}}
`
	const late = `{"@timestamp":"2025-06-24T10:10:01Z","event":{"dataset":"auth.login","action":"login"},"user":{"id":"m:2"}}
`
	const mint = `{"@timestamp":"2025-06-24T10:10:30Z","event":{"dataset":"auth.token","action":"token.issued"},"token":{"id":"tk-b","issued_at":"2025-06-24T10:10:30Z"}}
`
	const early = `{"@timestamp":"2025-06-24T10:00:40Z","event":{"dataset":"auth.token","action":"token.issued"},"token":{"id":"tk-c","issued_at":"2025-06-24T10:00:40Z"}}
`
	for _, tc := range []struct {
		name, events, want string
	}{
		{"watermark first", head + late + mint, "lateness_seconds 2025-06-24T10:05:00Z"},
		{"issuer first", head + early + late + mint, "mint_skew_seconds 2025-06-24T10:00:28Z"},
	} {
		var evs []event.Event
		rd := decode.NewReader(strings.NewReader(tc.events), 0, 0)
		for {
			var ev event.Event
			if err := rd.Next(&ev); err != nil {
				break
			}
			evs = append(evs, ev)
		}
		for _, batch := range []int{1, 2, len(evs)} {
			eng, err := engine.New(engine.Options{Detectors: []engine.Detector{token.New(token.Options{})}, Shards: 2})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			done := make(chan struct{})
			go func() {
				defer close(done)
				for o := range eng.Output() {
					for _, f := range o.Findings {
						got = append(got, f.Figures[0].Name+" "+f.Time.Format(time.RFC3339))
					}
				}
			}()
			go func() { _ = eng.Run(context.Background()) }()
			for i := 0; i < len(evs); i += batch {
				b := slices.Clone(evs[i:min(i+batch, len(evs))])
				if err := eng.Submit(context.Background(), engine.Batch{Events: b}); err != nil {
					t.Fatal(err)
				}
			}
			eng.Close()
			<-done
			if strings.Join(got, ",") != tc.want {
				t.Errorf("%s, batches of %d: %v, want %s", tc.name, batch, got, tc.want)
			}
		}
	}
}

// TestWithdrawal: a withdrawal names the finding it withdraws by its ID and
// is about the same entity at the same time; each verdict is withdrawn at
// most once.
func TestWithdrawal(t *testing.T) {
	for _, dir := range []string{"withdraw_late_mint", "mint_too_late"} {
		f, err := os.Open("testdata/" + dir + "/events.ndjson")
		if err != nil {
			t.Fatal(err)
		}
		got := detecttest.Findings(t, f, 3, token.New(token.Options{ClockSkew: time.Minute}))
		f.Close()
		byID := map[event.FindingID]event.Finding{}
		withdrawn := map[event.FindingID]bool{}
		for _, f := range got {
			if f.Withdraws == 0 {
				byID[f.ID()] = f
			}
		}
		for _, w := range got {
			if w.Withdraws == 0 {
				continue
			}
			orig, ok := byID[w.Withdraws]
			switch {
			case !ok:
				t.Errorf("%s: withdrawal of %s, which no finding has as its ID", dir, w.Withdraws)
			case orig.Kind != token.KindNeverMinted || orig.Entity != w.Entity || !orig.Time.Equal(w.Time):
				t.Errorf("%s: withdrawal %+v does not match the finding %+v", dir, w, orig)
			case withdrawn[w.Withdraws]:
				t.Errorf("%s: %s withdrawn twice", dir, w.Withdraws)
			case w.Immediate || w.Score != 0 || w.Kind != token.KindNeverMintedWithdrawn:
				t.Errorf("%s: withdrawal %+v is immediate, scored or of the wrong kind", dir, w)
			}
			withdrawn[w.Withdraws] = true
		}
		if len(withdrawn) != 1 {
			t.Errorf("%s: %d findings withdrawn, want 1", dir, len(withdrawn))
		}
	}
}

// TestMintAfterDeadlineBatching: a mint dated after a use's mint deadline
// (the token was used more than MintSkew before it was minted) does not
// clear the use, whether or not the issuer's stream passed the deadline in
// an earlier batch. It used to: processed in the same batch as the mints
// that carried the issuer's stream past the deadline — before the batch's
// Advance — it dropped the pending use, and the forged token tk-forged-2
// of withdraw_late_mint_benign went unreported in replay (1,024 events a
// batch) while one event per batch caught it. A genuine mint arriving
// late in the same batch still clears its use (no verdict to withdraw),
// and in a later batch withdraws the verdict: either way nothing stands.
func TestMintAfterDeadlineBatching(t *testing.T) {
	for _, tc := range []struct {
		dir  string
		want string // evidence of the never-minted findings left standing
	}{
		{"withdraw_late_mint_benign", "use-forged,use-forged-2"},
		{"withdraw_late_mint", ""},
	} {
		b, err := os.ReadFile("testdata/" + tc.dir + "/events.ndjson")
		if err != nil {
			t.Fatal(err)
		}
		var evs []event.Event
		rd := decode.NewReader(strings.NewReader(string(b)), 0, 0)
		for {
			var ev event.Event
			if err := rd.Next(&ev); err != nil {
				break
			}
			evs = append(evs, ev)
		}
		for _, batch := range []int{1, 4, 1024} {
			eng, err := engine.New(engine.Options{Detectors: []engine.Detector{token.New(token.Options{})}, Shards: 2})
			if err != nil {
				t.Fatal(err)
			}
			var got []event.Finding
			done := make(chan struct{})
			go func() {
				defer close(done)
				for o := range eng.Output() {
					got = append(got, o.Findings...)
				}
			}()
			go func() { _ = eng.Run(context.Background()) }()
			for i := 0; i < len(evs); i += batch {
				if err := eng.Submit(context.Background(), engine.Batch{Events: slices.Clone(evs[i:min(i+batch, len(evs))])}); err != nil {
					t.Fatal(err)
				}
			}
			eng.Close()
			<-done
			withdrawn := map[event.FindingID]bool{}
			for _, f := range got {
				withdrawn[f.Withdraws] = true
			}
			var standing []string
			for _, f := range got {
				if f.Kind == token.KindNeverMinted && !withdrawn[f.ID()] {
					standing = append(standing, f.Evidence[0])
				}
			}
			slices.Sort(standing)
			if s := strings.Join(standing, ","); s != tc.want {
				t.Errorf("%s, batches of %d: never minted and standing %q, want %q", tc.dir, batch, s, tc.want)
			}
		}
	}
}
