package idp

import (
	"strconv"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/haechi-sec/haechi/internal/decode"
	"github.com/haechi-sec/haechi/internal/event"
)

// OCSF classes read.
const (
	ocsfAuthentication = 3002
	ocsfAPIActivity    = 6003
)

type ocsfUser struct {
	UID  string `json:"uid"`
	Name string `json:"name"`
}

type ocsfSession struct {
	UID            string         `json:"uid"`
	Issuer         string         `json:"issuer"`
	CreatedTime    jsontext.Value `json:"created_time"`
	ExpirationTime jsontext.Value `json:"expiration_time"`
}

// ocsfEvent is the part of an OCSF 1.x Authentication or API Activity
// event haechi reads (https://schema.ocsf.io/).
type ocsfEvent struct {
	ClassUID     *int64         `json:"class_uid"`
	ActivityID   int64          `json:"activity_id"`
	ActivityName string         `json:"activity_name"`
	Time         jsontext.Value `json:"time"`
	StatusID     int64          `json:"status_id"`
	Metadata     struct {
		UID     string `json:"uid"`
		Product struct {
			Name       string `json:"name"`
			VendorName string `json:"vendor_name"`
		} `json:"product"`
	} `json:"metadata"`
	User    *ocsfUser    `json:"user"`
	Session *ocsfSession `json:"session"`
	Actor   struct {
		User    *ocsfUser    `json:"user"`
		Session *ocsfSession `json:"session"`
	} `json:"actor"`
	SrcEndpoint struct {
		IP       string `json:"ip"`
		Location *struct {
			Country string   `json:"country"`
			Lat     *float64 `json:"lat"`
			Long    *float64 `json:"long"`
		} `json:"location"`
		AutonomousSystem *struct {
			Number *int64 `json:"number"`
			Name   string `json:"name"`
		} `json:"autonomous_system"`
	} `json:"src_endpoint"`
	HTTPRequest struct {
		UserAgent  string `json:"user_agent"`
		HTTPMethod string `json:"http_method"`
		URL        struct {
			Path string `json:"path"`
		} `json:"url"`
	} `json:"http_request"`
	HTTPResponse struct {
		Code *int64 `json:"code"`
	} `json:"http_response"`
	API struct {
		Operation string `json:"operation"`
		Service   struct {
			Name string `json:"name"`
		} `json:"service"`
	} `json:"api"`
	Resources []struct {
		UID  string `json:"uid"`
		Name string `json:"name"`
		Type string `json:"type"`
	} `json:"resources"`
}

func decodeOCSF(line []byte, out []result) []result {
	var o ocsfEvent
	if err := unmarshalLine(line, &o); err != nil {
		return append(out, result{err: err})
	}
	if o.ClassUID == nil {
		return append(out, result{err: missing("class_uid")})
	}
	if *o.ClassUID != ocsfAuthentication && *o.ClassUID != ocsfAPIActivity {
		return append(out, result{err: &decode.LineError{Code: decode.CodeInvalidField,
			Reason: `invalid "class_uid": ` + strconv.FormatInt(*o.ClassUID, 10) + ` is not Authentication (3002) or API Activity (6003)`}})
	}
	t, err := unixMillis("time", o.Time)
	if err != nil {
		return append(out, result{err: err})
	}
	ev := event.Event{Time: t, ID: o.Metadata.UID, Provider: o.Metadata.Product.Name}
	switch o.StatusID {
	case 1:
		ev.Outcome = event.OutcomeSuccess
	case 2:
		ev.Outcome = event.OutcomeFailure
	case 0:
	default:
		ev.Outcome = event.OutcomeUnknown
	}
	ev.Source.IP = addr(o.SrcEndpoint.IP)
	if l := o.SrcEndpoint.Location; l != nil {
		if len(l.Country) == 2 {
			ev.Source.Country = l.Country
		}
		if l.Lat != nil && l.Long != nil && *l.Lat >= -90 && *l.Lat <= 90 && *l.Long >= -180 && *l.Long <= 180 {
			ev.Source.Located, ev.Source.Lat, ev.Source.Lon = true, *l.Lat, *l.Long
		}
	}
	if as := o.SrcEndpoint.AutonomousSystem; as != nil {
		if as.Number != nil && *as.Number > 0 && *as.Number <= 1<<32-1 {
			ev.Source.ASN = uint32(*as.Number)
		}
		ev.Source.ASOrg = as.Name
	}
	ev.UserAgent = o.HTTPRequest.UserAgent
	ev.HTTP.Method = o.HTTPRequest.HTTPMethod
	ev.URLPath = o.HTTPRequest.URL.Path
	if c := o.HTTPResponse.Code; c != nil && *c >= 0 && *c <= 999 {
		ev.HTTP.StatusCode = int(*c)
	}
	if *o.ClassUID == ocsfAuthentication {
		return ocsfAuth(&o, ev, out)
	}
	return ocsfAPI(&o, ev, out)
}

func setUser(ev *event.Event, u *ocsfUser) {
	if u != nil {
		ev.User.ID, ev.User.Name = u.UID, u.Name
		if ev.User.ID == "" {
			ev.User.ID = u.Name
		}
	}
}

func sessionToken(s *ocsfSession) event.Token {
	if s == nil {
		return event.Token{}
	}
	return event.Token{ID: known(s.UID), Issuer: s.Issuer, IssuedAt: optMillis(s.CreatedTime), ExpiresAt: optMillis(s.ExpirationTime)}
}

func ocsfAuth(o *ocsfEvent, ev event.Event, out []result) []result {
	ev.Dataset = DatasetOCSFAuth
	ev.Action = ocsfAction(o, map[int64]string{1: "logon", 2: "logoff", 3: "authentication_ticket", 4: "service_ticket_request", 5: "service_ticket_renew", 6: "preauth"})
	// The user who authenticates is user; actor is who asked for it
	// (often the same or absent).
	setUser(&ev, o.User)
	if ev.User.ID == "" {
		setUser(&ev, o.Actor.User)
	}
	s := o.Session
	if s == nil {
		s = o.Actor.Session
	}
	tok := sessionToken(s)
	switch o.ActivityID {
	case 1: // Logon
		ev.Dataset = event.DatasetLogin
		out = append(out, result{ev: ev})
		if ev.Outcome == event.OutcomeSuccess && tok.ID != "" {
			m := mint(ev, SessionSuffix, tok.ID, tok.Issuer)
			if !tok.IssuedAt.IsZero() {
				m.Token.IssuedAt = tok.IssuedAt
			}
			m.Token.ExpiresAt = tok.ExpiresAt
			out = append(out, result{ev: m})
		}
		return out
	}
	ev.Token = tok
	return append(out, result{ev: ev})
}

func ocsfAPI(o *ocsfEvent, ev event.Event, out []result) []result {
	ev.Dataset = DatasetOCSFAPI
	ev.Action = o.API.Operation
	if ev.Action == "" {
		ev.Action = ocsfAction(o, map[int64]string{1: "create", 2: "read", 3: "update", 4: "delete"})
	}
	if o.API.Service.Name != "" {
		ev.Provider = o.API.Service.Name
	}
	setUser(&ev, o.Actor.User)
	tok := sessionToken(o.Actor.Session)
	if tok.ID != "" {
		// A call in a session the provider issued: a use of it.
		ev.Dataset = event.DatasetGateway
		ev.Token = tok
	}
	for _, r := range o.Resources {
		id := r.UID
		if id == "" {
			id = r.Name
		}
		if id == "" {
			continue
		}
		typ := lowerType(r.Type)
		if typ == "" {
			typ = "resource"
		}
		if ev.Records.Type == "" {
			ev.Records.Type = typ
		}
		if typ == ev.Records.Type {
			ev.Records.IDs = append(ev.Records.IDs, id)
		}
	}
	return append(out, result{ev: ev})
}

// ocsfAction is activity_name, else the name of activity_id, else
// "activity_N".
func ocsfAction(o *ocsfEvent, names map[int64]string) string {
	if o.ActivityName != "" {
		return o.ActivityName
	}
	if n, ok := names[o.ActivityID]; ok {
		return n
	}
	return "activity_" + strconv.FormatInt(o.ActivityID, 10)
}
