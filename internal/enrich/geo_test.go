package enrich

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"

	"github.com/haechi-sec/haechi/internal/event"
)

// writeDB builds a tiny database of the given type in dir.
func writeDB(t testing.TB, dir, name, dbType string, ipVersion int, records map[string]mmdbtype.DataType) string {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{
		DatabaseType:            dbType,
		IncludeReservedNetworks: true, // documentation ranges
		IPVersion:               ipVersion,
		RecordSize:              24,
	})
	if err != nil {
		t.Fatal(err)
	}
	for cidr, rec := range records {
		_, network, err := net.ParseCIDR(cidr)
		if err != nil {
			t.Fatal(err)
		}
		if err := tree.Insert(network, rec); err != nil {
			t.Fatalf("insert %s: %v", cidr, err)
		}
	}
	path := filepath.Join(dir, name)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tree.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func countryRec(iso string) mmdbtype.DataType {
	return mmdbtype.Map{
		"continent": mmdbtype.Map{"code": mmdbtype.String("EU")},
		"country": mmdbtype.Map{
			"iso_code": mmdbtype.String(iso),
			"names":    mmdbtype.Map{"en": mmdbtype.String("name of " + iso)},
		},
	}
}

func asnRec(n uint32, org string) mmdbtype.DataType {
	return mmdbtype.Map{
		"autonomous_system_number":       mmdbtype.Uint32(n),
		"autonomous_system_organization": mmdbtype.String(org),
	}
}

type testDBs struct{ country, asn, iptoasn string }

func buildDBs(t testing.TB) testDBs {
	t.Helper()
	dir := t.TempDir()
	return testDBs{
		country: writeDB(t, dir, "country.mmdb", "GeoLite2-Country", 6, map[string]mmdbtype.DataType{
			"203.0.113.0/24":  countryRec("NL"),
			"198.51.100.0/24": countryRec("KR"),
			"2001:db8::/32":   countryRec("DE"),
			"100.64.0.0/24":   countryRec("ZZ"), // unknown: discarded
			"100.64.1.0/24":   countryRec("fr"), // lower case: folded
		}),
		asn: writeDB(t, dir, "asn.mmdb", "GeoLite2-ASN", 6, map[string]mmdbtype.DataType{
			"203.0.113.0/24":  asnRec(64500, "Example Hosting"),
			"198.51.100.0/24": asnRec(4766, "Korea Telecom"),
			"2001:db8::/32":   asnRec(64501, "Example IPv6"),
		}),
		iptoasn: writeDB(t, dir, "iptoasn-country.mmdb", "iptoasn-country", 4, map[string]mmdbtype.DataType{
			"203.0.113.0/24": mmdbtype.Map{"country_code": mmdbtype.String("JP")},
		}),
	}
}

func openT(t testing.TB, opts GeoOptions) *Geo {
	t.Helper()
	g, err := OpenGeo(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := g.Close(); err != nil {
			t.Error(err)
		}
	})
	return g
}

func srcEvent(ip string) event.Event {
	var ev event.Event
	if ip != "" {
		ev.Source.IP = netip.MustParseAddr(ip)
	}
	return ev
}

func TestEnrichLookups(t *testing.T) {
	dbs := buildDBs(t)
	g := openT(t, GeoOptions{CountryDB: dbs.country, ASNDB: dbs.asn})
	if c, a := g.Enabled(); !c || !a {
		t.Fatalf("Enabled() = %v, %v; want true, true", c, a)
	}
	tests := []struct {
		ip      string
		country string
		asn     uint32
		org     string
	}{
		{"203.0.113.7", "NL", 64500, "Example Hosting"},
		{"198.51.100.200", "KR", 4766, "Korea Telecom"},
		{"2001:db8::1", "DE", 64501, "Example IPv6"},
		{"2001:db8:ffff::1%eth0", "DE", 64501, "Example IPv6"}, // zone ignored
		{"::ffff:203.0.113.9", "NL", 64500, "Example Hosting"}, // 4in6
		{"100.64.0.1", "", 0, ""},                              // ZZ dropped
		{"100.64.1.1", "FR", 0, ""},                            // upper-cased
		// Not in the databases: private, loopback, link-local,
		// documentation, unknown public.
		{"10.1.2.3", "", 0, ""},
		{"127.0.0.1", "", 0, ""},
		{"169.254.1.1", "", 0, ""},
		{"fe80::1", "", 0, ""},
		{"192.0.2.1", "", 0, ""},
		{"8.8.8.8", "", 0, ""},
		{"2001:db9::1", "", 0, ""},
		{"", "", 0, ""}, // no source.ip
	}
	for pass := range 2 { // second pass is served from the cache
		for _, tt := range tests {
			ev := srcEvent(tt.ip)
			g.Enrich(&ev)
			s := ev.Source
			if s.Country != tt.country || s.ASN != tt.asn || s.ASOrg != tt.org {
				t.Errorf("pass %d: %q → %q/%d/%q; want %q/%d/%q", pass, tt.ip,
					s.Country, s.ASN, s.ASOrg, tt.country, tt.asn, tt.org)
			}
		}
	}
	lookups, hits, misses := g.Stats()
	valid := uint64(len(tests) - 1)
	// 2001:db8::1 and 2001:db8:ffff::1%eth0 are distinct keys; the 4in6
	// address shares a key with nothing else in the list.
	if lookups != 2*valid || misses != valid || hits != valid {
		t.Errorf("Stats() = %d, %d, %d; want %d, %d, %d", lookups, hits, misses, 2*valid, valid, valid)
	}
}

func TestEnrichUpstreamWins(t *testing.T) {
	dbs := buildDBs(t)
	g := openT(t, GeoOptions{CountryDB: dbs.country, ASNDB: dbs.asn})

	ev := srcEvent("203.0.113.7")
	ev.Source.Country, ev.Source.ASN, ev.Source.ASOrg = "US", 15169, "Upstream Org"
	g.Enrich(&ev)
	if s := ev.Source; s.Country != "US" || s.ASN != 15169 || s.ASOrg != "Upstream Org" {
		t.Errorf("fully enriched event changed: %+v", s)
	}
	if l, _, _ := g.Stats(); l != 0 {
		t.Errorf("event needing nothing was looked up (%d lookups)", l)
	}

	// Country set upstream; AS filled from the database.
	ev = srcEvent("203.0.113.7")
	ev.Source.Country = "US"
	g.Enrich(&ev)
	if s := ev.Source; s.Country != "US" || s.ASN != 64500 || s.ASOrg != "Example Hosting" {
		t.Errorf("country-only event: %+v", s)
	}

	// Upstream AS number that the database agrees with: organization filled.
	ev = srcEvent("203.0.113.7")
	ev.Source.ASN = 64500
	g.Enrich(&ev)
	if s := ev.Source; s.Country != "NL" || s.ASN != 64500 || s.ASOrg != "Example Hosting" {
		t.Errorf("matching upstream ASN: %+v", s)
	}

	// Upstream AS number that differs: organization not mixed in.
	ev = srcEvent("203.0.113.7")
	ev.Source.ASN = 15169
	g.Enrich(&ev)
	if s := ev.Source; s.ASN != 15169 || s.ASOrg != "" {
		t.Errorf("differing upstream ASN got organization: %+v", s)
	}

	// Upstream organization without number: left as is.
	ev = srcEvent("203.0.113.7")
	ev.Source.ASOrg = "Upstream Org"
	g.Enrich(&ev)
	if s := ev.Source; s.ASN != 0 || s.ASOrg != "Upstream Org" {
		t.Errorf("upstream organization overwritten: %+v", s)
	}
}

func TestEnrichCountryFallbackAndSingleDB(t *testing.T) {
	dbs := buildDBs(t)
	g := openT(t, GeoOptions{CountryDB: dbs.iptoasn})
	if c, a := g.Enabled(); !c || a {
		t.Fatalf("Enabled() = %v, %v; want true, false", c, a)
	}
	ev := srcEvent("203.0.113.1")
	g.Enrich(&ev)
	if s := ev.Source; s.Country != "JP" || s.ASN != 0 || s.ASOrg != "" {
		t.Errorf("iptoasn-style record: %+v", s)
	}
	// IPv6 against an IPv4-only database: not found, no error.
	ev = srcEvent("2001:db8::1")
	g.Enrich(&ev)
	if ev.Source.Country != "" {
		t.Errorf("IPv6 in IPv4-only database: %+v", ev.Source)
	}

	ga := openT(t, GeoOptions{ASNDB: dbs.asn})
	ev = srcEvent("198.51.100.1")
	ga.Enrich(&ev)
	if s := ev.Source; s.Country != "" || s.ASN != 4766 || s.ASOrg != "Korea Telecom" {
		t.Errorf("ASN-only Geo: %+v", s)
	}
}

func TestDisabled(t *testing.T) {
	g, err := OpenGeo(GeoOptions{})
	if err != nil || g == nil {
		t.Fatalf("OpenGeo(empty) = %v, %v; want a disabled Geo", g, err)
	}
	var nilGeo *Geo
	for _, g := range []*Geo{g, nilGeo, {}} {
		if c, a := g.Enabled(); c || a {
			t.Errorf("Enabled() = %v, %v", c, a)
		}
		ev := srcEvent("203.0.113.7")
		g.Enrich(&ev)
		evs := []event.Event{ev}
		g.EnrichBatch(evs)
		if ev.Source != evs[0].Source || ev.Source.Country != "" || ev.Source.ASN != 0 {
			t.Errorf("disabled Geo changed the event: %+v", ev.Source)
		}
		if l, h, m := g.Stats(); l+h+m != 0 {
			t.Errorf("Stats() = %d, %d, %d", l, h, m)
		}
		if err := g.Close(); err != nil {
			t.Error(err)
		}
	}
}

func TestEnrichBatch(t *testing.T) {
	dbs := buildDBs(t)
	g := openT(t, GeoOptions{CountryDB: dbs.country, ASNDB: dbs.asn})
	evs := []event.Event{srcEvent("203.0.113.1"), srcEvent("10.0.0.1"), srcEvent("198.51.100.1"), srcEvent("")}
	g.EnrichBatch(evs)
	got := make([]string, len(evs))
	for i, ev := range evs {
		got[i] = fmt.Sprintf("%s/%d/%s", ev.Source.Country, ev.Source.ASN, ev.Source.ASOrg)
	}
	want := "NL/64500/Example Hosting|/0/|KR/4766/Korea Telecom|/0/"
	if strings.Join(got, "|") != want {
		t.Errorf("EnrichBatch: %s; want %s", strings.Join(got, "|"), want)
	}
}

func TestCloseDisables(t *testing.T) {
	dbs := buildDBs(t)
	g, err := OpenGeo(GeoOptions{CountryDB: dbs.country, ASNDB: dbs.asn})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	ev := srcEvent("203.0.113.1")
	g.Enrich(&ev)
	if ev.Source.Country != "" {
		t.Errorf("closed Geo enriched: %+v", ev.Source)
	}
	if c, a := g.Enabled(); c || a {
		t.Errorf("closed Geo Enabled() = %v, %v", c, a)
	}
}

func TestOpenErrors(t *testing.T) {
	dbs := buildDBs(t)
	dir := t.TempDir()
	missing := filepath.Join(dir, "nope.mmdb")
	notMMDB := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notMMDB, []byte(strings.Repeat("this is not a MaxMind database\n", 100)), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.mmdb")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	noRecords := writeDB(t, dir, "norecords.mmdb", "GeoLite2-Country", 6, nil)
	// Right shape of file, wrong type of value.
	badType := writeDB(t, dir, "badtype.mmdb", "Odd-ASN", 6, map[string]mmdbtype.DataType{
		"203.0.113.0/24": mmdbtype.Map{"autonomous_system_number": mmdbtype.String("AS64500")},
	})

	tests := []struct {
		name string
		opts GeoOptions
		file string
		want string
	}{
		{"missing country", GeoOptions{CountryDB: missing}, missing, "no such file"},
		{"missing asn", GeoOptions{CountryDB: dbs.country, ASNDB: missing}, missing, "ASN database"},
		{"not mmdb", GeoOptions{CountryDB: notMMDB}, notMMDB, "not a MaxMind DB"},
		{"empty file", GeoOptions{ASNDB: empty}, empty, "not a MaxMind DB"},
		{"directory", GeoOptions{CountryDB: dir}, dir, "cannot open"},
		{"no records", GeoOptions{CountryDB: noRecords}, noRecords, "contains no records"},
		{"asn as country", GeoOptions{CountryDB: dbs.asn}, dbs.asn, "is this a country database?"},
		{"country as asn", GeoOptions{ASNDB: dbs.country}, dbs.country, "is this an ASN database?"},
		{"wrong value type", GeoOptions{ASNDB: badType}, badType, "does not decode as an ASN record"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := OpenGeo(tt.opts)
			if err == nil {
				g.Close()
				t.Fatal("OpenGeo succeeded")
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.file) || !strings.Contains(msg, tt.want) {
				t.Errorf("error %q; want it to name %q and say %q", msg, tt.file, tt.want)
			}
			t.Log(msg)
		})
	}
}

func TestConcurrentEnrich(t *testing.T) {
	dbs := buildDBs(t)
	// A tiny cache forces collisions and evictions while goroutines race.
	g := openT(t, GeoOptions{CountryDB: dbs.country, ASNDB: dbs.asn, CacheSize: 4})
	type want struct {
		country string
		asn     uint32
		org     string
	}
	cases := map[string]want{} // keyed by canonical address text
	add := func(ip string, w want) { cases[netip.MustParseAddr(ip).String()] = w }
	for i := range 64 {
		add(fmt.Sprintf("203.0.113.%d", i), want{"NL", 64500, "Example Hosting"})
		add(fmt.Sprintf("198.51.100.%d", i), want{"KR", 4766, "Korea Telecom"})
		add(fmt.Sprintf("2001:db8::%x", i), want{"DE", 64501, "Example IPv6"})
		add(fmt.Sprintf("10.0.0.%d", i), want{})
	}
	ips := make([]string, 0, len(cases))
	for ip := range cases {
		ips = append(ips, ip)
	}
	const workers, rounds = 8, 20
	var wg sync.WaitGroup
	errs := make(chan string, workers)
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				batch := make([]event.Event, 0, len(ips))
				for i := range ips {
					batch = append(batch, srcEvent(ips[(i+w*7+r)%len(ips)]))
				}
				g.EnrichBatch(batch)
				for _, ev := range batch {
					ip := ev.Source.IP.String()
					got := want{ev.Source.Country, ev.Source.ASN, ev.Source.ASOrg}
					if got != cases[ip] {
						errs <- fmt.Sprintf("%s: got %+v, want %+v", ip, got, cases[ip])
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	lookups, hits, misses := g.Stats()
	if lookups != workers*rounds*uint64(len(ips)) || hits+misses != lookups {
		t.Errorf("Stats() = %d, %d, %d", lookups, hits, misses)
	}
}

func TestCacheHitDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	dbs := buildDBs(t)
	g := openT(t, GeoOptions{CountryDB: dbs.country, ASNDB: dbs.asn})
	ip := netip.MustParseAddr("203.0.113.7")
	ev := event.Event{}
	ev.Source.IP = ip
	g.Enrich(&ev) // fill the cache
	_, hits0, misses0 := g.Stats()
	allocs := testing.AllocsPerRun(1000, func() {
		ev.Source = event.Source{IP: ip}
		g.Enrich(&ev)
	})
	if allocs != 0 {
		t.Errorf("cache hit allocates %.1f times per Enrich", allocs)
	}
	if _, hits, misses := g.Stats(); misses != misses0 || hits <= hits0 {
		t.Errorf("expected only cache hits: hits %d→%d, misses %d→%d", hits0, hits, misses0, misses)
	}
	if ev.Source.Country != "NL" || ev.Source.ASN != 64500 {
		t.Errorf("cached answer wrong: %+v", ev.Source)
	}
}

func TestNormCountry(t *testing.T) {
	for in, want := range map[string]string{
		"NL": "NL", "kr": "KR", "De": "DE", "ZZ": "", "zz": "", "": "",
		"N": "", "NLD": "", "N1": "", "@A": "", "[A": "", "{a": "", "Ω": "",
	} {
		if got := normCountry(in); got != want {
			t.Errorf("normCountry(%q) = %q; want %q", in, got, want)
		}
	}
}

func BenchmarkEnrich(b *testing.B) {
	dbs := buildDBs(b)
	ips := []netip.Addr{
		netip.MustParseAddr("203.0.113.7"),
		netip.MustParseAddr("198.51.100.9"),
		netip.MustParseAddr("2001:db8::1"),
		netip.MustParseAddr("10.0.0.1"),
	}
	run := func(b *testing.B, g *Geo) {
		var ev event.Event
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			ev.Source = event.Source{IP: ips[i&3]}
			i++
			g.Enrich(&ev)
		}
	}
	b.Run("hit", func(b *testing.B) {
		run(b, openT(b, GeoOptions{CountryDB: dbs.country, ASNDB: dbs.asn}))
	})
	b.Run("miss", func(b *testing.B) { // cache disabled: every call reads both databases
		run(b, openT(b, GeoOptions{CountryDB: dbs.country, ASNDB: dbs.asn, CacheSize: -1}))
	})
	b.Run("hit-parallel", func(b *testing.B) {
		g := openT(b, GeoOptions{CountryDB: dbs.country, ASNDB: dbs.asn})
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			var ev event.Event
			i := 0
			for pb.Next() {
				ev.Source = event.Source{IP: ips[i&3]}
				i++
				g.Enrich(&ev)
			}
		})
	})
}

func TestEnrichCityLocation(t *testing.T) {
	dir := t.TempDir()
	city := func(cc string, lat, lon float64) mmdbtype.Map {
		return mmdbtype.Map{
			"country":  mmdbtype.Map{"iso_code": mmdbtype.String(cc)},
			"location": mmdbtype.Map{"latitude": mmdbtype.Float64(lat), "longitude": mmdbtype.Float64(lon), "accuracy_radius": mmdbtype.Uint16(50)},
		}
	}
	path := writeDB(t, dir, "city.mmdb", "GeoLite2-City", 6, map[string]mmdbtype.DataType{
		"198.51.100.0/24": city("KR", 37.5665, 126.978),
		"192.0.2.0/24":    city("US", 0, 0), // (0, 0) is a place, not "absent"
		"203.0.113.0/24":  countryRec("NL"), // no location
	})
	g := openT(t, GeoOptions{CountryDB: path})
	tests := []struct {
		name     string
		ip       string
		upstream func(*event.Source)
		want     event.Source
	}{
		{"city", "198.51.100.7", nil, event.Source{Country: "KR", Located: true, Lat: 37.5665, Lon: 126.978}},
		{"zero point", "192.0.2.1", nil, event.Source{Country: "US", Located: true}},
		{"country only", "203.0.113.1", nil, event.Source{Country: "NL"}},
		{"upstream location wins", "198.51.100.7", func(s *event.Source) { s.Located, s.Lat, s.Lon = true, 1, 2 },
			event.Source{Country: "KR", Located: true, Lat: 1, Lon: 2}},
		{"upstream country disagrees: no location", "198.51.100.7", func(s *event.Source) { s.Country = "JP" },
			event.Source{Country: "JP"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := srcEvent(tt.ip)
			if tt.upstream != nil {
				tt.upstream(&ev.Source)
			}
			g.Enrich(&ev)
			tt.want.IP = ev.Source.IP
			if ev.Source != tt.want {
				t.Errorf("got %+v, want %+v", ev.Source, tt.want)
			}
		})
	}
}
