package app

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/haechi-sec/haechi/internal/incident/track"
	"github.com/haechi-sec/haechi/internal/respond"
	"github.com/haechi-sec/haechi/internal/store"
)

// incidentNotice makes an incident event (store.Options.IncidentNotice) an
// outbox action of kind incident for the receiver named "incident", so it
// goes out as a webhook with the outbox's guarantee (retried until
// acknowledged; audited). It names no alert (AlertID ""), so withdrawing
// the founding alert cancels no incident notice. Like notify, it is delivered in dry-run too;
// with response off there is none. The keeper's notices (track.Change)
// are identified by incident ID, event and milestone and timed by the
// event time they announce, so the same alerts write the same actions
// once however they were batched (a restart re-batches them); a state
// change's ID hashes the incident, the event and the verdict.
func incidentNotice(mode respond.Mode) func(kind string, in store.Incident, detail any) (*store.Action, error) {
	switch mode {
	case respond.ModeOff:
		return nil
	case "":
		mode = respond.ModeDryRun // respond.Config's default
	}
	return func(kind string, in store.Incident, detail any) (*store.Action, error) {
		in.Body = nil
		inc, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("incident notice: %w", err)
		}
		det, err := json.Marshal(detail)
		if err != nil {
			return nil, fmt.Errorf("incident notice: %w", err)
		}
		payload, err := json.Marshal(respond.Payload{Mode: mode,
			Incident: &respond.IncidentNotice{Event: kind, Incident: inc, Detail: det}})
		if err != nil {
			return nil, fmt.Errorf("incident notice: %w", err)
		}
		key, at := string(det), in.End
		if c, ok := detail.(track.Change); ok {
			key, at = c.Key(), c.At
		}
		h := sha256.New()
		for _, s := range []string{in.ID, kind, key} {
			h.Write([]byte(s))
			h.Write([]byte{0})
		}
		return &store.Action{ID: hex.EncodeToString(h.Sum(nil)[:16]), Kind: respond.KindIncident, Target: in.ID,
			Playbook: "incidents", Receiver: respond.KindIncident, State: store.ActionPlanned,
			CreatedAt: at, Payload: payload}, nil
	}
}
