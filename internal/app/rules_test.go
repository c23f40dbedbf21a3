package app

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/config"
	"github.com/haechi-sec/haechi/internal/rules"
)

const ruleA = `id: rule-a
title: A
description: test rule
severity: high
condition: event.action == "a"
`

func TestRuleReloader(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "a.yml")
	write := func(s string) {
		if err := os.WriteFile(file, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(ruleA)
	cfg := config.Rules{Dirs: []string{dir}}
	rs, err := LoadRules(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := rules.NewHolder(rs.Set)
	var mu sync.Mutex
	var audits []string
	r := &RuleReloader{Config: cfg, Holder: h, Log: slog.New(slog.DiscardHandler),
		Audit: func(kind string, _ map[string]any) { mu.Lock(); audits = append(audits, kind); mu.Unlock() }}

	// A broken file keeps the running set.
	write("id: rule-a\ntitle: A\nseverity: loud\ncondition: event.action ==\n")
	if r.Reload("test") {
		t.Fatal("a broken rule file was accepted")
	}
	if got := h.Load().Rules; len(got) != 1 || got[0].ID != "rule-a" {
		t.Fatalf("running set after a failed reload: %v", got)
	}
	// A change on disk is picked up by polling.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx, nil, 20*time.Millisecond) }()
	time.Sleep(50 * time.Millisecond)
	write(ruleA + "---\n" + `id: rule-b
title: B
description: test rule
severity: low
condition: event.action == "b"
`)
	// Make sure the modification time moves even on coarse clocks.
	future := time.Now().Add(2 * time.Second)
	os.Chtimes(file, future, future)
	deadline := time.Now().Add(5 * time.Second)
	for len(h.Load().Rules) != 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
	if n := len(h.Load().Rules); n != 2 {
		t.Fatalf("after the change: %d rules, want 2", n)
	}
	mu.Lock()
	defer mu.Unlock()
	// The poller may see the write and then the Chtimes as two changes:
	// one failed reload, then one or two successful ones.
	if len(audits) < 2 || len(audits) > 3 || audits[0] != "rules_reload_failed" || slices.ContainsFunc(audits[1:], func(a string) bool { return a != "rules_reloaded" }) {
		t.Errorf("audit entries %v", audits)
	}
}
