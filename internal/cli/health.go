package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// healthCmd asks a running server's /healthz. It is the container image's
// HEALTHCHECK: a FROM scratch image has no shell or curl, so the binary
// checks itself. Exit 0 when the server answers 200, 1 otherwise.
type healthCmd struct {
	URL     string        `default:"http://127.0.0.1:8470/healthz" placeholder:"URL" help:"The server's health URL."`
	Timeout time.Duration `default:"5s" placeholder:"DURATION" help:"Give up after this long."`
}

func (c *healthCmd) Run(e *env) error {
	if !strings.HasPrefix(c.URL, "http://") && !strings.HasPrefix(c.URL, "https://") {
		return usageError{fmt.Errorf("--url %q: want an http:// or https:// URL", c.URL)}
	}
	ctx, cancel := context.WithTimeout(e.ctx, c.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL, nil)
	if err != nil {
		return usageError{fmt.Errorf("--url: %w", err)}
	}
	resp, err := http.DefaultClient.Do(req) // #nosec G107 -- the URL is the operator's own flag
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("%s: no answer within %s", c.URL, c.Timeout)
		}
		return fmt.Errorf("%s: %w", c.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	msg := strings.TrimSpace(string(body))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s %s", c.URL, resp.Status, msg)
	}
	fmt.Fprintf(e.stdout, "%s: %s\n", c.URL, msg)
	return nil
}
