package executors

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// StackObserver looks at the Compose projects the agent deployed, for the Stack objects: which
// projects have a last known good revision recorded in the state directory
// (StateDir/stacks/<project>/, the durable truth of it), what their containers do now compared
// with that revision, and, for self-healing, putting that revision's containers back through
// the same up and health gate as DOCKER_RELOAD. It observes with the same docker ps and
// docker inspect as the gate and COMPOSE_STATUS, and never records a new revision.
type StackObserver struct{ c *composeCore }

// NewStackObserver returns a StackObserver over the Compose executors' configuration.
func NewStackObserver(cfg DockerReloadConfig) (*StackObserver, error) {
	c, err := newComposeCore(cfg)
	if err != nil {
		return nil, err
	}
	return &StackObserver{c: c}, nil
}

// RecordedStack is the last known good revision of a project, as recorded.
type RecordedStack struct {
	Project     string
	Revision    int
	ComposePath string
}

// Recorded lists the projects that have a last known good revision, ordered by name. A
// project whose record cannot be read is skipped and named in the error, which is returned
// with the others.
func (o *StackObserver) Recorded() ([]RecordedStack, error) {
	if o.c.stateDir == "" {
		return nil, nil
	}
	entries, err := os.ReadDir(filepath.Join(o.c.stateDir, "stacks"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list recorded stacks: %w", err)
	}
	var out []RecordedStack
	var errs []error
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		rec, err := o.LastGood(e.Name())
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if rec != nil {
			out = append(out, *rec)
		}
	}
	slices.SortFunc(out, func(a, b RecordedStack) int { return strings.Compare(a.Project, b.Project) })
	return out, errors.Join(errs...)
}

// LastGood returns the last known good revision of project; nil when none is recorded.
func (o *StackObserver) LastGood(project string) (*RecordedStack, error) {
	_, good, err := o.lastGood(project)
	if err != nil || good == nil {
		return nil, err
	}
	return &RecordedStack{Project: project, Revision: good.Revision, ComposePath: good.ComposePath}, nil
}

func (o *StackObserver) lastGood(project string) (*stackState, *stackRevision, error) {
	state, err := newStackState(o.c.stateDir, project, o.c.revisions)
	if err != nil {
		return nil, nil, err
	}
	idx, err := state.index()
	if err != nil {
		return nil, nil, fmt.Errorf("stack %s: %w", project, err)
	}
	good, err := state.revision(idx.LastGood)
	if err != nil {
		return nil, nil, fmt.Errorf("stack %s: %w", project, err)
	}
	return state, good, nil
}

// StackObservation is what runs of a project, compared with its last known good revision.
type StackObservation struct {
	// Revision is the last known good revision the containers were compared with.
	Revision int
	// Services are the revision's services as observed, ordered by name.
	Services []ServiceStatus
	// NotReady names the services that are not ready (ordered by name); Degraded those of
	// them that are stopped, exited non-zero, restarting, unhealthy or missing (a service
	// whose health check is still starting is not ready, but not degraded).
	NotReady, Degraded []string
	// Drift says how the containers differ from the revision: a missing or stopped
	// container, another image.
	Drift []string
}

// Observe looks at project's containers now. Its error says why they could not be observed
// (no revision recorded, docker failed); it never holds an environment value (inspect output
// is read, never returned).
func (o *StackObserver) Observe(ctx context.Context, project string) (*StackObservation, error) {
	_, good, err := o.lastGood(project)
	if err != nil {
		return nil, err
	}
	if good == nil {
		return nil, fmt.Errorf("stack %s has no last known good revision recorded", project)
	}
	byService, err := o.c.containers(ctx, project)
	if err != nil {
		return nil, err
	}
	return observe(good, byService), nil
}

func observe(good *stackRevision, byService map[string][]containerInfo) *StackObservation {
	services := slices.Sorted(maps.Keys(good.Images))
	obs := &StackObservation{Revision: good.Revision, Services: statusesOf(byService, services), NotReady: []string{}, Degraded: []string{}}
	for _, st := range obs.Services {
		ready, degraded := readiness(st, byService[st.Name])
		if !ready {
			obs.NotReady = append(obs.NotReady, st.Name)
		}
		if degraded {
			obs.Degraded = append(obs.Degraded, st.Name)
		}
	}
	obs.Drift = drift(obs.Services, byService, good)
	return obs
}

// readiness applies the gate's rules to a service as observed, without a baseline: ready when
// running (and healthy, with a healthcheck) or a one-shot service that exited 0; degraded when
// missing, stopped, exited non-zero, restarting or unhealthy.
func readiness(st ServiceStatus, cs []containerInfo) (ready, degraded bool) {
	switch {
	case st.State == "missing":
		return false, true
	case st.State == "restarting" || (len(cs) > 0 && cs[0].State.Restarting):
		return false, true
	case st.State == "exited" && st.ExitCode == 0 && oneShot(cs):
		return true, false
	case st.State != "running":
		return false, true
	case st.Health == "unhealthy":
		return false, true
	case st.Health == "starting":
		return false, false
	}
	return true, false
}

// ErrHealBusy is the error of a Heal that found a deploy, a rollback or another heal of the
// project under way, or a newer last known good revision than the one it was asked to heal
// (a deploy just recorded it): nothing was done, and the next observation tells.
var ErrHealBusy = errors.New("a deploy or rollback of the project is under way")

// Heal puts the containers of project's last known good revision back: its recorded images
// pinned, `docker compose up -d --remove-orphans`, and the same health gate as a deploy. It
// never records a new revision. It refuses when that revision is not revision (a deploy made
// another one meanwhile), when the project's files on disk are no longer the revision's (an
// edit not deployed yet, which a heal must not overwrite), and when a deploy or rollback of
// the project runs (ErrHealBusy). Its error says which service failed the gate; environment
// values are masked.
func (o *StackObserver) Heal(ctx context.Context, project string, revision int) (*StackObservation, error) {
	unlock, ok := pathLocks.tryLock("stack:" + project)
	if !ok {
		return nil, ErrHealBusy
	}
	defer unlock()
	state, good, err := o.lastGood(project)
	if err != nil {
		return nil, err
	}
	if good == nil || good.Revision != revision {
		return nil, fmt.Errorf("stack %s: revision %d is no longer the last known good one: %w", project, revision, ErrHealBusy)
	}
	if err := filesMatch(o.c.roots, good); err != nil {
		return nil, err
	}
	res := &DockerReloadResult{Project: project, Revision: good.Revision}
	l := &runLog{res: res, mask: func(s string) string { return s }}
	if _, err := o.c.rollbackTo(ctx, l, state, good); err != nil {
		return nil, fmt.Errorf("heal of %s (revision %d): %w", project, good.Revision, err)
	}
	byService, err := o.c.containers(ctx, project)
	if err != nil {
		return nil, err
	}
	return observe(good, byService), nil
}

// filesMatch checks that the files of rev are on disk as recorded.
func filesMatch(roots *fileRoots, rev *stackRevision) error {
	for _, f := range rev.Files {
		cf, err := roots.openFile("revision file", f.Path, false)
		if err != nil {
			return err
		}
		cur, err := cf.read(int64(len(f.Data)) + 1)
		_ = cf.Close()
		if err != nil {
			return fmt.Errorf("read %s: %w", f.Path, err)
		}
		if string(cur) != string(f.Data) {
			return Refusedf("%s changed since revision %d was deployed; not healing over it (deploy it with DOCKER_RELOAD)", f.Path, rev.Revision)
		}
	}
	return nil
}
