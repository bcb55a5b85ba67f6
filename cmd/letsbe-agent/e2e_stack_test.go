package main_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/letsbe/sysadmin-agent/internal/testpoll"
	"github.com/letsbe/sysadmin-agent/orchestratorsync/orchestratortest"
)

// stackWaitTimeout bounds the waits of the Stack tests for a heartbeat in a given state: a
// recheck (1 s here), a heal through the health gate and a heartbeat, on a loaded machine.
const stackWaitTimeout = 2 * time.Minute

// waitStack waits for a heartbeat after the first `after` whose stacks satisfy pred for
// project, and returns that stack and the heartbeat's number.
func (o *orchestrator) waitStack(t *testing.T, project string, after int, what string, pred func(orchestratortest.HeartbeatStack) bool) (orchestratortest.HeartbeatStack, int) {
	t.Helper()
	var got orchestratortest.HeartbeatStack
	var n int
	var last []orchestratortest.HeartbeatStack
	testpoll.UntilNil(t, stackWaitTimeout, "a heartbeat with stack "+project+" "+what, func() error {
		agents := o.Agents()
		if len(agents) != 1 {
			return fmt.Errorf("%d agents", len(agents))
		}
		a := agents[0]
		if a.Heartbeats <= after {
			return fmt.Errorf("heartbeat %d, waiting for one after %d", a.Heartbeats, after)
		}
		last = a.LastHeartbeatBody.Stacks
		if last == nil {
			return fmt.Errorf("heartbeat %d has no stacks (a v1.0 heartbeat)", a.Heartbeats)
		}
		for _, st := range last {
			if st.Project == project && pred(st) {
				got, n = st, a.Heartbeats
				return nil
			}
		}
		return fmt.Errorf("last stacks %+v", last)
	})
	return got, n
}

// heartbeats returns the number of heartbeats the orchestrator received.
func (o *orchestrator) heartbeats() int {
	if a := o.Agents(); len(a) == 1 {
		return a[0].Heartbeats
	}
	return 0
}

// inspect returns docker inspect -f format of the project's one container.
func (s *composeStack) inspect(t *testing.T, format string) string {
	t.Helper()
	ids, err := s.docker(t.Context(), "ps", "-a", "-q", "--filter", "label=com.docker.compose.project="+s.name).Output()
	if err != nil || len(strings.Fields(string(ids))) != 1 {
		t.Fatalf("docker ps of %s: %v: %q", s.name, err, ids)
	}
	out, err := s.docker(t.Context(), "inspect", "-f", format, strings.TrimSpace(string(ids))).CombinedOutput()
	if err != nil {
		t.Fatalf("docker inspect: %v: %s", err, out)
	}
	return strings.TrimSpace(string(out))
}

// writeWithSecret writes the compose file with a value from the project's .env in the
// service's environment: a secret that must never reach a heartbeat or a log line.
func (s *composeStack) writeWithSecret(t *testing.T, secret string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(s.dir, ".env"), []byte("API_KEY="+secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	compose := fmt.Sprintf(`services:
  web:
    image: %s
    command: ["httpd", "-f", "-p", "80", "-h", "/www"]
    restart: unless-stopped
    ports: ["127.0.0.1:%d:80"]
    stop_grace_period: 1s
    environment:
      API_KEY: ${API_KEY}
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1/"]
      interval: 300ms
      timeout: 2s
      retries: 3
`, s.image1, s.port)
	if err := os.WriteFile(s.path, []byte(compose), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestE2EStackHeartbeats, through the binary and the reference orchestrator: after a good
// DOCKER_RELOAD the next heartbeats carry the stack, available, at its revision; `docker stop`
// of its container makes it degraded in the next ones. Without AGENT_STACK_SELF_HEAL it stays
// so (the agent never redeploys on its own); with it the service comes back healthy, once,
// and is not restarted again. The project's .env value appears in no heartbeat and no log line.
func TestE2EStackHeartbeats(t *testing.T) {
	t.Parallel()
	for _, selfHeal := range []bool{false, true} {
		t.Run(fmt.Sprintf("selfHeal=%v", selfHeal), func(t *testing.T) {
			t.Parallel()
			s := newComposeStack(t)
			o := startOrchestrator(t, orchestratortest.Options{})
			a := startAgent(t, o, "", append(s.agentEnvironment, "AGENT_STACK_RECHECK_INTERVAL=1s", fmt.Sprintf("AGENT_STACK_SELF_HEAL=%v", selfHeal))...)
			const secret = "s3cret-api-key-value"
			s.writeWithSecret(t, secret)
			if st := o.waitFinal(t, o.enqueue(t, "DOCKER_RELOAD", fmt.Sprintf(`{"compose_path": %q}`, s.path))); st.Status != "COMPLETED" {
				t.Fatalf("deploy: %s %q", st.Status, st.Error)
			}
			got, n := o.waitStack(t, s.name, o.heartbeats(), "available", func(st orchestratortest.HeartbeatStack) bool { return st.Available })
			if got.Revision != 1 || got.DegradedServices == nil || len(got.DegradedServices) != 0 {
				t.Errorf("stack after the deploy = %+v, want revision 1, degraded_services []", got)
			}
			wantMetric(t, a, fmt.Sprintf(`letsbe_agent_stack_available{project=%q} 1`, s.name))

			if out, err := s.docker(t.Context(), "stop", "-t", "1", s.inspect(t, "{{.Id}}")).CombinedOutput(); err != nil {
				t.Fatalf("docker stop: %v: %s", err, out)
			}
			if !selfHeal {
				got, n = o.waitStack(t, s.name, n, "degraded", func(st orchestratortest.HeartbeatStack) bool { return !st.Available })
				if !slices.Equal(got.DegradedServices, []string{"web"}) || got.Revision != 1 {
					t.Errorf("stack after docker stop = %+v, want web degraded at revision 1", got)
				}
				wantMetric(t, a, fmt.Sprintf(`letsbe_agent_stack_available{project=%q} 0`, s.name))
				// Several rechecks later (1 s each; heartbeats every 200 ms) it is still down:
				// nothing redeployed it.
				got, _ = o.waitStack(t, s.name, n+10, "still degraded", func(orchestratortest.HeartbeatStack) bool { return true })
				if got.Available || s.inspect(t, "{{.State.Status}}") != "exited" {
					t.Errorf("without self-healing: stack %+v, container %s", got, s.inspect(t, "{{.State.Status}}"))
				}
			} else {
				// Degraded first (written before the heal starts), then available again.
				got, n = o.waitStack(t, s.name, n, "degraded", func(st orchestratortest.HeartbeatStack) bool { return !st.Available })
				if !slices.Equal(got.DegradedServices, []string{"web"}) {
					t.Errorf("stack after docker stop = %+v, want web degraded", got)
				}
				// The heal is over when the agent says so. Neither the page (httpd answers
				// before its health check passes and the gate sees it) nor a heartbeat tells:
				// on a loaded machine the heal's up, gate and last docker inspect take seconds.
				testpoll.Until(t, stackWaitTimeout, "the agent to log the heal's end", func() bool {
					out := a.Output()
					return strings.Contains(out, "Stack healed") || strings.Contains(out, "Heal failed")
				})
				if !strings.Contains(a.Output(), "Stack healed") {
					t.Fatalf("the heal failed (see the agent's output)")
				}
				_, n = o.waitStack(t, s.name, n, "available again", func(st orchestratortest.HeartbeatStack) bool { return st.Available })
				if got := s.page(t); got != "version 1" {
					t.Errorf("page after the heal = %q", got)
				}
				started := s.inspect(t, "{{.State.StartedAt}} {{.RestartCount}} {{.Id}}")
				// Ten heartbeats and several rechecks later the healed container is the same,
				// never restarted, and it was healed once: no heal loop.
				got, _ = o.waitStack(t, s.name, n+10, "still available", func(orchestratortest.HeartbeatStack) bool { return true })
				if again := s.inspect(t, "{{.State.StartedAt}} {{.RestartCount}} {{.Id}}"); again != started || !got.Available {
					t.Errorf("after the heal: container %s, then %s; stack %+v", started, again, got)
				}
				if healed, heals := strings.Count(a.Output(), "Stack healed"), strings.Count(a.Output(), "Healing the stack's services"); healed != 1 || heals != 1 {
					t.Errorf("%d heals started, %d logged healed, want 1 and 1", heals, healed)
				}
			}
			if strings.Contains(a.Output(), secret) {
				t.Errorf("the agent's log holds the .env value")
			}
			for _, ag := range o.Agents() {
				if strings.Contains(fmt.Sprint(ag.LastHeartbeatBody), secret) {
					t.Errorf("a heartbeat holds the .env value")
				}
			}
		})
	}
}

// wantMetric checks that the agent's /metrics holds line.
func wantMetric(t *testing.T, a *agentProc, line string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+a.httpAddr()+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(body), "\n"+line+"\n") {
		t.Errorf("/metrics lacks %q", line)
	}
}
