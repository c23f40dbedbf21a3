package respond

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/haechi-sec/haechi/internal/store"
)

// A witness line is a signed statement, written outside the database,
// that the audit log's entry Seq had the hash (or MAC) Head at Time. The
// witness file is an append-only series of them, one JSON object a line:
//
//	{"v":1,"seq":42,"head":"9f…","time":"2025-03-01T12:00:00Z","key":"1a2b…","sig":"base64…"}
//
// sig is the ed25519 signature (WitnessKey) of
// "haechi audit witness v1\n<seq>\n<head>\n<time as unix nanoseconds>";
// key is WitnessKeyID of the public key (informative, not signed).
type WitnessLine struct {
	V    int       `json:"v"`
	Seq  int64     `json:"seq"`
	Head string    `json:"head"`
	Time time.Time `json:"time"`
	Key  string    `json:"key"`
	Sig  string    `json:"sig"`
}

// witnessMaxLine bounds one line of a witness file.
const witnessMaxLine = 64 << 10

func witnessMessage(seq int64, head string, t time.Time) []byte {
	b := []byte("haechi audit witness v1\n")
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, '\n')
	b = append(b, head...)
	b = append(b, '\n')
	b = strconv.AppendInt(b, t.UnixNano(), 10)
	return b
}

// SignWitness returns the witness line for head seq/hash at t, signed
// with key. t is kept to the nanosecond in UTC.
func SignWitness(key ed25519.PrivateKey, seq int64, head string, t time.Time) WitnessLine {
	t = time.Unix(0, t.UnixNano()).UTC()
	sig := ed25519.Sign(key, witnessMessage(seq, head, t))
	return WitnessLine{V: 1, Seq: seq, Head: head, Time: t,
		Key: WitnessKeyID(key.Public().(ed25519.PublicKey)), Sig: base64.StdEncoding.EncodeToString(sig)}
}

// Verify reports whether l is a version 1 line signed by pub's key.
func (l WitnessLine) Verify(pub ed25519.PublicKey) bool {
	if l.V != 1 || l.Seq < 0 {
		return false
	}
	sig, err := base64.StdEncoding.DecodeString(l.Sig)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return false
	}
	return ed25519.Verify(pub, witnessMessage(l.Seq, l.Head, l.Time), sig)
}

// AppendWitness appends l to the witness file at path as one line, opened
// O_APPEND (created 0640 if missing) and synced before it returns.
func AppendWitness(path string, l WitnessLine) error {
	b, err := json.Marshal(l)
	if err != nil {
		return fmt.Errorf("witness: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640) // #nosec G302 -- signed public heads, no secret; a group of auditors may read them
	if err != nil {
		return fmt.Errorf("witness: %w", err)
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("witness %s: %w", path, err)
	}
	return nil
}

// WitnessFile is what ReadWitness found in a witness file.
type WitnessFile struct {
	// Valid are the lines whose signature verifies, in file order.
	Valid []WitnessLine
	// Forged counts well-formed lines whose signature does not verify
	// under the key (forged, altered, or signed with another audit key);
	// Unreadable counts lines that are not a witness line at all (a line
	// cut short by a crash, or garbage). FirstBad is the 1-based line
	// number of the first of either (0: none).
	Forged, Unreadable, FirstBad int
}

// Newest returns the valid line with the highest seq (the latest of them
// in the file on a tie), and false when there is none.
func (w WitnessFile) Newest() (WitnessLine, bool) {
	var (
		best WitnessLine
		ok   bool
	)
	for _, l := range w.Valid {
		if !ok || l.Seq >= best.Seq {
			best, ok = l, true
		}
	}
	return best, ok
}

// parseWitnessLine decodes one line: ok false and forged false for a line
// that is not a witness line, forged true for a well-formed one whose
// signature does not verify under pub.
func parseWitnessLine(b []byte, pub ed25519.PublicKey) (l WitnessLine, ok, forged bool) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil || dec.More() {
		return WitnessLine{}, false, false
	}
	if !l.Verify(pub) {
		return l, false, true
	}
	return l, true, false
}

// ReadWitness reads the witness file at path and checks every line's
// signature under pub. A missing file is an error wrapping fs.ErrNotExist;
// a line longer than 64 KiB is an error.
func ReadWitness(path string, pub ed25519.PublicKey) (WitnessFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return WitnessFile{}, fmt.Errorf("witness: %w", err)
	}
	defer f.Close()
	var w WitnessFile
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 4096), witnessMaxLine)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		l, ok, forged := parseWitnessLine(line, pub)
		switch {
		case ok:
			w.Valid = append(w.Valid, l)
			continue
		case forged:
			w.Forged++
		default:
			w.Unreadable++
		}
		if w.FirstBad == 0 {
			w.FirstBad = n
		}
	}
	if err := sc.Err(); err != nil {
		return w, fmt.Errorf("witness %s: %w", path, err)
	}
	return w, nil
}

// WitnessHead signs st's current audit head at now and appends it to the
// witness file at path.
func WitnessHead(ctx context.Context, st *store.Store, path string, key ed25519.PrivateKey, now time.Time) (WitnessLine, error) {
	h, err := st.AuditHead(ctx)
	if err != nil {
		return WitnessLine{}, fmt.Errorf("witness: %w", err)
	}
	l := SignWitness(key, h.Seq, h.Hash, now)
	return l, AppendWitness(path, l)
}

// WitnessOptions configure RunWitness.
type WitnessOptions struct {
	Store *store.Store
	// File is the witness file (see AppendWitness).
	File string
	// Key signs the lines (WitnessKey of the audit key).
	Key ed25519.PrivateKey
	// Every is the interval between checks of the head (≤0 → one minute).
	Every  time.Duration
	Logger *slog.Logger
	// Now is the wall clock (nil → time.Now).
	Now func() time.Time
	// After, when set, is a line the caller already wrote: RunWitness then
	// writes no line at once, only when the head moves past it.
	After *WitnessLine
}

// RunWitness witnesses the audit head until ctx ends: a line at once
// (unless o.After), then
// one every o.Every when the head has moved since the last line it wrote,
// and, when ctx ends, a last one if the head moved (ctx's cancellation
// does not cut that one short: stop RunWitness after the last audited
// write and before closing the store). A failed line is logged and tried
// again at the next tick; RunWitness returns nil when ctx ends.
func RunWitness(ctx context.Context, o WitnessOptions) error {
	if o.Every <= 0 {
		o.Every = time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	var last store.AuditRecord
	written := o.After != nil
	if written {
		last = store.AuditRecord{Seq: o.After.Seq, Hash: o.After.Head}
	}
	witness := func(ctx context.Context, always bool) {
		h, err := o.Store.AuditHead(ctx)
		if err != nil {
			o.Logger.Error("audit witness", "err", err)
			return
		}
		if written && !always && h.Seq == last.Seq && h.Hash == last.Hash {
			return
		}
		l := SignWitness(o.Key, h.Seq, h.Hash, o.Now())
		if err := AppendWitness(o.File, l); err != nil {
			o.Logger.Error("audit witness", "err", err)
			return
		}
		last, written = h, true
	}
	if !written {
		witness(ctx, true)
	}
	t := time.NewTicker(o.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			witness(fctx, false)
			cancel()
			return nil
		case <-t.C:
			witness(ctx, false)
		}
	}
}

// CheckWitness compares one witness line with the log in st: nil when the
// log holds entry l.Seq with hash l.Head (or l.Seq is 0), else an
// *AuditBreak saying whether the log was truncated (it ends before
// l.Seq) or rewritten (entry l.Seq differs).
func CheckWitness(ctx context.Context, st *store.Store, l WitnessLine) error {
	if l.Seq == 0 {
		return nil
	}
	recs, err := st.AuditLog(ctx, l.Seq-1, 1)
	if err != nil {
		return err
	}
	if len(recs) == 0 || recs[0].Seq != l.Seq {
		h, err := st.AuditHead(ctx)
		if err != nil {
			return err
		}
		if h.Seq < l.Seq {
			return truncated(l, h.Seq)
		}
		return &AuditBreak{Seq: l.Seq, Problem: ProblemRewritten,
			msg: fmt.Sprintf("entry %d, which the witness saw at %s, is missing from the log: the log was rewritten", l.Seq, l.Time.Format(time.RFC3339))}
	}
	if recs[0].Hash != l.Head {
		return rewritten(l, recs[0])
	}
	return nil
}

func truncated(l WitnessLine, head int64) *AuditBreak {
	return &AuditBreak{Seq: head + 1, Problem: ProblemTruncated,
		msg: fmt.Sprintf("the witness saw entry %d (at %s) but the log ends at entry %d: entries %d–%d were removed",
			l.Seq, l.Time.Format(time.RFC3339), head, head+1, l.Seq)}
}

func rewritten(l WitnessLine, r store.AuditRecord) *AuditBreak {
	return &AuditBreak{Seq: r.Seq, Problem: ProblemRewritten,
		msg: fmt.Sprintf("entry %d is not the entry the witness saw at %s (hash %.12s…, now %.12s…): the log was rewritten up to it, or truncated and appended to again",
			r.Seq, l.Time.Format(time.RFC3339), l.Head, r.Hash)}
}
