package cli

import (
	"fmt"
	"time"

	"github.com/haechi-sec/haechi/internal/app"
	"github.com/haechi-sec/haechi/internal/config"
)

type serveCmd struct {
	storeFlag
	Listen         string         `placeholder:"ADDR" help:"Listen address (overrides listen; default 127.0.0.1:8470)."`
	CanaryRecords  []string       `name:"canary-records" sep:"," placeholder:"ID,..." help:"Canary record ids (added to detectors.canary.records)."`
	Roster         string         `placeholder:"FILE" help:"Roster snapshot (contract NDJSON of hr.roster events) loaded at start-up."`
	MaxBodyBytes   int64          `placeholder:"N" help:"Largest accepted ingest body in bytes (overrides ingest.max_body_bytes)."`
	Lateness       *time.Duration `placeholder:"DURATION" help:"Allowed lateness of out-of-order events (overrides engine.allowed_lateness)."`
	TLSCert        string         `name:"tls-cert" placeholder:"FILE" help:"Serve HTTPS with this certificate (PEM); needs --tls-key."`
	TLSKey         string         `name:"tls-key" placeholder:"FILE" help:"Private key (PEM) of --tls-cert."`
	InsecureNoAuth bool           `name:"insecure-no-auth" help:"Serve the API and console WITHOUT tokens. Loopback addresses only; anyone who connects reads alerts and customer-data scope."`
	KafkaBrokers   []string       `name:"kafka-brokers" sep:"," placeholder:"HOST:PORT,..." help:"Cluster mode: consume events from Kafka as one worker of a group, instead of HTTP ingest (overrides kafka.brokers; docs/scale-out.md)."`
	KafkaTopic     string         `name:"kafka-topic" placeholder:"TOPIC" help:"Input topic of contract NDJSON events (overrides kafka.topic)."`
	KafkaGroup     string         `name:"kafka-group" placeholder:"GROUP" help:"Consumer group prefix shared by the workers (overrides kafka.group; default haechi)."`
	KafkaPrefix    string         `name:"kafka-prefix" placeholder:"PREFIX" help:"Prefix of the topics the workers write (overrides kafka.prefix; default the topic)."`
	KafkaID        string         `name:"kafka-id" placeholder:"ID" help:"This worker's name; a replacement for a crashed worker reuses it (overrides kafka.id)."`
}

func (c *serveCmd) Run(e *env) error {
	cfg, err := e.loadConfig()
	if err != nil {
		return err
	}
	if c.Listen != "" {
		cfg.Listen = c.Listen
	}
	if c.Roster != "" {
		cfg.Detectors.TerminatedIdentity.RosterFile = c.Roster
	}
	if c.MaxBodyBytes != 0 {
		cfg.Ingest.MaxBodyBytes = c.MaxBodyBytes
	}
	if c.Lateness != nil {
		cfg.Engine.AllowedLateness = config.Duration(*c.Lateness)
	}
	if len(c.KafkaBrokers) > 0 {
		cfg.Kafka.Brokers = c.KafkaBrokers
	}
	for _, o := range []struct{ flag, dst *string }{{&c.KafkaTopic, &cfg.Kafka.Topic}, {&c.KafkaGroup, &cfg.Kafka.Group},
		{&c.KafkaPrefix, &cfg.Kafka.Prefix}, {&c.KafkaID, &cfg.Kafka.ID}} {
		if *o.flag != "" {
			*o.dst = *o.flag
		}
	}
	if err := validate(&cfg); err != nil {
		return err
	}
	ids, err := canaryIDs(cfg, c.CanaryRecords)
	if err != nil {
		return err
	}
	log := logger(cfg, e.stderr)
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return usageError{fmt.Errorf("--tls-cert and --tls-key go together")}
	}
	if c.InsecureNoAuth {
		fmt.Fprintln(e.stderr, "haechi serve: WARNING: --insecure-no-auth: access control is OFF. Anyone who can connect reads alerts and who read which customer's data. Allowed on loopback only.")
	}
	return app.Serve(e.ctx, app.ServeOptions{Config: cfg, CanaryIDs: ids, Logger: log,
		TLSCert: c.TLSCert, TLSKey: c.TLSKey, InsecureNoAuth: c.InsecureNoAuth, Announce: e.stdout, Version: version()})
}
