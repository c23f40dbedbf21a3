package idp

import (
	"strconv"
	"strings"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/haechi-sec/haechi/internal/decode"
	"github.com/haechi-sec/haechi/internal/event"
)

// entraSignIn is a Microsoft Entra ID sign-in (Microsoft Graph signIn),
// as Graph returns it and as the properties of an Azure Monitor
// diagnostic record.
type entraSignIn struct {
	ID                    string `json:"id"`
	CreatedDateTime       string `json:"createdDateTime"`
	UserID                string `json:"userId"`
	UserPrincipalName     string `json:"userPrincipalName"`
	ServicePrincipalID    string `json:"servicePrincipalId"`
	ServicePrincipalName  string `json:"servicePrincipalName"`
	AppDisplayName        string `json:"appDisplayName"`
	IPAddress             string `json:"ipAddress"`
	IsInteractive         *bool  `json:"isInteractive"`
	UniqueTokenIdentifier string `json:"uniqueTokenIdentifier"`
	SessionID             string `json:"sessionId"`
	CorrelationID         string `json:"correlationId"`
	UserAgent             string `json:"userAgent"`
	AutonomousSystem      *int64 `json:"autonomousSystemNumber"`
	Status                struct {
		ErrorCode *int64 `json:"errorCode"`
	} `json:"status"`
	Location struct {
		CountryOrRegion string `json:"countryOrRegion"`
		GeoCoordinates  *struct {
			Latitude  *float64 `json:"latitude"`
			Longitude *float64 `json:"longitude"`
		} `json:"geoCoordinates"`
	} `json:"location"`
	DeviceDetail struct {
		Browser         string `json:"browser"`
		OperatingSystem string `json:"operatingSystem"`
	} `json:"deviceDetail"`
}

// entraAudit is a Microsoft Entra ID audit log entry (Microsoft Graph
// directoryAudit).
type entraAudit struct {
	ID                  string `json:"id"`
	ActivityDateTime    string `json:"activityDateTime"`
	ActivityDisplayName string `json:"activityDisplayName"`
	Result              string `json:"result"`
	LoggedByService     string `json:"loggedByService"`
	InitiatedBy         struct {
		User *struct {
			ID                string `json:"id"`
			UserPrincipalName string `json:"userPrincipalName"`
			IPAddress         string `json:"ipAddress"`
		} `json:"user"`
		App *struct {
			ServicePrincipalID string `json:"servicePrincipalId"`
			DisplayName        string `json:"displayName"`
		} `json:"app"`
	} `json:"initiatedBy"`
	TargetResources []struct {
		ID   string `json:"id"`
		Type string `json:"type"`
	} `json:"targetResources"`
}

// entraLine is any of the line shapes: a Graph object (sign-in or audit),
// an Azure Monitor record {time, category, properties}, or a batch of
// records {"records":[...]} as Event Hubs and storage accounts deliver.
type entraLine struct {
	Records          []jsontext.Value `json:"records"`
	Time             string           `json:"time"`
	Category         string           `json:"category"`
	OperationName    string           `json:"operationName"`
	Properties       jsontext.Value   `json:"properties"`
	CreatedDateTime  string           `json:"createdDateTime"`
	ActivityDateTime string           `json:"activityDateTime"`
}

// entraSignInCategories are the Azure Monitor categories of sign-ins.
var entraSignInCategories = map[string]string{
	"SignInLogs":                   "signin.interactive",
	"NonInteractiveUserSignInLogs": "signin.noninteractive",
	"ServicePrincipalSignInLogs":   "signin.serviceprincipal",
	"ManagedIdentitySignInLogs":    "signin.managedidentity",
}

func decodeEntra(line []byte, out []result) []result {
	var l entraLine
	if err := unmarshalLine(line, &l); err != nil {
		return append(out, result{err: err})
	}
	if l.Records != nil {
		for i, rec := range l.Records {
			var r entraLine
			if err := json.Unmarshal(rec, &r, dupOK); err != nil || rec.Kind() != '{' {
				out = append(out, result{err: &decode.LineError{Code: decode.CodeInvalidField,
					Reason: "records[" + strconv.Itoa(i) + "]: not an Azure Monitor record"}})
				continue
			}
			n := len(out)
			out = entraOne(&r, rec, out)
			for j := n; j < len(out); j++ {
				if e := out[j].err; e != nil {
					e.Reason = "records[" + strconv.Itoa(i) + "]: " + e.Reason
				}
			}
		}
		return out
	}
	return entraOne(&l, line, out)
}

func entraOne(l *entraLine, raw []byte, out []result) []result {
	action, signIn := entraSignInCategories[l.Category]
	switch {
	case l.Properties.Kind() == '{' || signIn || l.Category == "AuditLogs":
		// An Azure Monitor record (a Graph directoryAudit has a
		// category too, such as UserManagement, but no properties).
		if !signIn && l.Category != "AuditLogs" {
			return append(out, result{err: &decode.LineError{Code: decode.CodeInvalidField,
				Reason: `invalid "category": ` + quote(l.Category) + ` is not a sign-in or audit log category`}})
		}
		if l.Properties.Kind() != '{' {
			return append(out, result{err: missing("properties")})
		}
		if signIn {
			return entraSignInOf(l.Properties, l.Time, action, out)
		}
		return entraAuditOf(l.Properties, l.Time, out)
	case l.CreatedDateTime != "":
		return entraSignInOf(raw, "", "", out)
	case l.ActivityDateTime != "":
		return entraAuditOf(raw, "", out)
	case l.Category != "":
		return append(out, result{err: &decode.LineError{Code: decode.CodeInvalidField,
			Reason: `invalid "category": ` + quote(l.Category) + ` is not a sign-in or audit log category`}})
	}
	return append(out, result{err: &decode.LineError{Code: decode.CodeMissingField,
		Reason: `missing required field "createdDateTime" (sign-in), "activityDateTime" (audit) or "category" (Azure Monitor)`}})
}

func entraSignInOf(raw []byte, recordTime, action string, out []result) []result {
	var s entraSignIn
	if err := json.Unmarshal(raw, &s, dupOK); err != nil {
		return append(out, result{err: decode.JSONShapeError(err, "entry")})
	}
	field, when := "createdDateTime", s.CreatedDateTime
	if when == "" {
		field, when = "time", recordTime
	}
	t, err := parseTime(field, when)
	if err != nil {
		return append(out, result{err: err})
	}
	interactive := action == "signin.interactive"
	if action == "" {
		action = "signin.noninteractive"
		switch {
		case s.IsInteractive != nil && *s.IsInteractive:
			action, interactive = "signin.interactive", true
		case s.UserID == "" && s.ServicePrincipalID != "":
			action = "signin.serviceprincipal"
		}
	}
	ev := event.Event{Time: t, Dataset: DatasetEntraSignIn, Action: action, ID: s.ID, Provider: "entra"}
	ev.Outcome = event.OutcomeSuccess
	if s.Status.ErrorCode != nil && *s.Status.ErrorCode != 0 {
		ev.Outcome = event.OutcomeFailure
	}
	ev.User.ID, ev.User.Name = known(s.UserID), s.UserPrincipalName
	if ev.User.ID == "" {
		ev.User.ID, ev.User.Name = known(s.ServicePrincipalID), s.ServicePrincipalName
	}
	if ev.User.ID == "" {
		ev.User.ID = s.UserPrincipalName
	}
	ev.Source.IP = addr(s.IPAddress)
	if c := s.Location.CountryOrRegion; len(c) == 2 {
		ev.Source.Country = strings.ToUpper(c)
	}
	if g := s.Location.GeoCoordinates; g != nil && g.Latitude != nil && g.Longitude != nil &&
		*g.Latitude >= -90 && *g.Latitude <= 90 && *g.Longitude >= -180 && *g.Longitude <= 180 {
		ev.Source.Located, ev.Source.Lat, ev.Source.Lon = true, *g.Latitude, *g.Longitude
	}
	if a := s.AutonomousSystem; a != nil && *a > 0 && *a <= 1<<32-1 {
		ev.Source.ASN = uint32(*a)
	}
	ev.UserAgent = s.UserAgent
	session := known(s.SessionID)
	uti := known(s.UniqueTokenIdentifier)
	const issuer = "entra"
	if ev.Outcome != event.OutcomeSuccess {
		ev.Dataset = event.DatasetLogin
		return append(out, result{ev: ev})
	}
	switch {
	case interactive:
		ev.Dataset = event.DatasetLogin
		out = append(out, result{ev: ev})
		if session != "" {
			out = append(out, result{ev: mint(ev, SessionSuffix, session, issuer)})
		}
	case session != "":
		// A non-interactive sign-in in an existing session: the session
		// (its refresh token) presented again.
		use := ev
		use.Dataset = event.DatasetGateway
		use.Token = event.Token{ID: session, Issuer: issuer}
		out = append(out, result{ev: use})
	default:
		out = append(out, result{ev: ev})
	}
	if uti != "" {
		out = append(out, result{ev: mint(ev, TokenSuffix, uti, issuer)})
	}
	return out
}

// entraRoster are the audit activities that change whether an account can
// sign in: true for those that end it.
var entraRoster = map[string]bool{
	"Delete user":     true,
	"Disable account": true,
	"Restore user":    false,
	"Enable account":  false,
}

func entraAuditOf(raw []byte, recordTime string, out []result) []result {
	var a entraAudit
	if err := json.Unmarshal(raw, &a, dupOK); err != nil {
		return append(out, result{err: decode.JSONShapeError(err, "entry")})
	}
	field, when := "activityDateTime", a.ActivityDateTime
	if when == "" {
		field, when = "time", recordTime
	}
	t, err := parseTime(field, when)
	if err != nil {
		return append(out, result{err: err})
	}
	if a.ActivityDisplayName == "" {
		return append(out, result{err: missing("activityDisplayName")})
	}
	ev := event.Event{Time: t, Dataset: DatasetEntraAudit, Action: a.ActivityDisplayName, ID: a.ID, Provider: a.LoggedByService}
	switch strings.ToLower(a.Result) {
	case "success":
		ev.Outcome = event.OutcomeSuccess
	case "failure", "timeout":
		ev.Outcome = event.OutcomeFailure
	case "":
	default:
		ev.Outcome = event.OutcomeUnknown
	}
	if u := a.InitiatedBy.User; u != nil && known(u.ID) != "" {
		ev.User.ID, ev.User.Name = u.ID, u.UserPrincipalName
		ev.Source.IP = addr(u.IPAddress)
	} else if p := a.InitiatedBy.App; p != nil {
		ev.User.ID, ev.User.Name = known(p.ServicePrincipalID), p.DisplayName
	}
	if ends, ok := entraRoster[a.ActivityDisplayName]; ok && ev.Outcome == event.OutcomeSuccess {
		n := len(out)
		for _, tg := range a.TargetResources {
			if strings.EqualFold(tg.Type, "User") && known(tg.ID) != "" {
				suffix := ""
				if len(out) > n {
					suffix = "#" + tg.ID
				}
				out = append(out, result{ev: roster(ev, suffix, tg.ID, ends)})
			}
		}
		if len(out) > n {
			return out
		}
	}
	return append(out, result{ev: ev})
}
