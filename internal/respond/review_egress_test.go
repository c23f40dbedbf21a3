package respond

import (
	"net/netip"
	"testing"
)

// Review of issue 17 (webhook egress). FAILS on the current code.
//
// TestReviewNonPublicNAT64: on an IPv6-only host behind NAT64/DNS64 (AWS,
// GCP and Kubernetes IPv6-only clusters offer it) an address in the
// well-known prefix 64:ff9b::/96 (RFC 6052) or the local-use prefix
// 64:ff9b:1::/48 (RFC 8215) is translated by the gateway to the IPv4
// address in its last 32 bits. A receiver name whose AAAA record is
// 64:ff9b::a00:5 (or a name rebound to it between validation and dial)
// reaches 10.0.0.5 — or 64:ff9b::7f00:1 the gateway's loopback, or
// 64:ff9b::a9fe:a9fe 169.254.169.254 — yet nonPublic calls them public, so
// the guarded dialer connects.
func TestReviewNonPublicNAT64(t *testing.T) {
	for _, a := range []string{
		"64:ff9b::a00:5",     // 10.0.0.5
		"64:ff9b::7f00:1",    // 127.0.0.1
		"64:ff9b::a9fe:a9fe", // 169.254.169.254 (cloud metadata)
		"64:ff9b::c0a8:101",  // 192.168.1.1
		"64:ff9b:1::a00:5",   // local-use NAT64 prefix
	} {
		if got := nonPublic(netip.MustParseAddr(a)); got == "" {
			t.Errorf("HOLE: nonPublic(%s) = \"\" (public), but NAT64 translates it to an internal IPv4 address", a)
		}
	}
}
