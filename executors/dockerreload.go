package executors

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// DockerReload is the DOCKER_RELOAD executor: a health-gated deploy of a Compose project with
// automatic rollback to the last known good revision. It implements [Executor].
type DockerReload struct{ c *composeCore }

// NewDockerReload returns a DOCKER_RELOAD executor.
func NewDockerReload(cfg DockerReloadConfig) (*DockerReload, error) {
	c, err := newComposeCore(cfg)
	if err != nil {
		return nil, err
	}
	return &DockerReload{c: c}, nil
}

// dockerReloadPayload is the DOCKER_RELOAD task payload.
type dockerReloadPayload struct {
	ComposePath        string   `json:"compose_path"`
	Pull               bool     `json:"pull"`
	Services           []string `json:"services"`
	TimeoutSeconds     float64  `json:"timeout_seconds"`
	WaitTimeoutSeconds float64  `json:"wait_timeout_seconds"`
	Rollback           *bool    `json:"rollback"`
	DryRun             bool     `json:"dry_run"`
}

// DockerReloadResult is the result of a DOCKER_RELOAD (and COMPOSE_ROLLBACK) task.
type DockerReloadResult struct {
	// Project is the Compose project name.
	Project string `json:"project"`
	// Revision is the revision deployed (or attempted); the last known good one when
	// nothing changed.
	Revision int `json:"revision"`
	// Changed is set when the files or configuration differ from the last known good
	// revision.
	Changed bool `json:"changed"`
	// Services are the affected services as last observed.
	Services []ServiceStatus `json:"services"`
	// RolledBack is set when the deploy failed and the previous revision was put back;
	// RollbackRevision names it and RollbackHealthy tells whether it passed the gate.
	RolledBack       bool `json:"rolled_back"`
	RollbackRevision int  `json:"rollback_revision,omitempty"`
	RollbackHealthy  bool `json:"rollback_healthy"`
	// DryRun, for dry_run: what docker compose would do, by container.
	DryRun *DryRunPlan `json:"dry_run,omitempty"`
	// Process is the docker compose commands' part, flattened into the result's JSON:
	// the exit status of the last one run, their output (stdout and stderr, capped as for
	// SHELL, with every env file value masked; non-UTF-8 output as [EncodeOutput] says),
	// whether an output was longer than the cap, and how long the task took.
	Process ProcessResult `json:"-"`
}

// MarshalJSON writes the result with the fields of Process among its own.
func (r DockerReloadResult) MarshalJSON() ([]byte, error) {
	type fields DockerReloadResult
	return withProcess(fields(r), r.Process)
}

// DryRunPlan is what a dry run found.
type DryRunPlan struct {
	Create   []string `json:"create"`
	Recreate []string `json:"recreate"`
	Remove   []string `json:"remove"`
	// LastGoodRevision is the last known good revision compared with (0: none).
	LastGoodRevision int `json:"last_good_revision"`
}

// Execute implements [Executor] for a payload
// {"compose_path": "/opt/letsbe/app/docker-compose.yml", "pull"?: false, "services"?: ["web"],
// "timeout_seconds"?: 600, "wait_timeout_seconds"?: 120, "rollback"?: true, "dry_run"?: false}.
// The result is a [*DockerReloadResult], also with an error.
func (d *DockerReload) Execute(ctx context.Context, payload json.RawMessage) (any, error) {
	var p dockerReloadPayload
	if err := DecodePayload(payload, &p); err != nil {
		return nil, err
	}
	timeout, err := TimeoutSeconds("timeout_seconds", p.TimeoutSeconds)
	if err != nil {
		return nil, err
	}
	wait, err := TimeoutSeconds("wait_timeout_seconds", p.WaitTimeoutSeconds)
	if err != nil {
		return nil, err
	}
	for _, s := range p.Services {
		if s == "" {
			return nil, InvalidPayloadf("services: an empty service name")
		}
	}
	ctx, cancel := WithTimeout(ctx, timeout)
	defer cancel()
	return d.c.deploy(ctx, deployRequest{
		path: p.ComposePath, pull: p.Pull, services: p.Services, wait: wait,
		rollback: p.Rollback == nil || *p.Rollback, dryRun: p.DryRun,
	})
}

type deployRequest struct {
	path     string
	pull     bool
	services []string
	wait     time.Duration
	rollback bool
	dryRun   bool
}

// deploy is DOCKER_RELOAD: steps 1-9 of the deploy.
func (c *composeCore) deploy(ctx context.Context, req deployRequest) (*DockerReloadResult, error) {
	started := time.Now()
	rep := ReporterFrom(ctx)
	lp, err := c.load(ctx, req.path)
	if err != nil {
		return nil, err
	}
	services, err := selectServices(lp.project, req.services)
	if err != nil {
		return nil, err
	}
	if lp.project, err = lp.project.WithServicesEnabled(services...); err != nil {
		return nil, err
	}
	name := lp.project.Name
	shown := append([]string{name}, lp.project.ServiceNames()...) // names the result shows anyway
	mask := maskerOf(lp.values, shown)
	// docker's output also streams as it comes (Progress): the same values are masked there.
	prog := ProgressFrom(ctx)
	prog.Mask(maskValues(lp.values, shown)...)
	res := &DockerReloadResult{Project: name, Process: ProcessResult{ExitCode: -1}}
	l := &runLog{res: res, mask: mask}
	defer l.finish(started)
	prog.Event(EventValidated, fmt.Sprintf("project %s is valid and allowed by the compose policy (%d services)", name, len(services)))

	unlock := pathLocks.lock("stack:" + name)
	defer unlock()
	state, err := newStackState(c.stateDir, name, c.revisions)
	if err != nil {
		return res, err
	}
	idx, err := state.index()
	if err != nil {
		return res, err
	}
	good, err := state.revision(idx.LastGood)
	if err != nil {
		return res, err
	}
	res.Changed = good == nil || good.Hash != lp.hash
	res.Revision = idx.Next
	if !res.Changed {
		res.Revision = good.Revision
	}
	upArgs := append([]string{"up", "-d", "--remove-orphans"}, explicit(req.services, services)...)

	if req.dryRun {
		plan := &DryRunPlan{}
		if good != nil {
			plan.LastGoodRevision = good.Revision
		}
		if err := c.compose(ctx, l, lp, nil, append([]string{"--dry-run"}, upArgs...)...); err != nil {
			return res, err
		}
		*plan = parseDryRun(l.stdout.String()+"\n"+l.stderr.String(), name, plan.LastGoodRevision)
		res.DryRun = plan
		return res, nil
	}

	rep.Condition(ConditionProgressing, true, "Deploying", fmt.Sprintf("deploying revision %d of %s", res.Revision, name))
	before, err := c.containers(ctx, name)
	if err != nil {
		return res, err
	}
	if req.pull {
		if err := c.compose(ctx, l, lp, nil, append([]string{"pull"}, explicit(req.services, services)...)...); err != nil {
			rep.Condition(ConditionProgressing, false, "PullFailed", "pull failed; nothing was changed")
			return res, fmt.Errorf("%w (nothing was changed)", err)
		}
		prog.Event(EventPulled, "images pulled")
	}
	if err := c.compose(ctx, l, lp, nil, upArgs...); err != nil {
		return res, c.afterFailure(ctx, l, rep, prog, state, good, req, err)
	}
	prog.Event(EventStarted, fmt.Sprintf("docker compose up -d done; waiting for %s", strings.Join(services, ", ")))

	g := &gate{core: c, project: lp.project, services: services, baseline: restartBaseline(before), settle: c.settle, mask: mask}
	budget := cmp.Or(req.wait, g.budget())
	if deadline, ok := ctx.Deadline(); ok && req.rollback && good != nil {
		// Within the task's timeout, leaving the rollback as much time as the wait.
		budget = max(min(budget, time.Until(deadline)/2), time.Second)
	}
	statuses, err := g.wait(ctx, budget)
	res.Services = statuses
	if err != nil {
		var ge *gateError
		if !errors.As(err, &ge) {
			return res, err
		}
		prog.Event(EventUnhealthy, ge.msg)
		return res, c.afterFailure(ctx, l, rep, prog, state, good, req, err)
	}
	prog.Event(EventHealthy, fmt.Sprintf("%s ready", strings.Join(services, ", ")))

	after, err := c.containers(ctx, name)
	if err != nil {
		return res, err
	}
	rev := &stackRevision{
		Revision: res.Revision, Hash: lp.hash, ComposePath: lp.path, ProjectDir: lp.dir,
		Created: time.Now().UTC(), Files: lp.files, Images: imagesOf(after, lp.project.ServiceNames()),
	}
	if !res.Changed && good != nil {
		rev.Created = good.Created
	}
	if err := state.saveGood(rev); err != nil {
		return res, fmt.Errorf("deployed and healthy, but the revision was not recorded: %w", err)
	}
	rep.Condition(ConditionProgressing, false, "Succeeded", fmt.Sprintf("revision %d of %s is deployed", res.Revision, name))
	rep.Condition(ConditionAvailable, true, "Healthy", fmt.Sprintf("every service of revision %d is ready", res.Revision))
	return res, nil
}

// afterFailure rolls back to the last known good revision when there is one and rollback is
// asked for, and returns the task's error.
func (c *composeCore) afterFailure(ctx context.Context, l *runLog, rep Reporter, prog Progress, state *stackState, good *stackRevision, req deployRequest, cause error) error {
	rep.Condition(ConditionAvailable, false, "Unhealthy", cause.Error())
	if ctx.Err() != nil {
		return cause
	}
	if good == nil {
		rep.Condition(ConditionProgressing, false, "Failed", "first deploy failed; nothing was removed")
		return fmt.Errorf("%w; no previous revision to roll back to (nothing was removed)", cause)
	}
	if !req.rollback {
		rep.Condition(ConditionProgressing, false, "Failed", "deploy failed; rollback not asked for")
		return fmt.Errorf("%w; not rolled back (rollback: false)", cause)
	}
	l.res.RolledBack, l.res.RollbackRevision = true, good.Revision
	statuses, err := c.rollbackTo(ctx, l, state, good)
	l.res.Services = statuses
	if err != nil {
		rep.Condition(ConditionRolledBack, true, "RollbackFailed", fmt.Sprintf("rollback to revision %d failed", good.Revision))
		rep.Condition(ConditionProgressing, false, "Failed", "deploy and rollback failed")
		return fmt.Errorf("%w; rollback to revision %d failed too: %w", cause, good.Revision, err)
	}
	l.res.RollbackHealthy = true
	prog.Event(EventRolledBack, fmt.Sprintf("rolled back to revision %d, which is healthy", good.Revision))
	rep.Condition(ConditionRolledBack, true, "RolledBack", fmt.Sprintf("rolled back to revision %d, which is healthy", good.Revision))
	rep.Condition(ConditionProgressing, false, "Failed", "deploy failed and was rolled back")
	return fmt.Errorf("%w; rolled back to revision %d, which is healthy", cause, good.Revision)
}

// parseDryRun reads what `docker compose --dry-run up` printed ("Container p-web-1  Recreate").
func parseDryRun(out, project string, lastGood int) DryRunPlan {
	plan := DryRunPlan{LastGoodRevision: lastGood, Create: []string{}, Recreate: []string{}, Remove: []string{}}
	seen := map[string]bool{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(line), "DRY-RUN MODE -"))
		if len(f) < 3 || f[0] != "Container" {
			continue
		}
		name, action := f[1], f[2]
		var list *[]string
		switch action {
		case "Creating", "Create", "Created":
			list = &plan.Create
		case "Recreate", "Recreated":
			list = &plan.Recreate
		case "Removing", "Remove", "Removed":
			list = &plan.Remove
		default:
			continue
		}
		if key := action[:4] + " " + name; !seen[key] {
			seen[key] = true
			*list = append(*list, name)
		}
	}
	return plan
}
