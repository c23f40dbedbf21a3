#!/usr/bin/env python3
"""Writes the golden cases' events.ndjson (deterministic). Run from testdata/:
python3 gen.py. Every case starts with hours of ordinary logins, so the
cohorts have a history (the golden test's warmup is 2 h)."""
import datetime, json, os, random

T0 = datetime.datetime(2025, 3, 3, 0, 0, tzinfo=datetime.timezone.utc)
CARRIERS = [(9644, "SK Telecom", "223.38"), (4766, "Korea Telecom", "211.234"), (17858, "LG POWERCOMM", "106.101")]
UA = "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Mobile Safari/537.36"

class Case:
    def __init__(self, name, seed):
        self.name, self.rnd, self.evs = name, random.Random(seed), []
    def login(self, t, user, ip, asn, org, ok, mint=None, ua=UA):
        self.evs.append((t, user, ip, asn, org, ok, None, ua))
        if ok and mint:
            self.evs.append((t + datetime.timedelta(milliseconds=300), user, ip, asn, org, True, mint, ua))
    def ordinary(self, hours, per_hour, nets, fail=0.05, giveup=0.0, start=0, users=5000, pfx="m", mint=False):
        """per_hour logins per network; a share fail then succeed 1-3 min later; a share give up."""
        r = self.rnd
        for h in range(start, start + hours):
            for asn, org, p in nets:
                addrs = [f"{p}.{i}.{i*7 % 250 + 1}" for i in range(1, 9)]
                for _ in range(per_hour):
                    t = T0 + datetime.timedelta(hours=h, seconds=r.uniform(0, 3600))
                    u = f"{pfx}:{r.randrange(users)}"
                    ip = r.choice(addrs)
                    x = r.random()
                    tok = f"tk-{u}-{len(self.evs)}" if mint else None
                    if x < fail:
                        self.login(t, u, ip, asn, org, False)
                        self.login(t + datetime.timedelta(seconds=r.uniform(40, 180)), u, ip, asn, org, True, tok)
                    elif x < fail + giveup:
                        self.login(t, u, ip, asn, org, False)
                    else:
                        self.login(t, u, ip, asn, org, True, tok)
    def write(self):
        os.makedirs(self.name, exist_ok=True)
        self.evs.sort(key=lambda e: e[0])
        with open(os.path.join(self.name, "events.ndjson"), "w") as f:
            for i, (t, user, ip, asn, org, ok, tok, ua) in enumerate(self.evs):
                ev = {"@timestamp": t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
                      "event": {"id": f"{self.name[:3]}-{i}", "dataset": "auth.login", "action": "login",
                                "outcome": "success" if ok else "failure"},
                      "user": {"id": user},
                      "source": {"ip": ip, "as": {"number": asn, "organization": {"name": org}}},
                      "user_agent": {"original": ua}}
                if tok:
                    ev["event"].update({"dataset": "auth.token", "action": "token.issued"})
                    ev["token"] = {"id": tok, "key_id": "prod-1"}
                f.write(json.dumps(ev, separators=(",", ":")) + "\n")

def bots(c, start_h, hours, attempts, nets, naddr, pfx="x", uas=None):
    """A botnet: naddr addresses spread over nets, each attempt a distinct
    account from a leaked list, failing, never recovered. Returns the
    addresses in order of first use."""
    r = c.rnd
    addrs = []
    for i in range(naddr):
        asn, org, p = nets[i % len(nets)]
        addrs.append((f"{p}.{r.randrange(1, 250)}.{r.randrange(1, 250)}", asn, org))
    for k in range(attempts):
        t = T0 + datetime.timedelta(hours=start_h, seconds=r.uniform(0, hours * 3600))
        ip, asn, org = r.choice(addrs)
        c.login(t, f"{pfx}:{k}", ip, asn, org, False, ua=r.choice(uas) if uas else UA)
    return addrs

# Positive: a rotating botnet on the company's own mobile carriers, each
# address a handful of attempts (seed 1's shape, any company's carriers).
c = Case("rotating_botnet", 1)
c.ordinary(7, 40, CARRIERS, giveup=0.02)
bots(c, 4, 2, 240, CARRIERS, 200, pfx="leak")
c.write()

# Positive: the rotating botnet's few working passwords get tokens. A bot
# that logs in once the campaign is flagged, having failed on two other
# accounts in the last two hours, has its token named (a follow-up
# finding, which relates the bot too); one that failed on only one other
# account, where no one else logged in, is named as the account's first
# visit on a new device (the token alone); one that logged in before the
# flag is not (the finding cannot know yet). Twin: the carrier's customers keep logging in from the
# carrier's shared addresses during the campaign, some of them giving up
# (so those addresses have unrecovered failures too), and their tokens are
# never named: people succeed from those addresses more than they fail.
c = Case("campaign_tokens", 8)
c.ordinary(7, 40, CARRIERS, giveup=0.02, mint=True)
addrs = bots(c, 4, 2, 240, CARRIERS, 200, pfx="leak")
for k, h in enumerate((4.1, 5.1, 5.3, 5.5, 5.7)):
    ip, asn, org = addrs[k * 7]
    c.login(T0 + datetime.timedelta(hours=h), f"m:taken-{k}", ip, asn, org, True, f"tk-bot-{k}")
c.write()

# Positive: a botnet on hosting networks abroad never seen before.
c = Case("hosting_new_network", 2)
c.ordinary(5, 40, CARRIERS, giveup=0.02)
bots(c, 3, 1, 80, [(20473, "The Constant Company, LLC", "45.77"), (14061, "DigitalOcean, LLC", "128.199")], 60, pfx="leak")
c.write()

# Hard-benign: one carrier's CGNAT, many customers behind 8 addresses, a
# tenth mistyping (and succeeding a minute later), some giving up.
c = Case("cgnat_benign", 3)
c.ordinary(8, 300, CARRIERS[:1], fail=0.10, giveup=0.01)
c.write()

# Hard-benign: an outage — for 40 minutes every login fails (people retry),
# nobody succeeds; then they all get in.
c = Case("outage_benign", 4)
c.ordinary(3, 60, CARRIERS, giveup=0.01)
r = c.rnd
out0 = T0 + datetime.timedelta(hours=3)
for asn, org, p in CARRIERS:
    addrs = [f"{p}.{i}.{i*7 % 250 + 1}" for i in range(1, 9)]
    for k in range(120):
        u, ip = f"m:{r.randrange(5000)}", r.choice(addrs)
        t = out0 + datetime.timedelta(seconds=r.uniform(0, 2400))
        for n in range(r.randrange(1, 4)):
            c.login(t + datetime.timedelta(seconds=30 * n), u, ip, asn, org, False)
        back = out0 + datetime.timedelta(seconds=2400 + r.uniform(60, 3000))
        c.login(back, u, ip, asn, org, True)
c.ordinary(2, 60, CARRIERS, giveup=0.01, start=4)
c.write()

# Hard-benign: a password-policy change — in one hour most users fail once
# with their old password, reset it and log in a few minutes later.
c = Case("password_policy_benign", 5)
c.ordinary(4, 60, CARRIERS, giveup=0.01)
r = c.rnd
for asn, org, p in CARRIERS:
    addrs = [f"{p}.{i}.{i*7 % 250 + 1}" for i in range(1, 9)]
    for k in range(150):
        u, ip = f"m:{r.randrange(5000)}", r.choice(addrs)
        t = T0 + datetime.timedelta(hours=4, seconds=r.uniform(0, 3600))
        c.login(t, u, ip, asn, org, False)
        c.login(t + datetime.timedelta(seconds=r.uniform(120, 600)), u, ip, asn, org, True)
c.ordinary(2, 60, CARRIERS, giveup=0.01, start=5)
c.write()

# Hard-benign: a corporate office egress at 9:00 — 300 employees through two
# addresses within half an hour, some mistyping, a few giving up.
c = Case("office_egress_benign", 6)
c.ordinary(9, 40, CARRIERS, giveup=0.02)
r = c.rnd
office = (64500, "Example Corp HQ", "203.0.113")
for k in range(300):
    t = T0 + datetime.timedelta(hours=9, seconds=r.uniform(0, 1800))
    u, ip = f"e:{k}", f"203.0.113.{r.choice((10, 11))}"
    x = r.random()
    c.login(t, u, ip, office[0], office[1], x >= 0.12)
    if x < 0.10:
        c.login(t + datetime.timedelta(seconds=r.uniform(20, 120)), u, ip, office[0], office[1], True)
c.ordinary(2, 40, CARRIERS, giveup=0.02, start=9)
c.write()

# Hard-benign: a popular app release logs everyone out — ten times the
# carrier's usual logins for an hour, with the usual share giving up.
c = Case("app_release_benign", 7)
c.ordinary(8, 100, CARRIERS[:1], fail=0.05, giveup=0.06, users=50000)
c.ordinary(1, 1000, CARRIERS[:1], fail=0.05, giveup=0.06, start=8, users=50000)
c.ordinary(1, 100, CARRIERS[:1], fail=0.05, giveup=0.06, start=9, users=50000)
c.write()

# The lower bar for a flagged network's logins (campaign logins): the
# account's first visit to the network on a kind of device it never used,
# and (a) it is a known account, (b) the network's first visits are rare,
# or (c) the address failed on another account and no one else logged in.
IPHONE_APP = "ExampleShop/8.4.1 (iPhone; iOS 17.4; Scale/3.00)"
ANDROID_APP = "ExampleShop/8.4.1 (Android 14; SM-S918N) okhttp/4.12.0"
DESKTOP = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
ABROAD = (28573, "Claro NXT Telecomunicacoes Ltda", "177.39")
KT, LG = CARRIERS[1], CARRIERS[2]

def regulars(c, users, net, ua, hours=(0.5, 1.5, 2.5)):
    """Known customers: each logs in from net with ua during the history."""
    asn, org, p = net
    for k, u in enumerate(users):
        for h in hours:
            c.login(T0 + datetime.timedelta(hours=h, seconds=37 * k), u, f"{p}.77.{k % 200 + 1}", asn, org, True, f"tk-{u}-{h}", ua=ua)

# Positive: a campaign on a carrier and on a network abroad; the campaign's
# successful logins have no failure of their own. Named (token only): (a) a
# known account (it logs in from KT on an iPhone) arriving at the flagged
# LG on a Windows computer; (b) an account with no history arriving at the
# flagged network abroad, where no account had arrived before.
c = Case("campaign_logins", 9)
c.ordinary(7, 40, CARRIERS, giveup=0.02)
regulars(c, ["m:known-0", "m:known-1"], KT, IPHONE_APP)
bots(c, 4, 2, 480, CARRIERS + [ABROAD], 200, pfx="leak")
for k, h in enumerate((5.2, 5.6)):
    c.login(T0 + datetime.timedelta(hours=h), f"m:known-{k}", f"106.101.{200 + k}.9", LG[0], LG[1], True, f"tk-known-{k}", ua=DESKTOP)
for k, h in enumerate((5.3, 5.7)):
    c.login(T0 + datetime.timedelta(hours=h), f"m:abroad-{k}", f"177.39.{200 + k}.9", ABROAD[0], ABROAD[1], True, f"tk-abroad-{k}", ua=DESKTOP)
c.write()

# Hard-benign: a carrier's CGNAT holds many customers during a campaign on
# it. Customers keep logging in from the carrier's shared addresses, many
# for the first time in the history (the account pool is large), some
# giving up: accounts' first visits are common there, and the addresses
# succeed more than they fail, so no customer's token is named.
c = Case("campaign_cgnat_benign", 10)
c.ordinary(7, 40, CARRIERS, giveup=0.02, users=200000, mint=True)
bots(c, 4, 2, 480, CARRIERS, 200, pfx="leak")
c.write()

# Hard-benign: a traveller. A known customer (KT, iPhone app) logs in from
# the flagged network abroad, where no account had arrived before, on
# their own phone; another from the flagged LG on their phone. The device
# was seen: not named.
c = Case("campaign_traveller_benign", 11)
c.ordinary(7, 40, CARRIERS, giveup=0.02)
regulars(c, ["m:trav-0", "m:trav-1"], KT, IPHONE_APP)
bots(c, 4, 2, 480, CARRIERS + [ABROAD], 200, pfx="leak")
c.login(T0 + datetime.timedelta(hours=5.3), "m:trav-0", "177.39.201.9", ABROAD[0], ABROAD[1], True, "tk-trav-0", ua=IPHONE_APP)
c.login(T0 + datetime.timedelta(hours=5.6), "m:trav-1", "106.101.201.9", LG[0], LG[1], True, "tk-trav-1", ua=IPHONE_APP)
c.write()

# Hard-benign: a household sharing one address of the flagged LG. One
# person mistypes their password and gets in a minute later; then another,
# with no history, logs in on their own phone for the first time. The
# address's other login succeeded: not named.
c = Case("campaign_household_benign", 12)
c.ordinary(7, 40, CARRIERS, giveup=0.02)
bots(c, 4, 2, 480, CARRIERS, 200, pfx="leak")
home = "106.101.222.5"
t = T0 + datetime.timedelta(hours=5.4)
c.login(t, "m:parent", home, LG[0], LG[1], False, ua=DESKTOP)
c.login(t + datetime.timedelta(seconds=70), "m:parent", home, LG[0], LG[1], True, "tk-parent", ua=DESKTOP)
c.login(t + datetime.timedelta(minutes=9), "m:child", home, LG[0], LG[1], True, "tk-child", ua=ANDROID_APP)
c.write()

# Hard-benign: a new phone. A known customer who logs in from LG on an
# iPhone logs in from LG on a new Android phone during the campaign on LG:
# a new device, but not a new network. Not named.
c = Case("campaign_newphone_benign", 13)
c.ordinary(7, 40, CARRIERS, giveup=0.02)
regulars(c, ["m:phone-0"], LG, IPHONE_APP)
bots(c, 4, 2, 480, CARRIERS, 200, pfx="leak")
c.login(T0 + datetime.timedelta(hours=5.5), "m:phone-0", "106.101.233.9", LG[0], LG[1], True, "tk-phone-0", ua=ANDROID_APP)
c.write()

# Positive: the campaign's own user agents. The botnet cycles through three
# exact user agents of old browser versions that none of the company's
# customers carries; two accounts with no history log in with one of them
# from carrier addresses with no failure of their own, each its first
# visit there. Named (token only). A third does the same on a broadband
# network the botnet's failures never reached the floor on (not flagged):
# named too, by the campaign on LG whose user agent it carries.
OLD_UAS = ["Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/99.0.4844.51 Safari/537.36",
           "Mozilla/5.0 (Windows NT 6.1; Win64; x64; rv:91.0) Gecko/20100101 Firefox/91.0",
           "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.1.2 Safari/605.1.15"]
c = Case("campaign_agents", 14)
c.ordinary(7, 80, CARRIERS, giveup=0.02)
bots(c, 4, 2, 480, CARRIERS, 200, pfx="leak", uas=OLD_UAS)
for k, h in enumerate((5.2, 5.6)):
    c.login(T0 + datetime.timedelta(hours=h), f"m:taken-{k}", f"106.101.{210 + k}.9", LG[0], LG[1], True, f"tk-agent-{k}", ua=OLD_UAS[k])
BROADBAND = (9318, "SK Broadband Co Ltd", "1.231")
c.ordinary(7, 10, [BROADBAND], giveup=0.02, users=200000)
c.login(T0 + datetime.timedelta(hours=5.4), "m:taken-2", "1.231.149.150", BROADBAND[0], BROADBAND[1], True, "tk-agent-2", ua=OLD_UAS[2])
c.write()

# Hard-benign: a campaign that copies the user agent most of the company's
# customers carry. The carrier's customers keep arriving for the first
# time during it, with that user agent: its share among the campaign's
# failures is not a hundred times its share among the company's logins,
# so no customer's token is named — on the flagged carriers, nor on a
# broadband network the campaign did not reach.
c = Case("campaign_common_agent_benign", 15)
c.ordinary(7, 80, CARRIERS, giveup=0.02, users=200000, mint=True)
bots(c, 4, 2, 480, CARRIERS, 200, pfx="leak")
c.ordinary(7, 10, [(9318, "SK Broadband Co Ltd", "1.231")], giveup=0.02, users=200000, mint=True)
c.write()
