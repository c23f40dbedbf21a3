package respond

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/haechi-sec/haechi/internal/store"
)

// AuditKeyEnv names the environment variable that, when set, holds the
// audit key itself (64 hex digits) and takes precedence over the key file.
const AuditKeyEnv = "HAECHI_AUDIT_KEY"

// AuditKeySource says where LoadAuditKey finds the audit key: the value
// of AuditKeyEnv (Env, "" when unset) and else the file File.
type AuditKeySource struct {
	Env  string
	File string
	// Create makes a missing File: a fresh random key, written 0600 (its
	// directory, if missing, 0700). Only serve creates the key; other
	// commands use it when it exists.
	Create bool
}

// LoadAuditKey returns the audit key — store.AuditKeySize random bytes,
// written as 64 hex digits — and where it came from ("HAECHI_AUDIT_KEY" or
// the file's path).
//
// Contract: a non-empty src.Env is the key and must be 64 hex digits. Else
// src.File is read; a missing file is an error wrapping fs.ErrNotExist
// unless src.Create, which creates it. A file that group or others may
// read or write (any of the mode bits 0077), or that is not a regular file,
// is refused without reading it: a key others can read protects nothing.
// (Windows has no such mode bits; there the check is skipped.)
func LoadAuditKey(src AuditKeySource) (key []byte, from string, err error) {
	if src.Env != "" {
		key, err := parseAuditKey(src.Env)
		if err != nil {
			return nil, AuditKeyEnv, fmt.Errorf("audit key from %s: %w", AuditKeyEnv, err)
		}
		return key, AuditKeyEnv, nil
	}
	if src.File == "" {
		return nil, "", errors.New("audit key: no key file configured")
	}
	key, err = readAuditKeyFile(src.File)
	if errors.Is(err, fs.ErrNotExist) && src.Create {
		key, err = createAuditKeyFile(src.File)
	}
	if err != nil {
		return nil, src.File, err
	}
	return key, src.File, nil
}

func readAuditKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("audit key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("audit key: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("audit key %s: not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, fmt.Errorf("audit key %s has mode %04o: group and others must have no access (chmod 600 %s)", path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return nil, fmt.Errorf("audit key %s: %w", path, err)
	}
	key, err := parseAuditKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("audit key %s: %w", path, err)
	}
	return key, nil
}

func createAuditKeyFile(path string) ([]byte, error) {
	key := make([]byte, store.AuditKeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("audit key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("audit key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) { // another process made it first
		return readAuditKeyFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("audit key: %w", err)
	}
	_, err = f.WriteString(hex.EncodeToString(key) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return nil, fmt.Errorf("audit key: %w", err)
	}
	syncDir(filepath.Dir(path))
	return key, nil
}

// syncDir makes a new directory entry durable (best effort).
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

func parseAuditKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if len(s) != 2*store.AuditKeySize {
		return nil, fmt.Errorf("want %d hex digits, have %d characters", 2*store.AuditKeySize, len(s))
	}
	key, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("want %d hex digits: %w", 2*store.AuditKeySize, err)
	}
	return key, nil
}

// witnessKeyLabel derives the witness's ed25519 seed from the audit key;
// entry MACs use another label (store.AuditMAC), so neither can stand in
// for the other.
const witnessKeyLabel = "haechi audit witness ed25519 v1\x00"

// WitnessKey derives the ed25519 key that signs witness lines from the
// audit key: seed = HMAC-SHA-256(audit key, label). One secret to keep
// outside the database; its public half (WitnessKey(k).Public()) can be
// handed to whoever only checks witness lines.
func WitnessKey(auditKey []byte) ed25519.PrivateKey {
	m := hmac.New(sha256.New, auditKey)
	m.Write([]byte(witnessKeyLabel))
	return ed25519.NewKeyFromSeed(m.Sum(nil))
}

// WitnessKeyID names a witness public key: the first 8 bytes of its
// SHA-256, in hex.
func WitnessKeyID(pub ed25519.PublicKey) string {
	h := sha256.Sum256(pub)
	return hex.EncodeToString(h[:8])
}
