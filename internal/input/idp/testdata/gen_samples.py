#!/usr/bin/env python3
"""Writes the identity-provider samples in this directory (deterministic).

The shapes follow each vendor's published reference (field names, nesting,
value formats); the values are invented for haechi and belong to it:

okta.ndjson       Okta System Log LogEvent objects (System Log API reference,
                  developer.okta.com/docs/reference/api/system-log/).
keycloak.ndjson   Keycloak EventRepresentation and AdminEventRepresentation
                  (Admin REST API, GET /admin/realms/{realm}/events and
                  /admin-events).
entra.ndjson      Microsoft Entra ID sign-ins and audits: Microsoft Graph
                  signIn and directoryAudit resources, Azure Monitor
                  diagnostic records (category SignInLogs,
                  NonInteractiveUserSignInLogs, AuditLogs) and an Event Hubs
                  batch {"records":[...]}.
ocsf.ndjson       OCSF 1.1 Authentication (class 3002) and API Activity
                  (class 6003) events (schema.ocsf.io).

Each tells the same small story: alice signs in from home (a Korean
residential network) and works; her session or refresh token is then
replayed from a hosting network by a script; bob fails his password a few
times; carol is deprovisioned and her old session is used afterwards.
"""
import json, uuid, datetime

def uid(tag):
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "haechi-idp-" + tag))

def iso(t, ms=True):
    return t.strftime("%Y-%m-%dT%H:%M:%S") + (".%03dZ" % (t.microsecond // 1000) if ms else "Z")

def millis(t):
    return int((t - datetime.datetime(1970, 1, 1)).total_seconds() * 1000)

T0 = datetime.datetime(2025, 6, 24, 0, 10, 0)
def at(minutes, seconds=0):
    return T0 + datetime.timedelta(minutes=minutes, seconds=seconds)

HOME_IP, HOME_ASN, HOME_ORG = "211.234.10.9", 4766, "Korea Telecom"
THIEF_IP, THIEF_ASN, THIEF_ORG = "198.51.100.23", 14061, "DigitalOcean, LLC"
BOB_IP = "203.0.113.41"
CAROL_IP = "175.223.4.18"
BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
SCRIPT = "python-requests/2.32.3"

def write(name, objs):
    with open(name, "w") as f:
        for o in objs:
            f.write(json.dumps(o, separators=(",", ":")) + "\n")

# ---------------------------------------------------------------- Okta
ALICE, BOB, CAROL, ADMIN = "00u1alice7EXAMPLE4x7", "00u2bob9EXAMPLE8w6", "00u3carolEXAMPLE2p5", "00u0admin1EXAMPLE0a1"
def okta(t, etype, actor, ip, ua, result="SUCCESS", reason=None, session=None, asn=HOME_ASN, org=HOME_ORG,
         target=None, msg="", legacy=None, tag=None):
    aid, alt, name = actor
    return {
        "actor": {"id": aid, "type": "User", "alternateId": alt, "displayName": name, "detailEntry": None},
        "client": {"userAgent": {"rawUserAgent": ua, "os": "Windows 10", "browser": "CHROME"}, "zone": "null",
                   "device": "Computer", "id": None, "ipAddress": ip,
                   "geographicalContext": {"city": "Seoul", "state": "Seoul", "country": "South Korea",
                                           "postalCode": None, "geolocation": {"lat": 37.5665, "lon": 126.978}}},
        "device": None,
        "authenticationContext": {"authenticationProvider": None, "credentialProvider": None, "credentialType": None,
                                  "issuer": None, "interface": None, "authenticationStep": 0,
                                  "externalSessionId": session or "unknown"},
        "displayMessage": msg, "eventType": etype,
        "outcome": {"result": result, "reason": reason},
        "published": iso(t),
        "securityContext": {"asNumber": asn, "asOrg": org, "isp": org, "domain": None, "isProxy": False},
        "severity": "INFO" if result == "SUCCESS" else "WARN",
        "debugContext": {"debugData": {"requestId": uid("okta-req-" + (tag or etype) + iso(t)), "requestUri": "/idp/idx/identify"}},
        "legacyEventType": legacy,
        "transaction": {"type": "WEB", "id": uid("okta-tx-" + iso(t))[:24], "detail": {}},
        "uuid": uid("okta-" + (tag or etype) + iso(t)),
        "version": "0",
        "request": {"ipChain": [{"ip": ip, "geographicalContext": None, "version": "V4", "source": None}]},
        "target": target,
    }
alice = (ALICE, "alice@example.com", "Alice Kim")
bob = (BOB, "bob@example.com", "Bob Lee")
carol = (CAROL, "carol@example.com", "Carol Park")
admin = (ADMIN, "admin@example.com", "Okta Admin")
S_ALICE, S_CAROL = "102alice5EXAMPLEsessA1", "102carol3EXAMPLEsessC1"
app = lambda: [{"id": "0oa1crm9EXAMPLE3", "type": "AppInstance", "alternateId": "CRM", "displayName": "CRM", "detailEntry": None}]
okta_events = [
    okta(at(0), "user.session.start", alice, HOME_IP, BROWSER, session=S_ALICE, msg="User login to Okta", legacy="core.user_auth.login_success"),
    okta(at(0, 20), "user.authentication.auth_via_mfa", alice, HOME_IP, BROWSER, session=S_ALICE, msg="Authentication of user via MFA"),
    okta(at(1), "user.authentication.sso", alice, HOME_IP, BROWSER, session=S_ALICE, target=app(), msg="User single sign on to app"),
    okta(at(2), "user.session.start", bob, BOB_IP, BROWSER, result="FAILURE", reason="INVALID_CREDENTIALS", msg="User login to Okta", legacy="core.user_auth.login_failed"),
    okta(at(2, 30), "user.session.start", bob, BOB_IP, BROWSER, result="FAILURE", reason="INVALID_CREDENTIALS", msg="User login to Okta", legacy="core.user_auth.login_failed"),
    okta(at(3), "user.session.start", carol, CAROL_IP, BROWSER, session=S_CAROL, msg="User login to Okta"),
    okta(at(30), "user.lifecycle.deactivate", admin, HOME_IP, BROWSER, msg="Deactivate Okta user",
         target=[{"id": CAROL, "type": "User", "alternateId": "carol@example.com", "displayName": "Carol Park", "detailEntry": None}]),
    okta(at(41), "user.authentication.sso", alice, THIEF_IP, SCRIPT, session=S_ALICE, asn=THIEF_ASN, org=THIEF_ORG, target=app(), msg="User single sign on to app", tag="sso-replay"),
    okta(at(45), "user.authentication.sso", carol, CAROL_IP, BROWSER, session=S_CAROL, target=app(), msg="User single sign on to app"),
    okta(at(50), "user.session.end", alice, HOME_IP, BROWSER, session=S_ALICE, msg="User logout from Okta"),
    okta(at(51), "application.user_membership.add", admin, HOME_IP, BROWSER, msg="Add user to application membership",
         target=[{"id": "0uaEXAMPLEmember", "type": "AppUser", "alternateId": "bob@example.com", "displayName": "Bob Lee", "detailEntry": None}]),
]
write("okta.ndjson", okta_events)

# ---------------------------------------------------------------- Keycloak
REALM = "acme"
KU = {"alice": uid("kc-alice"), "bob": uid("kc-bob"), "carol": uid("kc-carol"), "admin": uid("kc-admin")}
def kc(t, typ, user, ip, client="crm", session=None, error=None, details=None, tag=""):
    return {"id": uid("kc-%s-%s-%s" % (typ, iso(t), tag)), "time": millis(t), "type": typ, "realmId": REALM,
            "clientId": client, "userId": KU.get(user), "sessionId": session, "ipAddress": ip, "error": error,
            "details": details or {}}
KS_ALICE = uid("kc-sess-alice")
RT1, RT2, RT3 = uid("kc-rt-1"), uid("kc-rt-2"), uid("kc-rt-3")
AT1, AT2, AT3 = uid("kc-at-1"), uid("kc-at-2"), uid("kc-at-3")
APP_IP = "211.234.10.77"  # the CRM's backend, same office network as alice
kc_events = [
    kc(at(0), "LOGIN", "alice", HOME_IP, session=KS_ALICE, details={"auth_method": "openid-connect", "auth_type": "code",
       "redirect_uri": "https://crm.example.com/callback", "consent": "no_consent_required", "code_id": KS_ALICE, "username": "alice"}),
    kc(at(0, 1), "CODE_TO_TOKEN", "alice", APP_IP, session=KS_ALICE, details={"token_id": AT1, "grant_type": "authorization_code",
       "refresh_token_type": "Refresh", "scope": "openid profile email", "refresh_token_id": RT1, "code_id": KS_ALICE, "client_auth_method": "client-secret"}),
    kc(at(5), "REFRESH_TOKEN", "alice", APP_IP, session=KS_ALICE, details={"token_id": AT2, "grant_type": "refresh_token",
       "refresh_token_type": "Refresh", "scope": "openid profile email", "refresh_token_id": RT1, "updated_refresh_token_id": RT2, "client_auth_method": "client-secret"}),
    kc(at(2), "LOGIN_ERROR", "bob", BOB_IP, error="invalid_user_credentials", details={"auth_method": "openid-connect", "auth_type": "code",
       "redirect_uri": "https://crm.example.com/callback", "code_id": uid("kc-code-bob"), "username": "bob"}),
    kc(at(2, 20), "LOGIN_ERROR", None, BOB_IP, error="user_not_found", details={"auth_method": "openid-connect", "auth_type": "code",
       "redirect_uri": "https://crm.example.com/callback", "code_id": uid("kc-code-bob2"), "username": "bobby"}),
    kc(at(40), "REFRESH_TOKEN", "alice", THIEF_IP, session=KS_ALICE, details={"token_id": AT3, "grant_type": "refresh_token",
       "refresh_token_type": "Refresh", "scope": "openid profile email", "refresh_token_id": RT2, "updated_refresh_token_id": RT3}, tag="replay"),
    kc(at(45), "LOGIN_ERROR", "bob", BOB_IP, error="user_disabled", details={"auth_method": "openid-connect", "auth_type": "code",
       "redirect_uri": "https://crm.example.com/callback", "code_id": uid("kc-code-bob3"), "username": "bob"}),
    kc(at(50), "LOGOUT", "alice", HOME_IP, session=KS_ALICE, details={"redirect_uri": "https://crm.example.com/"}),
    {"id": uid("kc-admin-delete-carol"), "time": millis(at(30)), "realmId": REALM,
     "authDetails": {"realmId": "master", "clientId": "security-admin-console", "userId": KU["admin"], "ipAddress": HOME_IP},
     "operationType": "DELETE", "resourceType": "USER", "resourcePath": "users/" + KU["carol"], "representation": None, "error": None},
    {"id": uid("kc-admin-disable-bob"), "time": millis(at(31)), "realmId": REALM,
     "authDetails": {"realmId": "master", "clientId": "security-admin-console", "userId": KU["admin"], "ipAddress": HOME_IP},
     "operationType": "UPDATE", "resourceType": "USER", "resourcePath": "users/" + KU["bob"],
     "representation": json.dumps({"id": KU["bob"], "username": "bob", "enabled": False, "emailVerified": True}), "error": None},
    {"id": uid("kc-admin-role"), "time": millis(at(32)), "realmId": REALM,
     "authDetails": {"realmId": "master", "clientId": "admin-cli", "userId": KU["admin"], "ipAddress": HOME_IP},
     "operationType": "CREATE", "resourceType": "REALM_ROLE_MAPPING", "resourcePath": "users/%s/role-mappings/realm" % KU["alice"],
     "representation": json.dumps([{"name": "exporter"}]), "error": None},
]
kc_events.sort(key=lambda e: e["time"])  # Keycloak stores and returns events in time order
write("keycloak.ndjson", kc_events)

# ---------------------------------------------------------------- Entra
TENANT = uid("entra-tenant")
EU = {"alice": uid("entra-alice"), "bob": uid("entra-bob"), "carol": uid("entra-carol"), "admin": uid("entra-admin")}
ES_ALICE = uid("entra-sess-alice")
def signin(t, user, ip, ua, interactive, error=0, reason=None, session=None, asn=HOME_ASN, country="KR", tag=""):
    return {
        "id": uid("entra-signin-%s-%s" % (iso(t), tag)), "createdDateTime": iso(t, ms=False),
        "userDisplayName": user.title(), "userPrincipalName": user + "@example.com", "userId": EU[user],
        "appId": "00000003-0000-0000-c000-000000000000", "appDisplayName": "Microsoft Graph",
        "ipAddress": ip, "clientAppUsed": "Browser" if interactive else "Mobile Apps and Desktop clients",
        "correlationId": uid("entra-corr-" + iso(t) + tag), "conditionalAccessStatus": "notApplied",
        "isInteractive": interactive, "riskDetail": "none", "riskLevelAggregated": "none",
        "riskLevelDuringSignIn": "none", "riskState": "none", "riskEventTypes_v2": [],
        "resourceDisplayName": "Microsoft Graph", "resourceId": "00000003-0000-0000-c000-000000000000",
        "status": {"errorCode": error, "failureReason": reason or "Other.", "additionalDetails": None},
        "deviceDetail": {"deviceId": "", "displayName": "", "operatingSystem": "Windows10", "browser": "Chrome 126.0.0",
                         "isCompliant": False, "isManaged": False, "trustType": ""},
        "location": {"city": "Seoul", "state": "Seoul", "countryOrRegion": country,
                     "geoCoordinates": {"altitude": None, "latitude": 37.5665, "longitude": 126.978}},
        "userAgent": ua, "uniqueTokenIdentifier": uid("entra-uti-" + iso(t) + tag)[:22].replace("-", "A"),
        "sessionId": session, "autonomousSystemNumber": asn, "tokenIssuerType": "AzureAD",
        "signInEventTypes": ["interactiveUser"] if interactive else ["nonInteractiveUser"],
        "appliedConditionalAccessPolicies": [],
    }
def monitor(category, t, props):
    return {"time": iso(t, ms=False), "resourceId": "/tenants/%s/providers/Microsoft.aadiam" % TENANT,
            "operationName": "Sign-in activity" if category != "AuditLogs" else props["activityDisplayName"],
            "operationVersion": "1.0", "category": category, "tenantId": TENANT,
            "resultType": str(props.get("status", {}).get("errorCode", 0)), "resultSignature": "None",
            "durationMs": 0, "callerIpAddress": props.get("ipAddress", ""), "correlationId": props["correlationId"],
            "identity": props.get("userDisplayName", ""), "Level": 4, "location": "KR", "properties": props}
def audit(t, activity, target_user, op="Delete", tag=""):
    return {"id": "Directory_" + uid("entra-audit-" + activity + tag)[:20], "category": "UserManagement",
            "correlationId": uid("entra-acorr-" + activity + tag), "result": "success", "resultReason": "",
            "activityDisplayName": activity, "activityDateTime": iso(t, ms=False), "loggedByService": "Core Directory",
            "operationType": op,
            "initiatedBy": {"app": None, "user": {"id": EU["admin"], "displayName": None, "userPrincipalName": "admin@example.com",
                                                 "ipAddress": HOME_IP, "userType": None, "homeTenantId": None, "homeTenantName": None}},
            "targetResources": [{"id": EU[target_user], "displayName": None, "type": "User", "userPrincipalName": target_user + "@example.com",
                                 "groupType": None, "modifiedProperties": []}],
            "additionalDetails": []}
entra_events = [
    signin(at(0), "alice", HOME_IP, BROWSER, True, session=ES_ALICE),
    monitor("NonInteractiveUserSignInLogs", at(20), signin(at(20), "alice", HOME_IP, BROWSER, False, session=ES_ALICE)),
    signin(at(2), "bob", BOB_IP, BROWSER, True, error=50126, reason="Error validating credentials due to invalid username or password."),
    signin(at(3), "carol", CAROL_IP, BROWSER, True, session=uid("entra-sess-carol")),
    audit(at(30), "Disable account", "carol", op="Update"),
    signin(at(45), "carol", CAROL_IP, BROWSER, True, error=50057, reason="User account is disabled. The account has been disabled by an administrator."),
    {"records": [
        monitor("NonInteractiveUserSignInLogs", at(40), signin(at(40), "alice", THIEF_IP, SCRIPT, False, session=ES_ALICE, asn=THIEF_ASN, country="US", tag="replay")),
        monitor("AuditLogs", at(41), audit(at(41), "Update user", "alice", op="Update")),
    ]},
]
write("entra.ndjson", entra_events)

# ---------------------------------------------------------------- OCSF
def ocsf_auth(t, activity, status, user, ip, session=None, asn=HOME_ASN, org=HOME_ORG, country="KR", tag=""):
    o = {"class_uid": 3002, "class_name": "Authentication", "category_uid": 3, "category_name": "Identity & Access Management",
         "activity_id": activity, "activity_name": {1: "Logon", 2: "Logoff"}[activity],
         "type_uid": 300200 + activity, "severity_id": 1, "time": millis(t), "status_id": status,
         "status": {1: "Success", 2: "Failure"}[status],
         "metadata": {"version": "1.1.0", "uid": uid("ocsf-auth-%s-%s" % (iso(t), tag)), "product": {"name": "Acme SSO", "vendor_name": "Acme"}},
         "user": {"uid": user, "name": user + "@example.com", "type_id": 1},
         "src_endpoint": {"ip": ip, "location": {"country": country, "city": "Seoul", "lat": 37.5665, "long": 126.978},
                          "autonomous_system": {"number": asn, "name": org}},
         "http_request": {"user_agent": BROWSER}, "auth_protocol_id": 99, "auth_protocol": "OIDC", "is_mfa": True}
    if session:
        o["session"] = {"uid": session, "issuer": "https://sso.example.com", "created_time": millis(t),
                        "expiration_time": millis(t + datetime.timedelta(hours=8)), "is_remote": True}
    return o
def ocsf_api(t, operation, activity, user, ip, session, ua, resources, asn=HOME_ASN, org=HOME_ORG, country="KR", tag=""):
    return {"class_uid": 6003, "class_name": "API Activity", "category_uid": 6, "category_name": "Application Activity",
            "activity_id": activity, "activity_name": {1: "Create", 2: "Read", 3: "Update", 4: "Delete"}[activity],
            "type_uid": 600300 + activity, "severity_id": 1, "time": millis(t), "status_id": 1, "status": "Success",
            "metadata": {"version": "1.1.0", "uid": uid("ocsf-api-%s-%s" % (iso(t), tag)), "product": {"name": "Acme CRM", "vendor_name": "Acme"}},
            "api": {"operation": operation, "service": {"name": "crm.example.com"}, "request": {"uid": uid("ocsf-req-" + iso(t))}},
            "actor": {"user": {"uid": user, "name": user + "@example.com"}, "session": {"uid": session, "issuer": "https://sso.example.com"}},
            "src_endpoint": {"ip": ip, "location": {"country": country}, "autonomous_system": {"number": asn, "name": org}},
            "http_request": {"user_agent": ua, "http_method": "GET", "url": {"path": "/api/customers/" + resources[0]}},
            "http_response": {"code": 200},
            "resources": [{"uid": r, "type": "Customer"} for r in resources]}
OS_ALICE = uid("ocsf-sess-alice")
ocsf_events = [
    ocsf_auth(at(0), 1, 1, "alice", HOME_IP, session=OS_ALICE),
    ocsf_api(at(1), "GetCustomer", 2, "alice", HOME_IP, OS_ALICE, BROWSER, ["48213377"]),
    ocsf_auth(at(2), 1, 2, "bob", BOB_IP),
    ocsf_api(at(40), "GetCustomer", 2, "alice", THIEF_IP, OS_ALICE, SCRIPT, ["48213378", "48213379"], asn=THIEF_ASN, org=THIEF_ORG, country="US", tag="replay"),
    ocsf_auth(at(50), 2, 1, "alice", HOME_IP, session=OS_ALICE),
]
write("ocsf.ndjson", ocsf_events)
