#!/usr/bin/env python3
"""Writes the nginx samples in this directory (deterministic).

access.log          nginx combined format: customers reading their own data,
                    then one overseas source walking member ids with a script.
access.ecs.ndjson   the same requests written as contract events, as they
                    decode with the routes of nginx_test.go (equivalence test).
access.json.log     a JSON access log (log_format ... escape=json) of an API
                    gateway that logs the authenticated member and token id.
"""
import json, datetime

KST = datetime.timezone(datetime.timedelta(hours=9))
start = datetime.datetime(2025, 6, 24, 9, 0, 3, tzinfo=KST)
IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 CoupangApp/8.1"
ANDROID = "Mozilla/5.0 (Linux; Android 14; SM-S918N) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36"
SCRIPT = "python-requests/2.31.0"

# (offset seconds, ip, user, method, target, status, bytes, referer, ua)
reqs = [
    (0, "211.234.10.9", "-", "GET", "/api/v2/members/48213377/profile", 200, 734, "-", IPHONE),
    (2, "211.234.10.9", "-", "GET", "/api/v2/members/48213377/addresses?page=1", 200, 1290, "https://m.example.kr/my", IPHONE),
    (5, "175.223.14.80", "-", "GET", "/api/v2/orders/ORD%2D20250624%2D0001", 200, 2210, "-", ANDROID),
    (7, "175.223.14.80", "-", "POST", "/api/v2/members/51200931/addresses", 201, 88, "-", ANDROID),
    (9, "10.20.0.5", "-", "GET", "/healthz", 200, 2, "-", "kube-probe/1.30"),
    (11, "2001:db8:4006:812::200e", "-", "HEAD", "/api/v2/members/search?q=kim", 403, 0, "-", "curl/8.5.0"),
    (12, "198.51.100.23", "-", "\\x16\\x03\\x01", None, 400, 157, "-", "-"),
    (14, "211.234.10.9", "-", "GET", "/static/app.js", 304, 0, "https://m.example.kr/", 'Mozilla/5.0 \\x22quoted\\x22 agent'),
]
for i in range(12):
    reqs.append((20 + i, "185.220.101.34", "-", "GET", "/api/v2/members/%d/addresses" % (48213378 + i * 7),
                 200 if i != 5 else 404, 1180 + i, "-", SCRIPT))

routes = {  # mirrors testRoutes in nginx_test.go: (method, prefix test) -> record info
}

def route(method, path):
    seg = [s for s in path.split("/") if s]
    if method == "GET" and len(seg) == 5 and seg[:3] == ["api", "v2", "members"] and seg[4] == "profile":
        return ("member.profile.read", "customer", seg[3], ["name", "email", "phone"], seg[3])
    if method == "GET" and len(seg) == 5 and seg[:3] == ["api", "v2", "members"] and seg[4] == "addresses":
        return ("member.addresses.read", "address", seg[3], ["name", "phone", "address", "entrance_code"], seg[3])
    if method == "POST" and len(seg) == 5 and seg[:3] == ["api", "v2", "members"] and seg[4] == "addresses":
        return ("member.addresses.update", "address", seg[3], ["address"], seg[3])
    if method == "GET" and len(seg) == 4 and seg[:3] == ["api", "v2", "orders"]:
        return ("order.read", "order", seg[3].replace("%2D", "-"), ["name", "address", "order_history"], None)
    if len(seg) == 1 and seg[0] == "healthz":
        return ("health.check", None, None, None, None)
    return None

with open("access.log", "w") as log, open("access.ecs.ndjson", "w") as ecs:
    for off, ip, user, method, target, status, size, ref, ua in reqs:
        t = start + datetime.timedelta(seconds=off)
        request = method if target is None else "%s %s HTTP/1.1" % (method, target)
        log.write('%s - %s [%s] "%s" %d %d "%s" "%s"\n' % (
            ip, user, t.strftime("%d/%b/%Y:%H:%M:%S %z"), request, status, size, ref, ua))
        ev = {"@timestamp": t.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
              "event": {"dataset": "gateway.access", "action": "http.request",
                        "outcome": "success" if status < 400 else "failure"},
              "source": {"ip": ip},
              "http": {"response": {"status_code": status, "body": {"bytes": size}}}}
        if ua != "-":
            ev["user_agent"] = {"original": ua.replace("\\x22", '"')}
        if target is not None:
            path = target.split("?")[0]
            ev["http"]["request"] = {"method": method}
            ev["url"] = {"path": path}
            if "?" in target:
                ev["url"]["query"] = target.split("?", 1)[1]
            r = route(method, path)
            if r:
                action, rtype, rid, fields, principal = r
                ev["event"]["action"] = action
                if rtype:
                    ev["records"] = {"type": rtype, "ids": [rid], "fields": fields}
                if principal:
                    ev["user"] = {"id": "m:" + principal}
        ecs.write(json.dumps(ev, separators=(",", ":"), ensure_ascii=False) + "\n")

# A JSON access log: log_format api escape=json '{"time_iso8601":"$time_iso8601",...}'
with open("access.json.log", "w") as f:
    for off, ip, user, method, target, status, size, ref, ua in reqs:
        if target is None:
            continue
        t = start + datetime.timedelta(seconds=off)
        member = ""
        if "/members/" in target and ip != "185.220.101.34":
            member = target.split("/")[4]
        if ip == "185.220.101.34":
            member = target.split("/")[4]  # forged tokens name the victim
        rec = {"time_iso8601": t.isoformat(), "remote_addr": ip, "remote_user": "",
               "request_method": method, "request_uri": target, "status": str(status),
               "body_bytes_sent": str(size), "request_time": "0.012", "http_referer": ref if ref != "-" else "",
               "http_user_agent": ua.replace("\\x22", '"') if ua != "-" else "",
               "http_x_user_id": member, "http_x_token_id": ("tk-%08x" % (0x7d41c2e0 + off)) if member else "",
               "upstream_addr": "10.20.3.14:8080"}
        f.write(json.dumps(rec, separators=(",", ":"), ensure_ascii=False) + "\n")
