package rules_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/rules"
)

func BenchmarkCondition(b *testing.B) {
	ev := decodeOne(b, sampleEvent)
	opts := rules.Options{Lists: map[string][]string{"corporate_networks": {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"}}}
	for _, bc := range []struct{ name, cond string }{
		{"simple", `event.dataset == "gateway.access" && http.response.status_code >= 500`},
		{"roles", `event.dataset == "gateway.access" && "cs-agent" in user.roles && records.type == "customer"`},
		{"complex", `event.action.contains("export") && !user.id.startsWith("m:") && size(records.ids) >= 3 && ` +
			`(timestamp.getHours("Asia/Seoul") < 8 || timestamp.getHours("Asia/Seoul") >= 20) && ` +
			`!cidr(source.ip, lists.corporate_networks) && "entrance_code" in records.fields`},
		{"comprehension", `records.ids.exists(id, "m:" + id == user.id)`},
	} {
		r := condition(b, bc.cond, opts)
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := r.Cond.Match(ev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDetector measures the engine running the shipped pack (10
// rules) over a mix of events: ns/op is per event, all four rules
// detectors included.
func BenchmarkDetector(b *testing.B) {
	set, err := rules.Pack(rules.Options{Lists: map[string][]string{"corporate_networks": {"10.0.0.0/8"}}})
	if err != nil {
		b.Fatal(err)
	}
	var evs []event.Event
	for i := range 1024 {
		line := fmt.Sprintf(`{"@timestamp":"2025-06-25T%02d:%02d:%02dZ","event":{"dataset":"gateway.access","action":"member.profile.read","outcome":"success"},`+
			`"user":{"id":"m:%d"},"source":{"ip":"211.234.%d.%d","geo":{"country_iso_code":"KR"}},"user_agent":{"original":"Mozilla/5.0 (iPhone)"},`+
			`"token":{"id":"tk-%d","key_id":"auth-2025-03"},"http":{"response":{"status_code":200}},"url":{"path":"/api/v2/members/%d/profile"},`+
			`"records":{"type":"customer","ids":["%d"],"fields":["name","email"]}}`, i/3600%24, i/60%60, i%60, 48000000+i%300, i%7, i%250, i%500, 48000000+i%300, 48000000+i%300)
		evs = append(evs, *decodeOne(b, line))
	}
	eng, err := engine.New(engine.Options{Detectors: rules.Detectors(rules.NewHolder(set)), Shards: 2, QueueSize: 1 << 16})
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range eng.Output() {
		}
	}()
	runErr := make(chan error, 1)
	go func() { runErr <- eng.Run(context.Background()) }()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += len(evs) {
		n := min(len(evs), b.N-i)
		batch := make([]event.Event, n)
		copy(batch, evs[:n])
		if err := eng.Submit(context.Background(), engine.Batch{Events: batch}); err != nil {
			b.Fatal(err)
		}
	}
	eng.Close()
	if err := <-runErr; err != nil {
		b.Fatal(err)
	}
	<-done
}
