//go:build ignore

// gen_ranges writes aws-ranges.txt, the embedded default of AWS's address
// ranges, from a copy of AWS's ip-ranges.json:
//
//	curl -fsSo /tmp/ip-ranges.json https://ip-ranges.amazonaws.com/ip-ranges.json
//	go run gen_ranges.go -in /tmp/ip-ranges.json -out aws-ranges.txt
//
// Prefixes are collapsed per region (contained prefixes dropped, sibling
// halves merged), so the file keeps every address and its region in a
// fraction of the size. Operators do not need this: they point
// detectors.cloud_credential.provider_ranges at the downloaded JSON.
package main

import (
	"bufio"
	"cmp"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/netip"
	"os"
	"slices"
)

type file struct {
	SyncToken  string `json:"syncToken"`
	CreateDate string `json:"createDate"`
	Prefixes   []struct {
		IPPrefix string `json:"ip_prefix"`
		Region   string `json:"region"`
	} `json:"prefixes"`
	IPv6Prefixes []struct {
		IPv6Prefix string `json:"ipv6_prefix"`
		Region     string `json:"region"`
	} `json:"ipv6_prefixes"`
}

func main() {
	in := flag.String("in", "", "ip-ranges.json")
	out := flag.String("out", "aws-ranges.txt", "output")
	flag.Parse()
	b, err := os.ReadFile(*in)
	if err != nil {
		log.Fatal(err)
	}
	var f file
	if err := json.Unmarshal(b, &f); err != nil {
		log.Fatal(err)
	}
	byRegion := map[string][]netip.Prefix{}
	for _, p := range f.Prefixes {
		byRegion[p.Region] = append(byRegion[p.Region], netip.MustParsePrefix(p.IPPrefix).Masked())
	}
	for _, p := range f.IPv6Prefixes {
		byRegion[p.Region] = append(byRegion[p.Region], netip.MustParsePrefix(p.IPv6Prefix).Masked())
	}
	type line struct {
		p      netip.Prefix
		region string
	}
	var lines []line
	for region, ps := range byRegion {
		for _, p := range collapse(ps) {
			lines = append(lines, line{p, region})
		}
	}
	slices.SortFunc(lines, func(a, b line) int {
		return cmp.Or(a.p.Addr().Compare(b.p.Addr()), a.p.Bits()-b.p.Bits(), cmp.Compare(a.region, b.region))
	})
	o, err := os.Create(*out)
	if err != nil {
		log.Fatal(err)
	}
	w := bufio.NewWriter(o)
	fmt.Fprintf(w, "# AWS public address ranges by region, from ip-ranges.json\n")
	fmt.Fprintf(w, "# (https://ip-ranges.amazonaws.com/ip-ranges.json) syncToken %s createDate %s\n", f.SyncToken, f.CreateDate)
	fmt.Fprintf(w, "# collapsed per region by gen_ranges.go; %d prefixes. Regenerate with\n", len(lines))
	fmt.Fprintf(w, "#   go run gen_ranges.go -in ip-ranges.json -out aws-ranges.txt\n")
	fmt.Fprintf(w, "# or configure detectors.cloud_credential.provider_ranges with a fresh copy.\n")
	for _, l := range lines {
		fmt.Fprintf(w, "%s %s\n", l.p, l.region)
	}
	if err := w.Flush(); err != nil {
		log.Fatal(err)
	}
	if err := o.Close(); err != nil {
		log.Fatal(err)
	}
}

// collapse returns the smallest set of prefixes covering exactly ps.
func collapse(ps []netip.Prefix) []netip.Prefix {
	slices.SortFunc(ps, func(a, b netip.Prefix) int {
		return cmp.Or(a.Addr().Compare(b.Addr()), a.Bits()-b.Bits())
	})
	var st []netip.Prefix
	for _, p := range ps {
		if n := len(st); n > 0 && st[n-1].Bits() <= p.Bits() && st[n-1].Contains(p.Addr()) {
			continue
		}
		st = append(st, p)
		for len(st) >= 2 {
			a, b := st[len(st)-2], st[len(st)-1]
			if a.Bits() != b.Bits() || a.Bits() == 0 || a == b {
				break
			}
			pa := netip.PrefixFrom(a.Addr(), a.Bits()-1).Masked()
			pb := netip.PrefixFrom(b.Addr(), b.Bits()-1).Masked()
			if pa != pb {
				break
			}
			st = append(st[:len(st)-2], pa)
			// The parent may now contain nothing more than it did; a
			// later prefix is checked against it on push.
		}
	}
	return st
}
