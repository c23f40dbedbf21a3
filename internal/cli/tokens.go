package cli

import (
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/haechi-sec/haechi/internal/auth"
	"github.com/haechi-sec/haechi/internal/store"
)

type tokensCmd struct {
	Create tokensCreateCmd `cmd:"" help:"Create an API token and print it (once; only its hash is stored)."`
	List   tokensListCmd   `cmd:"" help:"List API tokens (never the tokens themselves)."`
	Revoke tokensRevokeCmd `cmd:"" help:"Revoke an API token by id; its console sessions end at once."`
}

type tokensCreateCmd struct {
	storeFlag
	Role string `required:"" enum:"ingest,mint,verify,analyst,admin" help:"ingest (may only post events), mint (may only register minted tokens: token issuers), verify (may only ask the inline token check: gateways), analyst (read, feedback, approve unprotected actions) or admin (everything)."`
	Name string `placeholder:"NAME" help:"Who or what the token is for (shown in the audit log)."`
}

func (c *tokensCreateCmd) Run(e *env) error {
	cfg, err := e.loadConfig()
	if err != nil {
		return err
	}
	if err := validate(&cfg); err != nil {
		return err
	}
	// The store is created if needed: tokens may be made before the first
	// serve.
	opts, err := storeOptions(cfg)
	if err != nil {
		return err
	}
	st, err := store.Open(e.ctx, cfg.StoreTarget(), opts)
	if err != nil {
		return err
	}
	defer st.Close()
	name := c.Name
	if name == "" {
		name = c.Role + " token"
	}
	tok, t, err := auth.CreateToken(e.ctx, st, auth.Role(c.Role), name, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "created %s token %s (%q) in %s; it is printed once, store it now:\n", t.Role, t.ID, t.Name, st.Path())
	fmt.Fprintln(e.stdout, tok)
	return nil
}

type tokensListCmd struct {
	storeFlag
}

func (c *tokensListCmd) Run(e *env) error {
	st, err := e.openStore()
	if err != nil {
		return err
	}
	defer st.Close()
	ts, err := st.ListTokens(e.ctx)
	if err != nil {
		return err
	}
	if len(ts) == 0 {
		fmt.Fprintln(e.stderr, "no tokens; serve creates an admin token on first start, or run: haechi tokens create --role admin")
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tROLE\tNAME\tCREATED\tLAST USED\tREVOKED")
	when := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format("2006-01-02 15:04")
	}
	for _, t := range ts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Role, t.Name, when(t.Created), when(t.LastUsed), when(t.Revoked))
	}
	return tw.Flush()
}

type tokensRevokeCmd struct {
	storeFlag
	ID string `arg:"" help:"Token id (tok-…), as tokens list shows."`
}

func (c *tokensRevokeCmd) Run(e *env) error {
	st, err := e.openStore()
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.RevokeToken(e.ctx, c.ID, "cli", time.Now()); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return usageError{fmt.Errorf("no active token %q (see haechi tokens list)", c.ID)}
		}
		return err
	}
	fmt.Fprintf(e.stdout, "revoked %s\n", c.ID)
	return nil
}
