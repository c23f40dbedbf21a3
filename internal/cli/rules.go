package cli

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/haechi-sec/haechi/internal/app"
	"github.com/haechi-sec/haechi/internal/config"
	"github.com/haechi-sec/haechi/internal/rules"
)

type rulesCmd struct {
	Test rulesTestCmd `cmd:"" help:"Run the inline tests of rule files through the real decoder and engine (default: the shipped pack)."`
	Lint rulesLintCmd `cmd:"" help:"Check rule files: load errors and lint problems (default: the shipped pack)."`
}

// rulesSource is what both subcommands read.
type rulesSource struct {
	Dirs []string `arg:"" optional:"" name:"dir" help:"Rule directories (searched recursively for .yml/.yaml) or files. Default: the shipped pack."`
	List []string `name:"list" placeholder:"NAME=V1,V2" help:"Value of a named list the rules read as lists.NAME (repeatable)."`
}

func (s *rulesSource) options() (rules.Options, error) {
	opts := rules.Options{Lists: map[string][]string{}}
	for _, l := range s.List {
		name, vals, ok := strings.Cut(l, "=")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			return opts, usageError{fmt.Errorf("--list %q: want NAME=V1,V2", l)}
		}
		var vs []string
		for _, v := range strings.Split(vals, ",") {
			if v = strings.TrimSpace(v); v != "" {
				vs = append(vs, v)
			}
		}
		opts.Lists[name] = vs
	}
	return opts, nil
}

// loadReporting loads the rules; load problems are printed on stdout, one
// per line, and the command fails.
func (s *rulesSource) loadReporting(e *env) (*rules.Set, error) {
	set, err := s.load()
	if err != nil {
		var u usageError
		if errors.As(err, &u) {
			return nil, err
		}
		fmt.Fprintln(e.stdout, err)
		return nil, errors.New("the rules did not load")
	}
	return set, nil
}

// load returns the set, or the load error (each problem on its own line).
func (s *rulesSource) load() (*rules.Set, error) {
	opts, err := s.options()
	if err != nil {
		return nil, err
	}
	if len(s.Dirs) == 0 {
		return rules.Pack(opts)
	}
	sets := make([]*rules.Set, 0, len(s.Dirs))
	var errs []error
	for _, d := range s.Dirs {
		if _, err := os.Stat(d); err != nil {
			return nil, usageError{err}
		}
		set, err := rules.LoadDir(d, opts)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		sets = append(sets, set)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return rules.Merge(sets...)
}

type rulesTestCmd struct {
	rulesSource
	Filter  string `name:"run" placeholder:"TEXT" help:"Only run tests whose rule-id/test-name contains TEXT."`
	Verbose bool   `short:"v" help:"Print every test, not only failures."`
}

func (c *rulesTestCmd) Run(e *env) error {
	set, err := c.loadReporting(e)
	if err != nil {
		return err
	}
	failed, ran := 0, 0
	for _, res := range set.RunTests() {
		name := res.Rule + "/" + res.Test
		if c.Filter != "" && !strings.Contains(name, c.Filter) {
			continue
		}
		ran++
		where := fmt.Sprintf("%s:%d", res.File, res.Line)
		if res.Pass {
			if c.Verbose {
				fmt.Fprintf(e.stdout, "--- PASS: %s (%s)\n", name, where)
			}
			continue
		}
		failed++
		fmt.Fprintf(e.stdout, "--- FAIL: %s (%s)\n", name, where)
		for _, l := range strings.Split(res.Diff, "\n") {
			fmt.Fprintf(e.stdout, "    %s\n", l)
		}
	}
	if failed > 0 {
		fmt.Fprintf(e.stdout, "FAIL %d of %d tests\n", failed, ran)
		return fmt.Errorf("%d of %d tests failed", failed, ran)
	}
	fmt.Fprintf(e.stdout, "ok %d rules, %d tests\n", len(set.Rules), ran)
	return nil
}

type rulesLintCmd struct {
	rulesSource
	Sigma []string `name:"sigma" placeholder:"DIR" help:"Also load the Sigma rules in DIR (repeatable) and report every rule haechi cannot run, with file, line and the unsupported feature."`
}

func (c *rulesLintCmd) Run(e *env) error {
	if len(c.Sigma) > 0 {
		return c.sigma(e)
	}
	set, err := c.loadReporting(e)
	if err != nil {
		return err
	}
	problems := rules.Lint(set)
	for _, p := range problems {
		fmt.Fprintln(e.stdout, p)
	}
	if len(problems) > 0 {
		return fmt.Errorf("%d problems in %d rules", len(problems), len(set.Rules))
	}
	fmt.Fprintf(e.stdout, "ok %d rules\n", len(set.Rules))
	return nil
}

// sigma loads Sigma directories as serve would and reports what it
// skipped; the lint fails when anything was skipped.
func (c *rulesLintCmd) sigma(e *env) error {
	for _, d := range c.Sigma {
		if _, err := os.Stat(d); err != nil {
			return usageError{err}
		}
	}
	rs, err := app.LoadRules(config.Rules{SigmaDirs: c.Sigma})
	if err != nil {
		fmt.Fprintln(e.stdout, err)
		return errors.New("the rules did not load")
	}
	for _, err := range rs.Skipped {
		fmt.Fprintln(e.stdout, err)
	}
	for _, w := range rs.Weakened {
		fmt.Fprintln(e.stdout, w)
	}
	weakened := ""
	if rs.WeakenedRules > 0 {
		weakened = fmt.Sprintf(" (%d of them weakened: they run, but see less than written, as listed above)", rs.WeakenedRules)
	}
	if len(rs.Skipped) > 0 {
		fmt.Fprintf(e.stdout, "%d Sigma rules loaded%s, %d not loaded\n", len(rs.Set.Rules), weakened, len(rs.Skipped))
		return fmt.Errorf("%d Sigma rules cannot run", len(rs.Skipped))
	}
	fmt.Fprintf(e.stdout, "ok %d Sigma rules%s\n", len(rs.Set.Rules), weakened)
	return nil
}
