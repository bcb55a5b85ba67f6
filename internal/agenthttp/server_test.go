package agenthttp_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
	"github.com/letsbe/sysadmin-agent/internal/agenthttp"
	"github.com/letsbe/sysadmin-agent/internal/testpoll"
)

var now = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// sources returns healthy sources: registered, a heartbeat 5 s ago, durable.
func sources() agenthttp.Sources {
	return agenthttp.Sources{
		AgentID:           func() string { return "a-1" },
		HeartbeatInterval: func() time.Duration { return 10 * time.Second },
		Draining:          func() bool { return false },
		Registration:      func() (bool, string) { return true, "" },
		LastHeartbeat:     func() time.Time { return now.Add(-5 * time.Second) },
		Durable:           func() error { return nil },
		Tasks:             func(context.Context) ([]agentv1.Task, error) { return nil, nil },
		Gatherer:          prometheus.NewRegistry(),
	}
}

func TestReady(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(*agenthttp.Sources)
		ready  bool
		reason string
	}{
		{"healthy", func(*agenthttp.Sources) {}, true, ""},
		{"draining first", func(s *agenthttp.Sources) {
			s.Draining = func() bool { return true }
			s.Durable = func() error { return errors.New("disk full") }
		}, false, "draining: the agent is shutting down"},
		{"journal", func(s *agenthttp.Sources) { s.Durable = func() error { return errors.New("disk full") } }, false, "agent cannot persist tasks: disk full"},
		{"not registered, with the error", func(s *agenthttp.Sources) {
			s.Registration = func() (bool, string) { return false, "401 Unauthorized" }
		}, false, "not registered with the orchestrator yet: 401 Unauthorized"},
		{"not registered", func(s *agenthttp.Sources) { s.Registration = func() (bool, string) { return false, "" } }, false, "not registered with the orchestrator yet"},
		{"no heartbeat", func(s *agenthttp.Sources) { s.LastHeartbeat = func() time.Time { return time.Time{} } }, false, "no heartbeat accepted yet"},
		{"stale heartbeat", func(s *agenthttp.Sources) { s.LastHeartbeat = func() time.Time { return now.Add(-25 * time.Second) } }, false, "last accepted heartbeat 25s ago (more than 2 x 10s)"},
		{"standby", func(s *agenthttp.Sources) {
			s.Standby = func() bool { return true }
			s.Registration = func() (bool, string) { return false, "" }
		}, true, "standby: another replica holds the lease; this one takes over when it stops"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src := sources()
			tt.change(&src)
			r := agenthttp.Ready(src, now)
			if r.Ready != tt.ready || r.Reason != tt.reason {
				t.Errorf("Ready = %v %q, want %v %q", r.Ready, r.Reason, tt.ready, tt.reason)
			}
		})
	}
}

// TestHandler: the token guards everything but /healthz; /readyz answers 503 with the reason;
// /debug/tasks is newest first, limited, and shows no payload, result or quoted fragment;
// Fetch reads the same through the client of `letsbe-agent status`.
func TestHandler(t *testing.T) {
	t.Parallel()
	src := sources()
	src.Token = "s3cret"
	src.Registration = func() (bool, string) { return false, "connection refused" }
	task := func(id string, created time.Time, errText string) agentv1.Task {
		var tk agentv1.Task
		tk.Name = id
		tk.Spec.Type = agentv1.TypeShell
		tk.Spec.Payload = &runtime.RawExtension{Raw: []byte(`{"cmd":"echo top-secret-payload"}`)}
		tk.CreationTimestamp = metav1.NewTime(created)
		tk.Status.Phase = agentv1.TaskFailed
		tk.Status.Error = errText
		return tk
	}
	src.Tasks = func(context.Context) ([]agentv1.Task, error) {
		return []agentv1.Task{
			task("t-1", now.Add(-time.Minute), `command "rm -rf /" is not allowed`),
			task("t-2", now, "exit status 1"),
			task("t-3", now.Add(-2*time.Minute), ""),
		}, nil
	}
	srv := httptest.NewServer(agenthttp.Handler(src))
	t.Cleanup(srv.Close)
	get := func(path, token string) (int, string) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz", ""); code != http.StatusOK {
		t.Errorf("/healthz without the token = %d, want 200", code)
	}
	for _, path := range []string{"/readyz", "/metrics", "/debug/tasks"} {
		if code, _ := get(path, ""); code != http.StatusUnauthorized {
			t.Errorf("%s without the token = %d, want 401", path, code)
		}
		if code, _ := get(path, "wrong"); code != http.StatusUnauthorized {
			t.Errorf("%s with a wrong token = %d, want 401", path, code)
		}
	}
	if code, body := get("/readyz", "s3cret"); code != http.StatusServiceUnavailable || !strings.Contains(body, "not registered with the orchestrator yet: connection refused") {
		t.Errorf("/readyz = %d %s", code, body)
	}
	if code, _ := get("/debug/tasks?limit=0", "s3cret"); code != http.StatusBadRequest {
		t.Errorf("/debug/tasks?limit=0 = %d, want 400", code)
	}
	code, body := get("/debug/tasks?limit=2", "s3cret")
	if code != http.StatusOK || strings.Contains(body, "top-secret") || strings.Contains(body, "rm -rf") {
		t.Errorf("/debug/tasks = %d, shows payload or quoted fragments:\n%s", code, body)
	}

	addr := strings.TrimPrefix(srv.URL, "http://")
	if _, err := agenthttp.Fetch(t.Context(), addr, "", 2); !errors.Is(err, agenthttp.ErrUnauthorized) {
		t.Errorf("Fetch without the token: %v, want ErrUnauthorized", err)
	}
	st, err := agenthttp.Fetch(t.Context(), addr, "s3cret", 2)
	if err != nil {
		t.Fatal(err)
	}
	var ids, errs []string
	for _, s := range st.Tasks.Tasks {
		ids, errs = append(ids, s.ID), append(errs, s.Error)
	}
	if diff := cmp.Diff([]string{"t-2", "t-1"}, ids); diff != "" || st.Tasks.Total != 3 || st.Code != http.StatusServiceUnavailable {
		t.Errorf("Fetch: code %d, total %d, ids (-want +got):\n%s", st.Code, st.Tasks.Total, diff)
	}
	if diff := cmp.Diff([]string{"exit status 1", `command "..." is not allowed`}, errs); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
}

func TestWithoutQuoted(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"":                              "",
		"plain":                         "plain",
		`path "/etc/x" outside`:         `path "..." outside`,
		`a "b \"c\" d" e "f"`:           `a "..." e "..."`,
		`unterminated "quote and more`:  `unterminated "..."`,
		`two "x" and "y" quoted things`: `two "..." and "..." quoted things`,
	} {
		if got := agenthttp.WithoutQuoted(in); got != want {
			t.Errorf("WithoutQuoted(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestListenRetries: a taken address does not stop the agent: the listener is recorded as not
// serving (for `status`), binds once the port is free, and then serves.
func TestListenRetries(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := taken.Addr().String()
	dir := t.TempDir()
	ln := agenthttp.Listen(addr, dir, logr.Discard())
	t.Cleanup(func() { _ = ln.Close() })
	st, ok := agenthttp.ReadListenerState(dir)
	if !ok || st.Addr != addr || st.Error == "" {
		t.Fatalf("listener state while the port is taken: %+v %v", st, ok)
	}
	_ = taken.Close()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go agenthttp.Serve(ctx, ln, agenthttp.Handler(sources()), logr.Discard())
	testpoll.Page(t, 30*time.Second, "http://"+addr+"/healthz") // bound once the port is freed
	if _, err := os.Stat(filepath.Join(dir, "http-listener.json")); !os.IsNotExist(err) {
		t.Errorf("the listener state is still recorded after binding: %v", err)
	}
}
