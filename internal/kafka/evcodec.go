package kafka

import (
	"errors"
	"fmt"
	"hash/maphash"
	"time"

	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/snap"
)

// The value of a repartition record written with a header of version 4 or
// later is the event in the binary form below, not the input's JSON line:
// the re-keying stage decodes each input event once and every detection
// partition a copy lands on reads the decoded form back, instead of
// parsing the JSON again (the largest per-copy cost of a worker,
// docs/scale-out.md). The form is every field of event.Event, in order,
// so a copy reads back equal (reflect.DeepEqual) to the event the
// re-keying stage decoded and enriched.
const eventFormat = 1

// appendEvent appends ev's binary form to b.
func appendEvent(b []byte, ev *event.Event) []byte {
	w := snap.Writer{B: b}
	w.Byte(eventFormat)
	putTime(&w, ev.Time)
	w.String(ev.Dataset)
	w.String(ev.Action)
	w.String(ev.ID)
	w.Byte(byte(ev.Outcome))
	w.String(ev.Provider)

	w.String(ev.User.ID)
	w.String(ev.User.Name)
	putStrings(&w, ev.User.Roles)

	ip, _ := ev.Source.IP.MarshalBinary() // never fails
	w.Bytes(ip)
	w.String(ev.Source.Country)
	w.Uint(uint64(ev.Source.ASN))
	w.String(ev.Source.ASOrg)
	w.Bool(ev.Source.Located)
	w.Float(ev.Source.Lat)
	w.Float(ev.Source.Lon)

	w.String(ev.UserAgent)
	w.String(ev.HTTP.Method)
	w.Int(int64(ev.HTTP.StatusCode))
	w.Int(ev.HTTP.BodyBytes)
	w.String(ev.URLPath)
	w.String(ev.URLQuery)
	w.String(ev.URLDomain)

	w.String(ev.Token.ID)
	w.String(ev.Token.KeyID)
	w.String(ev.Token.Issuer)
	putTime(&w, ev.Token.IssuedAt)
	putTime(&w, ev.Token.ExpiresAt)

	w.String(ev.Records.Type)
	putStrings(&w, ev.Records.IDs)
	putStrings(&w, ev.Records.Fields)
	if ev.Records.Numbers == nil {
		w.Uint(0)
	} else {
		w.Uint(uint64(len(ev.Records.Numbers)) + 1)
		for _, n := range ev.Records.Numbers {
			w.Uint(uint64(n))
		}
	}

	w.String(ev.Identity.ID)
	w.String(ev.Identity.Kind)
	putStrings(&w, ev.Identity.Roles)
	w.String(ev.Identity.Status)
	putTime(&w, ev.Identity.TerminatedAt)
	w.String(ev.Identity.Country)
	putTime(&w, ev.Identity.LastActive)

	w.String(ev.Key.ID)
	w.String(ev.Key.Status)
	putTime(&w, ev.Key.RetiredAt)
	putStrings(&w, ev.Key.Custodians)

	c := &ev.CloudTrail
	w.String(c.IdentityType)
	w.String(c.IssuerType)
	w.String(c.EventType)
	w.String(c.ErrorCode)
	w.String(c.ErrorMessage)
	w.String(c.RequestParameters)
	w.String(c.ResponseElements)

	w.Uint(uint64(ev.Input))
	w.Uint(uint64(ev.Line))
	w.Bool(ev.Late)
	w.Bool(ev.Restored)
	w.Bool(ev.Drill)
	return w.B
}

// putTime writes a time exactly: the zero time apart (the Unix epoch is a
// time like any other), then seconds and nanoseconds, so no time.Time the
// decoders produce is out of range. Times read back in UTC, as the
// decoders give them.
func putTime(w *snap.Writer, t time.Time) {
	if t.IsZero() {
		w.Byte(0)
		return
	}
	w.Byte(1)
	w.Int(t.Unix())
	w.Uint(uint64(t.Nanosecond()))
}

// putStrings writes a list, nil apart from empty.
func putStrings(w *snap.Writer, ss []string) {
	if ss == nil {
		w.Uint(0)
		return
	}
	w.Uint(uint64(len(ss)) + 1)
	for _, s := range ss {
		w.String(s)
	}
}

// eventReader reads binary events back. Like decode.Decoder it keeps a
// small cache of the strings it made, so the values a stream repeats
// (datasets, actions, countries, roles) are shared, not allocated per
// copy; it is not safe for concurrent use.
type eventReader struct {
	seed  maphash.Seed
	cache *[evStrSlots]string
}

const (
	evStrSlots  = 4096 // entries of the string cache (power of two)
	evStrMaxLen = 64   // longer strings are never cached
)

func newEventReader() *eventReader {
	return &eventReader{seed: maphash.MakeSeed(), cache: new([evStrSlots]string)}
}

var errEventForm = errors.New("kafka: binary event")

// read decodes what appendEvent wrote into ev (overwritten).
func (er *eventReader) read(b []byte, ev *event.Event) error {
	r := snap.NewReader(b)
	if v := r.Byte(); r.Err() == nil && v != eventFormat {
		return fmt.Errorf("%w: format %d, want %d", errEventForm, v, eventFormat)
	}
	*ev = event.Event{}
	ev.Time = getTime(r)
	ev.Dataset = er.str(r)
	ev.Action = er.str(r)
	ev.ID = er.str(r)
	ev.Outcome = event.Outcome(r.Byte())
	ev.Provider = er.str(r)

	ev.User.ID = er.str(r)
	ev.User.Name = er.str(r)
	ev.User.Roles = er.strs(r)

	if ip := r.Bytes(); r.Err() == nil {
		if err := ev.Source.IP.UnmarshalBinary(ip); err != nil {
			return fmt.Errorf("%w: source.ip: %v", errEventForm, err)
		}
	}
	ev.Source.Country = er.str(r)
	ev.Source.ASN = uint32(getUint(r, 1<<32-1))
	ev.Source.ASOrg = er.str(r)
	ev.Source.Located = r.Bool()
	ev.Source.Lat = r.Float()
	ev.Source.Lon = r.Float()

	ev.UserAgent = er.str(r)
	ev.HTTP.Method = er.str(r)
	ev.HTTP.StatusCode = int(r.Int())
	ev.HTTP.BodyBytes = r.Int()
	ev.URLPath = er.str(r)
	ev.URLQuery = er.str(r)
	ev.URLDomain = er.str(r)

	ev.Token.ID = er.str(r)
	ev.Token.KeyID = er.str(r)
	ev.Token.Issuer = er.str(r)
	ev.Token.IssuedAt = getTime(r)
	ev.Token.ExpiresAt = getTime(r)

	ev.Records.Type = er.str(r)
	ev.Records.IDs = er.strs(r)
	ev.Records.Fields = er.strs(r)
	if n := r.Count(1); n > 0 {
		ev.Records.Numbers = make([]uint32, n-1)
		for i := range ev.Records.Numbers {
			ev.Records.Numbers[i] = uint32(getUint(r, 1<<32-1))
		}
	}

	ev.Identity.ID = er.str(r)
	ev.Identity.Kind = er.str(r)
	ev.Identity.Roles = er.strs(r)
	ev.Identity.Status = er.str(r)
	ev.Identity.TerminatedAt = getTime(r)
	ev.Identity.Country = er.str(r)
	ev.Identity.LastActive = getTime(r)

	ev.Key.ID = er.str(r)
	ev.Key.Status = er.str(r)
	ev.Key.RetiredAt = getTime(r)
	ev.Key.Custodians = er.strs(r)

	c := &ev.CloudTrail
	c.IdentityType = er.str(r)
	c.IssuerType = er.str(r)
	c.EventType = er.str(r)
	c.ErrorCode = er.str(r)
	c.ErrorMessage = er.str(r)
	c.RequestParameters = er.str(r)
	c.ResponseElements = er.str(r)

	ev.Input = uint32(getUint(r, 1<<32-1))
	ev.Line = uint32(getUint(r, 1<<32-1))
	ev.Late = r.Bool()
	ev.Restored = r.Bool()
	ev.Drill = r.Bool()
	if err := r.End(); err != nil {
		*ev = event.Event{}
		return fmt.Errorf("%w: %v", errEventForm, err)
	}
	return nil
}

func getTime(r *snap.Reader) time.Time {
	switch r.Byte() {
	case 0:
		return time.Time{}
	case 1:
		s, ns := r.Int(), r.Uint()
		if ns >= 1e9 {
			r.Fail("nanoseconds out of range")
			return time.Time{}
		}
		t := time.Unix(s, int64(ns)).UTC()
		if t.IsZero() {
			r.Fail("zero time written as a time")
		}
		return t
	}
	r.Fail("bad time")
	return time.Time{}
}

func getUint(r *snap.Reader, limit uint64) uint64 {
	v := r.Uint()
	if v > limit {
		r.Fail("integer out of range")
		return 0
	}
	return v
}

// str reads a string, shared with an equal one read before when short.
func (er *eventReader) str(r *snap.Reader) string {
	n := r.Count(1)
	if r.Err() != nil || n == 0 {
		return ""
	}
	b := r.Next(n)
	if n > evStrMaxLen {
		return string(b)
	}
	slot := &er.cache[maphash.Bytes(er.seed, b)&(evStrSlots-1)]
	if *slot != string(b) {
		*slot = string(b)
	}
	return *slot
}

// strs reads a list (nil apart from empty) with cap == len, as the
// decoders make them, so an append by a consumer never writes into the
// array another holds.
func (er *eventReader) strs(r *snap.Reader) []string {
	n := r.Count(1)
	if r.Err() != nil || n == 0 {
		return nil
	}
	n--
	if n > r.Len() { // each element takes at least a byte
		r.Fail("count beyond the input")
		return nil
	}
	ss := make([]string, n)
	for i := range ss {
		ss[i] = er.str(r)
	}
	return ss
}
