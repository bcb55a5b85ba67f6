package devguard

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestWrap(t *testing.T) {
	t.Parallel()
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusCreated) })
	tests := []struct {
		name, method, path, host, ctype string
		headers                         map[string]string
		remote                          bool
		want                            int
	}{
		{"json submission", "POST", "/dev/tasks", "127.0.0.1:8080", "application/json", nil, false, 201},
		{"json with charset", "POST", "/dev/tasks", "localhost:8080", "application/json; charset=utf-8", nil, false, 201},
		{"same origin", "POST", "/dev/tasks", "127.0.0.1:8080", "application/json", map[string]string{"Origin": "http://127.0.0.1:8080", "Sec-Fetch-Site": "same-origin"}, false, 201},
		{"text/plain (a cross-origin form or fetch without preflight)", "POST", "/dev/tasks", "127.0.0.1:8080", "text/plain", nil, false, 415},
		{"form", "POST", "/dev/tasks", "127.0.0.1:8080", "application/x-www-form-urlencoded", nil, false, 415},
		{"no content type", "POST", "/dev/tasks", "127.0.0.1:8080", "", nil, false, 415},
		{"foreign origin", "POST", "/dev/tasks", "127.0.0.1:8080", "application/json", map[string]string{"Origin": "http://127.0.0.1:9999"}, false, 403},
		{"cross-site fetch", "POST", "/dev/tasks", "127.0.0.1:8080", "application/json", map[string]string{"Sec-Fetch-Site": "cross-site"}, false, 403},
		{"same-site other port", "POST", "/dev/tasks", "127.0.0.1:8080", "application/json", map[string]string{"Sec-Fetch-Site": "same-site"}, false, 403},
		{"rebound host", "GET", "/dev/tasks", "attacker.example:8080", "", nil, false, 421},
		{"rebound host post", "POST", "/dev/tasks", "attacker.example", "application/json", nil, false, 421},
		{"ipv6 loopback", "GET", "/dev/tasks", "[::1]:8080", "", nil, false, 201},
		{"remote allowed: any host", "POST", "/dev/tasks", "orchestrator:8080", "application/json", nil, true, 201},
		{"remote allowed: still no text/plain", "POST", "/dev/tasks", "orchestrator:8080", "text/plain", nil, true, 415},
		{"remote allowed: still no foreign origin", "POST", "/dev/tasks", "orchestrator:8080", "application/json", map[string]string{"Origin": "http://evil.test"}, true, 403},
		{"agent API is not /dev", "PATCH", "/tasks/t-1", "127.0.0.1:8080", "application/json", nil, false, 201},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequestWithContext(t.Context(), tt.method, "http://"+tt.host+tt.path, strings.NewReader(`{}`))
			req.Host = tt.host
			if tt.ctype != "" {
				req.Header.Set("Content-Type", tt.ctype)
			}
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			Wrap(ok, Options{AllowRemote: tt.remote}).ServeHTTP(rec, req)
			if rec.Code != tt.want {
				t.Errorf("status %d (%s), want %d", rec.Code, strings.TrimSpace(rec.Body.String()), tt.want)
			}
		})
	}
}

func TestIsLoopbackAddr(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]bool{
		"127.0.0.1:8080": true, "localhost:1": true, "[::1]:80": true, "127.1.2.3:0": true,
		"0.0.0.0:8080": false, ":8080": false, "192.0.2.1:80": false, "example.com:80": false, "bad": false,
	} {
		if got := IsLoopbackAddr(addr); got != want {
			t.Errorf("IsLoopbackAddr(%q) = %v, want %v", addr, got, want)
		}
	}
}
