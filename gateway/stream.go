package gateway

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The stream form of the check (GET /v1/verify/stream, docs/verify.md): one
// persistent connection carries many checks both ways, for a gateway that
// checks more requests than one HTTP exchange per batch carries cheaply.
//
// The client opens it with an HTTP/1.1 upgrade, authenticated as any
// request (a token with the verify role):
//
//	GET /v1/verify/stream HTTP/1.1
//	Authorization: Bearer <token>
//	Connection: Upgrade
//	Upgrade: haechi-verify/1
//
// haechi answers 101 Switching Protocols (or 401/403/429/503 as for any
// request, 404 when it is older than the stream). From then on the
// connection is full duplex: the client writes check lines in the batch
// form (AppendCheck), whenever it has them, without waiting for answers;
// haechi answers every line, in order, with an answer line in the batch
// form (AppendAnswer), or with a line starting "!" when it could not
// judge that check (beyond the rate limit, a malformed line: the rest of
// the line says why; the client treats it as haechi not answering that
// check). haechi writes its answers when it has no complete check line
// left to read, so checks that arrive together are answered together and
// none waits for others. Either side may close the connection at any
// time; checks written and not answered then have no answer (the client
// fails them, its Mode decides). haechi closes a stream when it shuts
// down (after answering every check line it has read), when the stream's
// token is revoked or loses its role (within a second), and on a line
// longer than MaxBatchLine.

// StreamPath and StreamProtocol name the stream's upgrade request.
const (
	StreamPath     = "/v1/verify/stream"
	StreamProtocol = "haechi-verify/1"
)

// streamUnavailable starts a stream answer that is not a verdict.
const streamUnavailable = '!'

// AppendStreamError appends the stream's answer to a check haechi could
// not judge: "!" and why (control characters replaced by spaces).
func AppendStreamError(b []byte, why string) []byte {
	b = append(b, streamUnavailable)
	b = appendField(b, why)
	return append(b, '\n')
}

// errBadStreamAnswer is a stream answer line that is neither an answer
// nor "!": the stream is out of step and is closed.
var errBadStreamAnswer = errors.New("unreadable stream answer")

// ParseStreamAnswer reads one answer line of a stream (without its line
// break): an Answer, an error wrapping ErrUnavailable for a "!" line, or
// errBadStreamAnswer. It never panics.
func ParseStreamAnswer(line []byte) (Answer, error) {
	return parseStreamAnswer(line, nil)
}

// parseStreamAnswer is ParseStreamAnswer, its strings taken from in.
func parseStreamAnswer(line []byte, in interner) (Answer, error) {
	if len(line) > 0 && line[0] == streamUnavailable {
		return Answer{}, fmt.Errorf("%w: %s", ErrUnavailable, truncate(line[1:], 200))
	}
	if a, ok := parseAnswer(line, in); ok {
		return a, nil
	}
	return Answer{}, fmt.Errorf("%w: %q", errBadStreamAnswer, truncate(line, 200))
}

// errNoStream: the server answered the upgrade 404 (it is older than the
// stream); the Checker falls back to the other forms until a re-probe
// (Options.StreamReprobe) is upgraded.
var errNoStream = errors.New("haechi has no check stream (404)")

// DefaultStreamReprobe is Options.StreamReprobe's default: a stream
// answered 404 asks again after 1 to 3 minutes — one upgrade request per
// stream and gateway every two minutes costs haechi nothing, and a
// haechi upgraded behind the gateway is used within minutes.
const DefaultStreamReprobe = 2 * time.Minute

// streamer keeps Options.Streams connections to GET /v1/verify/stream and
// spreads checks over those that are up.
type streamer struct {
	opts     Options
	addr     string // host:port to dial
	host     string // the Host header
	tls      *tls.Config
	conns    []*streamConn
	next     atomic.Uint32
	noStream atomic.Int32 // connections whose last upgrade was answered 404 (all: fallback)
	expiry   *deadlines   // the checks' timeouts (Options.Timeout)
	stop     chan struct{}
	wg       sync.WaitGroup

	// upgraded is closed (and replaced) when a connection that was
	// answered 404 is upgraded: the others ask again at once. Guarded by
	// upMu.
	upMu     sync.Mutex
	upgraded chan struct{}
}

// fallback reports whether every stream was answered 404 at its last
// upgrade (the server is older than the stream): checks go by the other
// forms.
func (s *streamer) fallback() bool { return int(s.noStream.Load()) >= len(s.conns) }

// upgradedSignal returns the channel the next upgrade after a 404 closes.
func (s *streamer) upgradedSignal() <-chan struct{} {
	s.upMu.Lock()
	defer s.upMu.Unlock()
	return s.upgraded
}

// wakeReprobes tells the connections waiting to re-probe that the
// server now has the stream.
func (s *streamer) wakeReprobes() {
	s.upMu.Lock()
	close(s.upgraded)
	s.upgraded = make(chan struct{})
	s.upMu.Unlock()
}

// streamConn is one connection with its run loop: a writer that
// coalesces whatever checks are queued into one write, a reader that
// hands answers back in order to the checks in flight.
type streamConn struct {
	s *streamer
	// queue holds checks not yet written; inflight those written and
	// not answered, in order (its capacity bounds them:
	// Options.StreamInFlight).
	queue    chan *pendingCheck
	inflight chan *pendingCheck
	// down holds why the last dial failed (nil: connected or dialing):
	// checks then fail at once instead of waiting out their timeout.
	down atomic.Pointer[error]
}

func newStreamer(opts Options) (*streamer, error) {
	u, err := url.Parse(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("gateway: URL: %w", err)
	}
	s := &streamer{opts: opts, host: u.Host, stop: make(chan struct{}), upgraded: make(chan struct{})}
	port := u.Port()
	switch u.Scheme {
	case "http":
		if port == "" {
			port = "80"
		}
	case "https":
		if port == "" {
			port = "443"
		}
		s.tls = &tls.Config{MinVersion: tls.VersionTLS12}
		if tr, ok := opts.Client.Transport.(*http.Transport); ok && tr.TLSClientConfig != nil {
			s.tls = tr.TLSClientConfig.Clone()
		}
		if s.tls.ServerName == "" {
			s.tls.ServerName = u.Hostname()
		}
		s.tls.NextProtos = []string{"http/1.1"} // an upgrade needs HTTP/1.1
	default:
		return nil, fmt.Errorf("gateway: URL scheme %q is neither http nor https", u.Scheme)
	}
	s.addr = net.JoinHostPort(u.Hostname(), port)
	s.expiry = newDeadlines(deadlineTick(opts.Timeout))
	for range opts.Streams {
		sc := &streamConn{s: s, queue: make(chan *pendingCheck, opts.StreamInFlight), inflight: make(chan *pendingCheck, opts.StreamInFlight)}
		s.conns = append(s.conns, sc)
		s.wg.Add(1)
		go sc.run()
	}
	return s, nil
}

// close stops every connection; checks queued or in flight fail.
func (s *streamer) close() {
	close(s.stop)
	s.wg.Wait()
	for _, sc := range s.conns {
		sc.failAll(fmt.Errorf("%w: the checker was closed", ErrUnavailable))
	}
	s.expiry.close()
}

// check sends ch over a stream that is up and waits for its answer, at
// most Options.Timeout (or until ctx ends). It returns errNoStream when
// the server has none.
func (s *streamer) check(ctx context.Context, ch Check) (Answer, error) {
	var sc *streamConn
	var downErr error
	n := uint32(len(s.conns))
	first := s.next.Add(1)
	for i := range n {
		c := s.conns[(first+i)%n]
		if e := c.down.Load(); e != nil {
			// A 404 wins: the check goes by the other forms rather than
			// failing on a stream that is down for another reason.
			if downErr == nil || errors.Is(*e, errNoStream) {
				downErr = *e
			}
			continue
		}
		sc = c
		break
	}
	if sc == nil {
		return Answer{}, downErr
	}
	return awaitUntil(ctx, sc.queue, ch, s.expiry.after(s.opts.Timeout))
}

// Backoff between dials of one connection.
const (
	minRedial = 50 * time.Millisecond
	maxRedial = 5 * time.Second
)

// run dials, serves the connection until it fails, fails its checks in
// flight, and dials again with backoff, until the streamer stops. When
// the server has no stream (404), it asks again every
// Options.StreamReprobe (jittered), or as soon as another connection was
// upgraded; its checks go by the other forms meanwhile.
func (sc *streamConn) run() {
	defer sc.s.wg.Done()
	backoff := minRedial
	noStream := false // the last upgrade was answered 404
	for {
		woken := sc.s.upgradedSignal() // before the dial: an upgrade during it wakes the wait below
		conn, br, err := sc.s.dial()
		if err != nil {
			if errors.Is(err, errNoStream) {
				if !noStream {
					noStream = true
					sc.s.noStream.Add(1)
				}
				sc.down.Store(&err)
				sc.failAll(err)
				d := sc.s.opts.StreamReprobe
				d = d/2 + rand.N(d) // #nosec G404 -- re-probe jitter, not a secret
				if !sc.waitDown(err, d, woken) {
					return
				}
				continue
			}
			sc.down.Store(&err)
			sc.failAll(err)
			// Jittered, so that gateways do not redial in step.
			d := backoff/2 + rand.N(backoff/2+1) // #nosec G404 -- redial jitter, not a secret
			backoff = min(2*backoff, maxRedial)
			if !sc.waitDown(err, d, nil) {
				return
			}
			continue
		}
		sc.down.Store(nil)
		backoff = minRedial
		if noStream {
			noStream = false
			sc.s.noStream.Add(-1)
			sc.s.wakeReprobes()
		}
		err = sc.serve(conn, br)
		sc.failInflight(err)
		select {
		case <-sc.s.stop:
			return
		default:
		}
	}
}

// waitDown waits d (or until woken is closed) while the connection is
// down with err, failing at once with err every check queued meanwhile:
// a check that read the connection as up (dialing) just before the dial
// failed lands in the queue after failAll emptied it, and would otherwise
// wait out its timeout instead of going by the other forms. It returns
// false when the streamer stops.
func (sc *streamConn) waitDown(err error, d time.Duration, woken <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-sc.s.stop:
			return false
		case <-woken:
			return true
		case <-t.C:
			return true
		case p := <-sc.queue:
			p.done <- checkResult{err: err}
		}
	}
}

// failAll fails every check queued or in flight with err.
func (sc *streamConn) failAll(err error) {
	sc.failInflight(err)
	for {
		select {
		case p := <-sc.queue:
			p.done <- checkResult{err: err}
		default:
			return
		}
	}
}

func (sc *streamConn) failInflight(err error) {
	for {
		select {
		case p := <-sc.inflight:
			p.done <- checkResult{err: err}
		default:
			return
		}
	}
}

// dial opens a connection and upgrades it to a stream.
func (s *streamer) dial() (net.Conn, *bufio.Reader, error) {
	ctx, cancel := context.WithTimeout(context.Background(), max(s.opts.Timeout, time.Second))
	defer cancel()
	go func() {
		select {
		case <-s.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: stream: %v", ErrUnavailable, err)
	}
	if s.tls != nil {
		tc := tls.Client(conn, s.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, nil, fmt.Errorf("%w: stream: %v", ErrUnavailable, err)
		}
		conn = tc
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	req := "GET " + StreamPath + " HTTP/1.1\r\nHost: " + s.host + "\r\n"
	if s.opts.APIToken != "" {
		req += "Authorization: Bearer " + s.opts.APIToken + "\r\n"
	}
	req += "Connection: Upgrade\r\nUpgrade: " + StreamProtocol + "\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("%w: stream: %v", ErrUnavailable, err)
	}
	br := bufio.NewReaderSize(conn, 64<<10)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("%w: stream: %v", ErrUnavailable, err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		resp.Body.Close()
		conn.Close()
		if resp.StatusCode == http.StatusNotFound {
			return nil, nil, errNoStream
		}
		return nil, nil, fmt.Errorf("%w: stream: %s: %s", ErrUnavailable, resp.Status, strings.TrimSpace(string(b)))
	}
	if !strings.EqualFold(resp.Header.Get("Upgrade"), StreamProtocol) {
		conn.Close()
		return nil, nil, fmt.Errorf("%w: stream: upgraded to %q", ErrUnavailable, resp.Header.Get("Upgrade"))
	}
	_ = conn.SetDeadline(time.Time{})
	return conn, br, nil
}

// maxStreamWrite bounds one write of coalesced check lines.
const maxStreamWrite = 64 << 10

// serve runs the writer here and the reader in a goroutine until either
// fails or the streamer stops; it returns why, the connection closed.
func (sc *streamConn) serve(conn net.Conn, br *bufio.Reader) error {
	dead := make(chan struct{})
	var once sync.Once
	var why error
	end := func(err error) {
		once.Do(func() {
			why = fmt.Errorf("%w: stream: %v", ErrUnavailable, err)
			close(dead)
			conn.Close()
		})
	}
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		end(sc.read(br, dead))
	}()
	buf := make([]byte, 0, 4<<10)
	// A write may take at least half of wto: the deadline moves on only
	// once half of it has passed, so most writes set no timer.
	wto := max(sc.s.opts.Timeout, time.Second)
	var deadline time.Time
write:
	for {
		var p *pendingCheck
		select {
		case <-sc.s.stop:
			end(errors.New("the checker was closed"))
			break write
		case <-dead:
			break write
		case p = <-sc.queue:
		}
		// Let the goroutines that are ready to run (gateway requests
		// about to queue their checks) run first, so that their checks
		// share this write: no timer, no added wait beyond theirs.
		runtime.Gosched()
		buf = buf[:0]
		for p != nil {
			// In flight before it is written: the reader may see its
			// answer as soon as the write returns.
			select {
			case sc.inflight <- p:
			case <-dead:
				p.done <- checkResult{err: why}
				break write
			case <-sc.s.stop:
				end(errors.New("the checker was closed"))
				p.done <- checkResult{err: why}
				break write
			}
			buf = AppendCheck(buf, p.c)
			p = nil
			if len(buf) < maxStreamWrite {
				select {
				case p = <-sc.queue:
				default:
				}
			}
		}
		if now := time.Now(); deadline.Sub(now) < wto/2 {
			deadline = now.Add(wto)
			_ = conn.SetWriteDeadline(deadline)
		}
		if _, err := conn.Write(buf); err != nil {
			end(err)
			break
		}
	}
	<-readerDone
	return why
}

// read hands each answer line to the oldest check in flight.
func (sc *streamConn) read(br *bufio.Reader, dead <-chan struct{}) error {
	in := interner{}
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				return errors.New("an answer line longer than 64 KiB")
			}
			select {
			case <-dead:
				return errors.New("closed")
			default:
			}
			if errors.Is(err, io.EOF) {
				return errors.New("haechi closed the stream")
			}
			return err
		}
		var p *pendingCheck
		select {
		case p = <-sc.inflight:
		default:
			return errors.New("an answer to no check")
		}
		a, err := parseStreamAnswer(line[:len(line)-1], in)
		if errors.Is(err, errBadStreamAnswer) {
			p.done <- checkResult{err: fmt.Errorf("%w: %v", ErrUnavailable, err)}
			return err
		}
		p.done <- checkResult{a: a, err: err}
	}
}
