package executors

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
)

// The readiness rules, in the docker engine's terms. Container state is observed with
// `docker ps -a --filter label=com.docker.compose.project=<p>` and `docker inspect`, not
// `docker compose ps --format json`: the engine's inspect output has been stable for years
// and carries what the gate needs (RestartCount, the health check log, the image ID, the
// start time), while compose's JSON changed shape between releases (an array, then one
// object a line) and lacks the restart count and health log.

// ServiceStatus is the observed state of one service (its first container; a scaled service
// reports the worst one).
type ServiceStatus struct {
	Name     string `json:"name"`
	State    string `json:"state"`            // running, exited, restarting, created, missing ...
	Health   string `json:"health,omitempty"` // healthy, unhealthy, starting; empty without a healthcheck
	ExitCode int    `json:"exit_code"`
	Restarts int    `json:"restarts"`
	Image    string `json:"image"`              // the image reference the container runs
	ImageID  string `json:"image_id,omitempty"` // its image ID
}

// containerInfo is what the gate reads of `docker inspect`.
type containerInfo struct {
	ID           string `json:"Id"`
	Image        string `json:"Image"` // image ID
	RestartCount int    `json:"RestartCount"`
	State        struct {
		Status     string `json:"Status"`
		Restarting bool   `json:"Restarting"`
		ExitCode   int    `json:"ExitCode"`
		StartedAt  string `json:"StartedAt"`
		Health     *struct {
			Status string `json:"Status"`
			Log    []struct {
				ExitCode int    `json:"ExitCode"`
				Output   string `json:"Output"`
			} `json:"Log"`
		} `json:"Health"`
	} `json:"State"`
	Config struct {
		Image  string            `json:"Image"`
		Labels map[string]string `json:"Labels"`
	} `json:"Config"`
	HostConfig struct {
		RestartPolicy struct {
			Name string `json:"Name"`
		} `json:"RestartPolicy"`
	} `json:"HostConfig"`
}

func (c *containerInfo) service() string { return c.Config.Labels["com.docker.compose.service"] }
func (c *containerInfo) oneOff() bool    { return c.Config.Labels["com.docker.compose.oneoff"] == "True" }

// lastHealthOutput is the last health check's output, one line, bounded.
func (c *containerInfo) lastHealthOutput() string {
	h := c.State.Health
	if h == nil || len(h.Log) == 0 {
		return ""
	}
	out := strings.Join(strings.Fields(h.Log[len(h.Log)-1].Output), " ")
	out = Shorten(out, 200)
	if out == "" {
		out = fmt.Sprintf("exit code %d", h.Log[len(h.Log)-1].ExitCode)
	}
	return out
}

// containers returns the project's containers (not one-off ones), by service.
func (c *composeCore) containers(ctx context.Context, project string) (map[string][]containerInfo, error) {
	ctx = quiet(ctx) // inspect shows the containers' environment: it is read, never streamed
	pr, err := c.proc.Run(ctx, Command{Argv: []string{c.docker, "ps", "-a", "-q", "--no-trunc", "--filter", "label=com.docker.compose.project=" + project}})
	if err != nil {
		return nil, fmt.Errorf("docker ps: %w%s", err, stderrNote(pr))
	}
	return c.inspect(ctx, strings.Fields(pr.Stdout))
}

// inspect returns the given containers (not one-off ones), by service.
func (c *composeCore) inspect(ctx context.Context, ids []string) (map[string][]containerInfo, error) {
	ctx = quiet(ctx)
	out := map[string][]containerInfo{}
	if len(ids) == 0 {
		return out, nil
	}
	pr, err := c.proc.Run(ctx, Command{Argv: append([]string{c.docker, "inspect", "--type", "container"}, ids...)})
	if err != nil && pr.Stdout == "" {
		return nil, fmt.Errorf("docker inspect: %w%s", err, stderrNote(pr))
	}
	// A container removed between ps and inspect makes inspect exit 1 with the others' JSON.
	var infos []containerInfo
	if jerr := json.Unmarshal([]byte(pr.Stdout), &infos); jerr != nil {
		if pr.Truncated {
			return nil, fmt.Errorf("docker inspect: output of %d containers larger than the output cap", len(ids))
		}
		return nil, fmt.Errorf("docker inspect: unexpected output: %v", jerr)
	}
	for _, ci := range infos {
		if ci.oneOff() || ci.service() == "" {
			continue
		}
		out[ci.service()] = append(out[ci.service()], ci)
	}
	return out, nil
}

func stderrNote(pr *ProcessResult) string {
	if pr == nil {
		return ""
	}
	s := strings.TrimSpace(pr.Stderr)
	if s == "" {
		return ""
	}
	return ": " + Shorten(s, 300)
}

// gate is one wait for services to be ready.
type gate struct {
	core     *composeCore
	project  *types.Project
	services []string       // the affected services
	baseline map[string]int // restart count per container ID before `up`
	settle   time.Duration
	mask     func(string) string
}

// gateError is a failed wait: the service that failed and why.
type gateError struct {
	msg      string
	statuses []ServiceStatus
}

func (e *gateError) Error() string { return e.msg }

// budget is how long the gate waits: from the healthchecks (start_period + (interval +
// timeout) × retries, docker's defaults for what is not set) plus a margin, or the settle
// period plus a margin without one.
func (g *gate) budget() time.Duration {
	const margin = 15 * time.Second
	budget := g.settle + margin
	for _, name := range g.services {
		s, ok := g.project.Services[name]
		if !ok || s.HealthCheck == nil || s.HealthCheck.Disable {
			continue
		}
		hc := s.HealthCheck
		d := func(p *types.Duration, def time.Duration) time.Duration {
			if p == nil || *p == 0 {
				return def
			}
			return time.Duration(*p)
		}
		retries := 3
		if hc.Retries != nil && *hc.Retries > 0 {
			retries = int(*hc.Retries)
		}
		b := d(hc.StartPeriod, 0) + time.Duration(retries)*(d(hc.Interval, 30*time.Second)+d(hc.Timeout, 30*time.Second)) + margin
		budget = max(budget, b)
	}
	return budget
}

// wait polls the containers until every affected service is ready, one fails, the budget
// runs out or ctx ends. A non-zero exit, a restart or an unhealthy container fails it at
// once.
func (g *gate) wait(ctx context.Context, budget time.Duration) ([]ServiceStatus, error) {
	deadline := time.Now().Add(budget)
	interval := g.core.poll
	var known []string // the containers up -d left: one docker inspect a poll once they are known
	for {
		byService, err := g.poll(ctx, known)
		if err != nil {
			if ctx.Err() != nil {
				return nil, context.Cause(ctx)
			}
			return nil, err
		}
		known = containerIDs(byService)
		for _, name := range g.services {
			if len(byService[name]) == 0 {
				known = nil // a container may still come: look for all of them again
			}
		}
		statuses, pending, failed := g.judge(byService, time.Now())
		if failed != "" {
			return statuses, &gateError{msg: failed, statuses: statuses}
		}
		if pending == "" {
			return statuses, nil
		}
		if time.Now().After(deadline) {
			return statuses, &gateError{msg: fmt.Sprintf("%s after %s", pending, budget.Round(time.Millisecond)), statuses: statuses}
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return statuses, context.Cause(ctx)
		case <-t.C:
		}
	}
}

// poll reads the containers: the known ones with one docker inspect, or (first, or when one
// is gone) all of the project's with docker ps and inspect.
func (g *gate) poll(ctx context.Context, known []string) (map[string][]containerInfo, error) {
	if len(known) > 0 {
		if by, err := g.core.inspect(ctx, known); err == nil && len(containerIDs(by)) == len(known) {
			return by, nil
		}
	}
	return g.core.containers(ctx, g.project.Name)
}

func containerIDs(by map[string][]containerInfo) []string {
	var ids []string
	for _, cs := range by {
		for _, c := range cs {
			ids = append(ids, c.ID)
		}
	}
	slices.Sort(ids)
	return ids
}

// judge applies the readiness rules: it returns the statuses, the first service still
// pending (a reason, empty when all are ready) and the first failure (empty if none).
func (g *gate) judge(byService map[string][]containerInfo, now time.Time) (statuses []ServiceStatus, pending, failed string) {
	for _, name := range g.services {
		cs := byService[name]
		svc := g.project.Services[name]
		if len(cs) == 0 {
			if svc.Deploy != nil && svc.Deploy.Replicas != nil && *svc.Deploy.Replicas == 0 {
				continue
			}
			statuses = append(statuses, ServiceStatus{Name: name, State: "missing", Image: svc.Image})
			if pending == "" {
				pending = fmt.Sprintf("service %s has no container", name)
			}
			continue
		}
		var worst *ServiceStatus
		for _, c := range cs {
			st := statusOf(name, &c)
			p, f := g.judgeContainer(name, &c, svc, now)
			if f != "" && failed == "" {
				failed = f
				worst = &st
			}
			if p != "" && pending == "" {
				pending = p
			}
			if worst == nil {
				worst = &st
			}
		}
		statuses = append(statuses, *worst)
	}
	return statuses, pending, failed
}

func statusOf(name string, c *containerInfo) ServiceStatus {
	st := ServiceStatus{Name: name, State: c.State.Status, ExitCode: c.State.ExitCode, Restarts: c.RestartCount, Image: c.Config.Image, ImageID: c.Image}
	if c.State.Health != nil {
		st.Health = c.State.Health.Status
	}
	return st
}

// judgeContainer returns why a container is not ready yet (pending) or why it failed.
func (g *gate) judgeContainer(name string, c *containerInfo, svc types.ServiceConfig, now time.Time) (pending, failed string) {
	st := c.State
	restarted := c.RestartCount > g.baseline[c.ID]
	switch {
	case st.Restarting || restarted:
		return "", fmt.Sprintf("service %s is restarting (exit code %d, %d restarts)", name, st.ExitCode, c.RestartCount)
	case st.Status == "exited" || st.Status == "dead":
		policy := c.HostConfig.RestartPolicy.Name
		switch {
		case st.ExitCode != 0:
			return "", fmt.Sprintf("service %s exited with code %d", name, st.ExitCode)
		case policy == "" || policy == "no" || strings.HasPrefix(policy, "on-failure"):
			return "", "" // a one-shot service that did its job
		}
		return fmt.Sprintf("service %s exited and is not restarted yet", name), ""
	case st.Status != "running":
		return fmt.Sprintf("service %s is %s", name, st.Status), ""
	case st.Health != nil:
		switch st.Health.Status {
		case "healthy":
			return "", ""
		case "unhealthy":
			return "", fmt.Sprintf("service %s is unhealthy (health check: %s)", name, g.mask(c.lastHealthOutput()))
		}
		if out := c.lastHealthOutput(); out != "" {
			return fmt.Sprintf("service %s is not healthy yet (health check: %s)", name, g.mask(out)), ""
		}
		return fmt.Sprintf("service %s is not healthy yet", name), ""
	}
	started, err := time.Parse(time.RFC3339Nano, st.StartedAt)
	if err != nil || now.Sub(started) < g.settle {
		return fmt.Sprintf("service %s has not been running for %s yet", name, g.settle), ""
	}
	return "", ""
}

// restartBaseline is the restart count of each container of the project now.
func restartBaseline(byService map[string][]containerInfo) map[string]int {
	out := map[string]int{}
	for _, cs := range byService {
		for _, c := range cs {
			out[c.ID] = c.RestartCount
		}
	}
	return out
}

// imagesOf returns each service's image ID.
func imagesOf(byService map[string][]containerInfo, services []string) map[string]string {
	out := map[string]string{}
	for _, s := range services {
		for _, c := range byService[s] {
			if c.Image != "" {
				out[s] = c.Image
				break
			}
		}
	}
	return out
}

// statusesOf reports every service of the project as it is now.
func statusesOf(byService map[string][]containerInfo, services []string) []ServiceStatus {
	var out []ServiceStatus
	for _, name := range services {
		cs := byService[name]
		if len(cs) == 0 {
			out = append(out, ServiceStatus{Name: name, State: "missing"})
			continue
		}
		out = append(out, statusOf(name, &cs[0]))
	}
	slices.SortFunc(out, func(a, b ServiceStatus) int { return strings.Compare(a.Name, b.Name) })
	return out
}
