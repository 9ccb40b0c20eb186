package queue

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Headers of a callback POST.
const (
	// SignatureHeader is "sha256=" and the hex HMAC-SHA256, keyed with the callback
	// secret, of the timestamp, a ".", and the body.
	SignatureHeader = "X-Runbox-Signature"
	// TimestampHeader is the Unix time of the attempt, so a receiver can refuse
	// replays of old deliveries.
	TimestampHeader = "X-Runbox-Timestamp"
	// SubmissionHeader is the submission's id.
	SubmissionHeader = "X-Runbox-Submission"
)

// Defaults of Callbacks.
const (
	DefaultCallbackAttempts = 5
	DefaultCallbackTimeout  = 10 * time.Second
	DefaultCallbackBackoff  = time.Second
	maxCallbackURL          = 2048
)

// ErrCallbackTarget is wrapped by the refusal of a callback URL or of the address
// it resolves to.
var ErrCallbackTarget = errors.New("queue: callback target refused")

// Callbacks POSTs results to their callback URLs: signed when there is a secret,
// retried with a doubling backoff on network errors, 408, 429 and 5xx, never to a
// private, loopback, link-local or otherwise non-public address unless AllowPrivate.
// The address is checked when the connection is made, after DNS, so a name that
// resolves elsewhere the second time gains nothing. Redirects are not followed. Safe
// for concurrent use; do not change the fields after the first Send.
type Callbacks struct {
	Secret       []byte
	AllowPrivate bool
	// Attempts, Timeout (per attempt) and Backoff (the first wait) default to the
	// DefaultCallback* constants.
	Attempts int
	Timeout  time.Duration
	Backoff  time.Duration

	once sync.Once
	hc   *http.Client
}

// Check refuses a callback URL that can never be sent to: not http(s), no host, or
// (unless AllowPrivate) an IP literal or name of this machine or a private network.
// Names are checked again, resolved, at each connection.
func (c *Callbacks) Check(raw string) error {
	if len(raw) > maxCallbackURL {
		return fmt.Errorf("%w: over %d bytes", ErrCallbackTarget, maxCallbackURL)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.User != nil {
		return fmt.Errorf("%w: want http(s)://host/path, without credentials", ErrCallbackTarget)
	}
	if c.AllowPrivate {
		return nil
	}
	host := u.Hostname()
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return fmt.Errorf("%w: %s is this machine", ErrCallbackTarget, host)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return checkAddr(ip)
	}
	return nil
}

// checkAddr refuses an address that is not public.
func checkAddr(ip netip.Addr) error {
	ip = ip.Unmap()
	var why string
	switch {
	case ip.IsLoopback():
		why = "loopback"
	case ip.IsPrivate():
		why = "private"
	case ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast():
		why = "link-local"
	case !ip.IsGlobalUnicast():
		why = "not a unicast"
	default:
		for _, p := range nonPublic {
			if p.Contains(ip) {
				why = "reserved (" + p.String() + ")"
			}
		}
	}
	if why != "" {
		return fmt.Errorf("%w: %s is a %s address", ErrCallbackTarget, ip, why)
	}
	return nil
}

// nonPublic are ranges that net/netip counts as global unicast but are not the
// public internet.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"), // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b::/96"), // NAT64: any IPv4 address, private ones too
	netip.MustParsePrefix("64:ff9b:1::/48"),
	netip.MustParsePrefix("2002::/16"), // 6to4
}

func (c *Callbacks) client() *http.Client {
	c.once.Do(func() {
		d := &net.Dialer{Timeout: 5 * time.Second}
		if !c.AllowPrivate {
			d.Control = func(_, address string, _ syscall.RawConn) error {
				ap, err := netip.ParseAddrPort(address)
				if err != nil {
					return fmt.Errorf("%w: %s", ErrCallbackTarget, address)
				}
				return checkAddr(ap.Addr())
			}
		}
		c.hc = &http.Client{
			// No proxy: it would make the connection, and the address check, its own.
			Transport: &http.Transport{DialContext: d.DialContext, Proxy: nil, MaxIdleConnsPerHost: 4,
				TLSHandshakeTimeout: 5 * time.Second, ResponseHeaderTimeout: 10 * time.Second},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	})
	return c.hc
}

// Send POSTs body to rawURL until a 2xx, a refusal that a retry would not change, the
// last attempt, or the end of ctx. It returns the attempts made.
func (c *Callbacks) Send(ctx context.Context, rawURL, id string, body []byte) (attempts int, err error) {
	if err := c.Check(rawURL); err != nil {
		return 0, err
	}
	n := c.Attempts
	if n <= 0 {
		n = DefaultCallbackAttempts
	}
	wait := c.Backoff
	if wait <= 0 {
		wait = DefaultCallbackBackoff
	}
	for attempts = 1; ; attempts++ {
		var again bool
		again, err = c.post(ctx, rawURL, id, body)
		if err == nil || !again || attempts >= n {
			return attempts, err
		}
		if sleep(ctx, wait); ctx.Err() != nil {
			return attempts, err
		}
		wait *= 2
	}
}

// post makes one attempt; again says whether another might succeed.
func (c *Callbacks) post(ctx context.Context, rawURL, id string, body []byte) (again bool, err error) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultCallbackTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rawURL, bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "runbox-callback")
	req.Header.Set(TimestampHeader, ts)
	req.Header.Set(SubmissionHeader, id)
	if len(c.Secret) > 0 {
		req.Header.Set(SignatureHeader, Sign(c.Secret, ts, body))
	}
	resp, err := c.client().Do(req)
	if err != nil {
		return !errors.Is(err, ErrCallbackTarget), err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		return false, nil
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests, code >= 500:
		return true, fmt.Errorf("callback: %s", resp.Status)
	default:
		return false, fmt.Errorf("callback: %s", resp.Status)
	}
}

// Sign is the value of SignatureHeader for a body sent at Unix time ts.
func Sign(secret []byte, ts string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte("."))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}
