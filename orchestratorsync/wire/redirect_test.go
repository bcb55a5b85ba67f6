package wire

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestRedirects runs the client against a loopback server that redirects, to itself or to a
// second loopback server on another port: only same-origin redirects are followed (a few
// times), and the other origin never sees the token or a body, or any request at all.
func TestRedirects(t *testing.T) {
	t.Parallel()
	var otherHits atomic.Int32
	var otherAuth atomic.Value
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		otherHits.Add(1)
		otherAuth.Store(r.Header.Get("Authorization"))
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, `{"agent_id":"evil"}`)
	}))
	t.Cleanup(other.Close)
	var self *httptest.Server
	self = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/cross/agents/register":
			http.Redirect(w, r, other.URL+"/agents/register", http.StatusPermanentRedirect)
		case "/cross-host/agents/register":
			// Same port, another name for the same machine: another origin all the same.
			http.Redirect(w, r, strings.Replace(self.URL, "127.0.0.1", "localhost", 1)+"/agents/register", http.StatusTemporaryRedirect)
		case "/same/agents/register":
			http.Redirect(w, r, "/final/agents/register", http.StatusPermanentRedirect)
		case "/final/agents/register":
			body, _ := io.ReadAll(r.Body)
			if r.Header.Get("Authorization") != "Bearer "+testToken || !strings.Contains(string(body), "host-1") {
				http.Error(w, "lost token or body", http.StatusBadRequest)
				return
			}
			_, _ = io.WriteString(w, `{"agent_id":"a-1"}`)
		case "/four/agents/register": // one hop more than a client follows
			http.Redirect(w, r, "/three/agents/register", http.StatusTemporaryRedirect)
		case "/three/agents/register": // maxRedirects hops: followed
			http.Redirect(w, r, "/two/agents/register", http.StatusPermanentRedirect)
		case "/two/agents/register":
			http.Redirect(w, r, "/same/agents/register", http.StatusTemporaryRedirect)
		case "/see-other/agents/register":
			// A POST answered 303 would become a GET without the body: not followed.
			http.Redirect(w, r, "/final/agents/register", http.StatusSeeOther)
		case "/loop/agents/register":
			http.Redirect(w, r, "/loop/agents/register", http.StatusTemporaryRedirect)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(self.Close)

	tests := []struct {
		prefix string
		ok     bool
	}{
		{"/same", true},
		{"/three", true},
		{"/four", false},
		{"/see-other", false},
		{"/cross", false},
		{"/cross-host", false},
		{"/loop", false},
	}
	for _, tt := range tests {
		t.Run(tt.prefix, func(t *testing.T) {
			c, err := NewClient(Config{BaseURL: self.URL + tt.prefix, Token: testToken, Timeout: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			resp, err := c.Register(t.Context(), RegisterRequest{Hostname: "host-1"})
			if tt.ok {
				if err != nil || resp.AgentID != "a-1" {
					t.Fatalf("Register = %+v, %v; want a-1 through the same-origin redirect", resp, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Register followed a redirect it must not: %+v", resp)
			}
			if strings.Contains(err.Error(), testToken) {
				t.Errorf("error shows the token: %v", err)
			}
		})
	}
	if n := otherHits.Load(); n != 0 {
		t.Errorf("the other origin got %d requests (Authorization %q)", n, otherAuth.Load())
	}
}

func TestNewClientNeverEchoesCredentials(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{
		"ftp://user:hunter2@orch.example.com/",
		"https://orch.example.com/api?token=hunter2",
		"https://orch.example.com/api#hunter2",
		"https://user:hunter2@orch.example.com/",
		"gopher://orch.example.com/?hunter2",
	} {
		_, err := NewClient(Config{BaseURL: raw})
		if err == nil {
			t.Errorf("NewClient(%q) accepted", raw)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("NewClient(%q) error shows the secret: %v", raw, err)
		}
	}
}
