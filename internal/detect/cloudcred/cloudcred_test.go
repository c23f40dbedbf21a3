package cloudcred_test

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/detect/cloudcred"
	"github.com/haechi-sec/haechi/internal/detect/detecttest"
	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
)

func newDetector(t testing.TB) *cloudcred.Detector {
	t.Helper()
	r, err := cloudcred.DefaultRanges()
	if err != nil {
		t.Fatal(err)
	}
	return cloudcred.New(cloudcred.Options{Ranges: r, ProviderASNs: cloudcred.DefaultProviderASNs})
}

// The cases are CloudTrail files read by the real CloudTrail decoder, with
// the embedded AWS ranges:
//
//   - outside: an EC2 instance role's key whose first use anywhere is from
//     a documentation address outside AWS (GetCallerIdentity, ListBuckets,
//     GetObject) alerts once on the access key; an ECS task role's key
//     from an IPv6 address outside AWS too.
//   - inside (hard-benign): the instance's key from its own us-east-1
//     address, through a VPC endpoint (private address), used by S3 on its
//     behalf (sourceIPAddress "s3.amazonaws.com"), EC2 assuming the role
//     ("ec2.amazonaws.com"), the rotated key from a NAT address of the same
//     region; an IAM user's AKIA key and an SSO user's ASIA session from an
//     office outside AWS: no finding.
//   - other_network: first used from us-east-1, then from an EC2 address
//     in eu-west-1: one finding on the key, citing the first use.
func TestGolden(t *testing.T) {
	detecttest.Golden(t, "testdata", func() []engine.Detector {
		return []engine.Detector{newDetector(t)}
	})
}

func FuzzRestore(f *testing.F) {
	detecttest.FuzzRestore(f, "testdata/other_network/"+detecttest.CloudTrailFile, newDetector(f))
}

// The golden files do not show Immediate (it is not serialised): every
// finding of the detector must alert on its own.
func TestFindingsAreImmediate(t *testing.T) {
	for _, c := range []string{"outside", "other_network"} {
		evs := detecttest.ReadFile(t, "testdata/"+c+"/"+detecttest.CloudTrailFile)
		d := newDetector(t)
		sh := d.NewShard()
		ctx := engine.NewTestContext(0, 1)
		n := 0
		for i := range evs {
			if k, ok := d.Key(&evs[i]); ok {
				sh.Process(ctx, k, &evs[i])
			}
			for _, f := range ctx.TakeFindings() {
				n++
				if !f.Immediate || f.Entity.Kind != event.EntityToken || !strings.HasPrefix(f.Entity.ID, "ASIA") {
					t.Errorf("%s: finding %s about %s, immediate %v", c, f.Kind, f.Entity, f.Immediate)
				}
			}
		}
		if n == 0 {
			t.Errorf("%s: no finding", c)
		}
	}
}

func ev(at, src string, asn uint32, key, session string) *event.Event {
	e := &event.Event{
		Time:    time.Date(2025, 6, 24, 0, 0, 0, 0, time.UTC).Add(mustDur(at)),
		Dataset: "aws.cloudtrail", Action: "GetObject", Provider: "s3.amazonaws.com",
		User:  event.User{ID: "arn:aws:sts::123456789012:assumed-role/app/" + session, Name: session},
		Token: event.Token{ID: key},
	}
	if src != "" {
		e.Source.IP = netip.MustParseAddr(src)
		e.Source.ASN = asn
	}
	return e
}

func mustDur(s string) time.Duration {
	d, err := time.ParseDuration(s)
	if err != nil {
		panic(err)
	}
	return d
}

func run(d *cloudcred.Detector, evs ...*event.Event) []event.Finding {
	sh := d.NewShard()
	ctx := engine.NewTestContext(0, 1)
	var out []event.Finding
	for _, e := range evs {
		if k, ok := d.Key(e); ok {
			sh.Process(ctx, k, e)
		}
		out = append(out, ctx.TakeFindings()...)
	}
	return out
}

func kinds(fs []event.Finding) string {
	var k []string
	for _, f := range fs {
		k = append(k, f.Kind+"@"+f.Entity.ID)
	}
	return strings.Join(k, ",")
}

// Without a ranges file, the AS numbers of GeoIP enrichment decide inside
// from outside; with neither, nothing is "outside" and only a move between
// networks (by /24) is judged.
func TestWithoutRanges(t *testing.T) {
	const inst = "i-0a1b2c3d4e5f60718"
	asOnly := cloudcred.New(cloudcred.Options{ProviderASNs: cloudcred.DefaultProviderASNs})
	nothing := cloudcred.New(cloudcred.Options{})
	for _, tc := range []struct {
		name string
		d    *cloudcred.Detector
		evs  []*event.Event
		want string
	}{
		{"as: outside on first use", asOnly, []*event.Event{ev("1h", "192.0.2.10", 64500, "ASIAK1", inst)},
			cloudcred.KindOutside + "@ASIAK1"},
		{"as: inside", asOnly, []*event.Event{ev("1h", "192.0.2.10", 16509, "ASIAK1", inst), ev("2h", "192.0.2.99", 14618, "ASIAK1", inst)},
			cloudcred.KindOtherNetwork + "@ASIAK1"},
		{"as: same AS, other address", asOnly, []*event.Event{ev("1h", "192.0.2.10", 16509, "ASIAK1", inst), ev("2h", "198.51.100.7", 16509, "ASIAK1", inst)},
			""},
		{"as: no AS on the event is not outside", asOnly, []*event.Event{ev("1h", "192.0.2.10", 0, "ASIAK1", inst)}, ""},
		{"nothing: first use is home", nothing, []*event.Event{ev("1h", "192.0.2.10", 0, "ASIAK1", inst), ev("2h", "192.0.2.77", 0, "ASIAK1", inst)}, ""},
		{"nothing: moved /24", nothing, []*event.Event{ev("1h", "192.0.2.10", 0, "ASIAK1", inst), ev("2h", "198.51.100.7", 0, "ASIAK1", inst)},
			cloudcred.KindOtherNetwork + "@ASIAK1"},
		{"nothing: IPv6 beside IPv4 is not a move", nothing, []*event.Event{ev("1h", "192.0.2.10", 0, "ASIAK1", inst), ev("2h", "2001:db8::1", 0, "ASIAK1", inst)}, ""},
		{"reported once per key and network", asOnly, []*event.Event{
			ev("1h", "192.0.2.10", 64500, "ASIAK1", inst), ev("1h1m", "192.0.2.11", 64500, "ASIAK1", inst),
			ev("2h", "192.0.2.12", 64500, "ASIAK2", inst)},
			cloudcred.KindOutside + "@ASIAK1," + cloudcred.KindOutside + "@ASIAK2"},
		{"long-term key not judged", asOnly, []*event.Event{ev("1h", "192.0.2.10", 64500, "AKIAK1", inst)}, ""},
		{"person's session not judged", asOnly, []*event.Event{ev("1h", "192.0.2.10", 64500, "ASIAK1", "alice@example.com")}, ""},
		{"9-digit instance id is not one", asOnly, []*event.Event{ev("1h", "192.0.2.10", 64500, "ASIAK1", "i-0a1b2c3d4")}, ""},
		{"task id", asOnly, []*event.Event{ev("1h", "192.0.2.10", 64500, "ASIAK1", "8f3c2a1b9d7e4f60a5b4c3d2e1f09876")},
			cloudcred.KindOutside + "@ASIAK1"},
		{"private and CGNAT addresses not judged", asOnly, []*event.Event{
			ev("1h", "10.1.2.3", 64500, "ASIAK1", inst), ev("1h", "100.64.7.7", 64500, "ASIAK1", inst), ev("1h", "fd00::1", 64500, "ASIAK1", inst)}, ""},
		{"no address not judged", asOnly, []*event.Event{ev("1h", "", 0, "ASIAK1", inst)}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := kinds(run(tc.d, tc.evs...)); got != tc.want {
				t.Errorf("findings %q, want %q", got, tc.want)
			}
		})
	}
}

// The region of the ranges is finer than the AS: two regions of one AS
// are two networks; a ranges file wins over an event's AS.
func TestRangesRegion(t *testing.T) {
	r, err := cloudcred.ParseRanges(strings.NewReader("# test ranges\n192.0.2.0/25 xx-east-1\n192.0.2.128/25 xx-west-1\n2001:db8::/32 xx-east-1\n"))
	if err != nil {
		t.Fatal(err)
	}
	d := cloudcred.New(cloudcred.Options{Ranges: r, ProviderASNs: []uint32{16509}, Provider: "Cloud"})
	const inst = "i-0a1b2c3d"
	got := run(d, ev("1h", "192.0.2.10", 16509, "ASIAK1", inst), ev("1h1m", "2001:db8::5", 0, "ASIAK1", inst),
		ev("2h", "192.0.2.200", 16509, "ASIAK1", inst), ev("3h", "198.51.100.1", 16509, "ASIAK1", inst),
		ev("4h", "198.51.100.2", 64500, "ASIAK1", inst))
	if k := kinds(got); k != cloudcred.KindOtherNetwork+"@ASIAK1,"+cloudcred.KindOutside+"@ASIAK1" {
		t.Fatalf("findings %q", k)
	}
	if !strings.Contains(got[0].Explanation, "Cloud xx-east-1") || !strings.Contains(got[0].Explanation, "Cloud xx-west-1") {
		t.Errorf("explanation does not name both regions: %s", got[0].Explanation)
	}
	if !strings.Contains(got[1].Explanation, "in none of the 3 prefixes") || !strings.Contains(got[1].Explanation, "AS64500 is none of Cloud's AS numbers") {
		t.Errorf("explanation does not say why outside: %s", got[1].Explanation)
	}
}

func TestParseRanges(t *testing.T) {
	const js = `{"syncToken":"1","createDate":"2025-06-01-00-00-00","prefixes":[{"ip_prefix":"3.5.140.0/22","region":"ap-northeast-2","service":"AMAZON","network_border_group":"ap-northeast-2"},
	{"ip_prefix":"3.5.140.0/24","region":"ap-northeast-2","service":"S3","network_border_group":"ap-northeast-2"}],
	"ipv6_prefixes":[{"ipv6_prefix":"2600:1f00::/24","region":"us-east-1","service":"AMAZON","network_border_group":"us-east-1"}]}`
	r, err := cloudcred.ParseRanges(strings.NewReader(js))
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]string{"3.5.141.7": "ap-northeast-2", "3.5.140.1": "ap-northeast-2", "2600:1f00::1": "us-east-1", "::ffff:3.5.140.9": "ap-northeast-2", "3.5.144.1": "-", "2600:1e00::1": "-"} {
		reg, ok := r.Lookup(netip.MustParseAddr(addr))
		if !ok {
			reg = "-"
		}
		if reg != want {
			t.Errorf("Lookup(%s) = %q, want %q", addr, reg, want)
		}
	}
	for _, bad := range []string{"", "{}", `{"prefixes":[{"ip_prefix":"3.5.140.0/33"}]}`, "3.5.140.0/22 a b\n", "nonsense\n", "# only a comment\n"} {
		if _, err := cloudcred.ParseRanges(strings.NewReader(bad)); err == nil {
			t.Errorf("ParseRanges(%q) accepted", bad)
		}
	}
	def, err := cloudcred.DefaultRanges()
	if err != nil {
		t.Fatal(err)
	}
	if def.Len() < 1000 || !strings.Contains(def.Source(), "embedded AWS ranges of 20") {
		t.Errorf("default ranges: %d prefixes from %q", def.Len(), def.Source())
	}
	// Documentation addresses are nobody's.
	for _, a := range []string{"192.0.2.1", "198.51.100.1", "203.0.113.1", "2001:db8::1"} {
		if reg, ok := def.Lookup(netip.MustParseAddr(a)); ok {
			t.Errorf("default ranges hold %s (%s)", a, reg)
		}
	}
}

func FuzzParseRanges(f *testing.F) {
	f.Add([]byte("192.0.2.0/24 r\n# c\n2001:db8::/32\n"))
	f.Add([]byte(`{"prefixes":[{"ip_prefix":"3.5.140.0/22","region":"x"}],"ipv6_prefixes":[{"ipv6_prefix":"::ffff:1.2.3.0/120","region":"y"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := cloudcred.ParseRanges(strings.NewReader(string(b)))
		if err != nil {
			return
		}
		if r.Len() == 0 {
			t.Fatal("accepted without prefixes")
		}
		r.Lookup(netip.MustParseAddr("192.0.2.1"))
		r.Lookup(netip.MustParseAddr("2001:db8::1"))
	})
}
