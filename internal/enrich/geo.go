package enrich

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"sync/atomic"

	"github.com/oschwald/maxminddb-golang/v2"

	"github.com/haechi-sec/haechi/internal/event"
)

// DefaultCacheSize is the number of cache entries used when
// GeoOptions.CacheSize is 0.
const DefaultCacheSize = 65536

// maxCacheSize bounds the cache (2^24 slots is 128 MiB of pointers).
const maxCacheSize = 1 << 24

// sampleRecords is how many records OpenGeo inspects to check that a
// database carries the fields it is opened for.
const sampleRecords = 1024

// GeoOptions configures [OpenGeo].
type GeoOptions struct {
	// CountryDB is the path of a MaxMind-format country (or city) database.
	// Empty disables country enrichment.
	CountryDB string
	// ASNDB is the path of a MaxMind-format ASN database. Empty disables
	// AS enrichment.
	ASNDB string
	// CacheSize is the number of cached addresses, rounded up to a power of
	// two. 0 means DefaultCacheSize; a negative value disables the cache.
	CacheSize int
}

// Geo enriches events with country and AS data. The zero value and a nil
// *Geo are valid and disabled.
type Geo struct {
	country *maxminddb.Reader
	asn     *maxminddb.Reader
	// country6 and asn6 report whether the database has an IPv6 tree; an
	// IPv4-only database cannot answer IPv6 lookups.
	country6, asn6 bool
	// located reports that the country database is a city database: its
	// sampled records carry a location.
	located bool

	slots []atomic.Pointer[geoEntry] // len is a power of two, or 0
	mask  uint64
	seed  uint64

	_      [64]byte // keep the counters off the read-mostly fields' line
	hits   atomic.Uint64
	_      [56]byte
	misses atomic.Uint64
	_      [56]byte
}

// geoEntry is one cached answer; it is immutable once published.
type geoEntry struct {
	addr     netip.Addr
	country  string
	org      string
	asn      uint32
	located  bool
	lat, lon float64
}

// countryRecord decodes only the fields enrichment needs from a country or
// city record.
type countryRecord struct {
	Country struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"country"`
	CountryCode string `maxminddb:"country_code"` // ip-location-db style
	// Location is present in city databases (GeoLite2-City and the like).
	Location struct {
		Latitude  *float64 `maxminddb:"latitude"`
		Longitude *float64 `maxminddb:"longitude"`
	} `maxminddb:"location"`
}

func (r *countryRecord) code() string {
	if r.Country.ISOCode != "" {
		return r.Country.ISOCode
	}
	return r.CountryCode
}

// asnRecord decodes only the fields enrichment needs from an ASN record.
type asnRecord struct {
	Number uint32 `maxminddb:"autonomous_system_number"`
	Org    string `maxminddb:"autonomous_system_organization"`
}

// OpenGeo opens the databases named in opts and checks that each looks like
// what it is opened for. With both paths empty it returns a disabled *Geo
// and no error.
func OpenGeo(opts GeoOptions) (*Geo, error) {
	g := &Geo{seed: rand.Uint64()} // #nosec G404 -- math/rand/v2's global source is ChaCha8, seeded from the OS per process
	if opts.CountryDB != "" {
		r, err := openChecked(opts.CountryDB, "country", checkCountry)
		if err != nil {
			return nil, err
		}
		g.country, g.country6 = r, r.Metadata.IPVersion == 6
		g.located = hasLocation(r)
	}
	if opts.ASNDB != "" {
		r, err := openChecked(opts.ASNDB, "ASN", checkASN)
		if err != nil {
			if g.country != nil {
				_ = g.country.Close()
			}
			return nil, err
		}
		g.asn, g.asn6 = r, r.Metadata.IPVersion == 6
	}
	if g.country == nil && g.asn == nil {
		return g, nil
	}
	size := opts.CacheSize
	if size == 0 {
		size = DefaultCacheSize
	}
	if size > 0 {
		if size > maxCacheSize {
			size = maxCacheSize
		}
		n := 1 << bits.Len(uint(size-1)) // next power of two
		g.slots = make([]atomic.Pointer[geoEntry], n)
		g.mask = uint64(n - 1)
	}
	return g, nil
}

// openChecked opens path and runs check over a sample of its records.
func openChecked(path, kind string, check func(maxminddb.Result) (ok bool, err error)) (*maxminddb.Reader, error) {
	r, err := maxminddb.Open(path)
	if err != nil {
		if _, ok := errors.AsType[*fs.PathError](err); ok {
			return nil, fmt.Errorf("enrich: %s database %q: cannot open: %w", kind, path, err)
		}
		return nil, fmt.Errorf("enrich: %s database %q: not a MaxMind DB (.mmdb) file: %w", kind, path, err)
	}
	an := "a"
	if kind == "ASN" {
		an = "an"
	}
	fail := func(format string, args ...any) (*maxminddb.Reader, error) {
		_ = r.Close()
		return nil, fmt.Errorf("enrich: %s database %q (database_type %q): %s",
			kind, path, r.Metadata.DatabaseType, fmt.Sprintf(format, args...))
	}
	if v := r.Metadata.IPVersion; v != 4 && v != 6 {
		return fail("unsupported ip_version %d", v)
	}
	seen, good := 0, 0
	for res := range r.Networks() {
		if err := res.Err(); err != nil {
			return fail("reading records: %v", err)
		}
		ok, err := check(res)
		if err != nil {
			return fail("record for %s does not decode as %s %s record: %v", res.Prefix(), an, kind, err)
		}
		if ok {
			good++
		}
		if seen++; seen >= sampleRecords || good > 0 && seen >= 16 {
			break
		}
	}
	switch {
	case seen == 0:
		return fail("contains no records")
	case good == 0:
		want := "country.iso_code or country_code"
		if kind == "ASN" {
			want = "autonomous_system_number"
		}
		return fail("none of the first %d records has %s; is this %s %s database?", seen, want, an, kind)
	}
	return r, nil
}

// hasLocation reports whether any of the first records of r carries a
// location (a city database).
func hasLocation(r *maxminddb.Reader) bool {
	seen := 0
	for res := range r.Networks() {
		var rec countryRecord
		if res.Err() != nil || res.Decode(&rec) != nil {
			return false
		}
		if rec.Location.Latitude != nil && rec.Location.Longitude != nil {
			return true
		}
		if seen++; seen >= sampleRecords {
			break
		}
	}
	return false
}

func checkCountry(res maxminddb.Result) (bool, error) {
	var rec countryRecord
	if err := res.Decode(&rec); err != nil {
		return false, err
	}
	return rec.code() != "", nil
}

func checkASN(res maxminddb.Result) (bool, error) {
	var rec asnRecord
	if err := res.Decode(&rec); err != nil {
		return false, err
	}
	return rec.Number != 0, nil
}

// Close releases the databases. It must not be called concurrently with
// Enrich; after Close the Geo is disabled.
func (g *Geo) Close() error {
	if g == nil {
		return nil
	}
	var errs []error
	if g.country != nil {
		errs = append(errs, g.country.Close())
		g.country = nil
	}
	if g.asn != nil {
		errs = append(errs, g.asn.Close())
		g.asn = nil
	}
	g.slots, g.mask = nil, 0
	return errors.Join(errs...)
}

// Enabled reports which enrichments are configured.
func (g *Geo) Enabled() (country, asn bool) {
	if g == nil {
		return false, false
	}
	return g.country != nil, g.asn != nil
}

// Located reports whether the country database is a city database whose
// records carry locations (so impossible travel can be judged from
// addresses alone).
func (g *Geo) Located() bool { return g != nil && g.located }

// Stats returns the number of address lookups, how many were answered from
// the cache (hits) and how many consulted the databases (misses);
// lookups == hits + misses. Events that needed nothing are not counted.
func (g *Geo) Stats() (lookups, hits, misses uint64) {
	if g == nil {
		return 0, 0, 0
	}
	hits, misses = g.hits.Load(), g.misses.Load()
	return hits + misses, hits, misses
}

// EnrichBatch enriches every event of evs in place.
func (g *Geo) EnrichBatch(evs []event.Event) {
	if g == nil || g.country == nil && g.asn == nil {
		return
	}
	for i := range evs {
		g.Enrich(&evs[i])
	}
}

// Enrich fills ev.Source.Country, ASN and ASOrg where the event lacks them
// and the databases know ev.Source.IP. It is safe for concurrent use.
func (g *Geo) Enrich(ev *event.Event) {
	if g == nil {
		return
	}
	src := &ev.Source
	wantCountry := g.country != nil && src.Country == ""
	wantLocation := g.located && !src.Located
	wantAS := g.asn != nil && (src.ASN == 0 || src.ASOrg == "")
	if !wantCountry && !wantLocation && !wantAS || !src.IP.IsValid() {
		return
	}
	e := g.lookup(src.IP)
	if wantCountry && e.country != "" {
		src.Country = e.country
	}
	// The location goes with the country it was looked up with: an
	// upstream country that disagrees keeps the event unlocated.
	if wantLocation && e.located && (src.Country == e.country || e.country == "") {
		src.Located, src.Lat, src.Lon = true, e.lat, e.lon
	}
	if wantAS && e.asn != 0 {
		switch {
		case src.ASN == 0 && src.ASOrg == "":
			src.ASN, src.ASOrg = e.asn, e.org
		case src.ASN == e.asn: // upstream number, missing organization
			src.ASOrg = e.org
		}
	}
}

// lookup returns the answer for ip from the cache or the databases.
func (g *Geo) lookup(ip netip.Addr) *geoEntry {
	key := ip.Unmap().WithZone("")
	if g.slots == nil {
		g.misses.Add(1)
		return g.resolve(key)
	}
	slot := &g.slots[g.hash(key)&g.mask]
	if e := slot.Load(); e != nil && e.addr == key {
		g.hits.Add(1)
		return e
	}
	g.misses.Add(1)
	e := g.resolve(key)
	slot.Store(e)
	return e
}

func (g *Geo) hash(a netip.Addr) uint64 {
	b := a.As16()
	hi := binary.LittleEndian.Uint64(b[:8])
	lo := binary.LittleEndian.Uint64(b[8:])
	h1, l1 := bits.Mul64(hi^g.seed, 0x9e3779b97f4a7c15)
	h2, l2 := bits.Mul64(lo^h1^l1, 0xbf58476d1ce4e5b9)
	return h2 ^ l2
}

// resolve consults the databases. Lookup or decode errors (a damaged
// database) are treated as "not found": enrichment is best effort.
func (g *Geo) resolve(key netip.Addr) *geoEntry {
	e := &geoEntry{addr: key}
	v6 := key.Is6()
	if g.country != nil && (g.country6 || !v6) {
		var rec countryRecord
		if res := g.country.Lookup(key); res.Found() && res.Decode(&rec) == nil {
			e.country = normCountry(rec.code())
			if la, lo := rec.Location.Latitude, rec.Location.Longitude; la != nil && lo != nil &&
				*la >= -90 && *la <= 90 && *lo >= -180 && *lo <= 180 {
				e.located, e.lat, e.lon = true, *la, *lo
			}
		}
	}
	if g.asn != nil && (g.asn6 || !v6) {
		var rec asnRecord
		if res := g.asn.Lookup(key); res.Found() && res.Decode(&rec) == nil && rec.Number != 0 {
			e.asn, e.org = rec.Number, rec.Org
		}
	}
	return e
}

// normCountry returns c upper-cased if it is two ASCII letters other than
// the user-assigned "ZZ" (unknown), and "" otherwise.
func normCountry(c string) string {
	if len(c) != 2 {
		return ""
	}
	a, b := c[0]&^0x20, c[1]&^0x20 // fold to upper case
	if a < 'A' || a > 'Z' || b < 'A' || b > 'Z' || a == 'Z' && b == 'Z' {
		return ""
	}
	if a == c[0] && b == c[1] {
		return c
	}
	return string([]byte{a, b})
}
