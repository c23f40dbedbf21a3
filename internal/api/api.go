// Package api is haechi's HTTP JSON API: event ingest, alerts, health and
// metrics. It owns no pipeline state: ingest hands decoded events to the
// function it was given and alerts are read from the store.
//
// Ingest is all-or-nothing per request: a body is decoded completely (bad
// lines are rejected and reported, the others kept) and then admitted in one
// piece, or — when the pipeline is full — not at all, with 429 and
// Retry-After, so a client that retries never duplicates or loses events.
package api

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/haechi-sec/haechi/internal/auth"
	"github.com/haechi-sec/haechi/internal/decode"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/input"
	"github.com/haechi-sec/haechi/internal/ledger"
	"github.com/haechi-sec/haechi/internal/store"
)

// ErrBusy is returned by an Ingest function when the pipeline cannot take
// the events now; the client is told to retry.
var ErrBusy = errors.New("pipeline is busy")

// ErrStopping is returned by an Ingest function during shutdown.
var ErrStopping = errors.New("shutting down")

// ErrUnavailable is returned (wrapped) by a Spool function that cannot
// store events durably (disk full, I/O error): nothing is acknowledged.
var ErrUnavailable = errors.New("durable storage unavailable")

// ErrKeyReused is returned (wrapped, saying when the key was used) by a
// Spool function given an idempotency key already stored, in the same
// scope and within the key's lifetime, with a different body: nothing is
// stored and the client is told (422) — a new batch needs a new key.
var ErrKeyReused = errors.New("idempotency key reused with a different body")

// Stored is a validated request handed to Options.Spool.
type Stored struct {
	// Scope is whose key Key is: the caller's token id ("" without
	// authentication). Keys of different scopes never match.
	Scope  string
	Key    string // Idempotency-Key header, "" when absent
	Format string // input format; "" is the event contract
	Body   []byte // decompressed body
	// NotAfter: lines dated after it were rejected (Options.MaxFuture)
	// and must be skipped when the body is read again; zero → no limit.
	NotAfter time.Time
	// Events are the body's accepted events as validation decoded them,
	// in order (their Input is the request's index, not the spool's), or
	// nil. They are what reading Body again in Format would give, lines
	// after NotAfter left out: the spool may hand them to its consumer
	// instead of decoding the body a second time. Spool takes ownership.
	Events []event.Event
}

// MaxIdempotencyKey is the longest accepted Idempotency-Key header.
const MaxIdempotencyKey = 200

// TailKeyPrefix starts the keys the file tailer stores its chunks with; an
// Idempotency-Key starting with it is refused (400).
const TailKeyPrefix = "tail:"

// AlertReader is the part of the store the API reads.
type AlertReader interface {
	ListAlerts(ctx context.Context, q store.AlertQuery) ([]event.Alert, error)
	GetAlert(ctx context.Context, id string) (event.Alert, error)
}

// Options configure New.
type Options struct {
	// Ingest admits decoded events, or returns ErrBusy / ErrStopping. It
	// owns evs after a nil return. input is the request's input index
	// (what the events' Input field carries).
	Ingest func(evs []event.Event) error
	// NextInput returns a fresh input index for a request.
	NextInput func() uint32
	// Spool, when set, makes ingest durable: once decoding has validated
	// a request, its body (decompressed) is handed to Spool with the
	// request's Idempotency-Key header ("" when absent) scoped to the
	// caller's token, and the request is acknowledged only after Spool
	// returns nil — the events are then on disk and will be processed
	// from there; Ingest is not called. duplicate reports a key already
	// stored with the same body: the answer is the same and nothing is
	// stored twice. Errors: ErrBusy (429), ErrStopping or ErrUnavailable
	// (503), ErrKeyReused (422).
	Spool func(ctx context.Context, req Stored) (duplicate bool, err error)
	// Inputs reads request bodies in the format named by ?format= (nil →
	// only the event contract, "ecs").
	Inputs *input.Inputs
	// Admit, if set, is asked before a request's body is read, with its
	// Content-Length (MaxBodyBytes when unknown or compressed): ErrBusy
	// answers 429 at once, so an overloaded server does not spend its CPU
	// decoding bodies it would turn away anyway.
	Admit func(size int64) error
	// Health reports a problem that makes the server unhealthy (GET
	// /healthz answers 503 with it), or nil.
	Health func() error
	Alerts AlertReader
	// Scope reads the access ledger for GET /v1/scope (nil → 404).
	Scope ledger.Reader
	// Actions is the response outbox for /v1/actions (nil → not served);
	// OnApprove is called after an approval so delivery starts at once.
	Actions   ActionStore
	OnApprove func()
	// Triage serves feedback and suppressions (nil → not served).
	Triage TriageStore
	// Findings serves GET /v1/findings, the risk index (nil → not
	// served).
	Findings FindingReader
	// Incidents serves /v1/incidents (nil → not served); with Scope, an
	// incident's answer carries its combined exact scope.
	Incidents IncidentStore
	// FeedbackSuppression is how long a false_positive verdict suppresses
	// the alert's entity's findings of the kinds it held (0 → it does not).
	FeedbackSuppression time.Duration
	// MaxBodyBytes limits a request body, as sent and after decompression
	// (0 → 16 MiB). MaxLineBytes limits one line (0 → 1 MiB).
	MaxBodyBytes int64
	MaxLineBytes int
	// RetryAfter is what 429 answers advise (0 → 1s).
	RetryAfter time.Duration
	// MaxFuture rejects a line whose @timestamp is more than this ahead of
	// Now (0 → no limit): one event dated years ahead would otherwise
	// move event time past everything that follows it.
	MaxFuture time.Duration
	// Now is the server's clock (nil → time.Now).
	Now func() time.Time
	// Gatherer serves /metrics (nil → no metrics endpoint); Registerer
	// receives the API's own counters.
	Gatherer   prometheus.Gatherer
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	// Auth, when set, guards every route but /healthz: each one declares
	// the role it needs (see Routes). nil serves everything to anyone —
	// only for tests and --insecure-no-auth on loopback.
	Auth *auth.Authenticator
	// Verify configures the mint registry's routes: POST
	// /v1/tokens/minted, POST /v1/verify, GET /v1/verify/auth-request and
	// POST /v1/verify/batch (Verify.Registry nil → not served;
	// docs/verify.md).
	Verify VerifyOptions
	// Audit, when set, records reads of the access ledger and exports of
	// record ids with the caller (store.AppendAudit).
	Audit func(ctx context.Context, t time.Time, kind, actionID string, detail any) error
}

// Route is one registered route and what it needs of its caller.
type Route struct {
	Pattern string    // http.ServeMux pattern, e.g. "GET /v1/alerts/{id}"
	Need    auth.Need // auth.NeedPublic: no credentials
}

// Server is the API's http.Handler.
type Server struct {
	opts     Options
	mux      *http.ServeMux
	routes   []Route
	seq      atomic.Uint32
	received prometheus.Counter
	rejected *prometheus.CounterVec
	requests *prometheus.CounterVec
	// duration: request latency per route (the registered pattern) and
	// status code.
	duration *prometheus.HistogramVec
	// verifyLimit limits the check routes per caller (registerVerify).
	verifyLimit *callerLimits
	// mintWarned: the ingest tokens already logged as registering mints
	// (deprecatedMinter).
	mintWarnMu sync.Mutex
	mintWarned map[string]struct{}
	// batchBufs recycles POST /v1/verify/batch's body and answer buffers.
	batchBufs sync.Pool
	// streams are the open check streams (verify_stream.go).
	streams streamSet
}

// maxErrors is how many line errors an ingest answer lists.
const maxErrors = 100

// New builds the API.
func New(opts Options) *Server {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 16 << 20
	}
	if opts.RetryAfter <= 0 {
		opts.RetryAfter = time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Inputs == nil {
		// The event contract only; no routes or mappings cannot fail.
		opts.Inputs, _ = input.New(input.Options{MaxLine: opts.MaxLineBytes})
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		opts: opts,
		mux:  http.NewServeMux(),
		received: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "haechi_events_received_total",
			Help: "Events accepted by ingest and admitted to the pipeline.",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "haechi_events_rejected_total",
			Help: "Lines rejected by ingest, per reason code.",
		}, []string{"reason"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "haechi_ingest_requests_total",
			Help: "Ingest requests, per HTTP status code.",
		}, []string{"code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "haechi_http_request_duration_seconds",
			Help:    "HTTP request latency per route (the registered pattern, e.g. \"GET /v1/alerts/{id}\") and status code; live streams count when they end.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route", "code"}),
	}
	for _, c := range []string{decode.CodeInvalidJSON, decode.CodeMissingField, decode.CodeInvalidField, decode.CodeLineTooLong} {
		s.rejected.WithLabelValues(c)
	}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(s.received, s.rejected, s.requests, s.duration)
	}
	s.handleFunc("POST /v1/events", auth.NeedIngest, s.handleEvents)
	s.handleFunc("GET /v1/alerts", auth.NeedAnalyst, s.handleAlerts)
	s.handleFunc("GET /v1/alerts/{id}", auth.NeedAnalyst, s.handleAlert)
	s.handleFunc("GET /v1/scope", auth.NeedAnalyst, s.handleScope)
	if opts.Actions != nil {
		s.handleFunc("GET /v1/actions", auth.NeedAnalyst, s.handleActions)
		s.handleFunc("GET /v1/actions/{id}", auth.NeedAnalyst, s.handleAction)
		s.handleFunc("POST /v1/actions/{id}/approve", auth.NeedAnalyst, s.decide(true))
		s.handleFunc("POST /v1/actions/{id}/reject", auth.NeedAnalyst, s.decide(false))
	}
	s.registerTriage()
	s.registerFindings()
	s.registerIncidents()
	s.registerVerify()
	s.handleFunc("GET /healthz", auth.NeedPublic, func(w http.ResponseWriter, r *http.Request) {
		if opts.Health != nil {
			if err := opts.Health(); err != nil {
				writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unhealthy", "error": err.Error()})
				return
			}
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	if opts.Gatherer != nil {
		s.Handle("GET /metrics", auth.NeedAny, promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{}), nil)
	}
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Handle registers h for pattern behind the authenticator (when there is
// one): callers whose role does not allow need are refused by deny (nil →
// a JSON error). The console mounts its pages through it, so every route
// of the server is in Routes.
func (s *Server) Handle(pattern string, need auth.Need, h http.Handler, deny auth.DenyFunc) {
	s.routes = append(s.routes, Route{Pattern: pattern, Need: need})
	if s.opts.Auth != nil {
		h = s.opts.Auth.Guard(need, h, deny)
	}
	// Timed outside the guard, so refused requests count too.
	h = promhttp.InstrumentHandlerDuration(s.duration.MustCurryWith(prometheus.Labels{"route": pattern}), h)
	s.mux.Handle(pattern, h)
}

func (s *Server) handleFunc(pattern string, need auth.Need, h http.HandlerFunc) {
	s.Handle(pattern, need, h, nil)
}

// Routes returns every registered route, in registration order.
func (s *Server) Routes() []Route { return append([]Route(nil), s.routes...) }

// caller names the request's caller for the audit log and decisions:
// the token's name and id, or fallback when auth is off.
func caller(r *http.Request, fallback string) string {
	if c, ok := auth.CallerFrom(r.Context()); ok {
		return c.String()
	}
	if fallback == "" {
		fallback = "api"
	}
	return fallback
}

// audit records a ledger read or an export with its caller; a failure is
// logged (the answer has been computed; refusing it now helps no one).
func (s *Server) audit(r *http.Request, kind string, detail map[string]any) {
	if s.opts.Audit == nil {
		return
	}
	detail["by"] = caller(r, "")
	if c, ok := auth.CallerFrom(r.Context()); ok {
		detail["token_id"] = c.TokenID
	}
	if err := s.opts.Audit(context.WithoutCancel(r.Context()), s.opts.Now(), kind, "", detail); err != nil {
		s.opts.Logger.Error("audit", "kind", kind, "err", err)
	}
}

// LineError is one rejected line in an ingest answer.
type LineError struct {
	Line   int    `json:"line"`
	Code   string `json:"code"`
	Reason string `json:"reason"`
}

// IngestResult is the answer to POST /v1/events.
type IngestResult struct {
	Accepted int         `json:"accepted"`
	Rejected int         `json:"rejected"`
	Errors   []LineError `json:"errors"`
}

// errTooLarge marks a body over the limit (sent or decompressed).
var errTooLarge = errors.New("body too large")

type limitReader struct {
	r    io.Reader
	left int64
}

// maxBodyHint caps the buffer readBody allocates up front from a request's
// Content-Length, so a client announcing a large body it never sends cannot
// make serve reserve more than this per request; a larger body still grows
// as it arrives.
const maxBodyHint = 8 << 20

// readBody reads body (r's, after the limit and any decompression) whole.
// An uncompressed request announces its size: the buffer is allocated once
// at that size (at most maxBodyHint) instead of growing from 512 bytes by
// copying, as io.ReadAll does.
func readBody(body io.Reader, r *http.Request) ([]byte, error) {
	hint := 512
	if enc := r.Header.Get("Content-Encoding"); r.ContentLength > 0 && (enc == "" || strings.EqualFold(strings.TrimSpace(enc), "identity")) {
		hint = int(min(r.ContentLength, maxBodyHint)) + 1 // +1: the read that sees EOF needs room
	}
	b := make([]byte, 0, hint)
	for {
		n, err := body.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)] // grow, as io.ReadAll does
		}
	}
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		// Probe: is there more than the limit?
		var one [1]byte
		n, err := l.r.Read(one[:])
		if n > 0 {
			return 0, errTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}

func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	code := s.ingest(w, r)
	s.requests.WithLabelValues(strconv.Itoa(code)).Inc()
}

func (s *Server) ingest(w http.ResponseWriter, r *http.Request) int {
	if s.opts.Admit != nil {
		size := r.ContentLength
		if size <= 0 || r.Header.Get("Content-Encoding") != "" {
			size = s.opts.MaxBodyBytes
		}
		if err := s.opts.Admit(size); errors.Is(err, ErrBusy) {
			w.Header().Set("Retry-After", strconv.Itoa(int((s.opts.RetryAfter+time.Second-1)/time.Second)))
			return writeError(w, http.StatusTooManyRequests, err.Error()+"; nothing from this request was accepted, retry later")
		}
	}
	limit := s.opts.MaxBodyBytes
	if r.ContentLength > limit {
		return writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body of %d bytes exceeds the limit of %d bytes", r.ContentLength, limit))
	}
	var body io.Reader = &limitReader{r: r.Body, left: limit}
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip":
		gz, err := gzip.NewReader(body)
		if err != nil {
			if errors.Is(err, errTooLarge) {
				return writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body exceeds the limit of %d bytes", limit))
			}
			return writeError(w, http.StatusBadRequest, "invalid gzip body: "+err.Error())
		}
		defer gz.Close()
		body = &limitReader{r: gz, left: limit}
	default:
		return writeError(w, http.StatusUnsupportedMediaType, fmt.Sprintf("unsupported Content-Encoding %q (use gzip or none)", enc))
	}

	key := r.Header.Get("Idempotency-Key")
	if len(key) > MaxIdempotencyKey || strings.ContainsFunc(key, func(c rune) bool { return c < 0x21 || c > 0x7e }) {
		return writeError(w, http.StatusBadRequest, fmt.Sprintf("Idempotency-Key must be at most %d printable ASCII characters without spaces", MaxIdempotencyKey))
	}
	if strings.HasPrefix(key, TailKeyPrefix) {
		return writeError(w, http.StatusBadRequest, fmt.Sprintf("Idempotency-Key %q: keys starting with %q are reserved for haechi's file tailer", key, TailKeyPrefix))
	}
	var raw []byte
	if s.opts.Spool != nil {
		// The body is kept to be spooled once it has been validated.
		var err error
		if raw, err = readBody(body, r); err != nil {
			if errors.Is(err, errTooLarge) {
				return writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body exceeds the limit of %d bytes", limit))
			}
			return writeError(w, http.StatusBadRequest, "read body: "+err.Error())
		}
		body = bytes.NewReader(raw)
	}
	format := r.URL.Query().Get("format")
	if format == "" {
		format = input.FormatECS
	}
	inputs := s.opts.Inputs
	inputIdx := s.seq.Add(1)
	if s.opts.NextInput != nil {
		inputIdx = s.opts.NextInput()
	}
	rd, err := inputs.Open(format, body, inputIdx)
	if err != nil {
		return writeError(w, http.StatusBadRequest, "format: "+err.Error())
	}
	res := IngestResult{Errors: []LineError{}}
	// Without a spool the decoded events are what is ingested; with one,
	// the body is stored and the events go with it (Stored.Events), so
	// that its consumer need not decode the body again.
	var evs []event.Event
	if raw != nil {
		// A capacity hint from the line count, bounded: a body of empty
		// lines must not reserve an event for each.
		evs = make([]event.Event, 0, min(bytes.Count(raw, []byte{'\n'})+1, 4096))
	}
	accepted := 0
	var ev event.Event
	rejects := map[string]int{}
	var latest time.Time
	if s.opts.MaxFuture > 0 {
		latest = s.opts.Now().Add(s.opts.MaxFuture)
	}
	for {
		err := rd.Next(&ev)
		if err == nil && !latest.IsZero() && ev.Time.After(latest) {
			err = &decode.LineError{Line: rd.Line(), Code: decode.CodeInvalidField,
				Reason: fmt.Sprintf(`invalid "@timestamp": %s is more than %s ahead of the server's clock (ingest.max_future)`,
					ev.Time.Format(time.RFC3339), s.opts.MaxFuture)}
		}
		if err == nil {
			accepted++
			evs = append(evs, ev)
			continue
		}
		var le *decode.LineError
		if errors.As(err, &le) {
			res.Rejected++
			rejects[le.Code]++
			if len(res.Errors) < maxErrors {
				res.Errors = append(res.Errors, LineError{Line: le.Line, Code: le.Code, Reason: le.Reason})
			}
			continue
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if errors.Is(err, errTooLarge) {
			return writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body exceeds the limit of %d bytes", limit))
		}
		return writeError(w, http.StatusBadRequest, "read body: "+err.Error())
	}
	if accepted > 0 {
		var err error
		if s.opts.Spool != nil {
			stored := format
			if stored == input.FormatECS {
				stored = ""
			}
			var scope string
			if c, ok := auth.CallerFrom(r.Context()); ok {
				scope = c.TokenID
			}
			_, err = s.opts.Spool(r.Context(), Stored{Scope: scope, Key: key, Format: stored, Body: raw, NotAfter: latest, Events: evs})
		} else {
			err = s.opts.Ingest(evs)
		}
		if err != nil {
			switch {
			case errors.Is(err, ErrUnavailable):
				s.opts.Logger.Error("ingest", "err", err)
				w.Header().Set("Retry-After", strconv.Itoa(int((s.opts.RetryAfter+time.Second-1)/time.Second)))
				return writeError(w, http.StatusServiceUnavailable, "events cannot be stored durably ("+err.Error()+"); nothing from this request was accepted, retry later")
			case errors.Is(err, ErrBusy):
				w.Header().Set("Retry-After", strconv.Itoa(int((s.opts.RetryAfter+time.Second-1)/time.Second)))
				return writeError(w, http.StatusTooManyRequests, "haechi is behind (pipeline or spool full); nothing from this request was accepted, retry later")
			case errors.Is(err, ErrStopping):
				return writeError(w, http.StatusServiceUnavailable, "haechi is shutting down; nothing from this request was accepted")
			case errors.Is(err, ErrKeyReused):
				return writeError(w, http.StatusUnprocessableEntity, err.Error()+"; nothing from this request was accepted — send a new batch with a new key")
			}
			s.opts.Logger.Error("ingest", "err", err)
			return writeError(w, http.StatusInternalServerError, "ingest failed: "+err.Error())
		}
	}
	res.Accepted = accepted
	s.received.Add(float64(res.Accepted))
	for c, n := range rejects {
		s.rejected.WithLabelValues(c).Add(float64(n))
	}
	writeJSON(w, http.StatusOK, res)
	return http.StatusOK
}

// AlertList is the answer to GET /v1/alerts.
type AlertList struct {
	Alerts []event.Alert `json:"alerts"`
}

func (s *Server) handleAlerts(w http.ResponseWriter, r *http.Request) {
	q, err := ParseAlertQuery(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	alerts, err := s.opts.Alerts.ListAlerts(r.Context(), q)
	if err != nil {
		s.opts.Logger.Error("list alerts", "err", err)
		writeError(w, http.StatusInternalServerError, "list alerts: "+err.Error())
		return
	}
	if alerts == nil {
		alerts = []event.Alert{}
	}
	writeJSON(w, http.StatusOK, AlertList{Alerts: alerts})
}

// ParseAlertQuery reads GET /v1/alerts' parameters — limit (1 to 1000),
// since and before (RFC 3339), entity (kind:id) — into a store query with
// each alert's findings. `haechi alerts list` checks its flags with it, so
// the two answer alike. An error names the parameter.
func ParseAlertQuery(v url.Values) (store.AlertQuery, error) {
	q := store.AlertQuery{WithFindings: true}
	var err error
	if q.Limit, err = parseLimit(v.Get("limit")); err != nil {
		return q, err
	}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"since", &q.Since}, {"before", &q.Before}} {
		if t := v.Get(p.name); t != "" {
			ts, err := time.Parse(time.RFC3339Nano, t)
			if err != nil {
				return q, fmt.Errorf("%s: want an RFC 3339 time, got %q", p.name, t)
			}
			// The store compares Unix nanoseconds: a time beyond them
			// would wrap (since=9999-… would match every alert).
			if err := event.CheckTime(ts); err != nil {
				return q, fmt.Errorf("%s: %v", p.name, err)
			}
			*p.dst = ts
		}
	}
	if e := v.Get("entity"); e != "" {
		kind, id, ok := strings.Cut(e, ":")
		if !ok || kind == "" || id == "" {
			return q, fmt.Errorf("entity: want kind:id (e.g. principal:e:1042), got %q", e)
		}
		q.Entity = event.EntityKey{Kind: event.EntityKind(kind), ID: id}
	}
	return q, nil
}

func (s *Server) handleAlert(w http.ResponseWriter, r *http.Request) {
	a, err := s.opts.Alerts.GetAlert(r.Context(), r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "no alert "+strconv.Quote(r.PathValue("id")))
		return
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, "get alert: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, a)
}

// decodeSmallJSON decodes an optional small JSON body into v.
func decodeSmallJSON(r *http.Request, v any) error {
	if r.Body == nil {
		return nil
	}
	return json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(v)
}

// parseLimit reads a list's limit parameter: "" is 0 (the store's
// default), otherwise an integer from 1 to 1000.
func parseLimit(l string) (int, error) {
	if l == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(l)
	if err != nil || n < 1 || n > 1000 {
		return 0, fmt.Errorf("limit: want an integer from 1 to 1000, got %q", l)
	}
	return n, nil
}

type errorBody struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, code int, msg string) int {
	writeJSON(w, code, errorBody{Error: msg})
	return code
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}
