package cloudcred

import (
	"bufio"
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strings"
)

// Ranges is an immutable set of a cloud provider's public address
// prefixes, each with the region it serves. Lookup answers the most
// specific prefix holding an address. It is safe for concurrent use.
//
// Two file forms are read (ParseRanges):
//   - AWS's ip-ranges.json as published at
//     https://ip-ranges.amazonaws.com/ip-ranges.json ("prefixes" with
//     ip_prefix and region, "ipv6_prefixes" with ipv6_prefix and region);
//   - text: one "PREFIX REGION" per line, '#' starts a comment — the form
//     of the embedded default, and a way to describe another provider's
//     networks.
type Ranges struct {
	m      map[netip.Prefix]string
	lens4  []int // prefix lengths present, longest first
	lens6  []int
	source string // where the ranges came from, for explanations
}

//go:embed aws-ranges.txt
var defaultAWS []byte

// DefaultRanges returns AWS's ranges embedded in the binary: ip-ranges.json
// of the date in the file's header (aws-ranges.txt), collapsed per region.
// AWS adds prefixes every week; configure a fresh copy
// (detectors.cloud_credential.provider_ranges) to keep up.
func DefaultRanges() (*Ranges, error) {
	r, err := ParseRanges(bytes.NewReader(defaultAWS))
	if err != nil {
		return nil, fmt.Errorf("embedded aws-ranges.txt: %w", err)
	}
	r.source = "embedded AWS ranges of " + embeddedDate()
	return r, nil
}

// embeddedDate returns the createDate of the embedded file's header.
func embeddedDate() string {
	for line := range strings.Lines(string(defaultAWS)) {
		if _, d, ok := strings.Cut(line, "createDate "); ok {
			return strings.TrimSpace(d)
		}
	}
	return "unknown date"
}

// LoadRanges reads a ranges file (either form) from path.
func LoadRanges(path string) (*Ranges, error) {
	f, err := os.Open(path) // #nosec G304 -- an operator-configured data file
	if err != nil {
		return nil, fmt.Errorf("provider ranges: %w", err)
	}
	defer f.Close()
	r, err := ParseRanges(f)
	if err != nil {
		return nil, fmt.Errorf("provider ranges %s: %w", path, err)
	}
	r.source = path
	return r, nil
}

// ParseRanges reads either form: a stream whose first non-space byte is
// '{' is ip-ranges.json, anything else text. A file without a single
// prefix is an error (a truncated download must not silently make every
// address "outside the provider").
func ParseRanges(rd io.Reader) (*Ranges, error) {
	br := bufio.NewReader(rd)
	r := &Ranges{m: map[netip.Prefix]string{}}
	for {
		b, err := br.Peek(1)
		if err != nil {
			break
		}
		if b[0] == ' ' || b[0] == '\t' || b[0] == '\r' || b[0] == '\n' {
			br.ReadByte()
			continue
		}
		if b[0] == '{' {
			if err := r.readJSON(br); err != nil {
				return nil, err
			}
		} else if err := r.readText(br); err != nil {
			return nil, err
		}
		break
	}
	if len(r.m) == 0 {
		return nil, errors.New("no prefixes")
	}
	r.index()
	return r, nil
}

type awsFile struct {
	Prefixes []struct {
		IPPrefix string `json:"ip_prefix"`
		Region   string `json:"region"`
	} `json:"prefixes"`
	IPv6Prefixes []struct {
		IPv6Prefix string `json:"ipv6_prefix"`
		Region     string `json:"region"`
	} `json:"ipv6_prefixes"`
}

func (r *Ranges) readJSON(rd io.Reader) error {
	var f awsFile
	if err := json.NewDecoder(rd).Decode(&f); err != nil {
		return fmt.Errorf("ip-ranges.json: %w", err)
	}
	for i, p := range f.Prefixes {
		if err := r.add(p.IPPrefix, p.Region); err != nil {
			return fmt.Errorf("prefixes[%d]: %w", i, err)
		}
	}
	for i, p := range f.IPv6Prefixes {
		if err := r.add(p.IPv6Prefix, p.Region); err != nil {
			return fmt.Errorf("ipv6_prefixes[%d]: %w", i, err)
		}
	}
	return nil
}

func (r *Ranges) readText(rd io.Reader) error {
	sc := bufio.NewScanner(rd)
	n := 0
	for sc.Scan() {
		n++
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		switch len(f) {
		case 0:
			continue
		case 1:
			f = append(f, "")
		case 2:
		default:
			return fmt.Errorf("line %d: want PREFIX [REGION], got %q", n, line)
		}
		if err := r.add(f[0], f[1]); err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
	}
	return sc.Err()
}

func (r *Ranges) add(prefix, region string) error {
	p, err := netip.ParsePrefix(prefix)
	if err != nil {
		return err
	}
	if p.Addr().Is4In6() { // ::ffff:a.b.c.d/n is the IPv4 prefix it maps
		if p.Bits() < 96 {
			return fmt.Errorf("%s: an IPv4-mapped prefix shorter than /96", prefix)
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	r.m[p.Masked()] = region
	return nil
}

func (r *Ranges) index() {
	seen4, seen6 := map[int]bool{}, map[int]bool{}
	for p := range r.m {
		if p.Addr().Is4() {
			seen4[p.Bits()] = true
		} else {
			seen6[p.Bits()] = true
		}
	}
	for l := range seen4 {
		r.lens4 = append(r.lens4, l)
	}
	for l := range seen6 {
		r.lens6 = append(r.lens6, l)
	}
	slices.SortFunc(r.lens4, func(a, b int) int { return b - a })
	slices.SortFunc(r.lens6, func(a, b int) int { return b - a })
}

// Lookup reports whether a is in one of the prefixes and the region of
// the most specific one holding it. A nil *Ranges holds nothing.
func (r *Ranges) Lookup(a netip.Addr) (region string, ok bool) {
	if r == nil || !a.IsValid() {
		return "", false
	}
	a = a.Unmap().WithZone("")
	lens := r.lens6
	if a.Is4() {
		lens = r.lens4
	}
	for _, l := range lens {
		p, err := a.Prefix(l)
		if err != nil {
			continue
		}
		if reg, ok := r.m[p]; ok {
			return reg, true
		}
	}
	return "", false
}

// Len returns the number of prefixes.
func (r *Ranges) Len() int {
	if r == nil {
		return 0
	}
	return len(r.m)
}

// Source says where the ranges came from: the file's path, or the
// embedded default and its date.
func (r *Ranges) Source() string {
	if r == nil {
		return "no ranges"
	}
	if r.source == "" {
		return "ranges"
	}
	return r.source
}
