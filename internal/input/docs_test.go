package input

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
	"github.com/haechi-sec/haechi/internal/event"
)

// TestDocsConfig keeps the configuration example of docs/inputs.md
// valid: it must decode strictly into these types and compile.
func TestDocsConfig(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "docs", "inputs.md"))
	if err != nil {
		t.Skipf("docs not found: %v", err)
	}
	_, block, ok := strings.Cut(string(data), "```yaml\n")
	if !ok {
		t.Fatal("no yaml block in docs/inputs.md")
	}
	block, _, _ = strings.Cut(block, "```")
	var cfg struct {
		Inputs struct {
			Nginx struct {
				UserField  string `yaml:"user_field"`
				UserPrefix string `yaml:"user_prefix"`
				TokenField string `yaml:"token_field"`
			} `yaml:"nginx"`
			Routes   []Route            `yaml:"routes"`
			Mappings map[string]Mapping `yaml:"mappings"`
		} `yaml:"inputs"`
	}
	if err := yaml.UnmarshalWithOptions([]byte(block), &cfg, yaml.Strict()); err != nil {
		t.Fatal(err)
	}
	in, err := New(Options{Routes: cfg.Inputs.Routes, Mappings: cfg.Inputs.Mappings, Nginx: NginxOptions{
		UserField: cfg.Inputs.Nginx.UserField, UserPrefix: cfg.Inputs.Nginx.UserPrefix, TokenField: cfg.Inputs.Nginx.TokenField,
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Inputs.Routes) != 4 || len(in.Formats()) != 9 {
		t.Errorf("routes %d, formats %v", len(cfg.Inputs.Routes), in.Formats())
	}
	// The example line of the docs maps.
	r, err := in.Open("mapping:orders-audit", strings.NewReader(
		`{"ts":"2025-06-24 09:00:03.120 +0900","request_id":"req-0001","op":"address.read","result":"success","ctx":{"member":"48213377","client_ip":"211.234.10.9","jwt":{"jti":"tk-7d41c2e0","kid":"auth-2025-03","iat":1750723198}},"target":"address:48213377","fields":"name, phone,address"}`), 0)
	if err != nil {
		t.Fatal(err)
	}
	var ev = new(event.Event)
	if err := r.Next(ev); err != nil || ev.User.ID != "m:48213377" || ev.Records.IDs[0] != "48213377" {
		t.Fatalf("%v %+v", err, ev)
	}
}
