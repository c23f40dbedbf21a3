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
