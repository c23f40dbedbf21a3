package console

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/ledger"
	"github.com/haechi-sec/haechi/internal/store"
)

// entityFindings caps the findings the entity page lists.
const entityFindings = 100

type entityView struct {
	Entity    event.EntityKey
	Days      int
	From, To  time.Time
	Records   Chart
	Scores    Chart
	Alerts    []event.Alert
	HasLedger bool
	Total     int64
	ScopeURL  string
	Note      string
	// Findings are the entity's newest stored findings (at most
	// entityFindings); MoreURL, when there are more, continues the
	// listing (GET /v1/findings).
	Findings []store.ScoredFinding
	MoreURL  string
}

func (c *Console) entity(w http.ResponseWriter, r *http.Request) {
	e := event.EntityKey{Kind: event.EntityKind(r.PathValue("kind")), ID: r.PathValue("id")}
	switch e.Kind {
	case event.EntityPrincipal, event.EntitySigningKey, event.EntitySource, event.EntityToken, event.EntityRecord:
	default:
		c.fail(w, r, http.StatusNotFound, fmt.Sprintf("%q is not an entity kind.", e.Kind), "Entities are principal, key, token, source or record: /entities/principal/ID.")
		return
	}
	days := 30
	switch r.URL.Query().Get("days") {
	case "7":
		days = 7
	case "90":
		days = 90
	case "180":
		days = 180
	}
	ctx := r.Context()
	to := c.opts.Now().UTC()
	from := to.AddDate(0, 0, -days+1).Truncate(24 * time.Hour)
	v := entityView{Entity: e, Days: days, From: from, To: to}
	// Both charts span the same whole UTC days, from the window's first
	// midnight to the end of today, so they line up day for day.
	axisTo := to.Truncate(24 * time.Hour).Add(24 * time.Hour)
	alerts, err := c.opts.Store.ListAlerts(ctx, store.AlertQuery{Entity: e, Limit: 200, WithFindings: true})
	if err != nil {
		c.fail(w, r, http.StatusInternalServerError, "Reading alerts failed: "+err.Error(), "Check the server's log; then reload.")
		return
	}
	v.Alerts = alerts
	findings, next, err := c.opts.Store.ListFindings(ctx, store.FindingQuery{Entity: e, Limit: entityFindings})
	if err != nil {
		c.fail(w, r, http.StatusInternalServerError, "Reading findings failed: "+err.Error(), "Check the server's log; then reload.")
		return
	}
	v.Findings = findings
	if next != "" {
		v.MoreURL = "/v1/findings?" + url.Values{"entity": {string(e.Kind) + ":" + e.ID}, "cursor": {next}, "limit": {"1000"}}.Encode()
	}
	// Finding scores over time, one series per detector.
	byDet := map[string][]Point{}
	for _, a := range alerts {
		for _, f := range a.Findings {
			if f.Time.Before(from) {
				continue
			}
			byDet[f.Detector] = append(byDet[f.Detector], Point{T: f.Time, V: f.Score,
				Label: fmt.Sprintf("%s %s: score %.0f — %s", f.Detector, f.Time.UTC().Format("2006-01-02 15:04"), f.Score, f.Title)})
		}
	}
	v.Scores = Chart{Title: "Finding scores over time", YLabel: "score", From: from, To: axisTo, YMax: 100,
		Empty: "No findings about this entity in this window."}
	for _, d := range sortedKeys(boolKeys(byDet)) {
		v.Scores.Series = append(v.Scores.Series, Series{Name: d, Style: "dots", Points: byDet[d]})
	}
	// The entity's risk when each of its alerts was raised (the alert
	// stage adds findings up per entity; docs/alerts.md).
	var risk []Point
	for _, a := range alerts {
		if a.Time.Before(from) || a.Risk == 0 {
			continue
		}
		risk = append(risk, Point{T: a.Time, V: a.Risk,
			Label: fmt.Sprintf("%s: risk %.0f — %s", a.Time.UTC().Format("2006-01-02 15:04"), a.Risk, a.Title)})
		v.Scores.YMax = max(v.Scores.YMax, a.Risk)
	}
	if len(risk) > 0 {
		slices.SortFunc(risk, func(x, y Point) int { return x.T.Compare(y.T) })
		v.Scores.Title = "Finding scores and risk over time"
		// Coloured apart from the detectors' dots (s0 … s5).
		v.Scores.Series = append(v.Scores.Series, Series{Name: "risk at alert", Style: "line", Points: risk, Class: "critical"})
	}
	v.Records = Chart{Title: "Records touched per day", YLabel: "records", From: from, To: axisTo,
		Empty: "The access ledger has no records touched by this entity in this window."}
	if dim, ok := ledger.OfEntity(e.Kind); ok {
		v.HasLedger = true
		pts, total, err := recordsPerDay(ctx, c.opts.Store, dim, e.ID, from, to)
		if err != nil {
			c.fail(w, r, http.StatusInternalServerError, "Reading the access ledger failed: "+err.Error(), "Check the server's log; then reload.")
			return
		}
		c.audit(r, "console_entity_ledger_read", map[string]any{"entity": e.String(), "days": days, "records": total})
		v.Total = total
		v.Records.Series = append(v.Records.Series, Series{Name: "records touched", Style: "bars", Points: pts})
		if base := ownBaseline(pts, 7); len(base) > 0 {
			v.Records.Series = append(v.Records.Series, Series{Name: "own baseline (median of the 7 days before)", Style: "line", Points: base})
		}
		q := url.Values{string(dim): {e.ID}, "from": {from.Format("2006-01-02")}, "to": {to.Format("2006-01-02")}}
		v.ScopeURL = "/scope?" + q.Encode()
	} else {
		v.Note = fmt.Sprintf("The access ledger is kept by principal, key, token, source, network and country; a %s has no records-per-day chart.", e.Kind)
	}
	for _, src := range c.opts.EntitySeries {
		ss, err := src(ctx, e, from, to)
		if err != nil {
			c.opts.Logger.Warn("console: entity series", "entity", e.String(), "err", err)
			continue
		}
		v.Scores.Series = append(v.Scores.Series, ss...)
	}
	c.render(w, r, http.StatusOK, "entity", view{Title: e.String(), Nav: "alerts", Data: v})
}

func boolKeys[V any](m map[string]V) map[string]bool {
	out := make(map[string]bool, len(m))
	for k := range m {
		out[k] = true
	}
	return out
}

// recordsPerDay counts, per UTC day, the distinct records (of every type)
// value of dim touched, from the ledger; total is over the whole window.
// A day's point is at its noon, so that its bar (centred on the point)
// sits inside the day on a time axis of whole days.
// ownBaseline is, for each day with activity, the median of the entity's
// records per day over the window days before it (days without activity
// count as 0) — the entity's own baseline, drawn against what it did.
func ownBaseline(pts []Point, window int) []Point {
	if len(pts) == 0 {
		return nil
	}
	byDay := map[int64]float64{}
	for _, p := range pts {
		byDay[ledger.Day(p.T)] = p.V
	}
	var out []Point
	for _, p := range pts {
		d := ledger.Day(p.T)
		vals := make([]float64, 0, window)
		for k := d - int64(window); k < d; k++ {
			vals = append(vals, byDay[k])
		}
		slices.Sort(vals)
		m := vals[len(vals)/2]
		if len(vals)%2 == 0 {
			m = (vals[len(vals)/2-1] + vals[len(vals)/2]) / 2
		}
		out = append(out, Point{T: p.T, V: m, Label: fmt.Sprintf("%s: own median of the %d days before %.0f", p.T.Format("2006-01-02"), window, m)})
	}
	return out
}

func recordsPerDay(ctx context.Context, rd ledger.Reader, dim ledger.Dimension, value string, from, to time.Time) ([]Point, int64, error) {
	rows, err := rd.LedgerRows(ctx, string(dim), []string{value}, ledger.Day(from), ledger.Day(to))
	if err != nil {
		return nil, 0, err
	}
	perDay := map[int64]int64{}
	all := map[string]*roaring.Bitmap{}
	for _, row := range rows {
		if row.Field != "" {
			continue
		}
		bm := roaring.New()
		if _, err := bm.FromUnsafeBytes(row.Bitmap); err != nil {
			return nil, 0, fmt.Errorf("ledger row %s=%s day %d: %w", row.Dim, row.Value, row.Day, err)
		}
		perDay[row.Day] += int64(bm.GetCardinality())
		if all[row.RType] == nil {
			all[row.RType] = roaring.New()
		}
		all[row.RType].Or(bm)
	}
	var total int64
	for _, bm := range all {
		total += int64(bm.GetCardinality())
	}
	var pts []Point
	for d := ledger.Day(from); d <= ledger.Day(to); d++ {
		if n, ok := perDay[d]; ok {
			t := ledger.DayTime(d).Add(12 * time.Hour)
			pts = append(pts, Point{T: t, V: float64(n), Label: fmt.Sprintf("%s: %s records", t.Format("2006-01-02"), groupNum(float64(n)))})
		}
	}
	return pts, total, nil
}
