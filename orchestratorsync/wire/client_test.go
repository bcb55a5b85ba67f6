package wire

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const testToken = "s3cr3t-enrollment-token"

// recorded is what the test server saw of one request.
type recorded struct {
	Method      string
	RequestURI  string
	Auth        string
	Accept      string
	UserAgent   string
	ContentType string
	Body        string
	// AcceptEncoding is empty on every request: answers are never compressed.
	AcceptEncoding string
}

type canned struct {
	status  int
	body    string
	headers map[string]string
}

// newRecordingServer answers every request with resp and records it. The handler is a plain
// func, not a ServeMux, so that escaped paths reach it untouched.
func newRecordingServer(t *testing.T, resp canned) (*httptest.Server, func() []recorded) {
	t.Helper()
	var mu sync.Mutex
	var got []recorded
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, recorded{
			Method: r.Method, RequestURI: r.RequestURI, Auth: r.Header.Get("Authorization"),
			Accept: r.Header.Get("Accept"), UserAgent: r.Header.Get("User-Agent"),
			ContentType: r.Header.Get("Content-Type"), Body: string(b),
			AcceptEncoding: r.Header.Get("Accept-Encoding"),
		})
		mu.Unlock()
		for k, v := range resp.headers {
			w.Header().Set(k, v)
		}
		w.WriteHeader(resp.status)
		_, _ = io.WriteString(w, resp.body)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []recorded {
		mu.Lock()
		defer mu.Unlock()
		return append([]recorded(nil), got...)
	}
}

func newTestClient(t *testing.T, baseURL string, mod ...func(*Config)) *Client {
	t.Helper()
	cfg := Config{BaseURL: baseURL, Token: testToken, BootID: "boot-1"}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	return c
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	ts, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func TestRequestShapes(t *testing.T) {
	t.Parallel()
	cet := time.FixedZone("CET", 3600)
	started := mustTime(t, "2026-11-26T10:00:01Z").In(cet)
	finished := mustTime(t, "2026-11-26T10:00:02Z").In(cet)

	tests := []struct {
		name string
		resp canned
		call func(context.Context, *Client) error
		want recorded
	}{{
		name: "register full",
		resp: canned{status: 201, body: `{"agent_id":"a-7f3c"}`},
		call: func(ctx context.Context, c *Client) error {
			_, err := c.Register(ctx, RegisterRequest{
				Hostname: "tenant-17", Version: "0.3.0", OS: "linux", Arch: "amd64",
				Capabilities: []string{"ECHO", "SHELL", "FILE_WRITE", "ENV_UPDATE", "DOCKER_RELOAD", "PLAYWRIGHT"},
				Labels:       map[string]string{"region": "eu-1"},
				AgentID:      "a-7f3c",
			})
			return err
		},
		want: recorded{Method: "POST", RequestURI: "/api/v1/agents/register", ContentType: "application/json",
			Body: `{"hostname":"tenant-17","version":"0.3.0","os":"linux","arch":"amd64",` +
				`"capabilities":["ECHO","SHELL","FILE_WRITE","ENV_UPDATE","DOCKER_RELOAD","PLAYWRIGHT"],` +
				`"labels":{"region":"eu-1"},"agent_id":"a-7f3c"}`},
	}, {
		name: "register first run omits agent_id and labels, capabilities is []",
		resp: canned{status: 200, body: `{"agent_id":"a-1"}`},
		call: func(ctx context.Context, c *Client) error {
			_, err := c.Register(ctx, RegisterRequest{Hostname: "h", Version: "v", OS: "linux", Arch: "arm64"})
			return err
		},
		want: recorded{Method: "POST", RequestURI: "/api/v1/agents/register", ContentType: "application/json",
			Body: `{"hostname":"h","version":"v","os":"linux","arch":"arm64","capabilities":[]}`},
	}, {
		name: "heartbeat full",
		resp: canned{status: 200, body: `{}`},
		call: func(ctx context.Context, c *Client) error {
			_, err := c.Heartbeat(ctx, "a-7f3c", HeartbeatRequest{
				Status: StatusOnline, Version: "0.3.0", UptimeSeconds: 3600, RunningTaskIDs: []string{"t-41"},
				System: SystemInfo{Load1: 0.21, MemTotalBytes: 8000000000, MemAvailableBytes: 5000000000, DiskFreeBytes: 40000000000},
				Stacks: []StackReport{{Project: "app", Revision: 4, Available: true}},
			})
			return err
		},
		want: recorded{Method: "POST", RequestURI: "/api/v1/agents/a-7f3c/heartbeat", ContentType: "application/json",
			Body: `{"status":"ONLINE","version":"0.3.0","uptime_seconds":3600,"running_task_ids":["t-41"],"queued_tasks":0,` +
				`"system":{"load1":0.21,"mem_total_bytes":8000000000,"mem_available_bytes":5000000000,"disk_free_bytes":40000000000},` +
				`"stacks":[{"project":"app","revision":4,"available":true,"degraded_services":[]}]}`},
	}, {
		name: "heartbeat empty: default ONLINE, running_task_ids and stacks [], escaped id",
		resp: canned{status: 204},
		call: func(ctx context.Context, c *Client) error {
			_, err := c.Heartbeat(ctx, "a/b c", HeartbeatRequest{Version: "v", QueuedTasks: 2})
			return err
		},
		want: recorded{Method: "POST", RequestURI: "/api/v1/agents/a%2Fb%20c/heartbeat", ContentType: "application/json",
			Body: `{"status":"ONLINE","version":"v","uptime_seconds":0,"running_task_ids":[],"queued_tasks":2,` +
				`"system":{"load1":0,"mem_total_bytes":0,"mem_available_bytes":0,"disk_free_bytes":0},"stacks":[]}`},
	}, {
		name: "heartbeat draining",
		resp: canned{status: 200},
		call: func(ctx context.Context, c *Client) error {
			_, err := c.Heartbeat(ctx, "a-1", HeartbeatRequest{Status: StatusDraining, RunningTaskIDs: []string{}})
			return err
		},
		want: recorded{Method: "POST", RequestURI: "/api/v1/agents/a-1/heartbeat", ContentType: "application/json",
			Body: `{"status":"DRAINING","version":"","uptime_seconds":0,"running_task_ids":[],"queued_tasks":0,` +
				`"system":{"load1":0,"mem_total_bytes":0,"mem_available_bytes":0,"disk_free_bytes":0},"stacks":[]}`},
	}, {
		name: "next with wait",
		resp: canned{status: 204},
		call: func(ctx context.Context, c *Client) error {
			_, err := c.NextTask(ctx, "a-7f3c", 30*time.Second)
			return err
		},
		want: recorded{Method: "GET", RequestURI: "/api/v1/tasks/next?agent_id=a-7f3c&boot_id=boot-1&wait=30"},
	}, {
		name: "next without wait",
		resp: canned{status: 204},
		call: func(ctx context.Context, c *Client) error {
			_, err := c.NextTask(ctx, "a-7f3c", 0)
			return err
		},
		want: recorded{Method: "GET", RequestURI: "/api/v1/tasks/next?agent_id=a-7f3c&boot_id=boot-1"},
	}, {
		name: "next wait clamped to 60",
		resp: canned{status: 204},
		call: func(ctx context.Context, c *Client) error {
			_, err := c.NextTask(ctx, "a 1&x", 5*time.Minute)
			return err
		},
		want: recorded{Method: "GET", RequestURI: "/api/v1/tasks/next?agent_id=a+1%26x&boot_id=boot-1&wait=60"},
	}, {
		name: "next sub-second wait rounds up to 1",
		resp: canned{status: 204},
		call: func(ctx context.Context, c *Client) error {
			_, err := c.NextTask(ctx, "a-1", time.Millisecond)
			return err
		},
		want: recorded{Method: "GET", RequestURI: "/api/v1/tasks/next?agent_id=a-1&boot_id=boot-1&wait=1"},
	}, {
		name: "report completed",
		resp: canned{status: 200, body: `{}`},
		call: func(ctx context.Context, c *Client) error {
			return c.Report(ctx, "t-41", Report{
				AgentID: "a-7f3c", Status: StatusCompleted, Result: json.RawMessage(`{"message": "hello"}`),
				Error: "ignored unless FAILED", StartedAt: &started, FinishedAt: &finished,
				Events: []Event{{Time: started, Type: "Started", Message: "..."}},
			})
		},
		want: recorded{Method: "PATCH", RequestURI: "/api/v1/tasks/t-41", ContentType: "application/json",
			Body: `{"agent_id":"a-7f3c","status":"COMPLETED","result":{"message":"hello"},` +
				`"started_at":"2026-11-26T10:00:01Z","finished_at":"2026-11-26T10:00:02Z",` +
				`"events":[{"time":"2026-11-26T10:00:01Z","type":"Started","message":"..."}]}`},
	}, {
		name: "report failed with result and error",
		resp: canned{status: 204},
		call: func(ctx context.Context, c *Client) error {
			return c.Report(ctx, "t-42", Report{
				AgentID: "a-1", Status: StatusFailed, Result: json.RawMessage(`{"exit_code":2}`),
				Error: "exit status 2", FinishedAt: &finished,
			})
		},
		want: recorded{Method: "PATCH", RequestURI: "/api/v1/tasks/t-42", ContentType: "application/json",
			Body: `{"agent_id":"a-1","status":"FAILED","result":{"exit_code":2},"error":"exit status 2",` +
				`"finished_at":"2026-11-26T10:00:02Z"}`},
	}, {
		name: "report running sends no result, error or finished_at",
		resp: canned{status: 204},
		call: func(ctx context.Context, c *Client) error {
			return c.Report(ctx, "t/41", Report{
				AgentID: "a-1", Status: StatusRunning, Result: json.RawMessage(`{}`), Error: "x",
				StartedAt: &started, FinishedAt: &finished,
			})
		},
		want: recorded{Method: "PATCH", RequestURI: "/api/v1/tasks/t%2F41", ContentType: "application/json",
			Body: `{"agent_id":"a-1","status":"RUNNING","started_at":"2026-11-26T10:00:01Z"}`},
	}, {
		name: "report with null result omits it; dot-dot id is escaped",
		resp: canned{status: 200},
		call: func(ctx context.Context, c *Client) error {
			return c.Report(ctx, "..", Report{AgentID: "a-1", Status: StatusCompleted, Result: json.RawMessage(`null`)})
		},
		want: recorded{Method: "PATCH", RequestURI: "/api/v1/tasks/%2E%2E", ContentType: "application/json",
			Body: `{"agent_id":"a-1","status":"COMPLETED"}`},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv, got := newRecordingServer(t, tc.resp)
			c := newTestClient(t, srv.URL+"/api/v1/")
			if err := tc.call(t.Context(), c); err != nil {
				t.Fatalf("call: %v", err)
			}
			want := tc.want
			want.Auth, want.Accept, want.UserAgent = "Bearer "+testToken, "application/json", "letsbe-agent"
			if diff := cmp.Diff([]recorded{want}, got()); diff != "" {
				t.Errorf("request (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRegisterResponses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		resp    canned
		want    *RegisterResponse
		wantErr bool
	}{
		{name: "agent_id 201", resp: canned{201, `{"agent_id":"a-1"}`, nil}, want: &RegisterResponse{AgentID: "a-1"}},
		{name: "legacy id 200", resp: canned{200, `{"id":"a-2"}`, nil}, want: &RegisterResponse{AgentID: "a-2"}},
		{name: "agent_id wins over id", resp: canned{200, `{"id":"old","agent_id":"new"}`, nil}, want: &RegisterResponse{AgentID: "new"}},
		{name: "empty agent_id falls back to id", resp: canned{200, `{"agent_id":"","id":"x"}`, nil}, want: &RegisterResponse{AgentID: "x"}},
		{name: "numeric id", resp: canned{200, `{"id":17}`, nil}, want: &RegisterResponse{AgentID: "17"}},
		{
			name: "token and intervals, unknown fields ignored",
			resp: canned{201, `{"agent_id":"a-7f3c","token":"per-agent","heartbeat_interval_seconds":30,"poll_interval_seconds":"5","extra":[1]}`, nil},
			want: &RegisterResponse{AgentID: "a-7f3c", Token: "per-agent", HeartbeatIntervalSeconds: 30, PollIntervalSeconds: 5},
		},
		{
			name: "unusable intervals ignored",
			resp: canned{200, `{"agent_id":"a","heartbeat_interval_seconds":-1,"poll_interval_seconds":"soon"}`, nil},
			want: &RegisterResponse{AgentID: "a"},
		},
		{name: "missing both ids", resp: canned{201, `{"token":"x"}`, nil}, wantErr: true},
		{name: "empty body", resp: canned{201, ``, nil}, wantErr: true},
		{name: "not JSON", resp: canned{200, `<html>hi</html>`, nil}, wantErr: true},
		{name: "token not a string", resp: canned{200, `{"agent_id":"a","token":7}`, nil}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv, _ := newRecordingServer(t, tc.resp)
			got, err := newTestClient(t, srv.URL).Register(t.Context(), RegisterRequest{Hostname: "h"})
			if (err != nil) != tc.wantErr {
				t.Fatalf("Register error = %v, wantErr %v", err, tc.wantErr)
			}
			if err != nil && IsRetryable(err) {
				t.Errorf("decode error %v is retryable", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("response (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHeartbeatResponses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		resp    canned
		want    *HeartbeatResponse
		wantErr bool
	}{
		{name: "empty 200", resp: canned{200, ``, nil}, want: &HeartbeatResponse{}},
		{name: "204", resp: canned{204, ``, nil}, want: &HeartbeatResponse{}},
		{name: "empty object", resp: canned{200, ` {} `, nil}, want: &HeartbeatResponse{}},
		{name: "null", resp: canned{200, `null`, nil}, want: &HeartbeatResponse{}},
		{
			name: "cancel ids, duplicates and junk dropped",
			resp: canned{200, `{"cancel_task_ids":["t-41","t-41",42,null,"",{}],"x":1}`, nil},
			want: &HeartbeatResponse{CancelTaskIDs: []string{"t-41", "42"}},
		},
		{name: "cancel ids not an array", resp: canned{200, `{"cancel_task_ids":"t-41"}`, nil}, wantErr: true},
		{name: "array body", resp: canned{200, `[]`, nil}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv, _ := newRecordingServer(t, tc.resp)
			got, err := newTestClient(t, srv.URL).Heartbeat(t.Context(), "a-1", HeartbeatRequest{})
			if (err != nil) != tc.wantErr {
				t.Fatalf("Heartbeat error = %v, wantErr %v", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("response (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNextTaskResponses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		resp      canned
		want      *Task
		wantErrID string // "-" for no error
	}{
		{name: "204 is no task", resp: canned{204, ``, nil}, wantErrID: "-"},
		{name: "200 with empty body is no task", resp: canned{200, "\n", nil}, wantErrID: "-"},
		{
			name: "task",
			resp: canned{200, `{"id":"t-41","type":"SHELL","payload":{"cmd":"df -h"},"timeout_seconds":120,"created_at":"2026-11-26T10:00:00Z"}`, nil},
			want: &Task{ID: "t-41", Type: "SHELL", Payload: json.RawMessage(`{"cmd":"df -h"}`), TimeoutSeconds: 120,
				CreatedAt: time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)},
			wantErrID: "-",
		},
		{name: "invalid task keeps its id", resp: canned{200, `{"id":"t-9"}`, nil}, wantErrID: "t-9"},
		{name: "garbage", resp: canned{200, `nope`, nil}, wantErrID: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv, _ := newRecordingServer(t, tc.resp)
			got, err := newTestClient(t, srv.URL).NextTask(t.Context(), "a-1", 0)
			if tc.wantErrID == "-" {
				if err != nil {
					t.Fatalf("NextTask: %v", err)
				}
			} else {
				ite, ok := errors.AsType[*InvalidTaskError](err)
				if !ok {
					t.Fatalf("NextTask error = %v, want *InvalidTaskError", err)
				}
				if ite.ID != tc.wantErrID {
					t.Errorf("InvalidTaskError.ID = %q, want %q", ite.ID, tc.wantErrID)
				}
				if IsRetryable(err) {
					t.Errorf("IsRetryable(%v) = true", err)
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("task (-want +got):\n%s", diff)
			}
		})
	}
}

func TestErrorClassification(t *testing.T) {
	t.Parallel()
	farFuture := time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)
	past := time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)
	type class struct {
		Retryable, Unauthorized, NotFound, Conflict bool
		RetryAfter                                  time.Duration
		HasRetryAfter                               bool
		Status                                      int
		Message                                     string
	}
	tests := []struct {
		name string
		resp canned
		want class
	}{
		{"401", canned{401, `{"error":"token revoked"}`, nil}, class{Unauthorized: true, Status: 401, Message: "token revoked"}},
		{"404", canned{404, `{"message":"unknown agent"}`, nil}, class{NotFound: true, Status: 404, Message: "unknown agent"}},
		{"409", canned{409, "task is final\n", nil}, class{Conflict: true, Status: 409, Message: "task is final"}},
		{"400", canned{400, `{"error":{"code":1}}`, nil}, class{Status: 400, Message: `{"error":{"code":1}}`}},
		{"403", canned{403, ``, nil}, class{Status: 403}},
		{"408", canned{408, ``, nil}, class{Retryable: true, Status: 408}},
		{"429 seconds", canned{429, `slow down`, map[string]string{"Retry-After": "7"}},
			class{Retryable: true, Status: 429, RetryAfter: 7 * time.Second, HasRetryAfter: true, Message: "slow down"}},
		{"503 http-date capped", canned{503, ``, map[string]string{"Retry-After": farFuture}},
			class{Retryable: true, Status: 503, RetryAfter: MaxRetryAfter, HasRetryAfter: true}},
		{"503 past date", canned{503, ``, map[string]string{"Retry-After": past}}, class{Retryable: true, Status: 503}},
		{"503 garbage retry-after", canned{503, ``, map[string]string{"Retry-After": "soon"}}, class{Retryable: true, Status: 503}},
		{"500", canned{500, "boom", nil}, class{Retryable: true, Status: 500, Message: "boom"}},
		{"302 for POST is not followed", canned{302, ``, map[string]string{"Location": "/elsewhere"}}, class{Status: 302}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv, _ := newRecordingServer(t, tc.resp)
			_, err := newTestClient(t, srv.URL+"/p").Register(t.Context(), RegisterRequest{Hostname: "h"})
			ae, ok := errors.AsType[*APIError](err)
			if !ok {
				t.Fatalf("error %v is not an *APIError", err)
			}
			if ae.Endpoint != "/agents/register" || ae.Method != "POST" {
				t.Errorf("APIError endpoint = %s %s", ae.Method, ae.Endpoint)
			}
			ra, hasRA := RetryAfter(err)
			got := class{
				Retryable: IsRetryable(err), Unauthorized: IsUnauthorized(err), NotFound: IsNotFound(err),
				Conflict: IsConflict(err), RetryAfter: ra, HasRetryAfter: hasRA, Status: ae.StatusCode, Message: ae.Message,
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("classification (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"120", 120 * time.Second},
		{" 3 ", 3 * time.Second},
		{"1.5", 1500 * time.Millisecond},
		{"-3", 0},
		{"abc", 0},
		{"1000", MaxRetryAfter},
		{"99999999999999999999999999", MaxRetryAfter},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-90 * time.Second).Format(http.TimeFormat), 0},
		{now.Add(24 * time.Hour).Format(time.RFC850), MaxRetryAfter},
	}
	for _, tc := range tests {
		if got := parseRetryAfter(tc.in, now); got != tc.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestErrorNeverContainsToken(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"error":"bad credential `+r.Header.Get("Authorization")+`"}`)
	}))
	t.Cleanup(srv.Close)
	c := newTestClient(t, srv.URL)
	_, err := c.NextTask(t.Context(), "a-1", 0)
	if !IsUnauthorized(err) {
		t.Fatalf("err = %v, want 401", err)
	}
	if strings.Contains(err.Error(), testToken) {
		t.Errorf("error leaks the token: %v", err)
	}
}

func TestBodySizeLimit(t *testing.T) {
	t.Parallel()
	padded := `{"agent_id":"a-1"}` + strings.Repeat(" ", MaxResponseBytes-len(`{"agent_id":"a-1"}`))
	tests := []struct {
		name     string
		resp     canned
		wantErr  error
		wantCode int
	}{
		{name: "exactly the limit is fine", resp: canned{200, padded, nil}},
		{name: "one byte over", resp: canned{200, padded + " ", nil}, wantErr: ErrResponseTooLarge},
		{name: "huge error body is cut", resp: canned{500, strings.Repeat("x", 2*MaxResponseBytes), nil}, wantCode: 500},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv, _ := newRecordingServer(t, tc.resp)
			_, err := newTestClient(t, srv.URL).Register(t.Context(), RegisterRequest{Hostname: "h"})
			switch {
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) || IsRetryable(err) {
					t.Fatalf("err = %v (retryable %v), want non-retryable %v", err, IsRetryable(err), tc.wantErr)
				}
			case tc.wantCode != 0:
				ae, ok := errors.AsType[*APIError](err)
				if !ok || ae.StatusCode != tc.wantCode {
					t.Fatalf("err = %v, want status %d", err, tc.wantCode)
				}
				if len(ae.Message) > maxMessageBytes+len("…") {
					t.Errorf("message is %d bytes long", len(ae.Message))
				}
			case err != nil:
				t.Fatalf("Register: %v", err)
			}
		})
	}
}

func TestConnectionReuse(t *testing.T) {
	t.Parallel()
	var newConns atomic.Int64
	var n atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch i := n.Add(1); {
		case r.URL.Path == "/agents/register":
			w.WriteHeader(201)
			_, _ = io.WriteString(w, `{"agent_id":"a-1"}`)
		case r.URL.Path == "/tasks/next" && i%2 == 0:
			_, _ = io.WriteString(w, `{"id":"t-1","type":"ECHO","payload":{}}`)
		case r.URL.Path == "/tasks/next":
			w.WriteHeader(http.StatusNoContent)
		case r.URL.Path == "/agents/a-1/heartbeat" && i%3 == 0:
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, strings.Repeat("overloaded ", 500))
		case r.URL.Path == "/agents/a-1/heartbeat":
			_, _ = io.WriteString(w, `{"cancel_task_ids":[]}`)
		case i%4 == 0:
			w.WriteHeader(http.StatusConflict)
			_, _ = io.WriteString(w, `{"error":"final"}`)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			newConns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)

	c := newTestClient(t, srv.URL)
	ctx := t.Context()
	for i := range 50 {
		var err error
		switch i % 4 {
		case 0:
			_, err = c.Register(ctx, RegisterRequest{Hostname: "h"})
		case 1:
			_, err = c.Heartbeat(ctx, "a-1", HeartbeatRequest{})
		case 2:
			_, err = c.NextTask(ctx, "a-1", 0)
		case 3:
			err = c.Report(ctx, "t-1", Report{AgentID: "a-1", Status: StatusCompleted})
		}
		if _, isAPI := errors.AsType[*APIError](err); err != nil && !isAPI {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if got := newConns.Load(); got != 1 {
		t.Errorf("opened %d connections for 50 sequential requests, want 1", got)
	}
}

func TestTimeouts(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case started <- struct{}{}:
		default:
		}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })

	t.Run("own timeout is retryable", func(t *testing.T) {
		c := newTestClient(t, srv.URL, func(cfg *Config) { cfg.Timeout = 20 * time.Millisecond })
		_, err := c.Heartbeat(t.Context(), "a-1", HeartbeatRequest{})
		if !errors.Is(err, ErrRequestTimeout) || !IsRetryable(err) {
			t.Fatalf("err = %v, want retryable ErrRequestTimeout", err)
		}
		if errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("own timeout must not look like the caller's deadline: %v", err)
		}
	})
	t.Run("caller cancellation is not retryable", func(t *testing.T) {
		c := newTestClient(t, srv.URL)
		ctx, cancel := context.WithCancel(t.Context())
		go func() {
			<-started
			cancel()
		}()
		_, err := c.NextTask(ctx, "a-1", 10*time.Second)
		if !errors.Is(err, context.Canceled) || IsRetryable(err) {
			t.Fatalf("err = %v, want non-retryable context.Canceled", err)
		}
	})
	t.Run("caller deadline is not retryable", func(t *testing.T) {
		c := newTestClient(t, srv.URL)
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
		defer cancel()
		err := c.Report(ctx, "t-1", Report{AgentID: "a", Status: StatusRunning})
		if !errors.Is(err, context.DeadlineExceeded) || IsRetryable(err) {
			t.Fatalf("err = %v, want non-retryable context.DeadlineExceeded", err)
		}
	})
}

// deadlineTransport records the deadline of each request's context and answers 204.
type deadlineTransport struct {
	mu        sync.Mutex
	remaining []time.Duration
}

func (d *deadlineTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	dl, ok := req.Context().Deadline()
	d.mu.Lock()
	if ok {
		d.remaining = append(d.remaining, time.Until(dl))
	} else {
		d.remaining = append(d.remaining, -1)
	}
	d.mu.Unlock()
	return &http.Response{StatusCode: 204, Body: http.NoBody, Header: http.Header{}, Request: req}, nil
}

func TestLongPollTimeoutIncludesWait(t *testing.T) {
	t.Parallel()
	rt := &deadlineTransport{}
	c := newTestClient(t, "http://orchestrator.invalid/api", func(cfg *Config) {
		cfg.Transport = rt
		cfg.Timeout = 15 * time.Second
	})
	if task, err := c.NextTask(t.Context(), "a-1", 40*time.Second); task != nil || err != nil {
		t.Fatalf("NextTask = %v, %v", task, err)
	}
	if _, err := c.NextTask(t.Context(), "a-1", 0); err != nil {
		t.Fatal(err)
	}
	// Loose bounds: only the order of magnitude matters, not the clock.
	if r := rt.remaining[0]; r <= 40*time.Second || r > 55*time.Second {
		t.Errorf("long poll timeout = %v, want 55s (wait 40s + timeout 15s)", r)
	}
	if r := rt.remaining[1]; r <= 0 || r > 15*time.Second {
		t.Errorf("plain poll timeout = %v, want 15s", r)
	}
}

func TestNetworkErrorsAreRetryable(t *testing.T) {
	t.Parallel()
	t.Run("connection refused", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.NotFoundHandler())
		url := srv.URL
		srv.Close()
		_, err := newTestClient(t, url).NextTask(t.Context(), "a-1", 0)
		if err == nil || !IsRetryable(err) {
			t.Fatalf("err = %v, want retryable", err)
		}
	})
	t.Run("unexpected EOF mid-body", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			conn, buf, err := w.(http.Hijacker).Hijack()
			if err != nil {
				return
			}
			_, _ = buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"agent")
			_ = buf.Flush()
			_ = conn.Close()
		}))
		t.Cleanup(srv.Close)
		_, err := newTestClient(t, srv.URL).Register(t.Context(), RegisterRequest{Hostname: "h"})
		if !errors.Is(err, io.ErrUnexpectedEOF) || !IsRetryable(err) {
			t.Fatalf("err = %v, want retryable unexpected EOF", err)
		}
	})
}

func TestInvalidArgumentsSendNothing(t *testing.T) {
	t.Parallel()
	srv, got := newRecordingServer(t, canned{status: 204})
	c := newTestClient(t, srv.URL)
	ctx := t.Context()
	calls := map[string]func() error{
		"heartbeat empty agent": func() error { _, err := c.Heartbeat(ctx, "", HeartbeatRequest{}); return err },
		"heartbeat bad status":  func() error { _, err := c.Heartbeat(ctx, "a", HeartbeatRequest{Status: "ASLEEP"}); return err },
		"next empty agent":      func() error { _, err := c.NextTask(ctx, "", time.Second); return err },
		"report empty task":     func() error { return c.Report(ctx, "", Report{AgentID: "a", Status: StatusFailed}) },
		"report empty agent":    func() error { return c.Report(ctx, "t", Report{Status: StatusFailed}) },
		"report bad status":     func() error { return c.Report(ctx, "t", Report{AgentID: "a", Status: "DONE"}) },
		"report bad result": func() error {
			return c.Report(ctx, "t", Report{AgentID: "a", Status: StatusCompleted, Result: json.RawMessage(`{`)})
		},
	}
	for name, call := range calls {
		if err := call(); err == nil || IsRetryable(err) {
			t.Errorf("%s: err = %v, want non-retryable error", name, err)
		}
	}
	if n := len(got()); n != 0 {
		t.Errorf("%d requests sent", n)
	}
}

func TestNewClientValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{name: "ok with prefix", cfg: Config{BaseURL: "https://orch.example.com/api/v1/"}},
		{name: "ok plain http", cfg: Config{BaseURL: "http://127.0.0.1:8080", Token: "t"}},
		{name: "empty", cfg: Config{}, wantErr: "BaseURL is required"},
		{name: "scheme", cfg: Config{BaseURL: "ftp://x"}, wantErr: "scheme"},
		{name: "no scheme", cfg: Config{BaseURL: "orch.example.com"}, wantErr: "scheme"},
		{name: "no host", cfg: Config{BaseURL: "https:///api"}, wantErr: "host"},
		{name: "query", cfg: Config{BaseURL: "https://x/?a=1"}, wantErr: "query"},
		{name: "fragment", cfg: Config{BaseURL: "https://x/#f"}, wantErr: "fragment"},
		{name: "user info", cfg: Config{BaseURL: "https://u:hunter2@x/"}, wantErr: "user info"},
		{name: "bad url", cfg: Config{BaseURL: "http://x/%zz"}, wantErr: "invalid BaseURL"},
		{name: "negative timeout", cfg: Config{BaseURL: "http://x", Timeout: -time.Second}, wantErr: "Timeout"},
		{name: "token with newline", cfg: Config{BaseURL: "http://x", Token: "abc\nInjected: 1"}, wantErr: "control characters"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := NewClient(tc.cfg)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("NewClient: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("NewClient error = %v, want it to mention %q", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "Injected") {
				t.Errorf("error leaks a secret: %v", err)
			}
		})
	}
}

// TestWithToken: a client made by WithToken sends its own token and the original keeps its
// own, also while both are used at once; a token that cannot go into a header is refused
// without being shown.
func TestWithToken(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	seen := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.Header.Get("Authorization")]++
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	c := newTestClient(t, srv.URL)
	other, err := c.WithToken("t1")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			cl := []*Client{c, other}[i%2]
			for range 10 {
				if _, err := cl.NextTask(t.Context(), "a-1", 0); err != nil {
					t.Errorf("NextTask: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	want := map[string]int{"Bearer " + testToken: 40, "Bearer t1": 40}
	if diff := cmp.Diff(want, seen); diff != "" {
		t.Errorf("Authorization headers (-want +got):\n%s", diff)
	}
	if _, err := c.WithToken("bad\nsecret-value"); err == nil || strings.Contains(err.Error(), "secret-value") {
		t.Errorf("WithToken of a token with a newline: err %v, want a refusal that does not show it", err)
	}
}

func TestBootIDIsFreshPerClient(t *testing.T) {
	t.Parallel()
	a, b := newTestClient(t, "http://x", func(c *Config) { c.BootID = "" }), newTestClient(t, "http://x", func(c *Config) { c.BootID = "" })
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	if !uuid.MatchString(a.BootID()) || a.BootID() == b.BootID() {
		t.Errorf("boot ids %q and %q: want two distinct random UUIDs", a.BootID(), b.BootID())
	}
}

func TestCustomUserAgentAndEmptyToken(t *testing.T) {
	t.Parallel()
	srv, got := newRecordingServer(t, canned{status: 204})
	c := newTestClient(t, srv.URL, func(cfg *Config) { cfg.UserAgent = "letsbe-agent/0.3.0"; cfg.Token = "" })
	if _, err := c.NextTask(t.Context(), "a-1", 0); err != nil {
		t.Fatal(err)
	}
	want := []recorded{{Method: "GET", RequestURI: "/tasks/next?agent_id=a-1&boot_id=boot-1", Accept: "application/json", UserAgent: "letsbe-agent/0.3.0"}}
	if diff := cmp.Diff(want, got()); diff != "" {
		t.Errorf("request (-want +got):\n%s", diff)
	}
}
