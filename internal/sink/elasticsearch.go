package sink

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Elasticsearch indexes documents with the _bulk API of Elasticsearch or
// OpenSearch: one "create" action per document with _id the item's ID,
// so a document delivered twice (a retry after a lost answer) is refused
// as a version conflict (409), which counts as delivered. "create" also
// writes to data streams. Per-item answers decide per item: 2xx and 409
// delivered; 400 (a document the mapping refuses) permanent; 429, 5xx and
// anything else retried.
type Elasticsearch struct {
	URL    string      // base URL, e.g. https://es.internal:9200
	Index  string      // index or data stream
	Header http.Header // e.g. Authorization: ApiKey …
	Client *http.Client
}

// Send implements the sink contract (see the package comment).
func (s *Elasticsearch) Send(ctx context.Context, items []Item) []error {
	var body bytes.Buffer
	for _, it := range items {
		meta, _ := json.Marshal(map[string]map[string]string{"create": {"_index": s.Index, "_id": it.ID}})
		body.Write(meta)
		body.WriteByte('\n')
		body.Write(it.Doc)
		body.WriteByte('\n')
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(s.URL, "/")+"/_bulk", &body)
	if err != nil {
		return each(len(items), err)
	}
	for k, v := range s.Header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("User-Agent", "haechi-sink/1")
	resp, err := s.Client.Do(req)
	if err != nil {
		return each(len(items), err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return each(len(items), fmt.Errorf("read bulk response: %w", err))
	}
	if resp.StatusCode/100 != 2 {
		return each(len(items), &Error{Status: resp.StatusCode, Reason: "bulk request refused: " + snippet(raw)})
	}
	var br struct {
		Errors bool `json:"errors"`
		Items  []map[string]struct {
			ID     string `json:"_id"`
			Status int    `json:"status"`
			Error  *struct {
				Type   string `json:"type"`
				Reason string `json:"reason"`
			} `json:"error"`
		} `json:"items"`
	}
	if err := json.Unmarshal(raw, &br); err != nil {
		return each(len(items), fmt.Errorf("bulk response: %w", err))
	}
	if len(br.Items) != len(items) {
		return each(len(items), fmt.Errorf("bulk response has %d items for %d documents", len(br.Items), len(items)))
	}
	out := make([]error, len(items))
	for i, m := range br.Items {
		r, ok := m["create"]
		switch {
		case !ok:
			out[i] = fmt.Errorf("bulk response item %d is not a create result", i)
			continue
		case r.ID != "" && r.ID != items[i].ID:
			out[i] = fmt.Errorf("bulk response item %d is for _id %s, not %s", i, r.ID, items[i].ID)
			continue
		case r.Status/100 == 2, r.Status == http.StatusConflict:
			continue // delivered (409: delivered before)
		}
		reason := "refused"
		if r.Error != nil {
			reason = r.Error.Type + ": " + r.Error.Reason
		}
		out[i] = &Error{Status: r.Status, Reason: reason, Permanent: r.Status == http.StatusBadRequest}
	}
	return out
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
