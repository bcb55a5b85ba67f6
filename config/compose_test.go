package config_test

import (
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/google/go-cmp/cmp"

	"github.com/letsbe/sysadmin-agent/config"
)

func loadCompose(t *testing.T, env ...string) *types.Project {
	t.Helper()
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	opts, err := cli.NewProjectOptions([]string{filepath.Join(root, "docker-compose.yml")},
		cli.WithWorkingDirectory(root),
		cli.WithEnv(env), // not the test's environment: the file's own defaults
		cli.WithResolvedPaths(true),
		cli.WithConsistency(true),
	)
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(t.Context())
	if err != nil {
		t.Fatalf("load docker-compose.yml: %v", err)
	}
	return p
}

func TestCompose(t *testing.T) {
	t.Parallel()
	p := loadCompose(t)
	root, _ := filepath.Abs(repoRoot)
	df := parseDockerfile(t)

	if diff := cmp.Diff([]string{"agent", "orchestrator"}, p.ServiceNames()); diff != "" {
		t.Fatalf("services (-want +got):\n%s", diff)
	}
	orch, agent := p.Services["orchestrator"], p.Services["agent"]

	for _, s := range []types.ServiceConfig{orch, agent} {
		if s.Build == nil || s.Build.Context != root || s.Build.Dockerfile != "Dockerfile" {
			t.Errorf("service %s builds %+v, want the repository's Dockerfile", s.Name, s.Build)
			continue
		}
		df.stage(t, s.Build.Target) // the target exists
		if s.HealthCheck == nil || len(s.HealthCheck.Test) < 2 || s.HealthCheck.Test[0] != "CMD" ||
			!strings.HasSuffix(s.HealthCheck.Test[len(s.HealthCheck.Test)-1], "/healthz") {
			t.Errorf("service %s healthcheck = %+v, want a CMD probing /healthz", s.Name, s.HealthCheck)
		}
		for _, port := range s.Ports {
			if port.HostIP != "127.0.0.1" {
				t.Errorf("service %s publishes %s on %q, want loopback only", s.Name, port.Published, port.HostIP)
			}
		}
	}
	if got := orch.Build.Target; got != "dev-orchestrator" {
		t.Errorf("orchestrator target = %q", got)
	}
	if got := agent.Build.Target; got != "agent" {
		t.Errorf("agent target = %q", got)
	}
	if dep, ok := agent.DependsOn["orchestrator"]; !ok || dep.Condition != types.ServiceConditionHealthy {
		t.Errorf("agent depends_on = %+v, want orchestrator service_healthy", agent.DependsOn)
	}
	if agent.StopGracePeriod == nil || time.Duration(*agent.StopGracePeriod) < 45*time.Second {
		t.Errorf("agent stop_grace_period = %v, want at least the agent's drain (30s grace + 10s flush)", agent.StopGracePeriod)
	}

	env := map[string]string{}
	var names []string
	for k, v := range agent.Environment {
		if v != nil {
			env[k] = *v
			names = append(names, k)
		}
	}
	checkAgentEnv(t, "docker-compose agent", names, []string{"ORCHESTRATOR_URL", "AGENT_TOKEN", "AGENT_STATE_DIR", "AGENT_HTTP_ADDR"})
	if _, err := config.Load(nil, lookupIn(env), config.ModeRun, nil); err != nil {
		t.Errorf("the agent refuses docker-compose's environment: %v", err)
	}

	// The agent reaches the orchestrator service on the port it listens on.
	u, err := url.Parse(env["ORCHESTRATOR_URL"])
	if err != nil {
		t.Fatal(err)
	}
	if u.Hostname() != "orchestrator" || !slices.Contains(orch.Command, "0.0.0.0:"+u.Port()) {
		t.Errorf("ORCHESTRATOR_URL %s does not name the orchestrator service and its --listen port (command %q)", u, orch.Command)
	}
	// The agent's token is the orchestrator's enrollment token.
	if i := slices.Index(orch.Command, "--enrollment-token"); i < 0 || i+1 >= len(orch.Command) || orch.Command[i+1] != env["AGENT_TOKEN"] {
		t.Errorf("AGENT_TOKEN %q is not the orchestrator's --enrollment-token (command %q)", env["AGENT_TOKEN"], orch.Command)
	}
	// The HTTP listener is published and probed on its port.
	_, port, err := net.SplitHostPort(env["AGENT_HTTP_ADDR"])
	if err != nil {
		t.Fatalf("AGENT_HTTP_ADDR %q: %v", env["AGENT_HTTP_ADDR"], err)
	}
	if !slices.ContainsFunc(agent.Ports, func(p types.ServicePortConfig) bool { return p.Target == mustPort(t, port) }) {
		t.Errorf("AGENT_HTTP_ADDR port %s is not published (ports %+v)", port, agent.Ports)
	}
	if !strings.Contains(strings.Join(agent.HealthCheck.Test, " "), "127.0.0.1:"+port+"/healthz") {
		t.Errorf("agent healthcheck %q does not probe port %s", agent.HealthCheck.Test, port)
	}
	// State and managed files live in volumes.
	for _, target := range []string{env["AGENT_STATE_DIR"], "/opt/letsbe", "/var/run/docker.sock"} {
		if !slices.ContainsFunc(agent.Volumes, func(v types.ServiceVolumeConfig) bool { return v.Target == target }) {
			t.Errorf("agent has no volume at %s (volumes %+v)", target, agent.Volumes)
		}
	}
}

// TestComposeTokenOverride checks that one variable sets both ends of the enrollment token.
func TestComposeTokenOverride(t *testing.T) {
	t.Parallel()
	p := loadCompose(t, "LETSBE_DEV_TOKEN=from-env", "DOCKER_GID=998")
	agent, orch := p.Services["agent"], p.Services["orchestrator"]
	if got := agent.Environment["AGENT_TOKEN"]; got == nil || *got != "from-env" {
		t.Errorf("agent AGENT_TOKEN = %v, want from-env", got)
	}
	if !slices.Contains(orch.Command, "from-env") {
		t.Errorf("orchestrator command %q lacks the token", orch.Command)
	}
	if diff := cmp.Diff([]string{"998"}, agent.GroupAdd); diff != "" {
		t.Errorf("group_add (-want +got):\n%s", diff)
	}
}

func lookupIn(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := env[k]; return v, ok }
}

func mustPort(t *testing.T, s string) uint32 {
	t.Helper()
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		t.Fatalf("port %q: %v", s, err)
	}
	return uint32(n)
}
