package app

import (
	"errors"
	"fmt"
	"strings"

	"github.com/haechi-sec/haechi/internal/config"
	"github.com/haechi-sec/haechi/internal/event"
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
		for _, dir := range cfg.SigmaDirs {
			loaded, skipped := sigma.ParseDir(dir)
			out.Skipped = append(out.Skipped, skipped...)
			for _, r := range loaded {
				rule, err := SigmaRule(r)
				if err == nil {
					err = s.Add(rule)
				}
				if err != nil {
					out.Skipped = append(out.Skipped, fmt.Errorf("%s:%d: %w", r.File, r.Line, err))
				}
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
