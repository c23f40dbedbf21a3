package cli

import (
	"context"
	"fmt"
	"os"
	"os/user"
	"time"
)

// createPrivate creates (or truncates) the file at path for an export —
// record ids, reports, the audit log — readable and writable by its owner
// only (0600), also when it existed before with wider permissions.
// Callers validate everything they can (format, extension) first: once
// this returns, an existing file's content is gone.
func createPrivate(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm() != 0o600 {
		if err := f.Chmod(0o600); err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: restrict to its owner: %w", path, err)
		}
	}
	return f, nil
}

// cliCaller names the local user for the audit log, as "cli:<OS user>"
// (the API names a token, the console a session).
func cliCaller() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return "cli:" + u.Username
	}
	if n := os.Getenv("USER"); n != "" {
		return "cli:" + n
	}
	return fmt.Sprintf("cli:uid %d", os.Getuid())
}

// auditor appends one audit entry; (*store.Store).AppendAudit.
type auditor interface {
	AppendAudit(ctx context.Context, t time.Time, kind, actionID string, detail any) error
}

// auditRead appends a ledger read or export made from the command line,
// with the same kinds and detail as the API's, plus "by" (cliCaller) and
// "via": "cli". Unlike the API, which has already answered, the command
// fails when the entry cannot be written.
func auditRead(ctx context.Context, st auditor, kind string, detail map[string]any) error {
	detail["by"] = cliCaller()
	detail["via"] = "cli"
	if err := st.AppendAudit(context.WithoutCancel(ctx), time.Now(), kind, "", detail); err != nil {
		return fmt.Errorf("audit %s: %w", kind, err)
	}
	return nil
}
