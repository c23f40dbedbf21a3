package sink

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"time"
)

// Syslog facilities by name (RFC 5424 section 6.2.1).
var facilities = map[string]int{
	"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
	"uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11, "ntp": 12, "security": 13, "console": 14,
	"local0": 16, "local1": 17, "local2": 18, "local3": 19, "local4": 20, "local5": 21, "local6": 22, "local7": 23,
}

// Facility returns the code of a facility name and whether it is one.
func Facility(name string) (int, bool) {
	f, ok := facilities[name]
	return f, ok
}

// MaxUDPMessage is the largest message sent in one UDP datagram; a larger
// document is refused for good (use TCP).
const MaxUDPMessage = 65000

// Syslog sends each document as one RFC 5424 message, the document as its
// MSG: "<PRI>1 TIMESTAMP HOSTNAME haechi - MSGID - MSG", PRI from Facility
// and the item's severity (critical → 2 crit, high → 3 err, medium → 4
// warning, low → 5 notice), TIMESTAMP the item's time in UTC. Over TCP
// (optionally TLS) messages are framed by octet counting (RFC 6587
// section 3.4.1, "LEN SP MSG"), one connection per batch; over UDP one
// message is one datagram (RFC 5426) and delivery means handing it to the
// network. A message not written (a connection that broke mid-batch) is
// retried; TCP cannot tell whether the receiver processed what was
// written, so a broken connection may lose the messages written just
// before it broke, as any syslog over TCP without application
// acknowledgement.
type Syslog struct {
	Network  string // tcp or udp
	Address  string // host:port
	TLS      *tls.Config
	Facility int
	Hostname string // HOSTNAME; empty: "-"
	MsgID    string // MSGID; empty: "-"
	Dial     func(ctx context.Context, network, addr string) (net.Conn, error)
	Timeout  time.Duration // per batch (0: the context's)
}

var syslogSeverity = [...]int{5, 5, 4, 3, 2} // by haechi severity 0…4

// Frame returns it as one RFC 5424 message (without transport framing).
func (s *Syslog) Frame(it Item) []byte {
	sev := 5
	if it.Severity >= 0 && it.Severity < len(syslogSeverity) {
		sev = syslogSeverity[it.Severity]
	}
	host, msgid := nilvalue(s.Hostname, 255), nilvalue(s.MsgID, 32)
	b := make([]byte, 0, len(it.Doc)+96)
	b = append(b, '<')
	b = strconv.AppendInt(b, int64(s.Facility*8+sev), 10)
	b = append(b, ">1 "...)
	b = it.Time.UTC().AppendFormat(b, "2006-01-02T15:04:05.000000Z07:00")
	b = append(b, ' ')
	b = append(b, host...)
	b = append(b, " haechi - "...)
	b = append(b, msgid...)
	b = append(b, " - "...)
	return append(b, it.Doc...)
}

// nilvalue returns s as a header field: printable US-ASCII without spaces,
// at most max characters, "-" when empty.
func nilvalue(s string, max int) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s) && len(out) < max; i++ {
		if c := s[i]; c > 32 && c < 127 {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return "-"
	}
	return string(out)
}

// Send implements the sink contract (see the package comment).
func (s *Syslog) Send(ctx context.Context, items []Item) []error {
	if s.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.Timeout)
		defer cancel()
	}
	out := make([]error, len(items))
	msgs := make([][]byte, len(items))
	pending := 0
	for i, it := range items {
		msgs[i] = s.Frame(it)
		if s.Network == "udp" && len(msgs[i]) > MaxUDPMessage {
			out[i] = &Error{Reason: fmt.Sprintf("message of %d bytes is too large for a UDP datagram (max %d); use tcp", len(msgs[i]), MaxUDPMessage), Permanent: true}
			continue
		}
		pending++
	}
	if pending == 0 {
		return out
	}
	dial := s.Dial
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	conn, err := dial(ctx, s.Network, s.Address)
	if err == nil && s.TLS != nil {
		tc := tls.Client(conn, s.TLS)
		if err = tc.HandshakeContext(ctx); err != nil {
			conn.Close()
		}
		conn = tc
	}
	if err != nil {
		for i := range out {
			if out[i] == nil {
				out[i] = fmt.Errorf("syslog %s %s: %w", s.Network, s.Address, err)
			}
		}
		return out
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetWriteDeadline(dl)
	}
	var broken error
	for i, m := range msgs {
		if out[i] != nil {
			continue
		}
		if broken != nil {
			out[i] = broken
			continue
		}
		if s.Network != "udp" {
			m = append(strconv.AppendInt(make([]byte, 0, len(m)+8), int64(len(m)), 10), append([]byte{' '}, m...)...)
		}
		if _, err := conn.Write(m); err != nil {
			broken = fmt.Errorf("syslog %s %s: %w", s.Network, s.Address, err)
			out[i] = broken
		}
	}
	return out
}
