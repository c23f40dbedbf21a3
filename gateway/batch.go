package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// The batch form of the check (POST /v1/verify/batch, docs/verify.md):
// many checks in one request, for a gateway that checks more requests
// than one HTTP exchange per check can carry. A body of text lines, one
// check per line, fields separated by tabs:
//
//	token_id \t key_id \t issued_at \t client_ip \t user_agent [\t user] \n
//
// issued_at is Unix seconds or RFC 3339, empty when unknown; every field
// but token_id may be empty, and trailing empty fields may be left out.
// user (the token's sub, Token.User) is optional and last, so lines
// written before it existed still parse; AppendCheck writes it only when
// there is one, so a line without a user is the same as before.
// The answer holds one line per check, in order: "+" (allowed) or "-"
// (refused), the verdict, then each reason after a tab.
//
//	+known
//	-hijacked \t minted for a client in KR, presented from NL
//
// No field may hold a tab, a line break or another control character:
// the encoders replace them in a user agent or reason with a space, and a
// token id, key id or user holding one cannot be sent in a batch.

// Check is one check of a batch: a token and the client presenting it.
type Check struct {
	Token     Token
	ClientIP  string
	UserAgent string
}

// MaxBatchLine bounds one line of a batch.
const MaxBatchLine = 16 << 10

var (
	errBatchLine = errors.New("a check line holds at most 6 tab-separated fields, the first a token id")
	errLineLong  = errors.New("a check line is longer than 16 KiB")
	errIssuedAt  = errors.New("issued_at is neither Unix seconds nor RFC 3339")
)

// Batchable reports whether c can be sent as a line of a batch or a
// stream: none of its ids holds a control character, and its line is at
// most MaxBatchLine long. The token id and the User-Agent are the
// caller's to choose: a line too long would fail the whole batch (or
// the check over a stream) and, with FailOpen, pass the request; such a
// check goes by the one-check GET instead.
func Batchable(c Check) bool {
	n := len(c.Token.ID) + len(c.Token.KeyID) + len(c.ClientIP) + len(c.UserAgent) + len(c.Token.User) + 5
	if !c.Token.IssuedAt.IsZero() {
		n += len(claimTime(c.Token.IssuedAt))
	}
	return n <= MaxBatchLine && c.Token.ID != "" && clean(c.Token.ID) && clean(c.Token.KeyID) && clean(c.ClientIP) && clean(c.Token.User)
}

func clean(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return false
		}
	}
	return true
}

// appendField appends s with control characters replaced by spaces.
func appendField(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == 0x7f {
			c = ' '
		}
		b = append(b, c)
	}
	return b
}

// AppendCheck appends c as one line of a batch body (c must be
// Batchable).
func AppendCheck(b []byte, c Check) []byte {
	b = appendField(b, c.Token.ID)
	b = append(b, '\t')
	b = appendField(b, c.Token.KeyID)
	b = append(b, '\t')
	if !c.Token.IssuedAt.IsZero() {
		b = append(b, claimTime(c.Token.IssuedAt)...)
	}
	b = append(b, '\t')
	b = appendField(b, c.ClientIP)
	b = append(b, '\t')
	b = appendField(b, c.UserAgent)
	if c.Token.User != "" {
		b = append(b, '\t')
		b = appendField(b, c.Token.User)
	}
	return append(b, '\n')
}

// ParseCheck reads one line of a batch body (without its line break). It
// never panics.
func ParseCheck(line []byte) (Check, error) {
	var c Check
	if len(line) > MaxBatchLine {
		return c, errLineLong
	}
	var f [6][]byte
	n := 0
	for rest := line; ; n++ {
		if n == len(f) {
			return c, errBatchLine
		}
		i := bytes.IndexByte(rest, '\t')
		if i < 0 {
			f[n] = rest
			n++
			break
		}
		f[n], rest = rest[:i], rest[i+1:]
	}
	for _, x := range f[:n] {
		if hasControl(x) {
			return c, errBatchLine
		}
	}
	if len(f[0]) == 0 {
		return c, errBatchLine
	}
	c.Token.ID, c.Token.KeyID = string(f[0]), string(f[1])
	if len(f[2]) > 0 {
		t, ok := ParseClaimTime(string(f[2]))
		if !ok {
			return c, errIssuedAt
		}
		c.Token.IssuedAt = t
	}
	c.ClientIP, c.UserAgent, c.Token.User = string(f[3]), string(f[4]), string(f[5])
	return c, nil
}

// hasControl reports whether b holds an ASCII control character (below
// 0x20, or DEL). Byte by byte: no byte of a multi-byte UTF-8 sequence is
// below 0x80, so this is the same as testing b's runes, without decoding
// them.
func hasControl(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c == 0x7f {
			return true
		}
	}
	return false
}

// ParseClaimTime reads an issue time as the X-Token-Issued-At header and a
// batch carry it: Unix seconds or RFC 3339.
func ParseClaimTime(v string) (time.Time, bool) {
	if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > 0 && n < 1<<40 {
		return time.Unix(n, 0).UTC(), true
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, true
	}
	return time.Time{}, false
}

// AppendAnswer appends a as one line of a batch answer.
func AppendAnswer(b []byte, a Answer) []byte {
	if a.Allow {
		b = append(b, '+')
	} else {
		b = append(b, '-')
	}
	b = appendField(b, a.Verdict)
	for _, r := range a.Reasons {
		b = append(b, '\t')
		b = appendField(b, r)
	}
	return append(b, '\n')
}

// ParseAnswer reads one line of a batch answer (without its line break).
func ParseAnswer(line []byte) (Answer, bool) {
	return parseAnswer(line, nil)
}

// parseAnswer is ParseAnswer, its strings taken from in (nil: each
// allocated).
func parseAnswer(line []byte, in interner) (Answer, bool) {
	if len(line) < 2 || (line[0] != '+' && line[0] != '-') {
		return Answer{}, false
	}
	a := Answer{Allow: line[0] == '+'}
	rest := line[1:]
	i := bytes.IndexByte(rest, '\t')
	if i < 0 {
		i = len(rest)
	}
	if i == 0 {
		return Answer{}, false
	}
	a.Verdict = in.get(rest[:i])
	for i < len(rest) {
		rest = rest[i+1:]
		if i = bytes.IndexByte(rest, '\t'); i < 0 {
			i = len(rest)
		}
		a.Reasons = append(a.Reasons, in.get(rest[:i]))
	}
	return a, true
}

// maxInterned bounds an interner: the verdicts and the usual reasons
// are a few dozen strings.
const maxInterned = 256

// interner turns the bytes of verdicts and reasons into strings,
// allocating each distinct one once (up to maxInterned of them; beyond,
// each is allocated). A stream's reader keeps one: it is not safe for
// concurrent use. A nil interner allocates every string.
type interner map[string]string

func (in interner) get(b []byte) string {
	if s, ok := in[string(b)]; ok {
		return s
	}
	s := string(b)
	if in != nil && len(in) < maxInterned {
		in[s] = s
	}
	return s
}

// pendingCheck is a check waiting in a batching Checker's queue.
type pendingCheck struct {
	c    Check
	done chan checkResult // buffered: the sender never blocks
}

type checkResult struct {
	a   Answer
	err error
}

// batcher sends queued checks in batches: each of its senders takes the
// first check waiting, adds whatever else is waiting at that moment (up
// to max), and sends them in one request. It adds no delay: a check
// alone goes alone at once; checks that arrive while every sender's
// request is in flight wait for the next free sender and go together.
type batcher struct {
	url    string
	bearer []string
	client *http.Client
	max    int
	wait   time.Duration // one batch's timeout
	queue  chan *pendingCheck
	stop   chan struct{}
	wg     sync.WaitGroup
}

func (b *batcher) run() {
	defer b.wg.Done()
	batch := make([]*pendingCheck, 0, b.max)
	var body, line []byte
	for {
		select {
		case <-b.stop:
			return
		case p := <-b.queue:
			batch = append(batch[:0], p)
		}
	more:
		for len(batch) < b.max {
			select {
			case p := <-b.queue:
				batch = append(batch, p)
			default:
				break more
			}
		}
		body = body[:0]
		for _, p := range batch {
			body = AppendCheck(body, p.c)
		}
		answers, err := b.send(body, len(batch), &line)
		for i, p := range batch {
			if err != nil {
				p.done <- checkResult{err: err}
			} else {
				p.done <- checkResult{a: answers[i]}
			}
			batch[i] = nil
		}
	}
}

// send posts one batch and reads its n answers.
func (b *batcher) send(body []byte, n int, scratch *[]byte) ([]Answer, error) {
	ctx, cancel := context.WithTimeout(context.Background(), b.wait)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	req.Header.Set("Content-Type", "text/tab-separated-values")
	if b.bearer != nil {
		req.Header["Authorization"] = b.bearer
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	buf := bytes.NewBuffer((*scratch)[:0])
	_, err = buf.ReadFrom(io.LimitReader(resp.Body, int64(n)*(MaxBatchLine+2)))
	*scratch = buf.Bytes()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: %s: %s", ErrUnavailable, resp.Status, bytes.TrimSpace(truncate(buf.Bytes(), 4<<10)))
	}
	answers := make([]Answer, 0, n)
	rest := buf.Bytes()
	for len(rest) > 0 && len(answers) < n {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			break
		}
		a, ok := ParseAnswer(rest[:i])
		if !ok {
			return nil, fmt.Errorf("%w: unreadable answer %q", ErrUnavailable, truncate(rest[:i], 200))
		}
		answers = append(answers, a)
		rest = rest[i+1:]
	}
	if len(answers) != n || len(rest) > 0 {
		return nil, fmt.Errorf("%w: %d answers to %d checks", ErrUnavailable, len(answers), n)
	}
	return answers, nil
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}
