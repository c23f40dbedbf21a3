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
//
//   - departed-insider-export: a CS agent terminated at 17:00 exports
//     customer lists from home with the admin token minted that morning.
//
//   - credential-stuffing: a residential botnet abroad tries leaked
//     passwords; the few that work read and change shipping addresses.
//
//   - cs-agent-snooping: a CS agent views a few customers with no ticket at
//     1–3 a.m. Seoul on a few nights, over VPN.
//
//   - service-account-abuse: the recommendation service's secret, used from
//     OVH France at night, pulls up to 300k customer profiles in batches.
//
//   - partner-enumeration: a partner's key walks sequential customer numbers
//     through the recipient-lookup endpoint, from the partner's own network.
//
//   - token-hijack: customers' genuine tokens (minted on their own
//     networks) replayed hours later, while still valid, from a foreign
//     hosting network: profile, addresses, orders, a new shipping address.
//
//   - cloud-credential-theft: the order-export worker's EC2 instance-role
//     credentials (ASIA… access key, role session i-…), taken through the
//     metadata service, used from outside AWS: GetCallerIdentity,
//     ListBuckets, then the export files (CloudTrail-shaped contract
//     events: dataset aws.cloudtrail, event.provider, user.id the session
//     ARN, user.name the instance, token.id the access key, records
//     s3_object "bucket/key", as internal/input/cloudtrail maps them).
//
//   - privileged-takeover: an administrator's account logs in at night
//     from a network it never used, looks at the users and the audit log,
//     then exports customers in bulk.
//
//   - slow-insider-export: a data engineer exports a few hundred extra
//     customers every evening from home, for the rest of the period, with
//     the export their peers use in the day.
//
// The newer classes bring their company parts — four administrators
// (e:9001…, role admin), the order-export worker on EC2 (S3 reads and
// writes all day from AWS Seoul with hourly-rotated instance credentials)
// and the data engineers' routine exports (on a third of their workdays,
// a few dozen to a few hundred customers, sorted with gaps as a
// query's result is) — and hard-benign twins:
// token-roams-within-carrier (a traveller's or commuter's token used over
// hours from new addresses of one mobile carrier AS and country),
// instance-credentials-in-provider (all of the worker's own use of the
// credentials), admin-weekend-maintenance (configuration and role changes
// and one export of a few hundred customers on a Saturday, from the
// office) and approved-large-export (one data engineer's 20,000-customer
// export in working hours). Each part draws from its own random stream,
// so they change no other event.
//
// # Variants
//
// With Options.Variants each scenario draws its parameters from the seed —
// rates, hours, victim counts, token lifetimes, and the attacker's network
// (hosting abroad or in Korea, residential abroad, a Korean mobile or
// residential "domestic" proxy, or the identity's own) — within what the
// scenario means (a ghost-key forger on a domestic residential proxy is a
// valid, harder variant; a takeover is still at night; stolen instance
// credentials are used from outside the workload's network). Each
// scenario's doc comment lists what it varies; the draw is named in
// truth.Scenario.Variant. Without variants every scenario is the canonical
// one above, and the stream is what it was before variants existed.
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
