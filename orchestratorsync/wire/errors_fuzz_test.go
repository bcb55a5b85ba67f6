package wire

import (
	"strings"
	"testing"
	"time"
)

// FuzzParseRetryAfter: any header value gives a delay in [0, MaxRetryAfter], never a panic.
func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"", "0", "1", "120", "-5", "1e9", "99999999999999999999", "Wed, 21 Oct 2026 07:28:00 GMT", "soon", " 3 "} {
		f.Add(s)
	}
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string) {
		d := parseRetryAfter(v, now)
		if d < 0 || d > MaxRetryAfter {
			t.Fatalf("parseRetryAfter(%q) = %s, outside [0, %s]", v, d, MaxRetryAfter)
		}
	})
}

// FuzzMessageSnippet: an error body never carries the token into an error message.
func FuzzMessageSnippet(f *testing.F) {
	f.Add([]byte(`{"error":"bad token tok-123"}`), "tok-123")
	f.Add([]byte("tok-123tok-123"), "tok-123")
	f.Add([]byte{0xff, 0xfe}, "x")
	f.Fuzz(func(t *testing.T, body []byte, token string) {
		msg := messageSnippet(body, token)
		if len(token) >= 8 && strings.Contains(msg, token) {
			t.Fatalf("snippet %q contains the token %q", msg, token)
		}
	})
}
