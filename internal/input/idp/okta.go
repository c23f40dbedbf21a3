package idp

import (
	"strings"

	"github.com/haechi-sec/haechi/internal/event"
)

// oktaEvent is the part of an Okta System Log LogEvent haechi reads
// (https://developer.okta.com/docs/reference/api/system-log/).
type oktaEvent struct {
	UUID      string `json:"uuid"`
	Published string `json:"published"`
	EventType string `json:"eventType"`
	Actor     struct {
		ID          string `json:"id"`
		Type        string `json:"type"`
		AlternateID string `json:"alternateId"`
		DisplayName string `json:"displayName"`
	} `json:"actor"`
	Client struct {
		UserAgent struct {
			RawUserAgent string `json:"rawUserAgent"`
		} `json:"userAgent"`
		IPAddress           string `json:"ipAddress"`
		GeographicalContext struct {
			Geolocation *struct {
				Lat *float64 `json:"lat"`
				Lon *float64 `json:"lon"`
			} `json:"geolocation"`
		} `json:"geographicalContext"`
	} `json:"client"`
	Outcome struct {
		Result string `json:"result"`
	} `json:"outcome"`
	AuthenticationContext struct {
		ExternalSessionID string `json:"externalSessionId"`
	} `json:"authenticationContext"`
	SecurityContext struct {
		ASNumber *uint32 `json:"asNumber"`
		ASOrg    string  `json:"asOrg"`
	} `json:"securityContext"`
	Target []struct {
		ID          string `json:"id"`
		Type        string `json:"type"`
		AlternateID string `json:"alternateId"`
	} `json:"target"`
}

// oktaIssuer is token.issuer of Okta sessions.
const oktaIssuer = "okta"

func decodeOkta(line []byte, out []result) []result {
	var o oktaEvent
	if err := unmarshalLine(line, &o); err != nil {
		return append(out, result{err: err})
	}
	t, err := parseTime("published", o.Published)
	if err != nil {
		return append(out, result{err: err})
	}
	if o.EventType == "" {
		return append(out, result{err: missing("eventType")})
	}
	ev := event.Event{Time: t, Dataset: DatasetOkta, Action: o.EventType, ID: o.UUID, Provider: "okta"}
	switch strings.ToUpper(o.Outcome.Result) {
	case "SUCCESS", "ALLOW":
		ev.Outcome = event.OutcomeSuccess
	case "FAILURE", "DENY":
		ev.Outcome = event.OutcomeFailure
	case "":
	default: // SKIPPED, CHALLENGE, UNKNOWN
		ev.Outcome = event.OutcomeUnknown
	}
	ev.User.ID = known(o.Actor.ID)
	if ev.User.ID == "" {
		ev.User.ID = known(o.Actor.AlternateID)
	}
	ev.User.Name = known(o.Actor.AlternateID)
	ev.Source.IP = addr(o.Client.IPAddress)
	if g := o.Client.GeographicalContext.Geolocation; g != nil && g.Lat != nil && g.Lon != nil &&
		*g.Lat >= -90 && *g.Lat <= 90 && *g.Lon >= -180 && *g.Lon <= 180 {
		ev.Source.Located, ev.Source.Lat, ev.Source.Lon = true, *g.Lat, *g.Lon
	}
	if o.SecurityContext.ASNumber != nil {
		ev.Source.ASN = *o.SecurityContext.ASNumber
	}
	ev.Source.ASOrg = o.SecurityContext.ASOrg
	ev.UserAgent = known(o.Client.UserAgent.RawUserAgent)
	session := known(o.AuthenticationContext.ExternalSessionID)

	switch {
	case o.EventType == "user.session.start":
		ev.Dataset = event.DatasetLogin
		out = append(out, result{ev: ev})
		if ev.Outcome == event.OutcomeSuccess && session != "" {
			out = append(out, result{ev: mint(ev, SessionSuffix, session, oktaIssuer)})
		}
		return out
	case o.EventType == "user.authentication.sso" && ev.Outcome == event.OutcomeSuccess && session != "":
		// The session presented to sign in to an application.
		ev.Dataset = event.DatasetGateway
		ev.Token.ID = session
		ev.Token.Issuer = oktaIssuer
		return append(out, result{ev: ev})
	case strings.HasPrefix(o.EventType, "user.authentication."):
		ev.Dataset = event.DatasetLogin
		return append(out, result{ev: ev})
	case o.EventType == "user.lifecycle.deactivate" || o.EventType == "user.lifecycle.activate" ||
		o.EventType == "user.lifecycle.reactivate":
		if ev.Outcome == event.OutcomeFailure {
			break
		}
		n := len(out)
		for _, tg := range o.Target {
			if strings.EqualFold(tg.Type, "User") && known(tg.ID) != "" {
				suffix := ""
				if len(out) > n {
					suffix = "#" + tg.ID
				}
				out = append(out, result{ev: roster(ev, suffix, tg.ID, o.EventType == "user.lifecycle.deactivate")})
			}
		}
		if len(out) > n {
			return out
		}
	}
	ev.Token.ID = session
	return append(out, result{ev: ev})
}
