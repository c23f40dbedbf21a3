// Package demo is haechi's live demo: a simulated company's traffic,
// with breaches injected, played over HTTP into a haechi served on a free
// loopback port, while the company's gateway enforces haechi's
// containment webhooks; at the end, the scorecard against the simulator's
// ground truth and where to look (the console, the API).
//
// Contract:
//
//   - Run owns everything it starts: a temporary data directory (removed
//     when it returns unless KeepData), the server, the gateway and the
//     simulator; it returns once they have stopped.
//   - The narration goes to Stdout, warnings to Stderr; the server logs
//     through Logger.
//   - An error in the options or the configuration is a *UsageError.
//   - Only the command line (package cli) imports this package.
package demo

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"github.com/haechi-sec/haechi/internal/app"
	"github.com/haechi-sec/haechi/internal/auth"
	"github.com/haechi-sec/haechi/internal/config"
	"github.com/haechi-sec/haechi/internal/console"
	"github.com/haechi-sec/haechi/internal/eval"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/respond"
	"github.com/haechi-sec/haechi/internal/sim"
	"github.com/haechi-sec/haechi/internal/store"
)

// demoCanary is a planted customer record the demo configures as a canary.
const demoCanary = "70000003"

// demoProtected is the partner integration the demo protects.
const demoProtected = "p:lotte-global"

// Options configure Run.
type Options struct {
	// Config is the configuration to serve with. Run overrides its data
	// directory, store, audit key and witness (all in a temporary
	// directory), its listen address (Listen) and its response (enforce
	// mode, through the demo's gateway), and protects one principal.
	Config config.Config
	// Listen is the address to serve on ("127.0.0.1:0": a free loopback
	// port).
	Listen string
	// Seed, Days and Customers shape the simulated company.
	Seed      uint64
	Days      int
	Customers int
	// Duration is the real time the simulated period is played in (> 0).
	Duration time.Duration
	// ExitAfter is how long Run keeps serving after the scorecard (0:
	// until ctx ends).
	ExitAfter time.Duration
	// KeepData keeps the temporary data directory when Run returns.
	KeepData bool
	// Stdout gets the narration, the scorecard and where to look; Stderr
	// warnings (lines serve rejected, a scorecard the console cannot show).
	// nil: discarded.
	Stdout, Stderr io.Writer
	// Logger is the server's logger (nil: discarded).
	Logger *slog.Logger
}

// UsageError marks an error in the options or the configuration, as
// opposed to one while running.
type UsageError struct{ Err error }

func (u *UsageError) Error() string { return u.Err.Error() }
func (u *UsageError) Unwrap() error { return u.Err }

func validate(cfg *config.Config) error {
	if err := cfg.Validate(); err != nil {
		return &UsageError{err}
	}
	return nil
}

// Run plays the demo until ctx ends (or ExitAfter after the scorecard),
// then stops the server and returns.
func Run(ctx context.Context, c Options) error {
	if c.Duration <= 0 || c.Days <= 0 {
		return &UsageError{errors.New("demo: Duration and Days must be positive")}
	}
	if c.Stdout == nil {
		c.Stdout = io.Discard
	}
	if c.Stderr == nil {
		c.Stderr = io.Discard
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	cfg := c.Config
	dir, err := os.MkdirTemp("", "haechi-demo-")
	if err != nil {
		return fmt.Errorf("temporary data dir: %w", err)
	}
	if !c.KeepData {
		defer os.RemoveAll(dir)
	}
	cfg.DataDir = dir
	cfg.Store.DSN = "" // the demo's store is always its own, in dir
	// Its audit key and witness too, removed with it.
	cfg.Audit.KeyFile = filepath.Join(dir, "audit.key")
	cfg.Audit.Witness.File = filepath.Join(dir, "audit-witness")
	cfg.Listen = c.Listen
	if err := validate(&cfg); err != nil {
		return err
	}
	ids, err := cfg.CanaryRecordIDs()
	if err != nil {
		return &UsageError{err}
	}
	if !slices.Contains(ids, demoCanary) {
		ids = append(ids, demoCanary)
	}
	// The simulated company's gateway receives haechi's containment
	// webhooks and enforces them; response runs in enforce mode.
	secretBytes := make([]byte, 32)
	if _, err := rand.Read(secretBytes); err != nil {
		return err
	}
	secret := hex.EncodeToString(secretBytes)
	gw, err := newGateway(secret)
	if err != nil {
		return fmt.Errorf("demo gateway: %w", err)
	}
	defer gw.close()
	cfg.Respond.Mode = respond.ModeEnforce
	cfg.Respond.Secret, cfg.Respond.SecretEnv = secret, ""
	cfg.Respond.Receivers = map[string]respond.Receiver{}
	for _, k := range []string{respond.KindRevokeKey, respond.KindRevokeToken, respond.KindBlockSource, respond.KindDisableIdentity} {
		// The demo's gateway listens on loopback.
		cfg.Respond.Receivers[k] = respond.Receiver{URL: gw.url, AllowPrivate: true}
	}
	// A partner's integration account is business-critical: the demo
	// protects one, so containing it waits for a person's approval — in
	// the console.
	cfg.Respond.Protected.Principals = append(cfg.Respond.Protected.Principals, demoProtected)
	if err := validate(&cfg); err != nil {
		return err
	}
	// The simulated fortnight ends now, so its events read as recent.
	opts := sim.Options{Seed: c.Seed, Days: c.Days, Customers: c.Customers,
		Start: time.Now().UTC().Truncate(time.Hour).Add(-time.Duration(c.Days) * 24 * time.Hour)}
	if err := opts.Validate(); err != nil {
		return &UsageError{err}
	}
	// The console's login (and the demo's own API calls) use an admin
	// token created in the demo's store before serve starts.
	token, err := demoToken(ctx, cfg.StoreTarget())
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ready := make(chan string, 1)
	served := make(chan error, 1)
	go func() {
		served <- app.Serve(ctx, app.ServeOptions{
			Config: cfg, CanaryIDs: ids, Listener: ln, Logger: c.Logger,
			Ready:     func(u string) { ready <- u },
			Simulated: fmt.Sprintf("the demo plays %d simulated days in %s", c.Days, c.Duration),
		})
	}()
	var base string
	select {
	case base = <-ready:
	case err := <-served:
		return err
	}
	stop := func(err error) error {
		cancel()
		if serr := <-served; err == nil {
			err = serr
		}
		return err
	}
	out := c.Stdout
	fmt.Fprintf(out, "haechi demo: serving on %s (data in %s)\n\n", base, dir)
	printConsole(out, base, token)
	fmt.Fprintf(out, "simulating %d days of a company with %d customers, staff, services and partners, with %d breaches injected,\nplayed live into haechi over HTTP in %s (scenarios: %v)\n\n",
		c.Days, c.Customers, len(sim.ScenarioNames()), c.Duration, sim.ScenarioNames())

	// A first pass of the deterministic generator gives the ground truth the
	// scorecard needs; haechi itself never sees it.
	tr, err := sim.Generate(ctx, opts, io.Discard, nil)
	if err != nil {
		return stop(err)
	}
	// obs sees the stream as the attackers sent it (what they reached
	// for; detection is scored on it), gated as the gateway answered it
	// once haechi's containments arrived (what they got, and which
	// containment stopped them): eval's two reads, observed in one.
	obs, gated := eval.NewObserver(tr), eval.NewObserver(tr)
	pr, pw := io.Pipe()
	var simTime atomic.Int64
	go func() {
		bw := bufio.NewWriterSize(pw, 1<<20)
		_, err := sim.Generate(ctx, opts, bw, func(_ int64, t time.Time) { simTime.Store(t.Unix()) })
		if err == nil {
			err = bw.Flush()
		}
		pw.CloseWithError(err)
	}()
	speed := float64(time.Duration(c.Days)*24*time.Hour) / float64(c.Duration)
	var posted atomic.Int64
	done := make(chan struct{})
	go c.narrate(ctx, out, base, token, opts.Start, &simTime, &posted, done)
	n, err := PostLive(ctx, base, token, pr, opts.Start, speed, c.Stderr, func(ev *event.Event, line []byte) []byte {
		obs.Observe(ev)
		line = gw.filter(ev, line, gated.Refused) // after a containment, the gateway refuses
		gated.Observe(ev)
		posted.Add(1)
		return line
	})
	close(done)
	pr.CloseWithError(context.Canceled)
	if err != nil {
		return stop(err)
	}
	alerts, err := settleAlerts(ctx, base, token, 15*time.Second)
	if err != nil {
		return stop(err)
	}
	sc := eval.ScoreWithResponse(tr, obs, gated, alerts)
	applied, refused, badSig, keys, principals, sources := gw.stats()
	fmt.Fprintf(out, "\nfed %d events; %d alerts. haechi's response (enforce mode) sent %d containment webhooks to the company's gateway (signatures checked, %d bad):\n",
		n, len(alerts), applied, badSig)
	fmt.Fprintf(out, "  revoked keys %v, disabled identities %v, blocked sources %d — %d requests refused afterwards.\n", keys, principals, sources, refused)
	fmt.Fprintf(out, "The scorecard (alerts vs the simulator's ground truth; records touched are what the attackers reached for, records exposed with the response in force what they really got):\n\n")
	if err := sc.WriteText(out); err != nil {
		return stop(err)
	}
	// The console's scorecard page shows the latest one.
	saved, err := console.NewSavedScorecard("demo", fmt.Sprintf("seed %d, %d days, %d customers, played in %s", c.Seed, c.Days, c.Customers, c.Duration), sc, time.Now())
	if err == nil {
		err = console.SaveScorecard(dir, saved)
	}
	if err != nil {
		fmt.Fprintf(c.Stderr, "haechi demo: the console will not show the scorecard: %v\n", err)
	}
	if n, err := pendingApprovals(ctx, base, token); err == nil && n > 0 {
		fmt.Fprintf(out, "\n%d containment action(s) wait for approval (guardrail: protected principal %s) — approve or reject them in the console.\n", n, demoProtected)
	}
	fmt.Fprintln(out)
	printConsole(out, base, token)
	fmt.Fprintf(out, "also:\n  %s/v1/alerts   alerts (JSON)\n  %s/metrics     Prometheus metrics\n  %s/healthz     health\n", base, base, base)
	fmt.Fprintf(out, "  curl -H 'Authorization: Bearer %s' %s/v1/alerts\n", token, base)
	fmt.Fprintf(out, "post your own events: curl -H 'Authorization: Bearer %s' --data-binary @events.ndjson %s/v1/events\n", token, base)
	if c.ExitAfter > 0 {
		fmt.Fprintf(out, "stopping in %s\n", c.ExitAfter)
		select {
		case <-time.After(c.ExitAfter):
		case <-ctx.Done():
		}
	} else {
		fmt.Fprintln(out, "press Ctrl-C to stop")
		<-ctx.Done()
	}
	if err := stop(nil); err != nil {
		return err
	}
	fmt.Fprintln(out, "stopped")
	return nil
}

// narrate prints a progress line every few seconds: simulated day, events
// posted, alerts raised so far.
func (c *Options) narrate(ctx context.Context, out io.Writer, base, token string, start time.Time, simTime, posted *atomic.Int64, done <-chan struct{}) {
	t := time.NewTicker(c.Duration / 10)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-ctx.Done():
			return
		case <-t.C:
			day := 0.0
			if st := simTime.Load(); st > 0 {
				day = time.Unix(st, 0).Sub(start).Hours() / 24
			}
			alerts, _ := fetchAlerts(ctx, base, token, 1000, time.Time{})
			fmt.Fprintf(out, "  day %4.1f of %d: %8d events posted, %4d alerts so far\n", day, c.Days, posted.Load(), len(alerts))
		}
	}
}

// settleAlerts waits until the stored alerts stop changing for two seconds
// (windows close as the live watermark passes them; the store writes in
// batches), then returns them all.
func settleAlerts(ctx context.Context, base, token string, timeout time.Duration) ([]event.Alert, error) {
	deadline := time.Now().Add(timeout)
	var last []event.Alert
	stable := 0
	for time.Now().Before(deadline) && stable < 8 {
		all, err := allAlerts(ctx, base, token)
		if err != nil {
			return nil, err
		}
		if len(all) == len(last) && sameCounts(all, last) {
			stable++
		} else {
			stable = 0
		}
		last = all
		select {
		case <-time.After(250 * time.Millisecond):
		case <-ctx.Done():
			return last, nil
		}
	}
	return last, nil
}

func sameCounts(a, b []event.Alert) bool {
	n := func(as []event.Alert) (s int) {
		for _, x := range as {
			s += x.FindingCount
		}
		return s
	}
	return n(a) == n(b)
}

// allAlerts pages through /v1/alerts (newest first).
func allAlerts(ctx context.Context, base, token string) ([]event.Alert, error) {
	seen := map[string]bool{}
	var all []event.Alert
	before := time.Time{}
	for {
		page, err := fetchAlerts(ctx, base, token, 1000, before)
		if err != nil {
			return nil, err
		}
		added := 0
		for _, a := range page {
			if !seen[a.ID] {
				seen[a.ID] = true
				all = append(all, a)
				added++
			}
		}
		if len(page) < 1000 || added == 0 {
			return all, nil
		}
		// Inclusive of the last page's oldest time, so alerts sharing it are
		// not skipped; duplicates are dropped by id.
		before = page[len(page)-1].Time.Add(time.Nanosecond)
	}
}

func fetchAlerts(ctx context.Context, base, token string, limit int, before time.Time) ([]event.Alert, error) {
	q := url.Values{"limit": {fmt.Sprint(limit)}}
	if !before.IsZero() {
		q.Set("before", before.UTC().Format(time.RFC3339Nano))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/alerts?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("list alerts: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("list alerts: %s", resp.Status)
	}
	var res struct {
		Alerts []event.Alert `json:"alerts"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		return nil, fmt.Errorf("list alerts: %w", err)
	}
	return res.Alerts, nil
}

// demoToken creates the demo's admin token in the store at target.
func demoToken(ctx context.Context, target string) (string, error) {
	st, err := store.Open(ctx, target, store.Options{})
	if err != nil {
		return "", err
	}
	defer st.Close()
	tok, _, err := auth.CreateToken(ctx, st, auth.RoleAdmin, "demo admin", time.Now())
	if err != nil {
		return "", fmt.Errorf("demo token: %w", err)
	}
	return tok, nil
}

// printConsole tells where the console is and how to log in.
func printConsole(out io.Writer, base, token string) {
	fmt.Fprintf(out, "┌─ web console ────────────────────────────────────────────────────────────────\n")
	fmt.Fprintf(out, "│  open   %s/\n", base)
	fmt.Fprintf(out, "│  token  %s   (admin; paste it on the login page)\n", token)
	fmt.Fprintf(out, "└──────────────────────────────────────────────────────────────────────────────\n\n")
}

// pendingApprovals counts the actions waiting for approval.
func pendingApprovals(ctx context.Context, base, token string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/actions?state=pending_approval&limit=1000", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("list actions: %s", resp.Status)
	}
	var res struct {
		Actions []json.RawMessage `json:"actions"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		return 0, err
	}
	return len(res.Actions), nil
}
