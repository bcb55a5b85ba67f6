package executors

import (
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
)

// TestGateJudge: the readiness rules on container states a real engine shows only with luck
// of timing (a restart between two polls, an exit 0 of a one-shot service).
func TestGateJudge(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	ct := func(status string, exit, restarts int, health, policy string, startedAgo time.Duration) containerInfo {
		var c containerInfo
		c.ID, c.RestartCount = "c1", restarts
		c.State.Status, c.State.ExitCode = status, exit
		c.State.Restarting = status == "restarting"
		c.State.StartedAt = now.Add(-startedAgo).Format(time.RFC3339Nano)
		if health != "" {
			c.State.Health = &struct {
				Status string `json:"Status"`
				Log    []struct {
					ExitCode int    `json:"ExitCode"`
					Output   string `json:"Output"`
				} `json:"Log"`
			}{Status: health}
			c.State.Health.Log = append(c.State.Health.Log, struct {
				ExitCode int    `json:"ExitCode"`
				Output   string `json:"Output"`
			}{ExitCode: 1, Output: "wget: can't connect\nto remote host"})
		}
		c.HostConfig.RestartPolicy.Name = policy
		c.Config.Labels = map[string]string{"com.docker.compose.service": "web"}
		return c
	}
	tests := []struct {
		name                 string
		c                    *containerInfo
		baseline             int
		wantPending, wantErr string
	}{
		{name: "running, settled", c: ptr(ct("running", 0, 0, "", "always", time.Minute))},
		{name: "running, not settled", c: ptr(ct("running", 0, 0, "", "always", time.Second)), wantPending: "service web has not been running for 5s yet"},
		{name: "healthy", c: ptr(ct("running", 0, 0, "healthy", "always", time.Second))},
		{name: "starting", c: ptr(ct("running", 0, 0, "starting", "always", time.Second)), wantPending: "service web is not healthy yet (health check: wget: can't connect to remote host)"},
		{name: "unhealthy", c: ptr(ct("running", 0, 0, "unhealthy", "always", time.Minute)), wantErr: "service web is unhealthy (health check: wget: can't connect to remote host)"},
		{name: "exited 1", c: ptr(ct("exited", 1, 0, "", "no", time.Minute)), wantErr: "service web exited with code 1"},
		{name: "one-shot exited 0", c: ptr(ct("exited", 0, 0, "", "no", time.Minute))},
		{name: "exited 0, to be restarted", c: ptr(ct("exited", 0, 0, "", "always", time.Minute)), wantPending: "service web exited and is not restarted yet"},
		{name: "restarting", c: ptr(ct("restarting", 1, 2, "", "always", time.Minute)), wantErr: "service web is restarting (exit code 1, 2 restarts)"},
		{name: "restarted between polls", c: ptr(ct("running", 1, 1, "", "always", time.Minute)), wantErr: "service web is restarting (exit code 1, 1 restarts)"},
		{name: "restarts from before the deploy do not count", c: ptr(ct("running", 0, 4, "", "always", time.Minute)), baseline: 4},
		{name: "created", c: ptr(ct("created", 0, 0, "", "always", 0)), wantPending: "service web is created"},
		{name: "missing", wantPending: "service web has no container"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := &gate{
				project:  &types.Project{Name: "p", Services: types.Services{"web": {Name: "web"}}},
				services: []string{"web"}, baseline: map[string]int{"c1": tt.baseline},
				settle: 5 * time.Second, mask: func(s string) string { return s },
			}
			by := map[string][]containerInfo{}
			if tt.c != nil {
				by["web"] = []containerInfo{*tt.c}
			}
			_, pending, failed := g.judge(by, now)
			if pending != tt.wantPending || failed != tt.wantErr {
				t.Errorf("judge = pending %q, failed %q; want %q, %q", pending, failed, tt.wantPending, tt.wantErr)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestGateBudget: from the healthcheck, with docker's defaults for what is not set.
func TestGateBudget(t *testing.T) {
	t.Parallel()
	d := func(x time.Duration) *types.Duration { v := types.Duration(x); return &v }
	retries := uint64(5)
	g := &gate{settle: 5 * time.Second, services: []string{"a", "b"}, project: &types.Project{Services: types.Services{
		"a": {Name: "a", WorkloadSpec: types.WorkloadSpec{HealthCheck: &types.HealthCheckConfig{Interval: d(time.Second), Timeout: d(time.Second), Retries: &retries, StartPeriod: d(10 * time.Second)}}},
		"b": {Name: "b"},
	}}}
	if got, want := g.budget(), 10*time.Second+5*2*time.Second+15*time.Second; got != want {
		t.Errorf("budget = %s, want %s", got, want)
	}
	g.services = []string{"b"}
	if got, want := g.budget(), 20*time.Second; got != want {
		t.Errorf("budget without healthcheck = %s, want %s", got, want)
	}
}
