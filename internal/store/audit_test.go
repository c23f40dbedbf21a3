package store

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

// testAuditKey is an audit key for tests (AuditKeySize bytes).
var testAuditKey = bytes.Repeat([]byte{0x5a}, AuditKeySize)

// checkChain checks every entry of s's audit log under key: its own hash or
// MAC, and its link to the entry before. It returns the entries.
func checkChain(t *testing.T, s *Store, key []byte) []AuditRecord {
	t.Helper()
	log, err := s.AuditLog(t.Context(), 0, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	prev := AuditGenesis
	for i, r := range log {
		if r.Seq != int64(i+1) || r.PrevHash != prev {
			t.Fatalf("audit entry %d breaks the chain: %+v", i+1, r)
		}
		if err := CheckAuditRecord(key, r); err != nil {
			t.Fatalf("audit entry %d: %v", r.Seq, err)
		}
		prev = r.Hash
	}
	return log
}

// TestAuditMAC: a store opened with an audit key MACs every entry it
// appends, so a writer of the database without the key cannot recompute
// an edited entry's hash (a plain SHA-256 chain it could).
func TestAuditMAC(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := t.Context()
		target := b.target(t)
		s, err := Open(ctx, target, Options{AuditKey: testAuditKey})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
		for i, kind := range []string{"login", "token_created", "scope_read"} {
			if err := s.AppendAudit(ctx, t0.Add(time.Duration(i)*time.Second), kind, "", map[string]int{"i": i}); err != nil {
				t.Fatal(err)
			}
		}
		log := checkChain(t, s, testAuditKey)
		for _, r := range log {
			if r.Scheme != AuditSchemeHMAC {
				t.Errorf("entry %d has scheme %d, want %d", r.Seq, r.Scheme, AuditSchemeHMAC)
			}
			if r.Hash == AuditHash(r.Seq, r.Time, r.Kind, r.ActionID, r.Detail, r.PrevHash) {
				t.Errorf("entry %d carries the plain SHA-256", r.Seq)
			}
		}
		if err := s.CheckAuditHead(ctx); err != nil {
			t.Errorf("CheckAuditHead: %v", err)
		}
		// The database's writer edits entry 2 and recomputes what it can.
		edited := log[1]
		edited.Detail = []byte(`{"i":99}`)
		edited.Hash = AuditHash(edited.Seq, edited.Time, edited.Kind, edited.ActionID, edited.Detail, edited.PrevHash)
		if err := CheckAuditRecord(testAuditKey, edited); err == nil {
			t.Error("an edited entry with a recomputed SHA-256 passes")
		}
		if _, err := s.db.ExecContext(ctx, "UPDATE audit SET detail = ?, hash = ? WHERE seq = 2", string(edited.Detail), edited.Hash); err != nil {
			t.Fatal(err)
		}
		if back, err := s.AuditLog(ctx, 1, 1); err != nil || len(back) != 1 || back[0].Scheme != AuditSchemeHMAC ||
			CheckAuditRecord(testAuditKey, back[0]) == nil {
			t.Errorf("the edited entry read back: %+v, %v", back, err)
		}
		edited.Scheme = AuditSchemeSHA256 // and claims it was never keyed
		if err := CheckAuditRecord(testAuditKey, edited); err != nil {
			t.Errorf("the downgraded entry on its own: %v (the chain check finds it)", err)
		}
		if err := CheckAuditRecord(nil, log[0]); !errors.Is(err, ErrNoAuditKey) {
			t.Errorf("keyed entry without a key: %v, want ErrNoAuditKey", err)
		}
		if err := CheckAuditRecord(bytes.Repeat([]byte{1}, AuditKeySize), log[0]); err == nil {
			t.Error("a keyed entry verifies under another key")
		}

		// Reopened without the key: no unkeyed entry may follow a keyed one.
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s2 := openAt(t, target)
		if err := s2.AppendAudit(ctx, t0, "logout", "", nil); !errors.Is(err, ErrNoAuditKey) {
			t.Errorf("append without the key: %v, want ErrNoAuditKey", err)
		}
		if err := s2.CheckAuditHead(ctx); !errors.Is(err, ErrNoAuditKey) {
			t.Errorf("CheckAuditHead without the key: %v", err)
		}
		// Reopened with another key: the head does not verify.
		s3, err := Open(ctx, target, Options{AuditKey: bytes.Repeat([]byte{1}, AuditKeySize)})
		if err != nil {
			t.Fatal(err)
		}
		defer s3.Close()
		if err := s3.CheckAuditHead(ctx); err == nil || !strings.Contains(err.Error(), "entry 3") {
			t.Errorf("CheckAuditHead with another key: %v", err)
		}
	})
}

func TestOpenRefusesShortAuditKey(t *testing.T) {
	if _, err := Open(t.Context(), t.TempDir(), Options{AuditKey: []byte("short")}); err == nil {
		t.Error("Open accepted a 5-byte audit key")
	}
}

// TestAuditLegacyUpgrade: a store whose audit log was written before
// migration 9 (no scheme column, plain SHA-256 entries) migrates with every
// old entry marked AuditSchemeSHA256 and still verifying, and a keyed store
// chains its first MACed entry onto the last legacy one.
func TestAuditLegacyUpgrade(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := t.Context()
		target := b.target(t)
		s, err := Open(ctx, target, Options{})
		if err != nil {
			t.Fatal(err)
		}
		// Back to version 8, with entries written as version 8 wrote them.
		for _, q := range []string{
			`ALTER TABLE audit DROP COLUMN scheme`,
			`ALTER TABLE actions DROP COLUMN hold`, // migration 10
			`DROP TABLE finding_log`,               // migration 11
			`DROP TABLE incidents`,                 // migration 13
			`DROP TABLE incident_alerts`,
			`DROP TABLE incident_keys`,
			`DROP TABLE incident_aliases`,
			`DROP TABLE citations`,
			`DROP TABLE drill_runs`, // migration 15
			`DELETE FROM schema_migrations WHERE version >= 9`,
		} {
			if _, err := s.db.ExecContext(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		t0 := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
		prev := AuditGenesis
		for seq := int64(1); seq <= 3; seq++ {
			tm, detail := t0.Add(time.Duration(seq)*time.Minute), []byte(`{"old":true}`)
			h := AuditHash(seq, tm, "planned", "act", detail, prev)
			if _, err := s.db.ExecContext(ctx, "INSERT INTO audit (seq, time, kind, action_id, detail, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?)",
				seq, toNanos(tm), "planned", "act", string(detail), prev, h); err != nil {
				t.Fatal(err)
			}
			prev = h
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s, err = Open(ctx, target, Options{AuditKey: testAuditKey})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := s.CheckAuditHead(ctx); err != nil {
			t.Errorf("CheckAuditHead on a legacy head: %v", err)
		}
		// Only the entry that pins them may follow plain SHA-256 entries.
		if err := s.AppendAudit(ctx, t0.Add(time.Hour), "scope_read", "", nil); !errors.Is(err, ErrAuditHead) {
			t.Fatalf("a keyed scope_read onto a legacy head: %v, want ErrAuditHead", err)
		}
		if err := s.AppendAudit(ctx, t0.Add(time.Hour), AuditKeyedKind, "", nil); err != nil {
			t.Fatal(err)
		}
		log := checkChain(t, s, testAuditKey)
		var schemes []int
		for _, r := range log {
			schemes = append(schemes, r.Scheme)
		}
		if len(log) != 4 || schemes[0] != 0 || schemes[2] != 0 || schemes[3] != AuditSchemeHMAC || log[3].PrevHash != prev {
			t.Errorf("schemes %v, entry 4 prev %.12s, want [0 0 0 1] chained onto %.12s", schemes, log[3].PrevHash, prev)
		}
	})
}
