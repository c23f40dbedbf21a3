package sink

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
)

// answer is a RoundTripper that answers every request with status and body.
type answer struct {
	status int
	body   string
}

func (a answer) RoundTrip(*http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: a.status, Body: io.NopCloser(strings.NewReader(a.body)), Header: http.Header{}}, nil
}

// Whatever a bulk endpoint answers, Send returns one result per item and
// never calls a document delivered unless the answer says so item by item.
func FuzzElasticsearchResponse(f *testing.F) {
	f.Add(200, `{"errors":false,"items":[{"create":{"_id":"act-0","status":201}},{"create":{"_id":"act-1","status":409}}]}`)
	f.Add(200, `{"errors":true,"items":[{"create":{"_id":"act-0","status":429,"error":{"type":"x","reason":"y"}}},{"index":{}}]}`)
	f.Add(429, `{"error":"too many"}`)
	f.Add(200, `{"items":null}`)
	f.Fuzz(func(t *testing.T, status int, body string) {
		if status < 100 || status > 999 {
			return
		}
		es := &Elasticsearch{URL: "http://es.test", Index: "i", Client: &http.Client{Transport: answer{status, body}}}
		its := items(2)
		errs := es.Send(context.Background(), its)
		if len(errs) != len(its) {
			t.Fatalf("%d results for %d items", len(errs), len(its))
		}
		if status/100 != 2 {
			for _, e := range errs {
				if e == nil {
					t.Fatalf("status %d but an item delivered", status)
				}
			}
		}
	})
}

// Whatever HEC answers, Send returns one result per item; only a 2xx
// delivers the whole batch, and an invalid-event-number delivers only the
// events before it.
func FuzzSplunkResponse(f *testing.F) {
	f.Add(200, `{"text":"Success","code":0}`)
	f.Add(400, `{"text":"Invalid data format","code":6,"invalid-event-number":1}`)
	f.Add(400, `{"invalid-event-number":-3}`)
	f.Add(503, `{"text":"Server is busy","code":9}`)
	f.Fuzz(func(t *testing.T, status int, body string) {
		if status < 100 || status > 999 {
			return
		}
		hec := &Splunk{URL: "http://hec.test", Token: "t", Sourcetype: "s", Client: &http.Client{Transport: answer{status, body}}}
		its := items(3)
		errs := hec.Send(context.Background(), its)
		if len(errs) != len(its) {
			t.Fatalf("%d results for %d items", len(errs), len(its))
		}
		if status/100 != 2 && errs[len(errs)-1] == nil {
			t.Fatalf("status %d but the last event delivered", status)
		}
	})
}
