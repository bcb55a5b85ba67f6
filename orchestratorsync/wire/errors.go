package wire

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"
)

// MaxRetryAfter caps any server-requested delay (Retry-After) and any delay NextDelay returns.
const MaxRetryAfter = 5 * time.Minute

// maxMessageBytes bounds APIError.Message.
const maxMessageBytes = 256

var (
	// ErrRequestTimeout is wrapped by the error a call returns when the client's own
	// per-request timeout (Config.Timeout, plus the wait of a long poll) expired.
	// It is retryable; a deadline or cancellation of the caller's context is not.
	ErrRequestTimeout = errors.New("request timed out")

	// ErrResponseTooLarge is wrapped by the error a call returns when a successful response
	// body exceeds MaxResponseBytes.
	ErrResponseTooLarge = errors.New("response body too large")
)

// APIError is a non-2xx answer from the orchestrator.
type APIError struct {
	// Endpoint is the escaped request path relative to the base URL, e.g. "/tasks/t-41".
	Endpoint string
	// Method is the HTTP method of the request.
	Method string
	// StatusCode is the HTTP status of the answer.
	StatusCode int
	// RetryAfter is the delay the server asked for with Retry-After (seconds or HTTP-date),
	// capped at MaxRetryAfter; zero when absent, invalid or already past.
	RetryAfter time.Duration
	// Message is a short, sanitized snippet of the response body (the "error"/"message" field
	// of a JSON body when there is one). It never contains the bearer token.
	Message string
}

func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString("orchestrator ")
	b.WriteString(e.Method)
	b.WriteByte(' ')
	b.WriteString(e.Endpoint)
	b.WriteString(": status ")
	b.WriteString(strconv.Itoa(e.StatusCode))
	if t := http.StatusText(e.StatusCode); t != "" {
		b.WriteString(" (")
		b.WriteString(t)
		b.WriteByte(')')
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	return b.String()
}

// requestError is a failure to get a complete answer: transport errors, our own per-request
// timeout, a body that could not be read or was too large.
type requestError struct {
	method   string
	endpoint string
	err      error
	timeout  bool
}

func (e *requestError) Error() string {
	return "orchestrator " + e.method + " " + e.endpoint + ": " + e.err.Error()
}

func (e *requestError) Unwrap() error { return e.err }

// Timeout reports whether the request failed because the client's own timeout expired.
func (e *requestError) Timeout() bool { return e.timeout }

// Class is what an error from a Client call means for the caller: the one retry policy of the
// sync loops (reports, polls, heartbeats, registration) is a switch on Classify.
type Class int

// Error classes, from Classify.
const (
	// ClassNone: no error.
	ClassNone Class = iota
	// ClassRetry: transient (5xx, 429, 408, network errors, the client's own timeout); the same
	// call may succeed later: retry with backoff and honour Retry-After.
	ClassRetry
	// ClassUnauthorized: 401, the credential was revoked or rotated: re-register.
	ClassUnauthorized
	// ClassGone: 404 or 409, the orchestrator does not know the agent or the task (or the task
	// is final or another agent's): stop sending this; re-register when it is the agent.
	ClassGone
	// ClassTooLarge: 413, the request body is too large: send a smaller one.
	ClassTooLarge
	// ClassRefused: any other 4xx (400, 414, 422, ...): the orchestrator refuses this request
	// for good; sending it unchanged again is useless.
	ClassRefused
	// ClassCanceled: the caller's own context ended; stop.
	ClassCanceled
	// ClassPermanent: no usable answer, and trying again will not change that by itself (TLS
	// certificate failures, oversized or undecodable answers, invalid arguments).
	ClassPermanent
)

var classNames = [...]string{"none", "retry", "unauthorized", "gone", "too-large", "refused", "canceled", "permanent"}

func (c Class) String() string {
	if c >= 0 && int(c) < len(classNames) {
		return classNames[c]
	}
	return "Class(" + strconv.Itoa(int(c)) + ")"
}

// Classify sorts an error from a Client call (or any error wrapping one) into a Class.
func Classify(err error) Class {
	if err == nil {
		return ClassNone
	}
	if ae, ok := errors.AsType[*APIError](err); ok {
		switch code := ae.StatusCode; {
		case code >= 500 || code == http.StatusTooManyRequests || code == http.StatusRequestTimeout:
			return ClassRetry
		case code == http.StatusUnauthorized:
			return ClassUnauthorized
		case code == http.StatusNotFound || code == http.StatusConflict:
			return ClassGone
		case code == http.StatusRequestEntityTooLarge:
			return ClassTooLarge
		case code >= 400:
			return ClassRefused
		default:
			// 1xx or 3xx that the client could not follow: nothing to retry as such.
			return ClassPermanent
		}
	}
	if errors.Is(err, ErrRequestTimeout) {
		return ClassRetry
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return ClassCanceled
	}
	if errors.Is(err, ErrResponseTooLarge) || isCertError(err) {
		return ClassPermanent
	}
	if _, ok := errors.AsType[*requestError](err); ok {
		return ClassRetry
	}
	// Errors from outside this client (a caller reading a body, say).
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.EPIPE) {
		return ClassRetry
	}
	if _, ok := errors.AsType[net.Error](err); ok {
		return ClassRetry
	}
	return ClassPermanent
}

// IsRetryable reports whether err is transient and the same call may succeed later
// (Classify(err) == ClassRetry): 5xx, 429 and 408 answers, network errors, connection resets,
// unexpected EOF and the client's own request timeout. It is false for nil, other 4xx answers,
// a cancellation or deadline of the caller's context, TLS certificate verification failures,
// oversized bodies, undecodable answers and invalid arguments.
func IsRetryable(err error) bool { return Classify(err) == ClassRetry }

func isCertError(err error) bool {
	if _, ok := errors.AsType[*tls.CertificateVerificationError](err); ok {
		return true
	}
	if _, ok := errors.AsType[x509.UnknownAuthorityError](err); ok {
		return true
	}
	if _, ok := errors.AsType[x509.HostnameError](err); ok {
		return true
	}
	if _, ok := errors.AsType[x509.CertificateInvalidError](err); ok {
		return true
	}
	return false
}

// RetryAfter returns the delay the orchestrator asked for with a Retry-After header, capped
// at MaxRetryAfter, and whether there was a positive one.
func RetryAfter(err error) (time.Duration, bool) {
	ae, ok := errors.AsType[*APIError](err)
	if !ok || ae.RetryAfter <= 0 {
		return 0, false
	}
	return min(ae.RetryAfter, MaxRetryAfter), true
}

// IsUnauthorized reports whether err is a 401 answer: the credential was revoked or rotated
// and the agent must re-register with the enrollment token.
func IsUnauthorized(err error) bool { return hasStatus(err, http.StatusUnauthorized) }

// IsNotFound reports whether err is a 404 answer: an unknown agent on heartbeat (re-register)
// or an unknown task on report (stop sending it).
func IsNotFound(err error) bool { return hasStatus(err, http.StatusNotFound) }

// IsConflict reports whether err is a 409 answer: the task is already final or belongs to
// another agent (stop sending it).
func IsConflict(err error) bool { return hasStatus(err, http.StatusConflict) }

func hasStatus(err error, code int) bool {
	ae, ok := errors.AsType[*APIError](err)
	return ok && ae.StatusCode == code
}

// parseRetryAfter parses a Retry-After value: delay-seconds (a fractional value is accepted)
// or an HTTP-date relative to now. The result is capped at MaxRetryAfter; a past date or
// an invalid value gives 0.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if c := v[0]; c >= '0' && c <= '9' || c == '.' {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) || math.IsNaN(f) || f <= 0 {
			return 0
		}
		if f >= MaxRetryAfter.Seconds() {
			return MaxRetryAfter
		}
		return time.Duration(f * float64(time.Second))
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	d := t.Sub(now)
	if d <= 0 {
		return 0
	}
	return min(d, MaxRetryAfter)
}

// messageSnippet turns an error body into a short single-line message with the token redacted.
func messageSnippet(body []byte, token string) string {
	s := ""
	if len(body) > 0 && body[0] == '{' {
		var m struct {
			Error   json.RawMessage `json:"error"`
			Message string          `json:"message"`
			Detail  string          `json:"detail"`
		}
		if json.Unmarshal(body, &m) == nil {
			var es string
			switch {
			case json.Unmarshal(m.Error, &es) == nil && es != "":
				s = es
			case m.Message != "":
				s = m.Message
			case m.Detail != "":
				s = m.Detail
			}
		}
	}
	if s == "" {
		s = string(body)
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	if token != "" {
		s = strings.ReplaceAll(s, token, "[redacted]")
	}
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r)
	}), " ")
	if len(s) > maxMessageBytes {
		cut := maxMessageBytes
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// invalidArg is returned for calls refused before any request was sent.
func invalidArg(method, endpoint, format string, args ...any) error {
	return fmt.Errorf("orchestrator %s %s: %s", method, endpoint, fmt.Sprintf(format, args...))
}
