package app

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/haechi-sec/haechi/internal/config"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/prefilter"
	"github.com/haechi-sec/haechi/internal/rules"
	"github.com/haechi-sec/haechi/internal/sigma"
)

// RuleSet is what LoadRules found: the rules to run, and the Sigma rules
// it could not load (unsupported or invalid), which are reported but do
// not stop the others.
type RuleSet struct {
	Set *rules.Set
	// Skipped lists the Sigma rules not loaded, each error naming the
	// file, line and what is unsupported.
	Skipped []error
	// Weakened lists the places loaded Sigma rules run weaker than
	// written (sigma.Rule.Weakened), "file:line:col: weakened: what";
	// WeakenedRules counts the rules they belong to.
	Weakened      []string
	WeakenedRules int
}

// LoadRules loads the configured rules: the shipped pack, YAML rule
// directories and Sigma directories. A broken YAML rule is an error (the
// caller keeps its previous set); an unsupported Sigma rule is skipped and
// listed.
func LoadRules(cfg config.Rules) (RuleSet, error) {
	opts := rules.Options{Lists: cfg.Lists}
	var sets []*rules.Set
	if cfg.Pack {
		s, err := rules.Pack(opts)
		if err != nil {
			return RuleSet{}, fmt.Errorf("rule pack: %w", err)
		}
		sets = append(sets, s)
	}
	var errs []error
	for _, dir := range cfg.Dirs {
		s, err := rules.LoadDir(dir, opts)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		sets = append(sets, s)
	}
	out := RuleSet{}
	if len(cfg.SigmaDirs) > 0 {
		s := &rules.Set{}
		var all []*sigma.Rule
		for _, dir := range cfg.SigmaDirs {
			loaded, skipped := sigma.ParseDir(dir)
			out.Skipped = append(out.Skipped, skipped...)
			all = append(all, loaded...)
		}
		families := sigma.Families(all)
		for i, r := range all {
			rule, err := SigmaRule(r)
			if err == nil {
				rule.Family = families[i]
				err = s.Add(rule)
			}
			if err != nil {
				out.Skipped = append(out.Skipped, fmt.Errorf("%s:%d: %w", r.File, r.Line, err))
				continue
			}
			if len(r.Weakened) > 0 {
				out.WeakenedRules++
			}
			for _, w := range r.Weakened {
				out.Weakened = append(out.Weakened, fmt.Sprintf("%s:%d:%d: weakened: %s", r.File, w.Line, w.Col, w.What))
			}
		}
		sets = append(sets, s)
	}
	if len(errs) > 0 {
		return RuleSet{}, errors.Join(errs...)
	}
	set, err := rules.Merge(sets...)
	if err != nil {
		return RuleSet{}, err
	}
	out.Set = set
	return out, nil
}

// sigmaCond adapts a Sigma rule's detection to a rules.Condition.
type sigmaCond struct{ r *sigma.Rule }

func (c sigmaCond) Match(ev *event.Event) (bool, error) { return c.r.Match(ev) }
func (c sigmaCond) String() string                      { return "sigma:" + c.r.File + ":" + c.r.Condition }

// Prefilter implements rules.Prefilterer: the rule's logsource and literals
// (sigma.Rule.Prefilter), so the detectors run it only on events that can
// match it.
func (c sigmaCond) Prefilter() prefilter.Req { return c.r.Prefilter() }

// SigmaRule turns a parsed Sigma rule into a haechi rule: id "sigma.<id>",
// severity from the level (informational scores 10), tags kept; the
// finding is about the source address for web and proxy logs and about the
// principal otherwise.
func SigmaRule(r *sigma.Rule) (*rules.Rule, error) {
	id := strings.ToLower(r.ID)
	if id == "" {
		return nil, errors.New("sigma rule without an id")
	}
	sev := strings.ToLower(r.Level)
	switch sev {
	case "low", "medium", "high", "critical":
	case "informational":
		sev = "low"
	default:
		sev = "medium"
	}
	entity := rules.EntityPrincipal
	switch r.Logsource.Category {
	case "webserver", "proxy":
		entity = rules.EntitySource
	}
	desc := r.Description
	if desc == "" {
		desc = r.Title
	}
	return &rules.Rule{
		ID: "sigma." + id, Title: r.Title, Description: desc, Severity: sev, Score: r.Score(),
		Tags: r.Tags, Entity: entity, File: r.File, Line: r.Line, Cond: sigmaCond{r},
	}, nil
}

// rulesFingerprint summarises the configured rule files (names, sizes,
// modification times), so a change can be noticed by polling.
func rulesFingerprint(cfg config.Rules) string {
	h := sha256.New()
	for _, root := range append(slices.Clone(cfg.Dirs), cfg.SigmaDirs...) {
		_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				fmt.Fprintf(h, "%s!%v\n", path, err)
				return nil
			}
			if d.IsDir() {
				return nil
			}
			if info, err := d.Info(); err == nil {
				fmt.Fprintf(h, "%s|%d|%d\n", path, info.Size(), info.ModTime().UnixNano())
			}
			return nil
		})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// RuleReloader reloads the configured rules into a holder on request
// (SIGHUP) or when the rule files change, keeping the running set when the
// new one does not load, and records each reload in the audit log.
type RuleReloader struct {
	Config config.Rules
	Holder *rules.Holder
	Log    *slog.Logger
	// Audit records a reload (nil → not recorded).
	Audit func(kind string, detail map[string]any)

	last string
}

// Run reloads on every value from hup and whenever the files' fingerprint
// changes (checked every poll), until ctx ends.
func (r *RuleReloader) Run(ctx context.Context, hup <-chan os.Signal, poll time.Duration) {
	r.last = rulesFingerprint(r.Config)
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			r.Reload("SIGHUP")
		case <-tick.C:
			if fp := rulesFingerprint(r.Config); fp != r.last {
				r.Reload("rule files changed")
			}
		}
	}
}

// Reload loads the rules now; it reports whether the new set is running.
func (r *RuleReloader) Reload(why string) bool {
	r.last = rulesFingerprint(r.Config)
	rs, err := LoadRules(r.Config)
	if err != nil {
		r.Log.Error("rules: reload failed; the previous rules stay active", "why", why, "err", err)
		if r.Audit != nil {
			r.Audit("rules_reload_failed", map[string]any{"why": why, "error": err.Error()})
		}
		return false
	}
	ReportSkipped(r.Log, rs.Skipped)
	r.Holder.Swap(rs.Set)
	ids := make([]string, 0, len(rs.Set.Rules))
	for _, rule := range rs.Set.Rules {
		ids = append(ids, rule.ID)
	}
	r.Log.Info("rules reloaded", "why", why, "rules", len(ids), "sigma_skipped", len(rs.Skipped))
	if r.Audit != nil {
		r.Audit("rules_reloaded", map[string]any{"why": why, "rules": ids, "sigma_skipped": len(rs.Skipped), "files": r.last})
	}
	return true
}

// ruleCollector exports the running rules' counters to Prometheus.
type ruleCollector struct {
	h      *rules.Holder
	errs   *prometheus.Desc
	loaded *prometheus.Desc
}

func newRuleCollector(h *rules.Holder) *ruleCollector {
	return &ruleCollector{h: h,
		errs: prometheus.NewDesc("haechi_rule_errors_total",
			"Events on which a rule's condition failed to evaluate (counted as no match), per rule.", []string{"rule"}, nil),
		loaded: prometheus.NewDesc("haechi_rules_loaded", "Rules in the running set.", nil, nil),
	}
}

func (c *ruleCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.errs; ch <- c.loaded }

func (c *ruleCollector) Collect(ch chan<- prometheus.Metric) {
	set := c.h.Load()
	ch <- prometheus.MustNewConstMetric(c.loaded, prometheus.GaugeValue, float64(len(set.Rules)))
	for id, n := range set.ErrorCounts() {
		ch <- prometheus.MustNewConstMetric(c.errs, prometheus.CounterValue, float64(n), id)
	}
}
