package rules

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/types"
)

var (
	tagPattern    = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*(\.[a-z0-9][a-z0-9_.-]*)*$`)
	attackTech    = regexp.MustCompile(`^attack\.t[0-9]{4}(\.[0-9]{3})?$`)
	attackTactics = map[string]bool{
		"reconnaissance": true, "resource_development": true, "initial_access": true, "execution": true,
		"persistence": true, "privilege_escalation": true, "defense_evasion": true, "credential_access": true,
		"discovery": true, "lateral_movement": true, "collection": true, "command_and_control": true,
		"exfiltration": true, "impact": true,
	}
)

// Lint reports questionable but loadable things in s's rules: a missing
// description, tags that are not lower-case dotted words or valid MITRE
// ATT&CK ids, a condition that is constant, time accessors without a time
// zone, aggregates on fields the contract lacks or with a threshold of 1,
// and rules without a positive and a negative inline test.
func Lint(s *Set) []Problem {
	var out []Problem
	for _, r := range s.Rules {
		add := func(format string, args ...any) {
			out = append(out, Problem{File: r.File, Line: r.Line, Rule: r.ID, Message: fmt.Sprintf(format, args...)})
		}
		if r.Description == "" {
			add("no description: say what the rule catches and why it matters")
		}
		for _, t := range r.Tags {
			switch {
			case !tagPattern.MatchString(t):
				add("tag %q: want lower-case dotted words, e.g. attack.t1530", t)
			case strings.HasPrefix(t, "attack.") && !attackTech.MatchString(t) && !attackTactics[strings.TrimPrefix(t, "attack.")]:
				add("tag %q: not an ATT&CK technique (attack.t1234 or attack.t1234.001) or tactic (attack.exfiltration)", t)
			}
		}
		if cc, ok := r.Cond.(*celCondition); ok {
			out = append(out, lintCEL(r, cc)...)
		}
		if a := r.Agg; a != nil {
			if a.Field != "" {
				if _, ok := contractName(a.Field); !ok {
					add("aggregate: field %q is not a field of the event contract", a.Field)
				}
			}
			if a.Func == AggCount && a.Field != "" {
				add("aggregate: count ignores field %q (did you mean count_distinct?)", a.Field)
			}
			if a.Threshold == 1 {
				add("aggregate: threshold 1 fires on the first match; drop the aggregate (or raise the threshold)")
			}
			if a.Window > 7*24*time.Hour {
				add("aggregate: window %s keeps per-entity state for over a week; the long-window detectors suit this better", a.Window)
			}
		}
		pos, neg := false, false
		for _, t := range r.Tests {
			if t.Expect.Findings > 0 {
				pos = true
			} else {
				neg = true
			}
		}
		switch {
		case len(r.Tests) == 0:
			add("no tests: add one that fires and one that does not")
		case !pos:
			add("no test expects a finding")
		case !neg:
			add("no test expects no finding")
		}
	}
	return out
}

func lintCEL(r *Rule, cc *celCondition) []Problem {
	var out []Problem
	add := func(format string, args ...any) {
		out = append(out, Problem{File: r.File, Line: r.Line, Rule: r.ID, Message: fmt.Sprintf(format, args...)})
	}
	if folder, err := cel.NewConstantFoldingOptimizer(); err == nil {
		if opt, err := cel.NewStaticOptimizer(folder); err == nil {
			if folded, iss := opt.Optimize(cc.c.env, cc.ast); iss == nil || iss.Err() == nil {
				e := folded.NativeRep().Expr()
				if e.Kind() == ast.LiteralKind {
					if b, ok := e.AsLiteral().(types.Bool); ok {
						add("condition is always %t", bool(b))
					}
				}
			}
		}
	}
	walk(cc.ast.NativeRep().Expr(), func(e ast.Expr) {
		if e.Kind() != ast.CallKind {
			return
		}
		c := e.AsCall()
		if !c.IsMemberFunction() || len(c.Args()) != 0 {
			return
		}
		if t := cc.ast.NativeRep().GetType(c.Target().ID()); t == nil || t.Kind() != types.TimestampKind {
			return
		}
		switch c.FunctionName() {
		case "getHours", "getDayOfWeek", "getDate", "getDayOfMonth", "getMonth", "getFullYear", "getDayOfYear", "getMinutes":
			add("%s() without a time zone reads UTC; name the zone, e.g. timestamp.%s(\"Asia/Seoul\")", c.FunctionName(), c.FunctionName())
		}
	})
	return out
}
