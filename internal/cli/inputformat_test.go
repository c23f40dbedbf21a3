package cli_test

import (
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const logstashCloudTrail = "../input/cloudtrail/testdata/logstash-instance-role-day.ndjson"

// TestReplayLogstashCloudTrail: CloudTrail as Logstash ships it (eventTime
// moved to @timestamp, @version added, one record per line) is recognised
// and replays with no rejected line. Before, every line was rejected
// ("missing required field eventTime").
func TestReplayLogstashCloudTrail(t *testing.T) {
	code, _, stderr := run(t, "replay", "--no-store", logstashCloudTrail)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "read as cloudtrail") || !strings.Contains(stderr, "replay: 10 events read, 0 rejected, ") {
		t.Errorf("want 10 events read as cloudtrail, 0 rejected:\n%s", stderr)
	}
}

// TestReplayGzipRecordsFile: a gzipped CloudTrail S3 file (.json.gz with
// {"Records":[...]}) replays whole.
func TestReplayGzipRecordsFile(t *testing.T) {
	data, err := os.ReadFile("../input/cloudtrail/testdata/instance-role-day.json")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "123456789012_CloudTrail_ap-northeast-2_20250624T0205Z_x.json.gz")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(f)
	zw.Write(data)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	code, _, stderr := run(t, "replay", "--no-store", path)
	if code != 0 || !strings.Contains(stderr, "replay: 10 events read, 0 rejected, ") {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
}

// TestReplayLongFirstLine: a CloudTrail export whose first record is far
// longer than the first kilobyte, with eventSource and eventName after a
// large userIdentity, is still recognised (it used to be read as the event
// contract and every line rejected).
func TestReplayLongFirstLine(t *testing.T) {
	rec := `{"eventVersion":"1.10","userIdentity":{"type":"AssumedRole","arn":"arn:aws:sts::1:assumed-role/R/s","sessionContext":{"attributes":{"pad":"` +
		strings.Repeat("x", 40000) + `"}}},"eventTime":"2025-06-24T09:00:03Z","eventSource":"s3.amazonaws.com","eventName":"ListBuckets","sourceIPAddress":"203.0.113.7"}` + "\n"
	path := filepath.Join(t.TempDir(), "export.ndjson")
	if err := os.WriteFile(path, []byte(rec+rec), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := run(t, "replay", "--no-store", path)
	if code != 0 || !strings.Contains(stderr, "read as cloudtrail") || !strings.Contains(stderr, "replay: 2 events read, 0 rejected, ") {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
}

// TestReplayUnknownFormat: a file in no format haechi knows stops the
// replay with a message naming the formats tried and asking for --format,
// instead of being read as the event contract line by line.
func TestReplayUnknownFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.log")
	if err := os.WriteFile(path, []byte(`{"ts":"2025-06-24T09:00:03Z","msg":"login ok","user":"bob"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := run(t, "replay", "--no-store", path)
	if code == 0 {
		t.Fatalf("exit 0 for an unrecognised file\n%s", stderr)
	}
	for _, want := range []string{"cannot tell the input format", "line 1 fits no format", "tried cloudtrail", "ecs", "nginx-json", "--format"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}

// TestReplayUnknownLaterFile: with several files, one in no known format
// fails the replay before any file is fed — not after the earlier files
// were read and alerted on, which left a half-replayed store behind.
func TestReplayUnknownLaterFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.ndjson")
	rec := `{"eventVersion":"1.10","userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::1:user/a"},"eventTime":"2025-06-24T09:00:03Z","eventSource":"s3.amazonaws.com","eventName":"ListBuckets","sourceIPAddress":"203.0.113.7"}` + "\n"
	bad := filepath.Join(dir, "app.log")
	if err := os.WriteFile(good, []byte(rec), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte(`{"ts":"2025-06-24T09:00:03Z","msg":"login ok"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := run(t, "replay", "--no-store", good, bad)
	if code == 0 || !strings.Contains(stderr, "app.log") || !strings.Contains(stderr, "fits no format") {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if strings.Contains(stderr, "events read") || strings.Contains(stderr, "read as cloudtrail") {
		t.Errorf("the first file was fed before the second was recognised:\n%s", stderr)
	}
}

// TestReplayIdentityProviders: each identity provider's sample, recognised
// without --format, gives the detectors what they need: the session (or
// refresh token) replayed by a script from a hosting network is a
// token_binding alert on that session, and activity after deprovisioning
// a terminated_identity alert. Its hard-benign twin is the same log
// without the thief's lines and without the deprovisioning: logins, MFA,
// SSO into apps, token exchanges by the application's backend, refreshes
// and logouts raise nothing.
func TestReplayIdentityProviders(t *testing.T) {
	const thief = "198.51.100.23"
	for _, tc := range []struct {
		format     string
		binding    string // token.id of the replayed session, "" for none
		terminated string // principal active after deprovisioning
		deprov     string // a string only the deprovisioning lines hold
	}{
		// Keycloak events carry no network context but the address: with
		// no GeoIP database configured there is nothing to bind to.
		{"keycloak", "", "5e280ccb-90d0-52e4-b314-9141507a72a3", `"operationType":"`},
		{"okta", "102alice5EXAMPLEsessA1", "00u3carolEXAMPLE2p5", "user.lifecycle.deactivate"},
		{"entra", "8dc51d3c-b6c4-5520-862b-aaaebec5455b", "58124717-b986-5a20-a6f6-107361b91a59", "Disable account"},
		{"ocsf", "5ad7a11f-e281-55bc-85ae-858b75c10776", "", "-"},
	} {
		t.Run(tc.format, func(t *testing.T) {
			path := "../input/idp/testdata/" + tc.format + ".ndjson"
			code, stdout, stderr := run(t, "replay", "--no-store", path)
			if code != 0 || !strings.Contains(stderr, "read as "+tc.format) || !strings.Contains(stderr, " 0 rejected, ") {
				t.Fatalf("exit %d\n%s", code, stderr)
			}
			as := alerts(t, stdout)
			var binding, terminated string
			for _, a := range as {
				for _, f := range a.Findings {
					switch f.Detector {
					case "token_binding":
						binding = f.Entity.ID
					case "terminated_identity":
						terminated = f.Entity.ID
					}
				}
			}
			if binding != tc.binding || terminated != tc.terminated {
				t.Errorf("token_binding on %q, terminated_identity on %q; want %q, %q\n%s", binding, terminated, tc.binding, tc.terminated, stdout)
			}

			// The hard-benign twin.
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var keep []string
			for _, line := range strings.Split(string(data), "\n") {
				if line != "" && !strings.Contains(line, thief) && !strings.Contains(line, tc.deprov) {
					keep = append(keep, line)
				}
			}
			twin := filepath.Join(t.TempDir(), tc.format+".ndjson")
			if err := os.WriteFile(twin, []byte(strings.Join(keep, "\n")+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			code, stdout, stderr = run(t, "replay", "--no-store", twin)
			if code != 0 || !strings.Contains(stderr, " 0 rejected, ") {
				t.Fatalf("twin: exit %d\n%s", code, stderr)
			}
			if as := alerts(t, stdout); len(as) != 0 {
				t.Errorf("twin: %d alerts on benign identity-provider activity:\n%s", len(as), stdout)
			}
		})
	}
}

// TestReplayCorruptGzipIsAnInputError: a file that starts like gzip but is
// not is an input that cannot be read (exit 1, as a missing file), not a
// usage error (exit 2: nothing --format could fix); a file in no known
// format stays a usage error.
func TestReplayCorruptGzipIsAnInputError(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "events.ndjson.gz")
	if err := os.WriteFile(bad, []byte("\x1f\x8b not gzip at all"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"auto", "ecs"} {
		if code, _, stderr := run(t, "replay", "--no-store", "--format", format, bad); code != 1 || !strings.Contains(stderr, "gzip") {
			t.Errorf("--format %s: exit %d, want 1\n%s", format, code, stderr)
		}
	}
}
