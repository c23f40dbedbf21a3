// Package sim is haechi's synthetic company and breach simulator: it
// streams an NDJSON event feed in the shared contract's format and returns
// the ground truth (internal/truth) for scoring. Detection code must never
// import it.
//
// # The company
//
// Customers (m:<number>, derived from the id by a seeded hash, so 34M cost
// no memory) are active on ~8% of days with a Seoul diurnal and weekly
// rhythm; each session logs in or refreshes in the app, gets a token signed
// by the current key and reads its own profile, addresses and orders (now
// and then updates an address), from Korean carrier NAT pools (KT, SKT,
// LG U+: many customers per address, a new address per session), home
// broadband (re-leased now and then) or, for a few travellers, networks in
// JP/US/VN/TH. Employees (e:<nnnn>: cs-agent, engineer, auth-engineer,
// data-engineer, analyst, logistics) log into the admin console on
// workdays (CS night shift, engineers' on-call nights) from the office
// (10.x, no enrichment), corporate NAT or VPN egress and act within their
// role. Services (recommendation, delivery-routing, nightly-backfill) and
// partners (p:…) hold hourly client-credential tokens. hr.roster and
// keys.inventory feeds carry the roster at Start, joiners and leavers, the
// key history (an old key auth-YYYY-MM still active, custodied by an auth
// engineer who leaves on the first day) and a rotation during the period.
//
// Hard benign traffic, labelled in Truth.HardBenign: a one-off full
// backfill night, a marketing push spike, a new CS cohort ramping up, an
// engineer working a week from the US (Seoul night hours), a new partner
// going live, and late mints: the customer auth service's four replicas
// each ship their own log, and a few times a fortnight one replica's
// shipper stalls for 40 s to 3 min; the mints it held back reach the
// stream when it resumes, with their own timestamps, after the tokens'
// first reads (labelled with those reads: "auth-log-shipper-stall"). They
// are the only events out of event-time order.
//
// # Scenarios
//
//   - ghost-key: the departed auth engineer forges customer tokens with the
//     retained old key (never-minted token ids) and reads profiles and
//     address books from rotating hosting addresses (Vultr, DigitalOcean,
//     OVH) with python-requests or a fake browser, from day 3 to the end,
//     at most 3 requests/s in total (fewer for small companies: about half
//     the customers are read).
//   - departed-insider-export: a CS agent terminated at 17:00 exports
//     customer lists from home with the admin token minted that morning.
//   - credential-stuffing: a residential botnet abroad tries leaked
//     passwords; the few that work read and change shipping addresses.
//   - cs-agent-snooping: a CS agent views a few customers with no ticket at
//     1–3 a.m. Seoul on a few nights, over VPN.
//   - service-account-abuse: the recommendation service's secret, used from
//     OVH France at night, pulls up to 300k customer profiles in batches.
//   - partner-enumeration: a partner's key walks sequential customer numbers
//     through the recipient-lookup endpoint, from the partner's own network.
//
// Schedules are clamped into short runs, so every scenario appears even in
// a one-day run (compressed).
//
// # A model, not traffic
//
// Real feeds have what this lacks: retries, errors and 4xx/5xx noise, bots
// and crawlers, long-lived refresh tokens reused across sessions, IPv6,
// clock skew, late events (beyond the held mints) and duplicated ones,
// schema drift, shared family accounts, customer-service callbacks,
// employees with several roles, and the long tail of internal tools. Populations are driven by independent
// hashes, not by social structure; attack behaviour is scripted from public
// incident write-ups, not recorded.
package sim
