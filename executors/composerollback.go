package executors

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"
)

// ComposeRollback is the COMPOSE_ROLLBACK executor: it puts a recorded revision of a Compose
// project back (its files, its exact images) through the same health gate as DOCKER_RELOAD.
// It implements [Executor].
type ComposeRollback struct{ c *composeCore }

// NewComposeRollback returns a COMPOSE_ROLLBACK executor.
func NewComposeRollback(cfg DockerReloadConfig) (*ComposeRollback, error) {
	c, err := newComposeCore(cfg)
	if err != nil {
		return nil, err
	}
	return &ComposeRollback{c: c}, nil
}

type composeRollbackPayload struct {
	ComposePath string `json:"compose_path"`
	Revision    int    `json:"revision"`
}

// Execute implements [Executor] for a payload {"compose_path": "...", "revision"?: 3}
// (default: the revision before the last known good one). The result is a
// [*DockerReloadResult]; on success the revision becomes the last known good one.
func (r *ComposeRollback) Execute(ctx context.Context, payload json.RawMessage) (any, error) {
	var p composeRollbackPayload
	if err := DecodePayload(payload, &p); err != nil {
		return nil, err
	}
	if p.Revision < 0 {
		return nil, InvalidPayloadf("revision %d is negative", p.Revision)
	}
	started := time.Now()
	rep, prog := ReporterFrom(ctx), ProgressFrom(ctx)
	// The current project names the state directory; its files need not be valid any more
	// (a broken deploy is what a rollback repairs), only inside the roots.
	name, err := r.c.projectName(ctx, p.ComposePath)
	if err != nil {
		return nil, err
	}
	unlock := pathLocks.lock("stack:" + name)
	defer unlock()
	state, err := newStackState(r.c.stateDir, name, r.c.revisions)
	if err != nil {
		return nil, err
	}
	idx, err := state.index()
	if err != nil {
		return nil, err
	}
	var rev *stackRevision
	if p.Revision > 0 {
		rev, err = state.revision(p.Revision)
	} else {
		rev, err = state.previous(idx.LastGood)
	}
	if err != nil {
		return nil, err
	}
	if rev == nil {
		kept, _ := state.revisions()
		if p.Revision > 0 {
			return nil, Refusedf("project %s has no revision %d (kept: %v)", name, p.Revision, kept)
		}
		return nil, Refusedf("project %s has no revision before %d to roll back to (kept: %v)", name, idx.LastGood, kept)
	}
	res := &DockerReloadResult{Project: name, Revision: rev.Revision, Changed: rev.Revision != idx.LastGood, Process: ProcessResult{ExitCode: -1}, RolledBack: true, RollbackRevision: rev.Revision}
	l := &runLog{res: res, mask: func(s string) string { return s }}
	defer l.finish(started)
	rep.Condition(ConditionProgressing, true, "RollingBack", fmt.Sprintf("rolling back %s to revision %d", name, rev.Revision))
	statuses, err := r.c.rollbackTo(ctx, l, state, rev)
	res.Services = statuses
	if err != nil {
		rep.Condition(ConditionAvailable, false, "Unhealthy", err.Error())
		rep.Condition(ConditionRolledBack, true, "RollbackFailed", fmt.Sprintf("rollback to revision %d failed", rev.Revision))
		rep.Condition(ConditionProgressing, false, "Failed", "rollback failed")
		return res, fmt.Errorf("rollback of %s to revision %d failed: %w", name, rev.Revision, err)
	}
	res.RollbackHealthy = true
	after, err := r.c.containers(ctx, name)
	if err == nil {
		rev.Images = mergeImages(rev.Images, imagesOf(after, servicesOfStatuses(statuses)))
	}
	if err := state.saveGood(rev); err != nil {
		return res, fmt.Errorf("rolled back and healthy, but the revision was not recorded: %w", err)
	}
	prog.Event(EventRolledBack, fmt.Sprintf("rolled back to revision %d, which is healthy", rev.Revision))
	rep.Condition(ConditionRolledBack, true, "RolledBack", fmt.Sprintf("rolled back to revision %d, which is healthy", rev.Revision))
	rep.Condition(ConditionAvailable, true, "Healthy", fmt.Sprintf("every service of revision %d is ready", rev.Revision))
	rep.Condition(ConditionProgressing, false, "Succeeded", fmt.Sprintf("revision %d of %s is deployed", rev.Revision, name))
	return res, nil
}

func servicesOfStatuses(st []ServiceStatus) []string {
	out := make([]string, 0, len(st))
	for _, s := range st {
		out = append(out, s.Name)
	}
	return out
}

// mergeImages is old with the services of cur that old does not record.
func mergeImages(old, cur map[string]string) map[string]string {
	out := maps.Clone(cur)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, old) // the recorded image wins
	return out
}

// projectName loads the project at path for its name; when the files do not load (a broken
// deploy), the name docker compose would give it: its directory's.
func (c *composeCore) projectName(ctx context.Context, path string) (string, error) {
	lp, err := loadComposeProject(ctx, c.roots, c.maxBytes, path, c.childEnv())
	if err == nil {
		return lp.project.Name, nil
	}
	if IsPermanent(err) || ctx.Err() != nil {
		return "", err
	}
	clean, _, _, lerr := c.roots.locate("compose_path", path)
	if lerr != nil {
		return "", lerr
	}
	return normalizeProjectName(clean), nil
}

// rollbackTo restores rev's files, pins its images, brings it up and waits for it with the
// same gate.
func (c *composeCore) rollbackTo(ctx context.Context, l *runLog, state *stackState, rev *stackRevision) ([]ServiceStatus, error) {
	if err := restoreFiles(c.roots, rev); err != nil {
		return nil, err
	}
	lp, err := c.load(ctx, rev.ComposePath)
	if err != nil {
		return nil, fmt.Errorf("load revision %d: %w", rev.Revision, err)
	}
	shown := append([]string{lp.project.Name}, lp.project.ServiceNames()...)
	ProgressFrom(ctx).Mask(maskValues(lp.values, shown)...)
	outer, inner := l.mask, maskerOf(lp.values, shown)
	l.mask = func(s string) string { return inner(outer(s)) }
	pin, err := state.pinFile(rev)
	if err != nil {
		return nil, err
	}
	var extra []string
	if pin != "" {
		extra = []string{pin}
	}
	before, err := c.containers(ctx, lp.project.Name)
	if err != nil {
		return nil, err
	}
	if err := c.compose(ctx, l, lp, extra, "up", "-d", "--remove-orphans"); err != nil {
		return nil, err
	}
	services := lp.project.ServiceNames()
	slices.Sort(services)
	g := &gate{core: c, project: lp.project, services: services, baseline: restartBaseline(before), settle: c.settle, mask: l.mask}
	statuses, err := g.wait(ctx, g.budget())
	return statuses, err
}
