package demo

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/haechi-sec/haechi/internal/decode"
	"github.com/haechi-sec/haechi/internal/event"
)

// PostLive paces NDJSON lines by their event time at speed× real time and
// posts them to base/v1/events in batches, retrying on 429. transform, if
// not nil, sees every event that decodes before it is posted and returns
// the line to post in its place (the demo's gateway refuses contained
// requests this way). Pacing starts at start: earlier events (reference
// data dated before the simulated period) are posted at once. Lines serve
// accepted the request but rejected are reported on warn, one line per
// batch (the first rejection's reason and how many). The demo plays its
// simulation this way, and so does `haechi simulate --to`.
func PostLive(ctx context.Context, base, token string, r io.Reader, start time.Time, speed float64, warn io.Writer, transform func(*event.Event, []byte) []byte) (int64, error) {
	var tf func(int64, *event.Event, []byte) []byte
	if transform != nil {
		tf = func(_ int64, ev *event.Event, line []byte) []byte { return transform(ev, line) }
	}
	return postLive(ctx, base, token, r, start, speed, warn, tf, nil)
}

// postLive is PostLive with the line's index (0-based, over every line
// read) passed to transform, and acked, if not nil, called with the number
// of lines read so far each time serve has acknowledged a batch (2xx): all
// lines before that index have then been acknowledged. speed may be
// +Inf: no pacing, every batch is posted as soon as the one before it is
// acknowledged.
func postLive(ctx context.Context, base, token string, r io.Reader, start time.Time, speed float64, warn io.Writer, transform func(int64, *event.Event, []byte) []byte, acked func(through int64)) (int64, error) {
	base = strings.TrimRight(base, "/")
	br := bufio.NewReaderSize(r, 1<<20)
	dec := decode.NewDecoder()
	var (
		batch    bytes.Buffer
		n        int64
		wall     = time.Now()
		lastPost = time.Now()
		ev       event.Event
	)
	flush := func() error {
		if batch.Len() == 0 {
			return nil
		}
		for attempt := 0; ; attempt++ {
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/events", bytes.NewReader(batch.Bytes()))
			if err != nil {
				return err
			}
			req.Header.Set("Content-Type", "application/x-ndjson")
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return fmt.Errorf("post events: %w", err)
			}
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
				// haechi is behind or its storage is failing: wait as told
				// and send the same batch again (never drop it).
				wait := 200 * time.Millisecond
				if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
					wait = time.Duration(s) * time.Second
				}
				select {
				case <-time.After(wait):
				case <-ctx.Done():
					return ctx.Err()
				}
				continue
			}
			if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
				return refused(resp.Status, resp.StatusCode, token != "", body)
			}
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("post events: %s", resp.Status)
			}
			reportRejected(warn, body)
			if acked != nil {
				acked(n)
			}
			break
		}
		batch.Reset()
		lastPost = time.Now()
		return nil
	}
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			if derr := dec.Decode(bytes.TrimRight(line, "\r\n"), &ev); derr == nil {
				if transform != nil {
					line = transform(n, &ev, line)
				}
				due := wall.Add(time.Duration(float64(ev.Time.Sub(start)) / speed))
				if d := time.Until(due); d > 0 {
					if ferr := flush(); ferr != nil {
						return n, ferr
					}
					select {
					case <-time.After(d):
					case <-ctx.Done():
						return n, ctx.Err()
					}
				}
			}
			batch.Write(line)
			n++
			if batch.Len() > 1<<20 || time.Since(lastPost) > 200*time.Millisecond {
				if ferr := flush(); ferr != nil {
					return n, ferr
				}
			}
		}
		if err == io.EOF {
			return n, flush()
		}
		if err != nil {
			return n, err
		}
	}
}

// refused is the error of a POST serve answered 401 or 403: with no
// token, that one is needed; with one, that it was refused (401: serve
// does not know it — mistyped, revoked or of another server; 403: its role
// may not ingest), with serve's own reason when it gave one.
func refused(status string, code int, tokenGiven bool, body []byte) error {
	var ans struct {
		Error string `json:"error"`
	}
	why := ""
	if json.Unmarshal(body, &ans) == nil && ans.Error != "" {
		why = " (" + ans.Error + ")"
	}
	switch {
	case !tokenGiven:
		return fmt.Errorf("post events: %s%s: serve wants an API token: pass an ingest token with --token or HAECHI_TOKEN", status, why)
	case code == http.StatusForbidden:
		return fmt.Errorf("post events: %s%s: the token was refused: its role may not ingest events (use an ingest or admin token)", status, why)
	}
	return fmt.Errorf("post events: %s%s: the token was refused: serve does not know it (mistyped, revoked or expired, or of another server)", status, why)
}

// reportRejected prints, on warn, how many lines of an accepted request
// serve rejected and why the first was (the answer of POST /v1/events).
func reportRejected(warn io.Writer, body []byte) {
	var ans struct {
		Rejected int `json:"rejected"`
		Errors   []struct {
			Line   int    `json:"line"`
			Code   string `json:"code"`
			Reason string `json:"reason"`
		} `json:"errors"`
	}
	if warn == nil || json.Unmarshal(body, &ans) != nil || ans.Rejected == 0 {
		return
	}
	first := ""
	if len(ans.Errors) > 0 {
		e := ans.Errors[0]
		first = fmt.Sprintf(" (first: line %d of the batch: %s: %s)", e.Line, e.Code, e.Reason)
	}
	fmt.Fprintf(warn, "haechi: serve rejected %d line(s) of a batch%s\n", ans.Rejected, first)
}
