package store

import (
	"encoding/json"
	"time"

	"github.com/haechi-sec/haechi/internal/event"
)

// encodeIncidentEntities returns the entities column of an incident: what
// json.Marshal gives for incidentEntities{ents, sc} (sc not nil), byte for
// byte, without reflection — an incident's scope rule runs to hundreds of
// terms and is written on every batch that changes the incident.
// TestEncodeIncidentEntities holds it to json.Marshal.
func encodeIncidentEntities(ents []event.EntityKey, sc *IncidentScope) ([]byte, error) {
	e := jsonEnc{b: make([]byte, 0, 256+160*len(sc.Terms))}
	e.raw(`{"entities":`)
	e.entities(ents)
	e.raw(`,"scope":{"terms":`)
	e.terms(sc.Terms)
	if len(sc.LeftOut) > 0 {
		e.raw(`,"left_out":[`)
		for i, l := range sc.LeftOut {
			if i > 0 {
				e.raw(",")
			}
			e.raw(`{"entity":`)
			e.entity(l.Entity)
			e.raw(`,"why":`)
			e.str(l.Why)
			e.raw("}")
		}
		e.raw("]")
	}
	e.raw("}}")
	if e.err != nil {
		return nil, e.err
	}
	return e.b, nil
}

// jsonEnc appends JSON as encoding/json writes it; err is the first
// error (a time MarshalJSON refuses).
type jsonEnc struct {
	b   []byte
	err error
}

func (e *jsonEnc) raw(s string) { e.b = append(e.b, s...) }

func (e *jsonEnc) entities(ents []event.EntityKey) {
	if ents == nil {
		e.raw("null")
		return
	}
	e.raw("[")
	for i, x := range ents {
		if i > 0 {
			e.raw(",")
		}
		e.entity(x)
	}
	e.raw("]")
}

func (e *jsonEnc) entity(x event.EntityKey) {
	e.raw(`{"kind":`)
	e.str(string(x.Kind))
	e.raw(`,"id":`)
	e.str(x.ID)
	e.raw("}")
}

// terms writes a list of terms (null when nil, as encoding/json does).
func (e *jsonEnc) terms(ts []ScopeTerm) {
	if ts == nil {
		e.raw("null")
		return
	}
	e.raw("[")
	for i := range ts {
		if i > 0 {
			e.raw(",")
		}
		t := &ts[i]
		e.raw(`{"entity":`)
		e.entity(t.Entity)
		e.raw(`,"from":`)
		e.time(t.From)
		e.raw(`,"to":`)
		e.time(t.To)
		if len(t.Within) > 0 {
			e.raw(`,"within":`)
			e.terms(t.Within)
		}
		e.raw(`,"why":`)
		e.str(t.Why)
		e.raw("}")
	}
	e.raw("]")
}

func (e *jsonEnc) time(t time.Time) {
	b, err := t.MarshalJSON()
	if err != nil {
		if e.err == nil {
			e.err = err
		}
		return
	}
	e.b = append(e.b, b...)
}

// str writes s as a JSON string: text encoding/json writes as it is is
// copied, anything else (quotes, backslashes, control and HTML
// characters, non-ASCII) is left to encoding/json.
func (e *jsonEnc) str(s string) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, err := json.Marshal(s)
			if err != nil && e.err == nil {
				e.err = err
			}
			e.b = append(e.b, b...)
			return
		}
	}
	e.b = append(e.b, '"')
	e.b = append(e.b, s...)
	e.b = append(e.b, '"')
}
