package digitalocean

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/digitalocean/godo"
	"golang.org/x/oauth2"
)

// The environment variables the client reads, as DigitalOcean's own tools
// (doctl, the Terraform provider) do.
const (
	TokenEnv     = "DIGITALOCEAN_TOKEN"
	TokenFileEnv = "DIGITALOCEAN_TOKEN_FILE"
	APIURLEnv    = "DIGITALOCEAN_API_URL"
)

// Retry bounds: how often and how long a request that met a rate limit
// (429) or a server error (5xx) is tried again.
const (
	MaxAttempts = 6
	MaxWait     = 30 * time.Second
	// RequestTimeout bounds one request, first byte to last.
	RequestTimeout = 60 * time.Second
)

// ErrNoToken is returned (wrapped) when no API token is configured.
var ErrNoToken = errors.New("no DigitalOcean API token: set " + TokenEnv + " to a token with read and write scope (or " + TokenFileEnv + " to a file holding it)")

// Client talks to the DigitalOcean API through godo.
type Client struct {
	api *godo.Client
	// Base is the API endpoint ("" for DigitalOcean's own).
	Base string
}

// NewClient returns a client with the token and endpoint the environment
// names (TokenEnv or TokenFileEnv, APIURLEnv).
func NewClient() (*Client, error) {
	token, err := tokenFromEnv()
	if err != nil {
		return nil, err
	}
	return newClient(token, os.Getenv(APIURLEnv))
}

func newClient(token, base string) (*Client, error) {
	hc := &http.Client{
		Timeout: RequestTimeout,
		Transport: &oauth2.Transport{
			Source: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: token, TokenType: "Bearer"}),
			Base:   &retrying{base: http.DefaultTransport, sleep: sleepCtx},
		},
	}
	opts := []godo.ClientOpt{godo.SetUserAgent("hashbang-stack")}
	if base != "" {
		if !strings.HasSuffix(base, "/") {
			base += "/"
		}
		opts = append(opts, godo.SetBaseURL(base))
	}
	api, err := godo.New(hc, opts...)
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", APIURLEnv, base, err)
	}
	return &Client{api: api, Base: base}, nil
}

func tokenFromEnv() (string, error) {
	if t := strings.TrimSpace(os.Getenv(TokenEnv)); t != "" {
		return t, nil
	}
	f := os.Getenv(TokenFileEnv)
	if f == "" {
		return "", ErrNoToken
	}
	data, err := os.ReadFile(f)
	if err != nil {
		return "", fmt.Errorf("%s: %w: name a readable file holding the API token", TokenFileEnv, err)
	}
	t := strings.TrimSpace(string(data))
	if t == "" || strings.ContainsAny(t, " \t\r\n") {
		return "", fmt.Errorf("%s: %s does not hold one token: write only the token into it", TokenFileEnv, f)
	}
	return t, nil
}

// retrying retries requests that met a rate limit (429, after its
// Retry-After) or a server error (5xx, for requests that are safe to
// repeat), with exponential backoff, at most MaxAttempts times and never
// longer than MaxWait between tries. A create (POST) is repeated only after
// a 429, which says the request was not acted on.
type retrying struct {
	base  http.RoundTripper
	sleep func(context.Context, time.Duration) error
}

func (r *retrying) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		var err error
		if body, err = io.ReadAll(req.Body); err != nil {
			return nil, err
		}
		req.Body.Close()
	}
	wait := 500 * time.Millisecond
	for attempt := 1; ; attempt++ {
		try := req.Clone(req.Context())
		if body != nil {
			try.Body = io.NopCloser(bytes.NewReader(body))
		}
		resp, err := r.base.RoundTrip(try)
		retry := attempt < MaxAttempts && req.Context().Err() == nil
		switch {
		case err != nil:
			retry = retry && req.Method != http.MethodPost
		case resp.StatusCode == http.StatusTooManyRequests:
		case resp.StatusCode >= 500:
			retry = retry && req.Method != http.MethodPost
		default:
			return resp, nil
		}
		if !retry {
			return resp, err
		}
		d := wait
		if resp != nil {
			if s, ok := retryAfter(resp.Header.Get("Retry-After")); ok {
				d = s
			}
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
		}
		if d > MaxWait {
			d = MaxWait
		}
		if err := r.sleep(req.Context(), d); err != nil {
			return nil, err
		}
		wait *= 2
	}
}

// retryAfter parses a Retry-After header: seconds or an HTTP date.
func retryAfter(h string) (time.Duration, bool) {
	if h == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(h); err == nil && s >= 0 {
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(h); err == nil {
		d := time.Until(t)
		if d < 0 {
			d = 0
		}
		return d, true
	}
	return 0, false
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// apiError turns a godo error into one line saying what failed, without
// the request's headers (which hold the token).
func apiError(what string, err error) error {
	var er *godo.ErrorResponse
	if errors.As(err, &er) && er.Response != nil {
		msg := strings.TrimSpace(er.Message)
		switch er.Response.StatusCode {
		case http.StatusUnauthorized:
			return fmt.Errorf("%s: the DigitalOcean API refused the token (401 %s): check %s", what, msg, TokenEnv)
		case http.StatusForbidden:
			return fmt.Errorf("%s: the token may not do this (403 %s): give it write scope", what, msg)
		}
		return fmt.Errorf("%s: DigitalOcean API answered %d: %s", what, er.Response.StatusCode, msg)
	}
	return fmt.Errorf("%s: %w", what, err)
}
