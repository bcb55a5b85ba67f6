package executors

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
)

// This file holds what the four Compose executors (DOCKER_RELOAD, COMPOSE_STATUS,
// COMPOSE_LOGS, COMPOSE_ROLLBACK) share: their configuration, the core they are built on and
// the one way they run `docker compose`.

// Events and conditions the Compose executors report (see [Reporter]).
const (
	EventValidated  = "Validated"
	EventPulled     = "Pulled"
	EventStarted    = "Started"
	EventHealthy    = "Healthy"
	EventUnhealthy  = "Unhealthy"
	EventRolledBack = "RolledBack"

	ConditionProgressing = "Progressing"
	ConditionAvailable   = "Available"
	ConditionRolledBack  = "RolledBack"
)

// Defaults of [DockerReloadConfig].
const (
	DefaultComposeSettle = 5 * time.Second
	DefaultComposePoll   = 250 * time.Millisecond
)

// DockerReloadConfig configures the Compose executors (DOCKER_RELOAD, COMPOSE_STATUS,
// COMPOSE_LOGS, COMPOSE_ROLLBACK).
type DockerReloadConfig struct {
	// Roots are the directories every file of a project must lie in.
	Roots []string
	// MaxBytes caps the size of every file of a project; default DefaultMaxFileBytes.
	MaxBytes int64
	// Docker is the docker CLI: a name looked up in the child's PATH, or an
	// absolute path. Default "docker".
	Docker string
	// Process runs docker; nil means NewProcess(ProcessConfig{}). Its
	// environment is also the only one the compose file is interpolated
	// with, besides the project's .env: the agent's own never is.
	Process *Process
	// DockerHost and DockerConfig, when set, are docker's DOCKER_HOST and DOCKER_CONFIG.
	DockerHost, DockerConfig string
	// StateDir holds the revisions, in StateDir/stacks/<project>/.
	StateDir string
	// Revisions is how many revisions of a project are kept; default DefaultStackRevisions.
	Revisions int
	// Policy is what a project may ask of the host; BindRoots default to Roots.
	Policy ComposePolicy
	// CurrentPolicy, when set, returns the policy in force for each task instead of Policy
	// (AGENT_POLICY's compose section narrows the settings and is reloaded on SIGHUP); its
	// BindRoots default to Roots too.
	CurrentPolicy func() ComposePolicy
	// Settle is how long a service without a healthcheck must run without restarting to
	// count as ready; default DefaultComposeSettle.
	Settle time.Duration
	// Poll is the interval of container state checks; default DefaultComposePoll.
	Poll time.Duration
}

// composeCore is what the Compose executors share.
type composeCore struct {
	roots     *fileRoots
	maxBytes  int64
	docker    string
	proc      *Process
	stateDir  string
	revisions int
	policy    ComposePolicy
	current   func() ComposePolicy
	fileRoots []string
	settle    time.Duration
	poll      time.Duration
}

func newComposeCore(cfg DockerReloadConfig) (*composeCore, error) {
	roots, err := newFileRoots(cfg.Roots)
	if err != nil {
		return nil, err
	}
	docker := cmp.Or(cfg.Docker, "docker")
	if strings.Contains(docker, "/") && !filepath.IsAbs(docker) {
		return nil, fmt.Errorf("docker binary %q: want a name or an absolute path", docker)
	}
	if err := cfg.Policy.Validate(); err != nil {
		return nil, err
	}
	proc := cfg.Process
	if proc == nil {
		proc = NewProcess(ProcessConfig{})
	}
	var extra []string
	if cfg.DockerHost != "" {
		extra = append(extra, "DOCKER_HOST="+cfg.DockerHost)
	}
	if cfg.DockerConfig != "" {
		extra = append(extra, "DOCKER_CONFIG="+cfg.DockerConfig)
	}
	proc = proc.withEnv(extra...)
	return &composeCore{
		roots: roots, maxBytes: maxBytesOrDefault(cfg.MaxBytes), docker: docker, proc: proc,
		stateDir: cfg.StateDir, revisions: cmp.Or(cfg.Revisions, DefaultStackRevisions),
		policy: cfg.Policy.withDefaults(cfg.Roots), current: cfg.CurrentPolicy, fileRoots: slices.Clone(cfg.Roots),
		settle: cmp.Or(cfg.Settle, DefaultComposeSettle), poll: cmp.Or(cfg.Poll, DefaultComposePoll),
	}, nil
}

// childEnv is the environment docker runs with, as a map.
func (c *composeCore) childEnv() map[string]string {
	env := map[string]string{}
	for _, kv := range c.proc.env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	return env
}

// load loads the project at path inside the roots and applies the policy.
func (c *composeCore) load(ctx context.Context, path string) (*loadedProject, error) {
	lp, err := loadComposeProject(ctx, c.roots, c.maxBytes, path, c.childEnv())
	if err != nil {
		return nil, err
	}
	policy := c.policy
	if c.current != nil {
		policy = c.current().withDefaults(c.fileRoots)
	}
	if err := policy.Check(lp.project); err != nil {
		return nil, err
	}
	return lp, nil
}

// runLog is the docker compose invocations' bookkeeping for the result.
type runLog struct {
	res            *DockerReloadResult
	stdout, stderr strings.Builder
	mask           func(string) string
}

func (l *runLog) finish(started time.Time) {
	out := &l.res.Process
	out.Stdout, out.Stderr = l.mask(l.stdout.String()), l.mask(l.stderr.String())
	out.DurationMS = time.Since(started).Milliseconds()
}

// compose runs `docker compose <files> <args>`.
func (c *composeCore) compose(ctx context.Context, l *runLog, lp *loadedProject, extraFiles []string, args ...string) error {
	argv := []string{c.docker, "compose", "--ansi", "never", "--progress", "plain", "-f", lp.path}
	for _, f := range extraFiles {
		argv = append(argv, "-f", f)
	}
	argv = append(argv, "--project-directory", lp.dir, "-p", lp.project.Name)
	argv = append(argv, args...)
	pr, err := c.proc.Run(ctx, Command{Argv: argv, Dir: lp.dir})
	l.stdout.WriteString(pr.Stdout)
	l.stderr.WriteString(pr.Stderr)
	out := &l.res.Process
	out.ExitCode, out.Truncated = pr.ExitCode, out.Truncated || pr.Truncated
	if err != nil {
		var exitErr *ExitError
		if errors.As(err, &exitErr) {
			return fmt.Errorf("docker compose %s: %w%s", args[0], err, l.maskNote(pr))
		}
		return err
	}
	return nil
}

func (l *runLog) maskNote(pr *ProcessResult) string { return l.mask(stderrNote(pr)) }

// explicit returns the services to name on the command line: none when the payload named
// none (all of them).
func explicit(requested, services []string) []string {
	if len(requested) == 0 {
		return nil
	}
	return services
}

// selectServices checks the requested services against the project and
// returns the ones to bring up: those (once each, in order), or every
// enabled service.
func selectServices(project *types.Project, requested []string) ([]string, error) {
	if len(requested) == 0 {
		return append([]string{}, project.ServiceNames()...), nil
	}
	known := append(project.ServiceNames(), project.DisabledServiceNames()...)
	var out []string
	for _, s := range requested {
		if !slices.Contains(known, s) {
			return nil, Refusedf("service %q is not in compose project %s (services: %s)", s, project.Name, strings.Join(known, ", "))
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out, nil
}
