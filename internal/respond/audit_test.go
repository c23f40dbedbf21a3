package respond

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/store"
)

// testAuditKey is the audit key of the tests' stores.
var testAuditKey = bytes.Repeat([]byte{0x42}, store.AuditKeySize)

var auditT0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// auditStore returns a store in a fresh directory, opened with key (nil:
// none), holding n audit entries, and a raw connection to its database for
// tampering with it as the database's own writer would.
func auditStore(t *testing.T, key []byte, n int) (*store.Store, *sql.DB, string) {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(t.Context(), dir, store.Options{AuditKey: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	appendN(t, st, n)
	db, err := sql.Open("sqlite", "file:"+st.Path())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return st, db, dir
}

func appendN(t *testing.T, st *store.Store, n int) {
	t.Helper()
	h, err := st.AuditHead(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		seq := h.Seq + int64(i) + 1
		if err := st.AppendAudit(t.Context(), auditT0.Add(time.Duration(seq)*time.Second), "scope_read", "", map[string]int64{"n": seq}); err != nil {
			t.Fatal(err)
		}
	}
}

// appendOther appends n entries unlike appendN's.
func appendOther(t *testing.T, st *store.Store, n int) {
	t.Helper()
	for range n {
		if err := st.AppendAudit(t.Context(), auditT0, "other", "", nil); err != nil {
			t.Fatal(err)
		}
	}
}

func mustExec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// rechain rewrites entries from..end as the database's writer can: with
// their detail edited (entry from only) and every hash recomputed from
// there on, as plain SHA-256 (macKey nil) or, for a writer who also holds
// the audit key, as MACs. scheme is stored as given.
func rechain(t *testing.T, st *store.Store, db *sql.DB, from int64, macKey []byte, scheme int) {
	t.Helper()
	log, err := st.AuditLog(t.Context(), 0, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	prev := store.AuditGenesis
	for _, r := range log {
		if r.Seq < from {
			prev = r.Hash
			continue
		}
		if r.Seq == from {
			r.Detail = []byte(`{"n":0,"edited":true}`)
		}
		h := store.AuditHash(r.Seq, r.Time, r.Kind, r.ActionID, r.Detail, prev)
		if macKey != nil {
			h = store.AuditMAC(macKey, r.Seq, r.Time, r.Kind, r.ActionID, r.Detail, prev)
		}
		mustExec(t, db, "UPDATE audit SET detail = ?, prev_hash = ?, hash = ?, scheme = ? WHERE seq = ?", string(r.Detail), prev, h, scheme, r.Seq)
		prev = h
	}
}

func wantBreak(t *testing.T, err error, seq int64, problem string) {
	t.Helper()
	var ab *AuditBreak
	if !errors.As(err, &ab) || ab.Seq != seq || ab.Problem != problem {
		t.Fatalf("VerifyAudit: %v (%+v), want a %s break at entry %d", err, ab, problem, seq)
	}
}

// TestVerifyAuditFindsRewrite: whoever can write the database can edit an
// entry and recompute a plain SHA-256 chain (before the audit key, verify
// said "intact"); with keyed entries every such rewrite is found.
func TestVerifyAuditFindsRewrite(t *testing.T) {
	for _, tc := range []struct {
		name    string
		tamper  func(t *testing.T, st *store.Store, db *sql.DB)
		key     []byte // for VerifyAudit (nil: testAuditKey)
		seq     int64
		problem string
	}{
		{"edit and recompute the SHA-256 chain", func(t *testing.T, st *store.Store, db *sql.DB) {
			rechain(t, st, db, 2, nil, store.AuditSchemeHMAC)
		}, nil, 2, ProblemModified},
		{"edit and recompute as legacy entries", func(t *testing.T, st *store.Store, db *sql.DB) {
			rechain(t, st, db, 2, nil, store.AuditSchemeSHA256)
		}, nil, 2, ProblemDowngrade},
		{"rewrite the whole log as legacy entries", func(t *testing.T, st *store.Store, db *sql.DB) {
			rechain(t, st, db, 1, nil, store.AuditSchemeSHA256)
		}, nil, 1, ProblemDowngrade},
		{"edit without recomputing", func(t *testing.T, st *store.Store, db *sql.DB) {
			mustExec(t, db, `UPDATE audit SET detail = '{"n":7}' WHERE seq = 3`)
		}, nil, 3, ProblemModified},
		{"delete an entry", func(t *testing.T, st *store.Store, db *sql.DB) {
			mustExec(t, db, `DELETE FROM audit WHERE seq = 3`)
		}, nil, 4, ProblemLink},
		{"another key", func(t *testing.T, st *store.Store, db *sql.DB) {}, bytes.Repeat([]byte{1}, store.AuditKeySize), 1, ProblemModified},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, db, _ := auditStore(t, testAuditKey, 5)
			if rep, err := VerifyAudit(t.Context(), st, VerifyOptions{Key: testAuditKey}); err != nil || rep.Entries != 5 || rep.Keyed != 5 {
				t.Fatalf("before tampering: %+v, %v", rep, err)
			}
			tc.tamper(t, st, db)
			key := tc.key
			if key == nil {
				key = testAuditKey
			}
			_, err := VerifyAudit(t.Context(), st, VerifyOptions{Key: key})
			wantBreak(t, err, tc.seq, tc.problem)
		})
	}
	t.Run("no key", func(t *testing.T) {
		st, _, _ := auditStore(t, testAuditKey, 2)
		_, err := VerifyAudit(t.Context(), st, VerifyOptions{})
		wantBreak(t, err, 1, ProblemNoKey)
	})
}

// TestVerifyAuditLegacy: entries written before the audit key existed
// (plain SHA-256) still verify after the upgrade, are counted as legacy,
// and are pinned by the first keyed entry's MAC.
func TestVerifyAuditLegacy(t *testing.T) {
	st, db, dir := auditStore(t, nil, 3)
	if rep, err := VerifyAudit(t.Context(), st, VerifyOptions{}); err != nil || rep.Legacy != 3 || rep.Keyed != 0 {
		t.Fatalf("legacy log without a key: %+v, %v", rep, err)
	}
	_ = st.Close()
	st, err := store.Open(t.Context(), dir, store.Options{AuditKey: testAuditKey})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.AppendAudit(t.Context(), auditT0.Add(time.Minute), store.AuditKeyedKind, "", nil); err != nil {
		t.Fatal(err)
	}
	appendN(t, st, 1)
	rep, err := VerifyAudit(t.Context(), st, VerifyOptions{Key: testAuditKey})
	if err != nil || rep.Entries != 5 || rep.Legacy != 3 || rep.Keyed != 2 {
		t.Fatalf("upgraded log: %+v, %v", rep, err)
	}
	// A legacy entry edited with the SHA-256 chain recomputed up to the
	// keyed entries: the first keyed entry's MAC covers its prev_hash.
	log, _ := st.AuditLog(t.Context(), 0, 10)
	prev := store.AuditGenesis
	for _, r := range log[:3] {
		if r.Seq == 2 {
			r.Detail = []byte(`{"n":-1}`)
		}
		h := store.AuditHash(r.Seq, r.Time, r.Kind, r.ActionID, r.Detail, prev)
		mustExec(t, db, "UPDATE audit SET detail = ?, prev_hash = ?, hash = ? WHERE seq = ?", string(r.Detail), prev, h, r.Seq)
		prev = h
	}
	_, err = VerifyAudit(t.Context(), st, VerifyOptions{Key: testAuditKey})
	wantBreak(t, err, 4, ProblemLink)
	mustExec(t, db, "UPDATE audit SET prev_hash = ? WHERE seq = 4", prev)
	_, err = VerifyAudit(t.Context(), st, VerifyOptions{Key: testAuditKey})
	wantBreak(t, err, 4, ProblemModified)
}

func witnessAt(t *testing.T, st *store.Store, path string) WitnessLine {
	t.Helper()
	l, err := WitnessHead(t.Context(), st, path, WitnessKey(testAuditKey), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestVerifyAuditWitness: the newest entries removed, or the log rewritten
// by someone holding the audit key, pass the chain check but not the
// witness; forged witness lines are counted and never trusted.
func TestVerifyAuditWitness(t *testing.T) {
	witnessFile := func(t *testing.T) string { return filepath.Join(t.TempDir(), "witness.jsonl") }

	t.Run("intact", func(t *testing.T) {
		st, _, _ := auditStore(t, testAuditKey, 4)
		w := witnessFile(t)
		witnessAt(t, st, w)
		appendN(t, st, 2)
		rep, err := VerifyAudit(t.Context(), st, VerifyOptions{Key: testAuditKey, Witness: w})
		if err != nil || !rep.HaveWitness || rep.Witnessed.Seq != 4 || rep.Head != 6 || len(rep.WitnessFile.Valid) != 1 {
			t.Fatalf("%+v, %v", rep, err)
		}
	})
	t.Run("truncated", func(t *testing.T) {
		st, db, _ := auditStore(t, testAuditKey, 6)
		w := witnessFile(t)
		witnessAt(t, st, w)
		mustExec(t, db, "DELETE FROM audit WHERE seq > 4")
		if _, err := VerifyAudit(t.Context(), st, VerifyOptions{Key: testAuditKey}); err != nil {
			t.Fatalf("without the witness the removal cannot be seen, yet: %v", err)
		}
		_, err := VerifyAudit(t.Context(), st, VerifyOptions{Key: testAuditKey, Witness: w})
		wantBreak(t, err, 5, ProblemTruncated)
		if !strings.Contains(err.Error(), "entries 5–6 were removed") {
			t.Errorf("message: %v", err)
		}
	})
	t.Run("truncated and appended to again", func(t *testing.T) {
		st, db, _ := auditStore(t, testAuditKey, 6)
		w := witnessFile(t)
		witnessAt(t, st, w)
		mustExec(t, db, "DELETE FROM audit WHERE seq > 4")
		appendOther(t, st, 3)
		witnessAt(t, st, w) // serve restarted and witnessed the new head
		_, err := VerifyAudit(t.Context(), st, VerifyOptions{Key: testAuditKey, Witness: w})
		wantBreak(t, err, 6, ProblemRewritten)
	})
	t.Run("rewritten with the key", func(t *testing.T) {
		st, db, _ := auditStore(t, testAuditKey, 5)
		w := witnessFile(t)
		witnessAt(t, st, w)
		rechain(t, st, db, 2, testAuditKey, store.AuditSchemeHMAC)
		if _, err := VerifyAudit(t.Context(), st, VerifyOptions{Key: testAuditKey}); err != nil {
			t.Fatalf("the key's holder can rewrite the chain itself: %v", err)
		}
		_, err := VerifyAudit(t.Context(), st, VerifyOptions{Key: testAuditKey, Witness: w})
		wantBreak(t, err, 5, ProblemRewritten)
	})
	t.Run("forged lines are ignored", func(t *testing.T) {
		st, db, _ := auditStore(t, testAuditKey, 6)
		w := witnessFile(t)
		witnessAt(t, st, w)
		mustExec(t, db, "DELETE FROM audit WHERE seq > 4")
		// A line claiming the truncated head, signed by another key; one
		// with the real key's id but an altered seq; and garbage.
		other := SignWitness(WitnessKey(bytes.Repeat([]byte{9}, store.AuditKeySize)), 4, "x", time.Now())
		altered := SignWitness(WitnessKey(testAuditKey), 6, "y", time.Now())
		altered.Seq = 4
		for _, l := range []WitnessLine{other, altered} {
			if err := AppendWitness(w, l); err != nil {
				t.Fatal(err)
			}
		}
		f, _ := os.OpenFile(w, os.O_APPEND|os.O_WRONLY, 0)
		f.WriteString("{\"v\":1,\"seq\":4,\n")
		f.Close()
		rep, err := VerifyAudit(t.Context(), st, VerifyOptions{Key: testAuditKey, Witness: w})
		wantBreak(t, err, 5, ProblemTruncated)
		if rep.WitnessFile.Forged != 2 || rep.WitnessFile.Unreadable != 1 || rep.WitnessFile.FirstBad != 2 || len(rep.WitnessFile.Valid) != 1 {
			t.Errorf("witness file = %+v", rep.WitnessFile)
		}
	})
	t.Run("missing", func(t *testing.T) {
		// Keyed entries and no witness file: it was deleted (serve writes
		// one whenever it holds the key), so truncation cannot be ruled out.
		st, _, _ := auditStore(t, testAuditKey, 1)
		rep, err := VerifyAudit(t.Context(), st, VerifyOptions{Key: testAuditKey, Witness: witnessFile(t)})
		wantBreak(t, err, 1, ProblemWitnessMissing)
		if !rep.WitnessMissing || rep.HaveWitness {
			t.Fatalf("%+v", rep)
		}
		// A legacy log (no key yet) has no witness to miss.
		st, _, _ = auditStore(t, nil, 1)
		if rep, err := VerifyAudit(t.Context(), st, VerifyOptions{Key: testAuditKey, Witness: witnessFile(t)}); err == nil || rep.Keyed != 0 {
			t.Fatalf("legacy log: %+v, %v (want the downgrade break: no keyed entry)", rep, err)
		}
	})
}

func TestCheckWitness(t *testing.T) {
	st, db, _ := auditStore(t, testAuditKey, 5)
	l := witnessAt(t, st, filepath.Join(t.TempDir(), "w"))
	if err := CheckWitness(t.Context(), st, l); err != nil {
		t.Fatal(err)
	}
	mustExec(t, db, "DELETE FROM audit WHERE seq > 3")
	var ab *AuditBreak
	if err := CheckWitness(t.Context(), st, l); !errors.As(err, &ab) || ab.Problem != ProblemTruncated || ab.Seq != 4 {
		t.Fatalf("CheckWitness after truncation: %v", err)
	}
	appendOther(t, st, 3)
	if err := CheckWitness(t.Context(), st, l); !errors.As(err, &ab) || ab.Problem != ProblemRewritten || ab.Seq != 5 {
		t.Fatalf("CheckWitness after truncation and appends: %v", err)
	}
}

// TestRunWitness: a line at start, one per tick while the head moves, and
// the final head when stopped.
func TestRunWitness(t *testing.T) {
	st, _, _ := auditStore(t, testAuditKey, 1)
	w := filepath.Join(t.TempDir(), "w.jsonl")
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- RunWitness(ctx, WitnessOptions{Store: st, File: w, Key: WitnessKey(testAuditKey), Every: 20 * time.Millisecond})
	}()
	time.Sleep(100 * time.Millisecond) // ticks with an unchanged head write nothing
	appendN(t, st, 2)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	wf, err := ReadWitness(w, WitnessKey(testAuditKey).Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	newest, ok := wf.Newest()
	if !ok || newest.Seq != 3 || wf.Forged+wf.Unreadable != 0 || len(wf.Valid) > 3 || wf.Valid[0].Seq != 1 {
		t.Fatalf("witness = %+v", wf)
	}
	if h, _ := st.AuditHead(t.Context()); h.Hash != newest.Head {
		t.Errorf("witnessed head %s, store head %s", newest.Head, h.Hash)
	}
}

func TestLoadAuditKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keys", "audit.key")
	if _, _, err := LoadAuditKey(AuditKeySource{File: path}); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing key without Create: %v", err)
	}
	k1, from, err := LoadAuditKey(AuditKeySource{File: path, Create: true})
	if err != nil || len(k1) != store.AuditKeySize || from != path {
		t.Fatalf("create: %x %q %v", k1, from, err)
	}
	fi, err := os.Stat(path)
	if err != nil || (runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600) {
		t.Fatalf("key file mode %v, %v", fi.Mode(), err)
	}
	k2, _, err := LoadAuditKey(AuditKeySource{File: path, Create: true})
	if err != nil || !bytes.Equal(k1, k2) {
		t.Fatalf("reload: %v (same key: %v)", err, bytes.Equal(k1, k2))
	}
	if runtime.GOOS != "windows" {
		if err := os.Chmod(path, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, _, err := LoadAuditKey(AuditKeySource{File: path}); err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("0644 key file: %v", err)
		}
		_ = os.Chmod(path, 0o600)
	}
	env := strings.Repeat("ab", store.AuditKeySize)
	k3, from, err := LoadAuditKey(AuditKeySource{Env: env, File: path})
	if err != nil || from != AuditKeyEnv || k3[0] != 0xab {
		t.Errorf("env key: %x %q %v", k3, from, err)
	}
	for _, bad := range []string{"abc", strings.Repeat("zz", store.AuditKeySize)} {
		if _, _, err := LoadAuditKey(AuditKeySource{Env: bad}); err == nil {
			t.Errorf("env key %q accepted", bad)
		}
	}
	if _, _, err := LoadAuditKey(AuditKeySource{File: dir}); err == nil {
		t.Error("a directory accepted as the key file")
	}
	short := filepath.Join(dir, "short.key")
	if err := os.WriteFile(short, []byte("abcd\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadAuditKey(AuditKeySource{File: short}); err == nil {
		t.Error("a short key accepted")
	}
}

func TestWitnessLineRoundTrip(t *testing.T) {
	key := WitnessKey(testAuditKey)
	l := SignWitness(key, 42, "abc", time.Date(2025, 1, 2, 3, 4, 5, 6, time.FixedZone("KST", 9*3600)))
	b, _ := json.Marshal(l)
	got, ok, forged := parseWitnessLine(b, key.Public().(ed25519.PublicKey))
	if !ok || forged || got.Seq != 42 || got.Head != "abc" || !got.Time.Equal(l.Time) {
		t.Fatalf("parse(%s) = %+v %v %v", b, got, ok, forged)
	}
	b2 := bytes.Replace(b, []byte(`"abc"`), []byte(`"abd"`), 1)
	if _, ok, forged := parseWitnessLine(b2, key.Public().(ed25519.PublicKey)); ok || !forged {
		t.Errorf("altered head: ok %v forged %v", ok, forged)
	}
}

func FuzzParseWitnessLine(f *testing.F) {
	key := WitnessKey(testAuditKey)
	pub := key.Public().(ed25519.PublicKey)
	good, _ := json.Marshal(SignWitness(key, 7, "h", auditT0))
	f.Add(good)
	f.Add([]byte(`{"v":1,"seq":-1}`))
	f.Add([]byte(`{"v":1}{"v":1}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, ok, forged := parseWitnessLine(b, pub)
		if ok && forged {
			t.Fatal("both valid and forged")
		}
		if ok && !l.Verify(pub) {
			t.Fatal("valid line does not verify")
		}
	})
}
