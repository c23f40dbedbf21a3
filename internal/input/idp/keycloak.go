package idp

import (
	"strings"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/haechi-sec/haechi/internal/event"
)

// keycloakEvent is a Keycloak user event (EventRepresentation) or admin
// event (AdminEventRepresentation), as the admin REST API returns them
// (GET /admin/realms/{realm}/events and /admin-events) and event-listener
// SPIs write them as JSON.
type keycloakEvent struct {
	ID        string            `json:"id"`
	Time      jsontext.Value    `json:"time"`
	Type      string            `json:"type"`
	RealmID   string            `json:"realmId"`
	ClientID  string            `json:"clientId"`
	UserID    string            `json:"userId"`
	SessionID string            `json:"sessionId"`
	IPAddress string            `json:"ipAddress"`
	Error     string            `json:"error"`
	Details   map[string]string `json:"details"`

	// Admin events.
	AuthDetails *struct {
		RealmID   string `json:"realmId"`
		ClientID  string `json:"clientId"`
		UserID    string `json:"userId"`
		IPAddress string `json:"ipAddress"`
	} `json:"authDetails"`
	OperationType  string `json:"operationType"`
	ResourceType   string `json:"resourceType"`
	ResourcePath   string `json:"resourcePath"`
	Representation string `json:"representation"`
}

func decodeKeycloak(line []byte, out []result) []result {
	var k keycloakEvent
	if err := unmarshalLine(line, &k); err != nil {
		return append(out, result{err: err})
	}
	t, err := unixMillis("time", k.Time)
	if err != nil {
		return append(out, result{err: err})
	}
	ev := event.Event{Time: t, ID: k.ID, Provider: "keycloak", Outcome: event.OutcomeSuccess}
	if k.Error != "" {
		ev.Outcome = event.OutcomeFailure
	}
	if k.OperationType != "" {
		return keycloakAdmin(&k, ev, out)
	}
	if k.Type == "" {
		return append(out, result{err: missing("type")})
	}
	ev.Dataset, ev.Action = DatasetKeycloak, k.Type
	ev.User.ID = known(k.UserID)
	ev.User.Name = k.Details["username"]
	if ev.User.ID == "" {
		ev.User.ID = ev.User.Name
	}
	ev.Source.IP = addr(k.IPAddress)
	issuer := k.RealmID
	session := known(k.SessionID)
	d := k.Details
	ok := ev.Outcome == event.OutcomeSuccess
	n := len(out)
	switch k.Type {
	case "LOGIN":
		ev.Dataset = event.DatasetLogin
		out = append(out, result{ev: ev})
		if session != "" {
			out = append(out, result{ev: mint(ev, SessionSuffix, session, issuer)})
		}
		return out
	case "LOGIN_ERROR":
		ev.Dataset = event.DatasetLogin
		return append(out, result{ev: ev})
	case "CODE_TO_TOKEN":
		if !ok {
			break
		}
		// The access token (its jti) and the refresh token issued to the
		// client that exchanged the code.
		if id := known(d["token_id"]); id != "" {
			out = append(out, result{ev: mint(ev, TokenSuffix, id, issuer)})
		}
		if id := known(d["refresh_token_id"]); id != "" {
			out = append(out, result{ev: mint(ev, "#refresh", id, issuer)})
		}
		if len(out) > n {
			out[n].ev.ID = ev.ID // the first event of the line keeps the id
			return out
		}
	case "REFRESH_TOKEN":
		if !ok {
			break
		}
		// A use of the refresh token; the new access token and, when it
		// was rotated, the new refresh token are minted.
		if id := known(d["refresh_token_id"]); id != "" {
			use := ev
			use.Dataset = event.DatasetGateway
			use.Token = event.Token{ID: id, Issuer: issuer}
			out = append(out, result{ev: use})
		}
		if id := known(d["token_id"]); id != "" {
			out = append(out, result{ev: mint(ev, TokenSuffix, id, issuer)})
		}
		if id := known(d["updated_refresh_token_id"]); id != "" && id != d["refresh_token_id"] {
			out = append(out, result{ev: mint(ev, "#refresh", id, issuer)})
		}
		if len(out) > n {
			out[n].ev.ID = ev.ID
			return out
		}
	}
	ev.Token.ID = session
	return append(out, result{ev: ev})
}

func keycloakAdmin(k *keycloakEvent, ev event.Event, out []result) []result {
	ev.Dataset = DatasetKeycloakAdmin
	ev.Action = strings.ToLower(k.ResourceType) + "." + strings.ToLower(k.OperationType)
	if k.ResourceType == "" {
		ev.Action = strings.ToLower(k.OperationType)
	}
	if a := k.AuthDetails; a != nil {
		ev.User.ID = known(a.UserID)
		ev.Source.IP = addr(a.IPAddress)
	}
	if ev.Outcome == event.OutcomeSuccess && k.ResourceType == "USER" {
		// users/{id}: the user deleted, or disabled / enabled.
		rest, ok := strings.CutPrefix(k.ResourcePath, "users/")
		if ok && rest != "" && !strings.Contains(rest, "/") {
			switch k.OperationType {
			case "DELETE":
				return append(out, result{ev: roster(ev, "", rest, true)})
			case "UPDATE":
				var rep struct {
					Enabled *bool `json:"enabled"`
				}
				if k.Representation != "" && json.Unmarshal([]byte(k.Representation), &rep, dupOK) == nil && rep.Enabled != nil {
					return append(out, result{ev: roster(ev, "", rest, !*rep.Enabled)})
				}
			}
		}
	}
	return append(out, result{ev: ev})
}
