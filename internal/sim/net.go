package sim

import (
	"net/netip"
	"strconv"
)

// netw is an address block of one network, with the upstream enrichment
// (geo country, AS) pre-encoded as the JSON that follows source.ip.
type netw struct {
	base, size uint32
	cc         string
	asn        uint32
	frag       string // `,"geo":{...},"as":{...}` or "" for private space
}

func mkNet(cidr, cc string, asn uint32, org string) *netw {
	p := netip.MustParsePrefix(cidr)
	a := p.Addr().As4()
	n := &netw{
		base: uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3]),
		size: 1 << (32 - p.Bits()),
		cc:   cc,
		asn:  asn,
	}
	if cc != "" {
		n.frag = `,"geo":{"country_iso_code":"` + cc + `"},"as":{"number":` + strconv.FormatUint(uint64(asn), 10) +
			`,"organization":{"name":"` + org + `"}}`
	}
	return n
}

// ip returns the x-th usable address of the block (never .0 or .255).
func (n *netw) ip(x uint64) src {
	v := n.base + uint32(x%uint64(n.size))
	switch v & 0xff {
	case 0:
		v++
	case 255:
		v--
	}
	return src{ip: v, n: n}
}

// src is a client address with its network.
type src struct {
	ip uint32
	n  *netw
}

func (s src) String() string {
	return string(appendIP(nil, s.ip))
}

func appendIP(b []byte, v uint32) []byte {
	b = strconv.AppendUint(b, uint64(v>>24), 10)
	b = append(b, '.')
	b = strconv.AppendUint(b, uint64(v>>16&0xff), 10)
	b = append(b, '.')
	b = strconv.AppendUint(b, uint64(v>>8&0xff), 10)
	b = append(b, '.')
	return strconv.AppendUint(b, uint64(v&0xff), 10)
}

// Korean carriers: mobile (carrier-grade NAT pools) and fixed broadband.
var (
	ktMobile  = mkNet("211.234.0.0/16", "KR", 4766, "Korea Telecom")
	sktMobile = mkNet("223.38.0.0/16", "KR", 9644, "SK Telecom")
	lguMobile = mkNet("106.101.0.0/16", "KR", 17858, "LG POWERCOMM")
	ktBB      = mkNet("121.128.0.0/10", "KR", 4766, "Korea Telecom")
	skbBB     = mkNet("1.224.0.0/12", "KR", 9318, "SK Broadband Co Ltd")
	lguBB     = mkNet("112.144.0.0/12", "KR", 17858, "LG POWERCOMM")
	sktBB     = mkNet("175.192.0.0/12", "KR", 9318, "SK Broadband Co Ltd")

	mobileNets = [4]*netw{ktMobile, sktMobile, lguMobile, sktMobile}
	bbNets     = [4]*netw{ktBB, sktBB, lguBB, skbBB}

	// Abroad (travel): local carriers and hotel networks.
	jpNet   = mkNet("106.128.0.0/12", "JP", 2516, "KDDI CORPORATION")
	usNet   = mkNet("172.56.0.0/14", "US", 21928, "T-Mobile USA, Inc.")
	vnNet   = mkNet("171.224.0.0/12", "VN", 7552, "Viettel Group")
	thNet   = mkNet("49.228.0.0/14", "TH", 131445, "Advanced Wireless Network Company Limited")
	usHotel = mkNet("73.0.0.0/10", "US", 7922, "Comcast Cable Communications, LLC")

	travelNets = [4]*netw{jpNet, usNet, vnNet, thNet}

	// Company networks.
	officeNet = mkNet("10.20.0.0/16", "", 0, "")
	corpNAT   = mkNet("211.45.160.0/28", "KR", 4766, "Korea Telecom")
	vpnNet    = mkNet("3.34.200.0/24", "KR", 16509, "AMAZON-02")
	svcNet    = mkNet("10.40.0.0/16", "", 0, "")
	batchNet  = mkNet("10.41.0.0/16", "", 0, "")
	awsSeoul  = mkNet("3.35.0.0/16", "KR", 16509, "AMAZON-02")

	// Partners' egress.
	lgDacom  = mkNet("211.41.0.0/16", "KR", 3786, "LG DACOM Corporation")
	naverNet = mkNet("110.165.16.0/20", "KR", 23576, "NAVER Cloud Corp.")

	// Hosting networks abroad.
	vultrSG = mkNet("139.180.128.0/18", "SG", 20473, "The Constant Company, LLC")
	vultrJP = mkNet("45.77.0.0/18", "JP", 20473, "The Constant Company, LLC")
	doSG    = mkNet("128.199.0.0/16", "SG", 14061, "DigitalOcean, LLC")
	ovhSG   = mkNet("139.99.0.0/17", "SG", 16276, "OVH SAS")
	ovhFR   = mkNet("51.75.0.0/16", "FR", 16276, "OVH SAS")

	hostingNets = []*netw{vultrSG, vultrJP, doSG, ovhSG}

	// Residential networks abroad (a botnet of home routers and phones).
	botNets = []*netw{
		usHotel,
		mkNet("177.32.0.0/13", "BR", 28573, "Claro NXT Telecomunicacoes Ltda"),
		mkNet("49.36.0.0/14", "IN", 55836, "Reliance Jio Infocomm Limited"),
		mkNet("14.160.0.0/12", "VN", 45899, "VNPT Corp"),
		mkNet("36.64.0.0/12", "ID", 7713, "PT Telekomunikasi Indonesia"),
		mkNet("178.64.0.0/12", "RU", 12389, "Rostelecom"),
	}
)

func uaFrag(ua string) string { return `,"user_agent":{"original":"` + ua + `"}` }

type uaInfo struct {
	frag   string
	mobile bool
	app    bool
	weight int
}

// Customer clients: the shop's apps and mobile/desktop browsers.
var customerUAs = []uaInfo{
	{uaFrag("ExampleShop/8.4.1 (iPhone15,2; iOS 18.5) CFNetwork/1568.100.1 Darwin/24.0.0"), true, true, 16},
	{uaFrag("ExampleShop/8.3.0 (iPhone13,2; iOS 17.7) CFNetwork/1498.700.2 Darwin/23.6.0"), true, true, 6},
	{uaFrag("ExampleShop/8.4.1 (Android 14; SM-S918N) okhttp/4.12.0"), true, true, 18},
	{uaFrag("ExampleShop/8.2.5 (Android 13; SM-A536N) okhttp/4.11.0"), true, true, 8},
	{uaFrag("Mozilla/5.0 (iPhone; CPU iPhone OS 18_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.5 Mobile/15E148 Safari/604.1"), true, false, 9},
	{uaFrag("Mozilla/5.0 (Linux; Android 14; SM-S918N) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36"), true, false, 8},
	{uaFrag("Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/137.0.0.0 Mobile Safari/537.36"), true, false, 6},
	{uaFrag("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/137.0.0.0 Safari/537.36"), false, false, 14},
	{uaFrag("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/137.0.0.0 Safari/537.36 Edg/137.0.0.0"), false, false, 4},
	{uaFrag("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/136.0.0.0 Whale/4.31.304.16 Safari/537.36"), false, false, 5},
	{uaFrag("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.5 Safari/605.1.15"), false, false, 6},
}

var uaTable [100]uint8 // weighted lookup into customerUAs

func init() {
	i := 0
	for k, u := range customerUAs {
		for j := 0; j < u.weight && i < len(uaTable); j++ {
			uaTable[i] = uint8(k)
			i++
		}
	}
	for ; i < len(uaTable); i++ {
		uaTable[i] = 0
	}
}

var (
	staffUAs = []string{
		uaFrag("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/137.0.0.0 Safari/537.36"),
		uaFrag("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/137.0.0.0 Safari/537.36 Edg/137.0.0.0"),
		uaFrag("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/137.0.0.0 Safari/537.36"),
	}
	attackerUAs = []string{
		uaFrag("python-requests/2.32.3"),
		uaFrag("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"),
		uaFrag("python-requests/2.31.0"),
		uaFrag("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"),
	}
	stuffingUAs = []string{
		uaFrag("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"),
		uaFrag("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0"),
		uaFrag("Mozilla/5.0 (Linux; Android 13; SM-A536N) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Mobile Safari/537.36"),
		uaFrag("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15"),
		uaFrag("ExampleShop/8.1.0 (Android 12; SM-G991N) okhttp/4.10.0"),
	}
)
