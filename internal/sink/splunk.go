package sink

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// Splunk sends documents to a Splunk HTTP Event Collector
// (/services/collector/event), batched as concatenated event objects, with
// the header "Authorization: Splunk <token>". HEC indexes a batch's
// events in order and stops at the first it cannot parse, naming it
// (invalid-event-number): the events before it are delivered, it is
// refused for good, and those after it are retried. Any other refusal
// (busy 503, 429, a bad token) retries the whole batch. Indexer
// acknowledgement is not used: delivery is confirmed by HEC's answer.
type Splunk struct {
	URL        string // base URL, e.g. https://splunk.internal:8088
	Token      string
	Index      string // optional; empty: the token's default index
	Sourcetype string
	Host       string // the event's host field; empty: omitted
	Client     *http.Client
}

// Send implements the sink contract (see the package comment).
func (s *Splunk) Send(ctx context.Context, items []Item) []error {
	var body bytes.Buffer
	for _, it := range items {
		ev := struct {
			Time       json.Number     `json:"time"`
			Host       string          `json:"host,omitempty"`
			Source     string          `json:"source"`
			Sourcetype string          `json:"sourcetype"`
			Index      string          `json:"index,omitempty"`
			Event      json.RawMessage `json:"event"`
		}{
			Time: json.Number(strconv.FormatFloat(float64(it.Time.UnixMilli())/1000, 'f', 3, 64)),
			Host: s.Host, Source: "haechi", Sourcetype: s.Sourcetype, Index: s.Index, Event: it.Doc,
		}
		b, err := json.Marshal(ev)
		if err != nil {
			return each(len(items), err)
		}
		body.Write(b)
		body.WriteByte('\n')
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(s.URL, "/")+"/services/collector/event", &body)
	if err != nil {
		return each(len(items), err)
	}
	req.Header.Set("Authorization", "Splunk "+s.Token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "haechi-sink/1")
	resp, err := s.Client.Do(req)
	if err != nil {
		return each(len(items), err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 == 2 {
		return make([]error, len(items))
	}
	var hr struct {
		Text    string `json:"text"`
		Code    int    `json:"code"`
		Invalid *int   `json:"invalid-event-number"`
	}
	_ = json.Unmarshal(raw, &hr)
	reason := hr.Text
	if reason == "" {
		reason = snippet(raw)
	}
	if hr.Invalid == nil || *hr.Invalid < 0 || *hr.Invalid >= len(items) {
		return each(len(items), &Error{Status: resp.StatusCode, Reason: fmt.Sprintf("HEC refused the batch: %s (code %d)", reason, hr.Code)})
	}
	n := *hr.Invalid
	out := make([]error, len(items))
	out[n] = &Error{Status: resp.StatusCode, Reason: fmt.Sprintf("HEC refused the event: %s (code %d)", reason, hr.Code), Permanent: true}
	for i := n + 1; i < len(items); i++ {
		out[i] = &Error{Status: resp.StatusCode, Reason: fmt.Sprintf("not indexed: event %d of the batch was refused before it", n)}
	}
	return out
}
