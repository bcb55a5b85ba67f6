package wire

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
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

// TestSendMatchesHTTPClient holds send to what an http.Client with checkRedirect makes of the
// same request: which redirects are followed, with what method, headers and body, and which
// answer comes back.
func TestSendMatchesHTTPClient(t *testing.T) {
	t.Parallel()
	type hop struct {
		Method, Path, Referer, Auth, ContentType, Body string
	}
	var mu sync.Mutex
	var hops []hop
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		hops = append(hops, hop{r.Method, r.URL.RequestURI(), r.Header.Get("Referer"), r.Header.Get("Authorization"), r.Header.Get("Content-Type"), string(b)})
		mu.Unlock()
		switch code, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/r")); {
		case r.URL.Path == "/nolocation":
			w.WriteHeader(http.StatusFound)
		case r.URL.Path == "/loop":
			http.Redirect(w, r, "/loop", http.StatusTemporaryRedirect)
		case code >= 300:
			http.Redirect(w, r, "/end?from="+r.URL.Path, code)
		default:
			_, _ = io.WriteString(w, "answer "+r.URL.Path)
		}
	}))
	defer srv.Close()
	c := newTestClient(t, srv.URL)
	for _, method := range []string{http.MethodGet, http.MethodPatch} {
		for _, ep := range []string{"/r301", "/r302", "/r303", "/r307", "/r308", "/nolocation", "/loop", "/end"} {
			t.Run(method+ep, func(t *testing.T) {
				var payload []byte
				if method != http.MethodGet {
					payload = []byte(`{"status":"RUNNING"}`)
				}
				run := func(do func(*http.Request) (*http.Response, error)) (string, []hop) {
					mu.Lock()
					hops = nil
					mu.Unlock()
					req, err := c.newRequest(t.Context(), method, ep, "q=1", payload)
					if err != nil {
						t.Fatal(err)
					}
					resp, err := do(req)
					if err != nil {
						return "error " + err.Error(), nil
					}
					b, _ := io.ReadAll(resp.Body)
					_ = resp.Body.Close()
					mu.Lock()
					defer mu.Unlock()
					return fmt.Sprintf("%d %s", resp.StatusCode, b), hops
				}
				hc := &http.Client{Transport: c.rt, CheckRedirect: checkRedirect}
				wantAnswer, wantHops := run(hc.Do)
				gotAnswer, gotHops := run(c.send)
				if diff := cmp.Diff(wantAnswer, gotAnswer); diff != "" {
					t.Errorf("answer (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff(wantHops, gotHops); diff != "" {
					t.Errorf("requests (-want +got):\n%s", diff)
				}
			})
		}
	}
}
