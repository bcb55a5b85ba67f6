package wire

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestNewRequestMatchesNewRequestWithContext holds newRequest to what http.NewRequestWithContext
// makes of the same URL as a string: the request line, host and body go out the same.
func TestNewRequestMatchesNewRequestWithContext(t *testing.T) {
	t.Parallel()
	tests := []struct {
		base, ep, query string
		payload         []byte
	}{
		{"http://127.0.0.1:8080", "/tasks/next", "agent_id=a-1&boot_id=b&wait=30", nil},
		{"https://orch.example.com/api/v1/", "/tasks/" + escapeSegment("t/1 ü%"), "", []byte(`{"status":"RUNNING"}`)},
		{"http://orch.example.com:/api%2Fv1", "/agents/" + escapeSegment("..") + "/heartbeat", "", []byte(`{}`)},
		{"http://[::1]:9000/p", "/agents/register", "", []byte{}},
	}
	type seen struct {
		Method, URL, RequestURI, Host string
		ContentLength                 int64
		Body, Again                   string
	}
	describe := func(t *testing.T, r *http.Request) seen {
		t.Helper()
		s := seen{Method: r.Method, URL: r.URL.String(), RequestURI: r.URL.RequestURI(), Host: r.Host, ContentLength: r.ContentLength}
		if r.Body != nil {
			b, _ := io.ReadAll(r.Body)
			s.Body = string(b)
		}
		if r.GetBody != nil {
			body, err := r.GetBody()
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(body)
			s.Again = string(b)
		}
		return s
	}
	for _, tc := range tests {
		t.Run(tc.base+tc.ep, func(t *testing.T) {
			t.Parallel()
			c := newTestClient(t, tc.base)
			target := strings.TrimRight(tc.base, "/") + tc.ep
			if tc.query != "" {
				target += "?" + tc.query
			}
			var body io.Reader
			if tc.payload != nil {
				body = bytes.NewReader(tc.payload)
			}
			want, err := http.NewRequestWithContext(context.Background(), http.MethodPatch, target, body)
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.newRequest(context.Background(), http.MethodPatch, tc.ep, tc.query, tc.payload)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(describe(t, want), describe(t, got)); diff != "" {
				t.Errorf("request (-want +got):\n%s", diff)
			}
		})
	}
}
