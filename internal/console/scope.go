package console

import (
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/haechi-sec/haechi/internal/api"
	"github.com/haechi-sec/haechi/internal/ledger"
)

type scopeView struct {
	Dim, Value, From, To    string
	Dims                    []string
	Asked                   bool
	Err                     string
	Hint                    string // why an empty answer may be the wrong selector
	Result                  *ledger.Result
	ByType, ByField         []kv
	ExportCSV, ExportNDJSON template.URL // the API's exports of this scope
}

type kv struct {
	K string
	V int64
}

func sortedKV(m map[string]int64) []kv {
	out := make([]kv, 0, len(m))
	for k, v := range m {
		out = append(out, kv{k, v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].V > out[j].V || out[i].V == out[j].V && out[i].K < out[j].K })
	return out
}

func (c *Console) scope(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	v := scopeView{Dims: []string{"key", "token", "principal", "source", "network", "country"}, From: q.Get("from"), To: q.Get("to")}
	// The form sends dim + value; links from other pages send key=… etc.
	vals := url.Values{}
	if d, val := q.Get("dim"), strings.TrimSpace(q.Get("value")); d != "" || val != "" {
		v.Dim, v.Value = d, val
		if !ledger.Dimension(d).Valid() {
			v.Err = fmt.Sprintf("choose what to scope by: key, token, principal, source, network or country (got %q)", d)
		} else if val == "" {
			v.Err = "say whose scope: enter a " + d
		}
		vals.Set(d, val)
	} else {
		for _, d := range v.Dims {
			if val := q.Get(d); val != "" {
				v.Dim, v.Value = d, val
				vals.Set(d, val)
				break
			}
		}
	}
	if v.Dim == "" {
		v.Dim = "key"
	}
	for _, k := range []string{"from", "to"} {
		if s := q.Get(k); s != "" {
			vals.Set(k, s)
		}
	}
	code := http.StatusOK
	if v.Value != "" && v.Err == "" {
		v.Asked = true
		lq, err := api.ScopeQuery(vals, nil)
		if err != nil {
			v.Err = err.Error()
		} else {
			res, err := ledger.Scope(r.Context(), c.opts.Store, lq)
			if err != nil {
				c.fail(w, r, http.StatusInternalServerError, "Reading the access ledger failed: "+err.Error(), "Check the server's log; then try again.")
				return
			}
			c.audit(r, "console_scope_read", map[string]any{"query": vals.Encode(), "records": res.Total})
			v.Result, v.ByType, v.ByField = res, sortedKV(res.ByType), sortedKV(res.ByField)
			v.Hint = api.ScopeHint(res)
			v.ExportCSV = template.URL("/v1/scope?" + vals.Encode() + "&export=csv")       // #nosec G203 -- a constant path and an encoded query
			v.ExportNDJSON = template.URL("/v1/scope?" + vals.Encode() + "&export=ndjson") // #nosec G203 -- a constant path and an encoded query
		}
	}
	if v.Err != "" {
		code = http.StatusBadRequest
	}
	c.render(w, r, code, "scope", view{Title: "Scope explorer", Nav: "scope", Data: v})
}
