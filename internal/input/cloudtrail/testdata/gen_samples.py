#!/usr/bin/env python3
"""Writes the CloudTrail samples in this directory (deterministic).

instance-role-day.json       a CloudTrail file ({"Records":[...]}): a normal
                             day of an EC2 instance role.
stolen-instance-creds.ndjson one record per line (a CloudWatch/Athena export):
                             the same role's session key used from an outside
                             address to list and download hundreds of objects.
logstash-instance-role-day.ndjson
                             instance-role-day.json as Logstash ships it
                             (eventTime → @timestamp, @version added, one
                             record per line, members in hash order).
"""
import json, uuid, datetime

ACCT = "123456789012"
ROLE = "app-orders-ec2"
INSTANCE = "i-0abc1234def567890"
KEY = "ASIAQNZ7EXAMPLE4TR2N"
BUCKET = "acme-customer-exports"
REGION = "ap-northeast-2"
HOME_IP = "3.35.120.44"  # the instance's public address (AWS-owned)
THIEF_IP = "203.0.113.77"
SDK_UA = "aws-sdk-java/2.25.10 Linux/5.10.217-205.860.amzn2.x86_64 OpenJDK_64-Bit_Server_VM/17.0.11+9-LTS Java/17.0.11 vendor/Amazon.com_Inc. io/sync http/Apache cfg/retry-mode/standard"
THIEF_UA = "Boto3/1.34.131 md/Botocore#1.34.131 ua/2.0 os/linux#6.5.0-41-generic md/arch#x86_64 lang/python#3.11.9 md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.34.131"
CLI_UA = "aws-cli/2.15.58 md/awscrt#0.19.19 ua/2.0 os/linux#6.5.0-41-generic md/arch#x86_64 lang/python#3.11.8 md/pyimpl#CPython cfg/retry-mode#standard md/installer#exe md/distrib#ubuntu.22 md/prompt#off md/command#s3.ls"

n = 0
def eid():
    global n
    n += 1
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "haechi-sample-%d" % n))

def rid():
    return eid().replace("-", "")[:16].upper()

def ident():
    return {
        "type": "AssumedRole",
        "principalId": "AROAQNZ7EXAMPLEROLE1:" + INSTANCE,
        "arn": "arn:aws:sts::%s:assumed-role/%s/%s" % (ACCT, ROLE, INSTANCE),
        "accountId": ACCT,
        "accessKeyId": KEY,
        "sessionContext": {
            "sessionIssuer": {"type": "Role", "principalId": "AROAQNZ7EXAMPLEROLE1",
                              "arn": "arn:aws:iam::%s:role/%s" % (ACCT, ROLE),
                              "accountId": ACCT, "userName": ROLE},
            "attributes": {"creationDate": "2025-06-24T02:12:40Z", "mfaAuthenticated": "false"},
            "ec2RoleDelivery": "2.0",
        },
    }

def ts(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")

def s3_object(t, name, key, ip, ua, size=48213, error=None):
    r = {
        "eventVersion": "1.10", "userIdentity": ident(), "eventTime": ts(t),
        "eventSource": "s3.amazonaws.com", "eventName": name, "awsRegion": REGION,
        "sourceIPAddress": ip, "userAgent": ua,
        "requestParameters": {"bucketName": BUCKET,
                              "Host": "%s.s3.%s.amazonaws.com" % (BUCKET, REGION), "key": key},
        "responseElements": None,
        "additionalEventData": {"SignatureVersion": "SigV4", "CipherSuite": "TLS_AES_128_GCM_SHA256",
                                "bytesTransferredIn": 0 if name == "GetObject" else size,
                                "AuthenticationMethod": "AuthHeader",
                                "bytesTransferredOut": size if name == "GetObject" else 0},
        "requestID": rid(), "eventID": eid(), "readOnly": name == "GetObject",
        "resources": [{"type": "AWS::S3::Object", "ARN": "arn:aws:s3:::%s/%s" % (BUCKET, key)},
                      {"accountId": ACCT, "type": "AWS::S3::Bucket", "ARN": "arn:aws:s3:::" + BUCKET}],
        "eventType": "AwsApiCall", "managementEvent": False, "recipientAccountId": ACCT,
        "eventCategory": "Data",
        "tlsDetails": {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256",
                       "clientProvidedHostHeader": "%s.s3.%s.amazonaws.com" % (BUCKET, REGION)},
    }
    if error:
        r["errorCode"] = error
        r["errorMessage"] = "Access Denied"
    return r

def mgmt(t, source, name, ip, ua, params=None, resources=None, ro=True, identity=None):
    r = {
        "eventVersion": "1.09", "userIdentity": identity or ident(), "eventTime": ts(t),
        "eventSource": source, "eventName": name, "awsRegion": REGION,
        "sourceIPAddress": ip, "userAgent": ua, "requestParameters": params,
        "responseElements": None, "requestID": rid(), "eventID": eid(), "readOnly": ro,
        "eventType": "AwsApiCall", "managementEvent": True, "recipientAccountId": ACCT,
        "eventCategory": "Management",
    }
    if resources is not None:
        r["resources"] = resources
    return r

day = datetime.datetime(2025, 6, 24, 0, 0, 0)
recs = []
# A normal day: the order service reads a few export batches, writes one,
# decrypts with KMS, and CloudTrail itself writes its log (an AWS service).
for i, h in enumerate([2, 6, 10, 14, 18, 22]):
    t = day + datetime.timedelta(hours=h, minutes=5, seconds=i)
    recs.append(s3_object(t, "GetObject", "orders/2025-06-24/batch-%04d.json" % (i + 1), HOME_IP, SDK_UA))
    if h == 10:
        recs.append(mgmt(t + datetime.timedelta(seconds=2), "kms.amazonaws.com", "Decrypt", HOME_IP, SDK_UA,
                         params={"encryptionAlgorithm": "SYMMETRIC_DEFAULT"},
                         resources=[{"accountId": ACCT, "type": "AWS::KMS::Key",
                                     "ARN": "arn:aws:kms:%s:%s:key/5d1c7f0e-9f1b-4e39-8f5e-1c2a9b4d7e60" % (REGION, ACCT)}]))
recs.append(s3_object(day + datetime.timedelta(hours=23, minutes=50), "PutObject",
                      "orders/2025-06-24/summary.json", HOME_IP, SDK_UA, size=9120))
recs.append(s3_object(day + datetime.timedelta(hours=23, minutes=51), "GetObject",
                      "payroll/2025-06.csv", HOME_IP, SDK_UA, size=0, error="AccessDenied"))
recs.append(mgmt(day + datetime.timedelta(hours=23, minutes=55), "kms.amazonaws.com", "GenerateDataKey",
                 "cloudtrail.amazonaws.com", "cloudtrail.amazonaws.com",
                 params={"keySpec": "AES_256"},
                 resources=[{"accountId": ACCT, "type": "AWS::KMS::Key",
                             "ARN": "arn:aws:kms:%s:%s:key/5d1c7f0e-9f1b-4e39-8f5e-1c2a9b4d7e60" % (REGION, ACCT)}],
                 identity={"type": "AWSService", "invokedBy": "cloudtrail.amazonaws.com"}))
with open("instance-role-day.json", "w") as f:
    json.dump({"Records": recs}, f, indent=1)
    f.write("\n")

# The theft: the instance's session key, lifted through an SSRF to the
# metadata service, used the next night from outside AWS.
t = datetime.datetime(2025, 6, 25, 1, 12, 0)
out = [s3_object(t - datetime.timedelta(minutes=30), "GetObject", "orders/2025-06-25/batch-0001.json", HOME_IP, SDK_UA)]
out.append(mgmt(t, "sts.amazonaws.com", "GetCallerIdentity", THIEF_IP, CLI_UA.replace("s3.ls", "sts.get-caller-identity")))
out.append(mgmt(t + datetime.timedelta(seconds=20), "s3.amazonaws.com", "ListBuckets", THIEF_IP, CLI_UA,
                params={"Host": "s3.%s.amazonaws.com" % REGION}))
out.append(mgmt(t + datetime.timedelta(seconds=41), "s3.amazonaws.com", "ListObjects", THIEF_IP, CLI_UA,
                params={"list-type": "2", "bucketName": BUCKET, "encoding-type": "url", "prefix": "customers/",
                        "max-keys": "1000", "Host": "%s.s3.%s.amazonaws.com" % (BUCKET, REGION)}))
for i in range(240):
    out.append(s3_object(t + datetime.timedelta(minutes=2, seconds=i * 3), "GetObject",
                         "customers/2025-06/part-%05d.csv.gz" % i, THIEF_IP, THIEF_UA, size=1048576 + i * 37))
with open("stolen-instance-creds.ndjson", "w") as f:
    for r in out:
        f.write(json.dumps(r, separators=(",", ":")) + "\n")


def logstash_shape():
    """instance-role-day.json as Logstash's cloudtrail codec and json_lines
    output ship it: eventTime moved to @timestamp (with milliseconds),
    @version and type added, one record per line, members in hash order."""
    import random
    rng = random.Random(26)
    with open("instance-role-day.json") as f:
        recs = json.load(f)["Records"]
    with open("logstash-instance-role-day.ndjson", "w") as out:
        for r in recs:
            t = r.pop("eventTime")
            r["@timestamp"] = t.replace("Z", ".000Z")
            r["@version"] = "1"
            r["type"] = "cloudtrail"
            keys = list(r)
            rng.shuffle(keys)
            out.write(json.dumps({k: r[k] for k in keys}, separators=(",", ":")) + "\n")


logstash_shape()
