package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/haechi-sec/haechi/internal/app"
	"github.com/haechi-sec/haechi/internal/config"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/kafka"
)

// sharedContract is the shared contract file when present (the project's
// copy otherwise).
func sharedContract(t testing.TB) []byte {
	if b, err := os.ReadFile("../../../shared/contracts/events.ndjson"); err == nil {
		return b
	}
	return contract(t)
}

// TestServeCluster runs serve in cluster mode on an in-process Kafka: the
// contract produced to the input topic raises, in the store and the API,
// the alerts HTTP ingest raises (TestServe), and response plans its actions.
func TestServeCluster(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "events"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	brokers := c.ListenAddrs()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := kafka.EnsureTopics(ctx, brokers, "events", nil, 2, 1); err != nil {
		t.Fatal(err)
	}
	prod, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic("events"))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	var rs []*kgo.Record
	for _, l := range bytes.Split(sharedContract(t), []byte("\n")) {
		if len(bytes.TrimSpace(l)) > 0 {
			rs = append(rs, &kgo.Record{Value: l})
		}
	}
	rs = append(rs, &kgo.Record{Headers: []kgo.RecordHeader{{Key: kafka.WatermarkHeader, Value: []byte("end")}}})
	if err := prod.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Listen = "127.0.0.1:0"
	cfg.Kafka.Brokers, cfg.Kafka.Topic, cfg.Kafka.Group, cfg.Kafka.ID = brokers, "events", "haechi", "w0"
	// The forger's address carries no country in the contract: only
	// GeoIP enrichment in the cluster's stages puts its reads under one.
	cfg.GeoIP.CountryDB = countryDB(t, map[string]string{"45.77.0.0/16": "SG"})
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- app.Serve(sctx, app.ServeOptions{Config: cfg, CanaryIDs: []string{"70000003"}, Ready: func(u string) { ready <- u },
			InsecureNoAuth: true})
	}()
	var base string
	select {
	case base = <-ready:
	case err := <-done:
		t.Fatal(err)
	}

	// Events go to Kafka, not to this API.
	resp, err := http.Post(base+"/v1/events", "application/x-ndjson", bytes.NewReader(contract(t)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Errorf("HTTP ingest accepted events in cluster mode")
	}

	// e:1042 (terminated identity and canary read) and the retained key
	// auth-2022-11 (custodian left, forged tokens), as TestServe.
	dets := map[string]string{}
	for time.Now().Before(time.Now().Add(time.Minute)) && ctx.Err() == nil {
		var list struct{ Alerts []event.Alert }
		resp, err := http.Get(base + "/v1/alerts")
		if err != nil {
			t.Fatal(err)
		}
		json.NewDecoder(resp.Body).Decode(&list)
		resp.Body.Close()
		for _, a := range list.Alerts {
			for _, f := range a.Findings {
				dets[f.Detector] = a.Entity.ID
			}
		}
		if dets["terminated_identity"] == "e:1042" && dets["canary_record"] == "e:1042" && dets["token_provenance"] == "auth-2022-11" {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if dets["terminated_identity"] != "e:1042" || dets["canary_record"] != "e:1042" || dets["token_provenance"] != "auth-2022-11" {
		t.Fatalf("findings in alerts by detector: %v", dets)
	}
	// Response heard the alerts from the alert stage.
	var acts struct {
		Actions []struct{ Kind, Target, State string }
	}
	found := false
	for deadline := time.Now().Add(15 * time.Second); !found && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get(base + "/v1/actions?limit=1000")
		if err != nil {
			t.Fatal(err)
		}
		json.NewDecoder(resp.Body).Decode(&acts)
		resp.Body.Close()
		for _, a := range acts.Actions {
			found = found || a.Kind == "revoke_key" && a.Target == "auth-2022-11" && a.State == "dry_run"
		}
	}
	if !found {
		t.Errorf("no dry-run revoke_key for auth-2022-11 among %+v", acts.Actions)
		resp, _ := http.Get(base + "/v1/alerts")
		var list struct{ Alerts []event.Alert }
		json.NewDecoder(resp.Body).Decode(&list)
		resp.Body.Close()
		for _, a := range list.Alerts {
			t.Logf("alert %s %s %s %s %d findings", a.ID, a.Time, a.Entity, a.Detector, len(a.Findings))
			for _, f := range a.Findings {
				t.Logf("   %s %s %s", f.Detector, f.Kind, f.Time)
			}
		}
	}
	// The partitions' ledgers answer scope queries from the shared store.
	for _, q := range []string{"key=auth-2022-11", "principal=e:1042", "country=SG"} {
		var res struct {
			Total  int64            `json:"total"`
			ByType map[string]int64 `json:"by_type"`
		}
		for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			resp, err := http.Get(base + "/v1/scope?" + q)
			if err != nil {
				t.Fatal(err)
			}
			res.Total = 0
			json.NewDecoder(resp.Body).Decode(&res)
			resp.Body.Close()
			if res.Total > 0 {
				break
			}
		}
		if res.Total == 0 {
			t.Errorf("scope %s: no records in the cluster's ledger", q)
		}
		t.Logf("scope %s: %d records %v", q, res.Total, res.ByType)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

// countryDB writes a MaxMind-format country database mapping each CIDR to
// an ISO code.
func countryDB(t *testing.T, nets map[string]string) string {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "GeoLite2-Country", IncludeReservedNetworks: true, RecordSize: 24})
	if err != nil {
		t.Fatal(err)
	}
	for cidr, iso := range nets {
		_, n, err := net.ParseCIDR(cidr)
		if err != nil {
			t.Fatal(err)
		}
		if err := tree.Insert(n, mmdbtype.Map{"country": mmdbtype.Map{"iso_code": mmdbtype.String(iso)}}); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "country.mmdb")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tree.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// A cluster whose topics were not created fails with a clear message.
func TestServeClusterMissingTopics(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "events"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Listen = "127.0.0.1:0"
	cfg.Kafka.Brokers, cfg.Kafka.Topic = c.ListenAddrs(), "events"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = app.Serve(ctx, app.ServeOptions{Config: cfg, InsecureNoAuth: true})
	if err == nil || !strings.Contains(err.Error(), "events-by-") || !strings.Contains(err.Error(), "is missing") {
		t.Fatalf("serve: %v, want a missing topic", err)
	}
}
