package executors

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// ComposeStatus is the COMPOSE_STATUS executor: the state of each service of a Compose
// project, its last known good revision and whether what runs drifted from it. It changes
// nothing. It implements [Executor].
type ComposeStatus struct{ c *composeCore }

// NewComposeStatus returns a COMPOSE_STATUS executor.
func NewComposeStatus(cfg DockerReloadConfig) (*ComposeStatus, error) {
	c, err := newComposeCore(cfg)
	if err != nil {
		return nil, err
	}
	return &ComposeStatus{c: c}, nil
}

// ComposeStatusResult is the result of a COMPOSE_STATUS task.
type ComposeStatusResult struct {
	Project  string          `json:"project"`
	Services []ServiceStatus `json:"services"`
	// LastGoodRevision is the last known good revision (0: none recorded).
	LastGoodRevision int `json:"last_good_revision"`
	// Drifted is set when what runs differs from the last known good revision: Drift says
	// how (a missing or stopped container, a different image).
	Drifted bool     `json:"drifted"`
	Drift   []string `json:"drift"`
}

// Execute implements [Executor] for a payload {"compose_path": "..."}.
func (s *ComposeStatus) Execute(ctx context.Context, payload json.RawMessage) (any, error) {
	var p struct {
		ComposePath string `json:"compose_path"`
	}
	if err := DecodePayload(payload, &p); err != nil {
		return nil, err
	}
	lp, err := loadComposeProject(ctx, s.c.roots, s.c.maxBytes, p.ComposePath, s.c.childEnv())
	if err != nil {
		return nil, err
	}
	name := lp.project.Name
	byService, err := s.c.containers(ctx, name)
	if err != nil {
		return nil, err
	}
	res := &ComposeStatusResult{Project: name, Drift: []string{}}
	state, err := newStackState(s.c.stateDir, name, s.c.revisions)
	if err != nil {
		return nil, err
	}
	idx, err := state.index()
	if err != nil {
		return nil, err
	}
	good, err := state.revision(idx.LastGood)
	if err != nil {
		return nil, err
	}
	services := lp.project.ServiceNames()
	if good != nil {
		res.LastGoodRevision = good.Revision
		for svc := range good.Images {
			if !slices.Contains(services, svc) {
				services = append(services, svc)
			}
		}
	}
	slices.Sort(services)
	res.Services = statusesOf(byService, services)
	if good != nil {
		res.Drift = drift(res.Services, byService, good)
		res.Drifted = len(res.Drift) > 0
	}
	return res, nil
}

// drift compares what runs with the last known good revision.
func drift(statuses []ServiceStatus, byService map[string][]containerInfo, good *stackRevision) []string {
	out := []string{}
	for _, st := range statuses {
		want, recorded := good.Images[st.Name]
		if !recorded {
			continue
		}
		switch {
		case st.State == "missing":
			out = append(out, fmt.Sprintf("service %s has no container", st.Name))
			continue
		case st.State != "running" && !(st.State == "exited" && st.ExitCode == 0 && oneShot(byService[st.Name])):
			out = append(out, fmt.Sprintf("service %s is %s (exit code %d)", st.Name, st.State, st.ExitCode))
		}
		for _, c := range byService[st.Name] {
			if c.Image != want {
				out = append(out, fmt.Sprintf("service %s runs image %s, not %s of revision %d", st.Name, shortID(c.Image), shortID(want), good.Revision))
				break
			}
		}
	}
	return out
}

func oneShot(cs []containerInfo) bool {
	for _, c := range cs {
		p := c.HostConfig.RestartPolicy.Name
		if p != "" && p != "no" && !strings.HasPrefix(p, "on-failure") {
			return false
		}
	}
	return true
}

func shortID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
