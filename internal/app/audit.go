package app

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"time"

	"github.com/haechi-sec/haechi/internal/config"
	"github.com/haechi-sec/haechi/internal/respond"
	"github.com/haechi-sec/haechi/internal/store"
)

// AuditKey loads the audit key cfg names: HAECHI_AUDIT_KEY when set, else
// the file cfg.AuditKeyFile(). create makes a missing key file (serve
// does; every other command only uses an existing one, so a missing file
// is then a nil key and no error). A key file group or others may read is
// an error either way. from says where the key came from.
//
// Every command that may append to the audit log opens its store with
// store.Options{AuditKey: key}: without it, appending to a log that
// already holds keyed entries fails (store.ErrNoAuditKey).
func AuditKey(cfg config.Config, create bool) (key []byte, from string, err error) {
	key, from, err = respond.LoadAuditKey(respond.AuditKeySource{
		Env: os.Getenv(respond.AuditKeyEnv), File: cfg.AuditKeyFile(), Create: create,
	})
	if errors.Is(err, fs.ErrNotExist) && !create {
		return nil, from, nil
	}
	if err != nil {
		return nil, from, fmt.Errorf("%w (audit.key_file, or %s)", err, respond.AuditKeyEnv)
	}
	return key, from, nil
}

// startAudit prepares the audit log for serve, opened with key: it refuses
// a key that does not authenticate the newest entry, writes a first keyed
// entry when there is none yet (it pins the plain SHA-256 entries before
// it), compares the log with the latest witness line (a mismatch is logged
// and audited, not fatal: detection keeps running) and witnesses the head.
// It returns a function that runs the witness until its context ends
// (nil when the witness is disabled).
func startAudit(ctx context.Context, cfg config.Config, st *store.Store, key []byte, from string, log *slog.Logger) (run func(context.Context), err error) {
	if err := st.CheckAuditHead(ctx); err != nil {
		return nil, fmt.Errorf("audit log: %w (audit key from %s; run haechi audit verify)", err, from)
	}
	wkey := respond.WitnessKey(key)
	pub := wkey.Public().(ed25519.PublicKey)
	h, err := st.AuditHead(ctx)
	if err != nil {
		return nil, err
	}
	hadKeyed := h.Seq > 0 && h.Scheme == store.AuditSchemeHMAC
	if !hadKeyed {
		if err := st.AppendAudit(ctx, time.Now(), store.AuditKeyedKind, "", map[string]any{
			"legacy_entries": h.Seq, "witness_key": respond.WitnessKeyID(pub),
		}); err != nil {
			return nil, fmt.Errorf("audit log: %w", err)
		}
	}
	file := cfg.AuditWitnessFile()
	if file == "" {
		log.Warn("audit witness disabled (audit.witness.enabled): removal of the newest audit entries cannot be detected")
		return nil, nil
	}
	wf, err := respond.ReadWitness(file, pub)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if hadKeyed {
			// serve writes a witness line whenever it starts with the key:
			// a log with keyed entries and no witness file lost it.
			log.Error("AUDIT WITNESS MISSING although the audit log holds MAC-protected entries: it was deleted or moved (or the witness was only now enabled); entries removed before now cannot be detected", "file", file)
			if aerr := st.AppendAudit(ctx, time.Now(), "audit_witness_missing", "", map[string]any{"witness": file, "head_seq": h.Seq}); aerr != nil {
				log.Error("audit", "err", aerr)
			}
		}
	case err != nil:
		log.Error("audit witness: unreadable", "file", file, "err", err)
	default:
		if wf.Forged > 0 {
			log.Error("audit witness: lines not signed by this audit key (forged, altered, or from another key)", "file", file, "lines", wf.Forged, "first", wf.FirstBad)
		}
		if l, ok := wf.Newest(); ok {
			if err := respond.CheckWitness(ctx, st, l); err != nil {
				log.Error("AUDIT LOG TAMPERED: it does not hold the head the witness signed", "file", file, "err", err)
				if aerr := st.AppendAudit(ctx, time.Now(), "audit_witness_mismatch", "", map[string]any{
					"witness": file, "witnessed_seq": l.Seq, "witnessed_at": l.Time, "error": err.Error(),
				}); aerr != nil {
					log.Error("audit", "err", aerr)
				}
			}
		}
	}
	first, err := respond.WitnessHead(ctx, st, file, wkey, time.Now())
	if err != nil {
		return nil, fmt.Errorf("%w (audit.witness.file; audit.witness.enabled: false turns the witness off)", err)
	}
	log.Info("audit witness", "file", file, "seq", first.Seq, "key", first.Key)
	return func(ctx context.Context) {
		_ = respond.RunWitness(ctx, respond.WitnessOptions{Store: st, File: file, Key: wkey,
			Every: cfg.Audit.Witness.Every.D(), Logger: log, After: &first})
	}, nil
}
