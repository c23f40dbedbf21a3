package api_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/haechi-sec/haechi/internal/api"
)

// Every route's requests are timed under its pattern, not the path (ids
// stay out of the labels).
func TestRequestDurationPerRoute(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := api.New(api.Options{Alerts: &fakeStore{}, Registerer: reg, Gatherer: reg})
	for _, path := range []string{"/healthz", "/healthz", "/v1/alerts/al-1", "/v1/alerts/al-2"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]uint64{}
	for _, mf := range mfs {
		if mf.GetName() != "haechi_http_request_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var route, code string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "route":
					route = l.GetValue()
				case "code":
					code = l.GetValue()
				}
			}
			got[route+" "+code] += m.GetHistogram().GetSampleCount()
		}
	}
	if got["GET /healthz 200"] != 2 || got["GET /v1/alerts/{id} 404"]+got["GET /v1/alerts/{id} 200"] != 2 || len(got) != 2 {
		t.Errorf("durations %v", got)
	}
}
