package wire

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/letsbe/sysadmin-agent/orchestratorsync/internal/deadline"
)

// Client defaults and limits.
const (
	DefaultTimeout   = 15 * time.Second
	DefaultUserAgent = "letsbe-agent"
	// MaxResponseBytes is the most the client reads of a response body, but for next-task
	// (Config.MaxTaskBytes) and heartbeat (MaxHeartbeatBytes) answers.
	MaxResponseBytes = 1 << 20
	// MaxHeartbeatBytes is the most the client reads of a heartbeat answer (a long cancel list).
	MaxHeartbeatBytes = 4 << 20
	// maxTaskScanBytes bounds how far an oversized next-task body is read for its id.
	maxTaskScanBytes = 1 << 30
	// MaxWait is the longest long poll NextTask asks for.
	MaxWait = 60 * time.Second

	// maxDrainBytes is how much of an oversized body is discarded to keep the connection.
	maxDrainBytes = 64 << 10
	maxRedirects  = 3
)

// Config configures NewClient.
type Config struct {
	// BaseURL is ORCHESTRATOR_URL: http or https, with a host, optionally a path prefix
	// (e.g. https://x/api/v1); no query, fragment or user info.
	BaseURL string
	// Token is the bearer token of every request (the enrollment token, say); WithToken makes
	// a client with another.
	Token string
	// Timeout bounds each call that is not a long poll, from sending to reading the body;
	// a long poll gets its wait on top. Default DefaultTimeout.
	Timeout time.Duration
	// UserAgent defaults to DefaultUserAgent.
	UserAgent string
	// Transport defaults to a tuned clone of http.DefaultTransport (keep-alive, 32 idle
	// connections per host, dial and TLS handshake timeouts, TLS 1.2 minimum).
	Transport http.RoundTripper
	// MaxTaskBytes is the most the client reads of a next-task body (AGENT_MAX_TASK_BYTES);
	// DefaultMaxTaskBytes when 0. A larger task is answered with an *InvalidTaskError for its
	// id (see NextTask).
	MaxTaskBytes int64
	// Observe, when set, is called after every request with the endpoint (register,
	// heartbeat, next or report), the HTTP status (0 when no answer came) and the time taken.
	Observe func(endpoint string, code int, elapsed time.Duration)
	// BootID is sent as boot_id on every next-task request (contract v1.1), so that the
	// orchestrator can drop long polls of an earlier run of this agent. A fresh random UUID
	// when empty: one Client per process start.
	BootID string
}

// Client talks to the orchestrator (contract v1). It is safe for concurrent use. Each method
// makes one attempt; retrying is the caller's decision (IsRetryable, NextDelay).
type Client struct {
	base      url.URL // the scheme and host of every request
	basePath  string  // the path prefix, escaped, without a trailing slash
	rt        http.RoundTripper
	timeout   time.Duration
	maxTask   int64
	userAgent string
	token     string // immutable: one Client per credential (WithToken)
	// header and bodyHeader are the headers of every request without and with a body, shared
	// by all of them: neither the Client nor its transport changes them (a RoundTripper must
	// not modify its request).
	header, bodyHeader http.Header
	observe            func(endpoint string, code int, elapsed time.Duration)
	bootID             string
	deadlines          *deadline.Shared // of the calls' timeouts; shared with the WithToken copies
}

// NewClient validates cfg, applies defaults and returns a client.
func NewClient(cfg Config) (*Client, error) {
	raw := strings.TrimSpace(cfg.BaseURL)
	if raw == "" {
		return nil, errors.New("orchestrator client: BaseURL is required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err // url.Error repeats the URL, which might carry credentials
		}
		return nil, fmt.Errorf("orchestrator client: invalid BaseURL: %w", err)
	}
	switch {
	case u.User != nil:
		return nil, errors.New("orchestrator client: BaseURL must not contain user info")
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("orchestrator client: BaseURL %q: scheme must be http or https", RedactURL(u))
	case u.Host == "" || u.Hostname() == "":
		return nil, fmt.Errorf("orchestrator client: BaseURL %q: host is missing", RedactURL(u))
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return nil, fmt.Errorf("orchestrator client: BaseURL %q: must not have a query or fragment", RedactURL(u))
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("orchestrator client: Timeout %s must not be negative", cfg.Timeout)
	}
	if err := checkToken(cfg.Token); err != nil {
		return nil, fmt.Errorf("orchestrator client: Token %w", err)
	}
	c := &Client{
		base:      url.URL{Scheme: u.Scheme, Host: removeEmptyPort(u.Host)},
		basePath:  strings.TrimRight(u.EscapedPath(), "/"),
		timeout:   cfg.Timeout,
		userAgent: cfg.UserAgent,
		observe:   cfg.Observe,
		bootID:    cfg.BootID,
		deadlines: new(deadline.Shared),
	}
	if c.bootID == "" {
		c.bootID = newBootID()
	}
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	}
	c.maxTask = cfg.MaxTaskBytes
	if c.maxTask <= 0 {
		c.maxTask = DefaultMaxTaskBytes
	}
	if c.userAgent == "" {
		c.userAgent = DefaultUserAgent
	}
	rt := cfg.Transport
	if rt == nil {
		rt = DefaultTransport()
	}
	c.rt = rt
	c.setToken(cfg.Token)
	return c, nil
}

// RedactURL returns u without user info, query and fragment, for messages: those may carry
// credentials.
func RedactURL(u *url.URL) string {
	r := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath, Opaque: u.Opaque}
	if u.User != nil {
		r.User = url.User("redacted")
	}
	if u.RawQuery != "" || u.ForceQuery {
		r.RawQuery = "redacted"
	}
	return r.String()
}

// DefaultTransport returns the transport NewClient uses when Config.Transport is nil.
func DefaultTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.MaxIdleConns = 100
	t.MaxIdleConnsPerHost = 32
	t.IdleConnTimeout = 90 * time.Second
	t.TLSHandshakeTimeout = 10 * time.Second
	t.ExpectContinueTimeout = time.Second
	t.ResponseHeaderTimeout = 0 // long polls hold the header back; the request context bounds it
	t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	// Answers are small JSON: no "Accept-Encoding: gzip" on every request, no decompressor
	// between the body and its size limit.
	t.DisableCompression = true
	return t
}

// send sends req through the transport and follows, at most maxRedirects times, only
// redirects that keep the method and the origin (scheme, host and port): the bearer token and
// a report body never go anywhere else. Any other redirect is answered as the redirect
// response itself (an error for the caller). It is what http.Client.Do with such a
// CheckRedirect does, without the copy of the headers and the list of requests it makes for
// every request (the client's headers are shared and never changed).
func (c *Client) send(req *http.Request) (*http.Response, error) {
	first := req
	for n := 1; ; n++ {
		resp, err := c.rt.RoundTrip(req)
		if err != nil {
			return nil, err
		}
		next := redirected(first, req, resp, n)
		if next == nil {
			return resp, nil
		}
		closeBody(resp.Body, false) // so that the connection is used again
		req = next
	}
}

// redirected returns the request that follows resp, the answer to the n-th request sent for
// first, or nil when resp is the answer: not a redirect, or one not to follow.
func redirected(first, req *http.Request, resp *http.Response, n int) *http.Request {
	switch resp.StatusCode {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther:
		// http.Client turns these into a GET without a body: followed only for a GET.
		if req.Method != http.MethodGet {
			return nil
		}
	case http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
	default:
		return nil
	}
	loc := resp.Header.Get("Location")
	if loc == "" || n > maxRedirects {
		return nil
	}
	u, err := req.URL.Parse(loc)
	if err != nil || u.Scheme != first.URL.Scheme || !strings.EqualFold(hostPort(u), hostPort(first.URL)) {
		return nil
	}
	next := *req // the same method, headers and context
	next.URL, next.Host = u, removeEmptyPort(u.Host)
	if req.GetBody != nil {
		body, err := req.GetBody()
		if err != nil {
			return nil
		}
		next.Body = body
	}
	return &next
}

// hostPort is the URL's host with its port made explicit.
func hostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// checkToken refuses tokens that cannot go into a header; the error never shows the token.
func checkToken(token string) error {
	for i := 0; i < len(token); i++ {
		if c := token[i]; c < 0x20 || c == 0x7f {
			return errors.New("contains control characters")
		}
	}
	if strings.TrimSpace(token) != token {
		return errors.New("has leading or trailing white space")
	}
	return nil
}

// BootID returns the boot_id this client sends with next-task requests.
func (c *Client) BootID() string { return c.bootID }

// newBootID returns a random (version 4) UUID.
func newBootID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// WithToken returns a client like c that sends token instead (the per-agent token from
// register, say), sharing its connections. A Client's credential never changes: whoever holds
// one knows which credential its requests carry. The error never shows the token.
func (c *Client) WithToken(token string) (*Client, error) {
	if err := checkToken(token); err != nil {
		return nil, fmt.Errorf("orchestrator client: token %w", err)
	}
	cp := *c
	cp.setToken(token)
	return &cp, nil
}

func (c *Client) setToken(token string) {
	c.token = token
	c.header = http.Header{"Accept": {"application/json"}, "User-Agent": {c.userAgent}}
	if token != "" {
		c.header["Authorization"] = []string{"Bearer " + token}
	}
	c.bodyHeader = c.header.Clone()
	c.bodyHeader["Content-Type"] = []string{"application/json"}
}

// Register calls POST /agents/register.
func (c *Client) Register(ctx context.Context, req RegisterRequest) (*RegisterResponse, error) {
	const ep = "/agents/register"
	resp, err := c.doJSON(ctx, http.MethodPost, ep, req, c.timeout, readLimit{max: MaxResponseBytes})
	if err != nil {
		return nil, err
	}
	rr, err := DecodeRegisterResponse(resp.body)
	if err != nil {
		return nil, fmt.Errorf("orchestrator POST %s: %w", ep, err)
	}
	return rr, nil
}

// Heartbeat calls POST /agents/{agent_id}/heartbeat. An empty Status is sent as ONLINE.
func (c *Client) Heartbeat(ctx context.Context, agentID string, req HeartbeatRequest) (*HeartbeatResponse, error) {
	ep := "/agents/" + escapeSegment(agentID) + "/heartbeat"
	if agentID == "" {
		return nil, invalidArg(http.MethodPost, ep, "empty agent id")
	}
	switch req.Status {
	case "":
		req.Status = StatusOnline
	case StatusOnline, StatusDraining:
	default:
		return nil, invalidArg(http.MethodPost, ep, "invalid heartbeat status %q", req.Status)
	}
	resp, err := c.doJSON(ctx, http.MethodPost, ep, req, c.timeout, readLimit{max: MaxHeartbeatBytes})
	if err != nil {
		return nil, err
	}
	hr, err := DecodeHeartbeatResponse(resp.body)
	if err != nil {
		return nil, fmt.Errorf("orchestrator POST %s: %w", ep, err)
	}
	return hr, nil
}

// NextTask calls GET /tasks/next?agent_id=..&wait=N. A positive wait asks for a long poll of
// ceil(wait) seconds clamped to 1..60; wait <= 0 omits the parameter. The call's timeout is
// the wait plus the normal timeout. It returns nil, nil when there is nothing to do (204, or a
// 2xx with an empty body). A body that cannot be run is an *InvalidTaskError; when its ID is
// set the task is assigned to this agent and should be reported FAILED.
func (c *Client) NextTask(ctx context.Context, agentID string, wait time.Duration) (*Task, error) {
	const ep = "/tasks/next"
	if agentID == "" {
		return nil, invalidArg(http.MethodGet, ep, "empty agent id")
	}
	// The parameters in the order url.Values.Encode gives them.
	query := "agent_id=" + url.QueryEscape(agentID) + "&boot_id=" + url.QueryEscape(c.bootID)
	timeout := c.timeout
	if wait > 0 {
		secs := int64(min(math.Ceil(wait.Seconds()), MaxWait.Seconds()))
		secs = max(secs, 1)
		query += "&wait=" + strconv.FormatInt(secs, 10)
		timeout += time.Duration(secs) * time.Second
	}
	resp, err := c.doWith(ctx, http.MethodGet, ep, query, nil, timeout, readLimit{max: c.maxTask, oversize: c.oversizeTask})
	if err != nil {
		return nil, err
	}
	if resp.status == http.StatusNoContent || len(trimJSONSpace(resp.body)) == 0 {
		return nil, nil
	}
	t, err := DecodeTask(resp.body)
	if err != nil {
		return nil, fmt.Errorf("orchestrator GET %s: %w", ep, err)
	}
	return t, nil
}

// oversizeTask answers a next-task body larger than MaxTaskBytes: it reads on, keeping only the
// top-level id, and returns an *InvalidTaskError for that id ("task too large"), or without an
// id when none can be used.
func (c *Client) oversizeTask(head []byte, rest io.Reader, contentLength int64) error {
	raw, read, found := ScanTaskID(io.MultiReader(bytes.NewReader(head), rest), maxTaskScanBytes)
	n := max(read, int64(len(head)))
	if contentLength > 0 {
		n = contentLength
	}
	reason := fmt.Sprintf("task too large: %d bytes (AGENT_MAX_TASK_BYTES is %d)", n, c.maxTask)
	if !found {
		return &InvalidTaskError{Reason: reason + "; no usable id found"}
	}
	id, err := decodeStringOrNumber(raw)
	if err != nil || strings.TrimSpace(id) == "" {
		return &InvalidTaskError{Reason: reason + "; no usable id found"}
	}
	usable, idErr := checkTaskID(raw, id)
	if !usable {
		return &InvalidTaskError{Reason: reason + "; " + idErr.Error()}
	}
	return &InvalidTaskError{ID: id, Reason: reason, Unstorable: idErr != nil}
}

// Report calls PATCH /tasks/{task_id}. Any 2xx (the contract names 200 and 204) is success.
func (c *Client) Report(ctx context.Context, taskID string, r Report) error {
	ep, err := reportEndpoint(taskID, r.AgentID)
	switch {
	case err != nil:
		return err
	case r.Status != StatusRunning && r.Status != StatusCompleted && r.Status != StatusFailed:
		return invalidArg(http.MethodPatch, ep, "invalid report status %q", r.Status)
	}
	body, err := marshalReport(r)
	if err != nil {
		return invalidArg(http.MethodPatch, ep, "encode request: %v", err)
	}
	_, err = c.do(ctx, http.MethodPatch, ep, "", body, c.timeout)
	return err
}

// ReportBody calls PATCH /tasks/{task_id} with a report body already encoded (by EncodeReport,
// say), sent byte for byte.
func (c *Client) ReportBody(ctx context.Context, taskID string, body []byte) error {
	ep := "/tasks/" + escapeSegment(taskID)
	switch {
	case taskID == "":
		return invalidArg(http.MethodPatch, ep, "empty task id")
	case len(body) == 0:
		return invalidArg(http.MethodPatch, ep, "empty report body")
	}
	_, err := c.do(ctx, http.MethodPatch, ep, "", body, c.timeout)
	return err
}

// reportEndpoint returns the report endpoint of a task, or why a report of agentID cannot be
// sent there.
func reportEndpoint(taskID, agentID string) (string, error) {
	ep := "/tasks/" + escapeSegment(taskID)
	switch {
	case taskID == "":
		return ep, invalidArg(http.MethodPatch, ep, "empty task id")
	case agentID == "":
		return ep, invalidArg(http.MethodPatch, ep, "report has no agent_id")
	}
	return ep, nil
}

// escapeSegment escapes one path segment, including "." and ".." which proxies would collapse.
func escapeSegment(s string) string {
	if s == "." || s == ".." {
		return strings.ReplaceAll(s, ".", "%2E")
	}
	return url.PathEscape(s)
}

type response struct {
	status int
	body   []byte
}

// readLimit bounds what do reads of a successful answer.
type readLimit struct {
	max int64
	// oversize, when set, is called with the first max+1 bytes of a larger 2xx body and the
	// rest of it; its error is the call's. Without it such a body is ErrResponseTooLarge.
	oversize func(head []byte, rest io.Reader, contentLength int64) error
}

// do sends one request and returns a 2xx answer with its body (at most MaxResponseBytes),
// an *APIError for any other status, or a request error. ep is the escaped path relative to
// the base URL; query is already encoded; payload, when not nil, is the JSON body.
func (c *Client) do(ctx context.Context, method, ep, query string, payload []byte, timeout time.Duration) (response, error) {
	return c.doWith(ctx, method, ep, query, payload, timeout, readLimit{max: MaxResponseBytes})
}

// doJSON is do with in encoded as the JSON body.
func (c *Client) doJSON(ctx context.Context, method, ep string, in any, timeout time.Duration, lim readLimit) (response, error) {
	payload, err := json.Marshal(in)
	if err != nil {
		return response{}, invalidArg(method, ep, "encode request: %v", err)
	}
	return c.doWith(ctx, method, ep, "", payload, timeout, lim)
}

// doWith is do with the read limit of a successful answer given.
func (c *Client) doWith(ctx context.Context, method, ep, query string, payload []byte, timeout time.Duration, lim readLimit) (response, error) {
	reqCtx, done := c.deadlines.Context(ctx, timeout)
	defer done()
	req, err := c.newRequest(reqCtx, method, ep, query, payload)
	if err != nil {
		return response{}, invalidArg(method, ep, "build request: %v", err)
	}

	start := time.Now()
	resp, err := c.send(req)
	if err != nil {
		if c.observe != nil {
			c.observe(endpointName(ep), 0, time.Since(start))
		}
		return response{}, c.requestFailed(ctx, reqCtx, method, ep, timeout, err)
	}
	readAll := false // the body was read to its end: nothing to drain
	defer func() { closeBody(resp.Body, readAll) }()
	if c.observe != nil {
		defer func() { c.observe(endpointName(ep), resp.StatusCode, time.Since(start)) }()
	}
	limit := lim.max
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		limit = MaxResponseBytes
	}
	data, err := readBody(resp, limit)
	if err != nil {
		return response{}, c.requestFailed(ctx, reqCtx, method, ep, timeout, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return response{}, &APIError{
			Endpoint:   ep,
			Method:     method,
			StatusCode: resp.StatusCode,
			RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
			Message:    messageSnippet(data[:min(len(data), MaxResponseBytes)], c.token),
		}
	}
	if int64(len(data)) > limit {
		if lim.oversize != nil {
			return response{}, lim.oversize(data, resp.Body, resp.ContentLength)
		}
		return response{}, &requestError{method: method, endpoint: ep,
			err: fmt.Errorf("%w: more than %d bytes", ErrResponseTooLarge, limit)}
	}
	readAll = true
	return response{status: resp.StatusCode, body: data}, nil
}

// newRequest returns the request to the escaped path ep under the base URL with the encoded
// query: what http.NewRequestWithContext makes of the URL as a string, without parsing the
// base URL again, and with the client's shared headers.
func (c *Client) newRequest(ctx context.Context, method, ep, query string, payload []byte) (*http.Request, error) {
	u := c.base
	u.RawPath = c.basePath + ep
	u.RawQuery = query
	var err error
	if u.Path, err = url.PathUnescape(u.RawPath); err != nil {
		return nil, err
	}
	req := http.Request{
		Method: method, URL: &u, Host: u.Host, Header: c.header,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
	}
	if payload != nil {
		req.Header = c.bodyHeader
		req.ContentLength = int64(len(payload))
		req.Body = io.NopCloser(bytes.NewReader(payload))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(payload)), nil }
		if len(payload) == 0 {
			req.Body, req.GetBody = http.NoBody, func() (io.ReadCloser, error) { return http.NoBody, nil }
		}
	}
	return req.WithContext(ctx), nil
}

// removeEmptyPort strips an empty port ("host:"), as http.NewRequest does.
func removeEmptyPort(host string) string {
	if strings.LastIndex(host, ":") > strings.LastIndex(host, "]") {
		return strings.TrimSuffix(host, ":")
	}
	return host
}

// readBody reads at most limit+1 bytes of the answer's body: a body longer than limit is
// told by its length. A body of known length is read into a buffer of that size.
func readBody(resp *http.Response, limit int64) ([]byte, error) {
	n := resp.ContentLength
	if n < 0 || n > limit {
		return io.ReadAll(io.LimitReader(resp.Body, limit+1))
	}
	data := make([]byte, n)
	if _, err := io.ReadFull(resp.Body, data); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF // a body shorter than its Content-Length
		}
		return nil, err
	}
	return data, nil
}

// requestFailed classifies a failure to get an answer: the caller's context ending is
// returned as such (not retryable); our own timeout becomes ErrRequestTimeout (retryable).
func (c *Client) requestFailed(ctx, reqCtx context.Context, method, ep string, timeout time.Duration, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("orchestrator %s %s: %w", method, ep, ctxErr)
	}
	if reqCtx.Err() != nil {
		return &requestError{method: method, endpoint: ep, timeout: true,
			err: fmt.Errorf("%w after %s", ErrRequestTimeout, timeout)}
	}
	if ue, ok := err.(*url.Error); ok {
		err = ue.Err // drop the repeated method and URL
	}
	return &requestError{method: method, endpoint: ep, err: err}
}

// endpointName maps a request path to a low-cardinality endpoint name for metrics.
func endpointName(ep string) string {
	switch {
	case ep == "/agents/register":
		return "register"
	case strings.HasSuffix(ep, "/heartbeat"):
		return "heartbeat"
	case ep == "/tasks/next":
		return "next"
	case strings.HasPrefix(ep, "/tasks/"):
		return "report"
	}
	return "other"
}

// closeBody closes an answer's body, first reading what is left of it (up to maxDrainBytes)
// unless it was read to its end, so that the connection can be used again.
func closeBody(body io.ReadCloser, readAll bool) {
	if !readAll {
		_, _ = io.Copy(io.Discard, io.LimitReader(body, maxDrainBytes))
	}
	_ = body.Close()
}
