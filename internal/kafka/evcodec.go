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

// putStrings writes a list, nil apart from empty, as a blob of its own
// (its length first), so that a reader can share the lists a stream
// repeats (roles, fields, custodians) by their bytes.
func putStrings(w *snap.Writer, ss []string) {
	if ss == nil {
		w.Uint(0)
		return
	}
	n := uvarintLen(uint64(len(ss)))
	for _, s := range ss {
		n += uvarintLen(uint64(len(s))) + len(s)
	}
	w.Uint(uint64(n) + 1)
	w.Uint(uint64(len(ss)))
	for _, s := range ss {
		w.String(s)
	}
}

func uvarintLen(v uint64) int {
	n := 1
	for ; v >= 0x80; v >>= 7 {
		n++
	}
	return n
}

// eventReader reads binary events back. Like decode.Decoder it shares
// the low-cardinality strings (datasets, actions, countries, methods,
// issuers) and the lists (roles, fields, custodians) a stream repeats
// instead of allocating them per copy, and allocates the others (ids,
// names, paths); it is not safe for concurrent use.
type eventReader struct {
	seed  maphash.Seed
	cache *[evStrSlots]string
	lists *[evListSlots]evList
	// scratch of ids: their bytes, and where each ends
	idbuf []byte
	idend []int
}

type evList struct {
	raw string
	val []string
}

const (
	evStrSlots   = 4096 // entries of the string cache (power of two)
	evStrMaxLen  = 512  // longer strings are never shared
	evListSlots  = 1024 // entries of the list cache (power of two)
	evListMaxLen = 512  // longer lists are never shared
)

func newEventReader() *eventReader {
	return &eventReader{seed: maphash.MakeSeed(), cache: new([evStrSlots]string), lists: new([evListSlots]evList)}
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
	ev.ID = plain(r)
	ev.Outcome = event.Outcome(r.Byte())
	ev.Provider = er.str(r)

	ev.User.ID = plain(r)
	ev.User.Name = plain(r)
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
	ev.URLPath = plain(r)
	ev.URLQuery = plain(r)
	ev.URLDomain = er.str(r)

	ev.Token.ID = plain(r)
	ev.Token.KeyID = er.str(r)
	ev.Token.Issuer = er.str(r)
	ev.Token.IssuedAt = getTime(r)
	ev.Token.ExpiresAt = getTime(r)

	ev.Records.Type = er.str(r)
	ev.Records.IDs = er.ids(r)
	ev.Records.Fields = er.strs(r)
	if n := r.Count(1); n > 0 {
		ev.Records.Numbers = make([]uint32, n-1)
		for i := range ev.Records.Numbers {
			ev.Records.Numbers[i] = uint32(getUint(r, 1<<32-1))
		}
	}

	ev.Identity.ID = plain(r)
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
	c.ErrorMessage = plain(r)
	c.RequestParameters = plain(r)
	c.ResponseElements = plain(r)

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

// plain reads a string of its own.
func plain(r *snap.Reader) string {
	n := r.Count(1)
	return string(r.Next(n))
}

// str reads a string, shared with an equal one read before.
func (er *eventReader) str(r *snap.Reader) string {
	n := r.Count(1)
	b := r.Next(n)
	if len(b) == 0 || len(b) > evStrMaxLen {
		return string(b)
	}
	slot := &er.cache[maphash.Bytes(er.seed, b)&(evStrSlots-1)]
	if *slot != string(b) {
		*slot = string(b)
	}
	return *slot
}

// strs reads a list of low-cardinality strings (nil apart from empty),
// shared with an equal list read before. Lists have cap == len, as the
// decoders make them, so an append by a consumer never writes into the
// array another event holds.
func (er *eventReader) strs(r *snap.Reader) []string {
	raw, ok := listBlob(r)
	if !ok {
		return nil
	}
	var slot *evList
	if len(raw) <= evListMaxLen {
		slot = &er.lists[maphash.Bytes(er.seed, raw)&(evListSlots-1)]
		if slot.raw == string(raw) && slot.val != nil {
			return slot.val
		}
	}
	lr := snap.NewReader(raw)
	ss := make([]string, lr.Count(1))
	for i := range ss {
		ss[i] = er.str(lr)
	}
	if err := lr.End(); err != nil {
		r.Fail(err.Error())
		return nil
	}
	if slot != nil {
		slot.raw, slot.val = string(raw), ss
	}
	return ss
}

// ids reads a list of record ids (nil apart from empty): ids rarely
// repeat, so they are not shared, but one event's ids are substrings of
// one allocation, as the decoder makes them.
func (er *eventReader) ids(r *snap.Reader) []string {
	raw, ok := listBlob(r)
	if !ok {
		return nil
	}
	lr := snap.NewReader(raw)
	ss := make([]string, lr.Count(1))
	er.idbuf, er.idend = er.idbuf[:0], er.idend[:0]
	for range ss {
		er.idbuf = append(er.idbuf, lr.Next(lr.Count(1))...)
		er.idend = append(er.idend, len(er.idbuf))
	}
	if err := lr.End(); err != nil {
		r.Fail(err.Error())
		return nil
	}
	all, start := string(er.idbuf), 0
	for i, end := range er.idend {
		ss[i], start = all[start:end], end
	}
	return ss
}

// listBlob reads what putStrings wrote; false for nil (or an error).
func listBlob(r *snap.Reader) ([]byte, bool) {
	n := r.Count(1)
	if r.Err() != nil || n == 0 {
		return nil, false
	}
	raw := r.Next(n - 1)
	return raw, r.Err() == nil
}
