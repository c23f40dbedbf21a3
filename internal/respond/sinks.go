package respond

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/haechi-sec/haechi/internal/alertfmt"
	"github.com/haechi-sec/haechi/internal/event"
	siem "github.com/haechi-sec/haechi/internal/sink"
	"github.com/haechi-sec/haechi/internal/store"
)

// sender is what the dispatcher needs of a sink: one result per item, nil
// for delivered (the contract of package sink).
type sender interface {
	Send(ctx context.Context, items []siem.Item) []error
}

type sinkEntry struct {
	s       sender
	typ     string
	format  string
	timeout time.Duration
}

// newSink builds the sink sc configures, resolving its secrets from the
// environment (an error when a named variable is empty) and its CA file.
func (d *Dispatcher) newSink(sc SinkConfig) (sinkEntry, error) {
	e := sinkEntry{typ: sc.Type, format: sc.Format, timeout: orDefault(sc.Timeout, DefaultTimeout)}
	if e.format == "" {
		e.format = alertfmt.FormatECS
	}
	env := func(field, name string) (string, error) {
		v := os.Getenv(name)
		if v == "" {
			return "", fmt.Errorf("environment variable %s (%s) is empty", name, field)
		}
		return v, nil
	}
	var tlsConf *tls.Config
	if sc.CAFile != "" || sc.TLS {
		tlsConf = &tls.Config{MinVersion: tls.VersionTLS12}
		if sc.CAFile != "" {
			pem, err := os.ReadFile(sc.CAFile)
			if err != nil {
				return e, fmt.Errorf("ca_file: %w", err)
			}
			pool, err := x509.SystemCertPool()
			if err != nil {
				pool = x509.NewCertPool()
			}
			if !pool.AppendCertsFromPEM(pem) {
				return e, fmt.Errorf("ca_file %s: no PEM certificate in it", sc.CAFile)
			}
			tlsConf.RootCAs = pool
		}
	}
	client := d.opts.Client
	if client == nil {
		client = webhookClient(sc.AllowPrivate)
		if tlsConf != nil {
			client.Transport.(*http.Transport).TLSClientConfig = tlsConf
		}
	} else {
		cc := *client
		cc.CheckRedirect = checkRedirect
		client = &cc
	}
	switch sc.Type {
	case SinkElasticsearch:
		es := &siem.Elasticsearch{URL: sc.URL, Index: sc.Index, Header: http.Header{}, Client: client}
		if es.Index == "" {
			es.Index = "haechi-alerts"
		}
		switch {
		case sc.APIKeyEnv != "":
			k, err := env("api_key_env", sc.APIKeyEnv)
			if err != nil {
				return e, err
			}
			es.Header.Set("Authorization", "ApiKey "+k)
		case sc.Username != "":
			pw, err := env("password_env", sc.PasswordEnv)
			if err != nil {
				return e, err
			}
			r, _ := http.NewRequest(http.MethodPost, "/", nil)
			r.SetBasicAuth(sc.Username, pw)
			es.Header.Set("Authorization", r.Header.Get("Authorization"))
		}
		e.s = es
	case SinkSplunk:
		tok, err := env("token_env", sc.TokenEnv)
		if err != nil {
			return e, err
		}
		st := sc.Sourcetype
		if st == "" {
			st = "haechi:alert:" + e.format
		}
		e.s = &siem.Splunk{URL: sc.URL, Token: tok, Index: sc.Index, Sourcetype: st, Host: d.opts.Hostname, Client: client}
	case SinkSyslog:
		fac := 4 // auth
		if sc.Facility != "" {
			fac, _ = siem.Facility(sc.Facility)
		}
		network := sc.Network
		if network == "" {
			network = "tcp"
		}
		sl := &siem.Syslog{Network: network, Address: sc.Address, Facility: fac, Hostname: d.opts.Hostname,
			MsgID: "haechi-alert-" + e.format, Timeout: e.timeout}
		if sc.TLS {
			host, _, _ := net.SplitHostPort(sc.Address)
			tlsConf.ServerName = host
			sl.TLS = tlsConf
		}
		if !sc.AllowPrivate {
			sl.Dial = guardedDialContext()
		}
		e.s = sl
	default:
		return e, fmt.Errorf("unknown sink type %q", sc.Type)
	}
	return e, nil
}

// export delivers batch, the due exports to the sink name, as one batch,
// and records each action's result: delivered, retried with backoff (only
// the items that failed), or dead (max_age reached, or a document the
// sink refuses for good).
func (d *Dispatcher) export(ctx context.Context, name string, batch []Action) {
	se := d.sinks[name]
	now := d.now()
	maxAge := orDefault(d.cfg.MaxAge, DefaultMaxAge)
	var (
		items []siem.Item
		sent  []Action
	)
	for _, a := range batch {
		if !a.EnqueuedAt.IsZero() && now.Sub(a.EnqueuedAt) > maxAge {
			d.record(ctx, a, store.ActionResult{ID: a.ID, Attempt: a.Attempts, State: store.ActionDead,
				Error: fmt.Sprintf("not delivered within max_age %s", Duration(maxAge))})
			continue
		}
		it, err := d.exportItem(a, se.format)
		if err != nil {
			d.deliveries.WithLabelValues(se.typ, name, "dead").Inc()
			d.record(ctx, a, d.result(ctx, a, now, 0, &siem.Error{Reason: err.Error(), Permanent: true}))
			continue
		}
		items, sent = append(items, it), append(sent, a)
	}
	if len(items) == 0 {
		return
	}
	sctx, cancel := context.WithTimeout(ctx, se.timeout)
	errs := se.s.Send(sctx, items)
	cancel()
	d.latency.WithLabelValues(se.typ, name).Observe(d.now().Sub(now).Seconds())
	for i, a := range sent {
		var err error
		if i < len(errs) {
			err = hideURL(errs[i])
		} else {
			err = errors.New("the sink reported no result")
		}
		status := 0
		var serr *siem.Error
		if errors.As(err, &serr) {
			status = serr.Status
		}
		res := d.result(ctx, a, now, status, err)
		d.deliveries.WithLabelValues(se.typ, name, resultLabel(res.State)).Inc()
		d.record(ctx, a, res)
	}
}

// exportItem renders an export action's alert in format.
func (d *Dispatcher) exportItem(a Action, format string) (siem.Item, error) {
	var pl Payload
	if err := json.Unmarshal(a.Payload, &pl); err != nil {
		return siem.Item{}, fmt.Errorf("payload: %w", err)
	}
	al := alertOf(pl)
	doc, err := alertfmt.Encode(format, al, alertfmt.Options{Version: d.opts.Version, Change: alertfmt.Change(pl.Change)})
	if err != nil {
		return siem.Item{}, err
	}
	return siem.Item{ID: a.ID, Time: al.Time, Severity: int(al.Severity), Doc: doc}, nil
}

// alertOf is the alert an action's payload carries: the whole alert when
// it has it, else the summary every action has.
func alertOf(pl Payload) *event.Alert {
	if pl.Full != nil {
		return pl.Full
	}
	s := pl.Alert
	return &event.Alert{ID: s.ID, Time: s.Time, Entity: s.Entity, Severity: s.Severity, Score: s.Score, Risk: s.Score,
		Title: s.Title, Explanation: s.Explanation, State: event.AlertOpen, Detector: s.Detector, WindowStart: s.Time,
		LastTime: s.Time}
}

// actionPart is the response action an ECS or OCSF webhook carries
// (haechi.action, unmapped.haechi.action).
type actionPart struct {
	ID             string    `json:"id"`
	Kind           string    `json:"kind"`
	Target         string    `json:"target"`
	Playbook       string    `json:"playbook"`
	CreatedAt      time.Time `json:"created_at"`
	Attempt        int       `json:"attempt"`
	Mode           Mode      `json:"mode"`
	Expiry         string    `json:"expiry,omitempty"`
	ExpirySeconds  int64     `json:"expiry_seconds,omitempty"`
	Repeat         int       `json:"repeat,omitempty"`
	RevokeSessions bool      `json:"revoke_sessions,omitempty"`
	Text           string    `json:"text"`
}
