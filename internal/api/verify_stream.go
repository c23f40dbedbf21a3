package api

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/haechi-sec/haechi/gateway"
	"github.com/haechi-sec/haechi/internal/auth"
)

// streamSet tracks the open check streams, so that CloseStreams can end
// them (http.Server.Shutdown does not see hijacked connections).
type streamSet struct {
	mu     sync.Mutex
	closed bool
	done   chan struct{} // closed by CloseStreams
	wg     sync.WaitGroup
	// per counts the open streams by the token that opened them.
	per map[string]int
}

// open registers a stream of the token tokenID, at most limit of them at
// once: 0 and the channel CloseStreams closes, or the status refusing it
// (503 once CloseStreams was called, 429 when the token has limit open).
// A stream opened is given back with release.
func (ss *streamSet) open(tokenID string, limit int) (<-chan struct{}, int) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.closed {
		return nil, http.StatusServiceUnavailable
	}
	if ss.per[tokenID] >= limit {
		return nil, http.StatusTooManyRequests
	}
	if ss.done == nil {
		ss.done = make(chan struct{})
	}
	if ss.per == nil {
		ss.per = map[string]int{}
	}
	ss.per[tokenID]++
	ss.wg.Add(1)
	return ss.done, 0
}

// release gives back a stream open returned.
func (ss *streamSet) release(tokenID string) {
	ss.mu.Lock()
	if n := ss.per[tokenID] - 1; n > 0 {
		ss.per[tokenID] = n
	} else {
		delete(ss.per, tokenID)
	}
	ss.mu.Unlock()
	ss.wg.Done()
}

// CloseStreams ends every open check stream (GET /v1/verify/stream) and
// refuses new ones (503): each stream answers the check lines it has
// read, then closes; checks its client wrote after that have no answer
// (the client's mode decides). It returns when every stream has closed
// or ctx ends. serve calls it when it shuts down (http.Server's
// RegisterOnShutdown), since Shutdown does not wait for upgraded
// connections.
func (s *Server) CloseStreams(ctx context.Context) error {
	ss := &s.streams
	ss.mu.Lock()
	if !ss.closed {
		ss.closed = true
		if ss.done == nil {
			ss.done = make(chan struct{})
		}
		close(ss.done)
	}
	ss.mu.Unlock()
	idle := make(chan struct{})
	go func() { ss.wg.Wait(); close(idle) }()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("close check streams: %w", ctx.Err())
	}
}

// DefaultMaxStreamsPerToken bounds the check streams one token may hold
// open at once (VerifyOptions.MaxStreamsPerToken): each holds about 50 KiB
// and two goroutines; a gateway's Checker opens 2.
const DefaultMaxStreamsPerToken = 64

// DefaultStreamOutage is VerifyOptions.StreamOutage's default: an open
// check stream outlives a store that cannot re-check its token by 30 s —
// long enough for a database failover or a restart of PostgreSQL, short
// enough that a token revoked meanwhile (which the store would report)
// keeps its stream for no longer than that.
const DefaultStreamOutage = 30 * time.Second

// Bounds of one stream.
const (
	// streamReadBuf holds the check lines read and not yet answered;
	// a line longer than MaxBatchLine ends the stream.
	streamReadBuf = 2 * (gateway.MaxBatchLine + 1)
	// streamWriteBuf: answers are written when no complete check line is
	// left to read, or when this many bytes of them are waiting.
	streamWriteBuf = 64 << 10
	// streamWriteTimeout bounds one write of answers (at least half of
	// it): a client that stops reading them loses its stream.
	streamWriteTimeout = 10 * time.Second
)

// handleVerifyStream is GET /v1/verify/stream (the stream form, package
// gateway's stream.go): after the guard (a token with the verify role),
// an HTTP/1.1 upgrade to a full-duplex line protocol on the connection,
// each check line answered in order as the batch form answers it — the
// same judgement, refusal reports and rate limit, per check (a check
// beyond the limit, or malformed, is answered "!" and why). The stream
// lives no longer than its token (re-checked every StreamRecheck), the
// server (CloseStreams) or a line longer than MaxBatchLine.
func (s *Server) handleVerifyStream(w http.ResponseWriter, r *http.Request) {
	if !headerHas(r.Header, "Connection", "upgrade") || !strings.EqualFold(r.Header.Get("Upgrade"), gateway.StreamProtocol) {
		w.Header().Set("Upgrade", gateway.StreamProtocol)
		w.Header().Set("Connection", "Upgrade")
		writeError(w, http.StatusUpgradeRequired, "the check stream needs Connection: Upgrade and Upgrade: "+gateway.StreamProtocol)
		return
	}
	var caller auth.Caller
	if s.opts.Auth != nil {
		c, ok := auth.CallerFrom(r.Context())
		if !ok {
			writeError(w, http.StatusUnauthorized, auth.ErrNoCredentials.Error())
			return
		}
		caller = c
	}
	limit := s.opts.Verify.MaxStreamsPerToken
	if limit <= 0 {
		limit = DefaultMaxStreamsPerToken
	}
	closing, refused := s.streams.open(caller.TokenID, limit)
	switch refused {
	case 0:
	case http.StatusTooManyRequests:
		w.Header().Set("Retry-After", "5")
		writeError(w, refused, fmt.Sprintf("this token has %d check streams open, the most it may", limit))
		return
	default:
		w.Header().Set("Retry-After", "1")
		writeError(w, refused, "haechi is shutting down")
		return
	}
	defer s.streams.release(caller.TokenID)
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// HTTP/2 cannot be upgraded; the client asks over HTTP/1.1.
		writeError(w, http.StatusHTTPVersionNotSupported, "the check stream needs HTTP/1.1: "+err.Error())
		return
	}
	defer conn.Close()
	// The server's read and write timeouts were set for one request.
	_ = conn.SetDeadline(time.Time{})
	_ = conn.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	if _, err := brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + gateway.StreamProtocol + "\r\n\r\n"); err != nil {
		return
	}
	if err := brw.Flush(); err != nil {
		return
	}
	ctx, stop := context.WithCancel(context.WithoutCancel(r.Context()))
	defer stop()
	go s.watchStream(ctx, conn, caller, closing)
	s.serveStream(conn, bufio.NewReaderSize(brw.Reader, streamReadBuf), caller.TokenID)
}

// watchStream ends the stream's reads (a deadline in the past: the
// stream answers what it has read, then closes) when the server closes
// its streams or the stream's token no longer holds: revoked or gone (at
// the next re-check), or not vouched for by the store for StreamOutage
// (the store cannot say: each failed re-check is logged, and the stream
// is kept meanwhile, since its verdicts do not need the store).
func (s *Server) watchStream(ctx context.Context, conn net.Conn, c auth.Caller, closing <-chan struct{}) {
	every := s.opts.Verify.StreamRecheck
	if every <= 0 {
		every = time.Second
	}
	outage := s.opts.Verify.StreamOutage
	if outage == 0 {
		outage = DefaultStreamOutage
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	vouched := time.Now() // the token was authenticated when the stream opened
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-closing:
		case <-tick.C:
			if s.opts.Auth == nil {
				continue
			}
			// Bounded: a store that hangs counts as one that fails,
			// so the outage bound holds for both.
			rctx, cancel := context.WithTimeout(ctx, max(every, time.Second))
			err := s.opts.Auth.Recheck(rctx, c)
			cancel()
			if err == nil {
				if failing {
					s.opts.Logger.Info("check stream: its token is re-checked again", "token", c.TokenID, "after", time.Since(vouched).Round(time.Millisecond))
					failing = false
				}
				vouched = time.Now()
				continue
			}
			if ctx.Err() != nil {
				return
			}
			if !credentialEnded(err) {
				if d := time.Since(vouched); d < outage {
					if !failing {
						s.opts.Logger.Warn("check stream: cannot re-check its token; kept while the store does not answer", "token", c.TokenID, "err", err, "closing_after", outage)
						failing = true
					} else {
						s.opts.Logger.Debug("check stream: cannot re-check its token", "token", c.TokenID, "err", err, "for", d.Round(time.Millisecond))
					}
					continue
				}
				s.opts.Logger.Warn("check stream: its token could not be re-checked for too long; closing it", "token", c.TokenID, "err", err, "for", time.Since(vouched).Round(time.Millisecond))
			}
		}
		_ = conn.SetReadDeadline(time.Unix(1, 0))
		return
	}
}

// credentialEnded reports whether a Recheck error says the credential no
// longer holds (revoked, gone, logged out) rather than that it could not
// be checked.
func credentialEnded(err error) bool {
	return errors.Is(err, auth.ErrBadToken) || errors.Is(err, auth.ErrSession) || errors.Is(err, auth.ErrNoCredentials)
}

// serveStream answers check lines until the connection fails, its reads
// are ended (watchStream) or a line is too long.
func (s *Server) serveStream(conn net.Conn, rd *bufio.Reader, caller string) {
	out := make([]byte, 0, 4<<10)
	// The write deadline is moved on only once half of it has passed:
	// a write then has between half of streamWriteTimeout and all of
	// it, and most writes set no timer.
	var deadline time.Time
	flush := func() bool {
		if len(out) == 0 {
			return true
		}
		if now := time.Now(); deadline.Sub(now) < streamWriteTimeout/2 {
			deadline = now.Add(streamWriteTimeout)
			_ = conn.SetWriteDeadline(deadline)
		}
		_, err := conn.Write(out)
		out = out[:0]
		return err == nil
	}
	defer flush()
	for {
		line, err := rd.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				out = gateway.AppendStreamError(out, fmt.Sprintf("a check line is longer than %d bytes; closing the stream", gateway.MaxBatchLine))
			}
			return // a partial line at the end has no answer
		}
		out = s.streamCheck(out, line[:len(line)-1], caller)
		if len(out) >= streamWriteBuf || !completeLine(rd) {
			if !flush() {
				return
			}
		}
	}
}

// streamCheck answers one check line of caller's stream: beyond its rate limit
// or malformed, "!" and why; else as a batch's line.
func (s *Server) streamCheck(out, line []byte, caller string) []byte {
	if !s.verifyLimit.allowID(caller, 1) {
		return gateway.AppendStreamError(out, "verify rate limit exceeded")
	}
	c, err := gateway.ParseCheck(line)
	if err != nil {
		return gateway.AppendStreamError(out, "check: "+err.Error())
	}
	return s.appendVerdict(out, s.checkQuery(c, s.opts.Now()))
}

// completeLine reports whether rd holds a whole line already read.
func completeLine(rd *bufio.Reader) bool {
	b, _ := rd.Peek(rd.Buffered())
	return bytes.IndexByte(b, '\n') >= 0
}

// headerHas reports whether h's comma-separated values of key include
// token (case-insensitively), as Connection's do.
func headerHas(h http.Header, key, token string) bool {
	for _, v := range h.Values(key) {
		for f := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(f), token) {
				return true
			}
		}
	}
	return false
}
