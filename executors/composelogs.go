package executors

import (
	"context"
	"encoding/json"
	"regexp"
	"strconv"
	"time"
)

// ComposeLogs is the COMPOSE_LOGS executor: `docker compose logs` of a project, capped like
// SHELL output, with every env file value of the project masked. It implements [Executor].
type ComposeLogs struct{ c *composeCore }

// NewComposeLogs returns a COMPOSE_LOGS executor.
func NewComposeLogs(cfg DockerReloadConfig) (*ComposeLogs, error) {
	c, err := newComposeCore(cfg)
	if err != nil {
		return nil, err
	}
	return &ComposeLogs{c: c}, nil
}

// ComposeLogsResult is the result of a COMPOSE_LOGS task.
type ComposeLogsResult struct {
	Project string `json:"project"`
	// Process is `docker compose logs`, flattened into the result's JSON: its exit status,
	// its output (capped as for SHELL, masked; non-UTF-8 output as [EncodeOutput] says),
	// whether an output was longer than the cap, and how long it took.
	Process ProcessResult `json:"-"`
}

// MarshalJSON writes the result with the fields of Process among its own.
func (r ComposeLogsResult) MarshalJSON() ([]byte, error) {
	type fields ComposeLogsResult
	return withProcess(fields(r), r.Process)
}

// DefaultComposeLogsTail is the lines per service COMPOSE_LOGS returns when the payload sets
// no tail.
const DefaultComposeLogsTail = 200

// sincePattern is what docker accepts for --since: a duration (10m, 1h30m) or a timestamp.
var sincePattern = regexp.MustCompile(`^[0-9][0-9A-Za-z:.+-]{0,63}$`)

// Execute implements [Executor] for a payload
// {"compose_path": "...", "services"?: ["web"], "tail"?: 200, "since"?: "10m"}.
func (g *ComposeLogs) Execute(ctx context.Context, payload json.RawMessage) (any, error) {
	var p struct {
		ComposePath string   `json:"compose_path"`
		Services    []string `json:"services"`
		Tail        *int     `json:"tail"`
		Since       string   `json:"since"`
	}
	if err := DecodePayload(payload, &p); err != nil {
		return nil, err
	}
	tail := DefaultComposeLogsTail
	if p.Tail != nil {
		if *p.Tail < 0 || *p.Tail > 100000 {
			return nil, InvalidPayloadf("tail %d is out of range (0 to 100000)", *p.Tail)
		}
		tail = *p.Tail
	}
	if p.Since != "" && !sincePattern.MatchString(p.Since) {
		return nil, InvalidPayloadf("since %q is not a duration (10m) or a timestamp", p.Since)
	}
	lp, err := loadComposeProject(ctx, g.c.roots, g.c.maxBytes, p.ComposePath, g.c.childEnv())
	if err != nil {
		return nil, err
	}
	services, err := selectServices(lp.project, p.Services)
	if err != nil {
		return nil, err
	}
	started := time.Now()
	res := &DockerReloadResult{Process: ProcessResult{ExitCode: -1}}
	shown := append([]string{lp.project.Name}, lp.project.ServiceNames()...)
	ProgressFrom(ctx).Mask(maskValues(lp.values, shown)...)
	l := &runLog{res: res, mask: maskerOf(lp.values, shown)}
	args := []string{"logs", "--no-color", "--tail=" + strconv.Itoa(tail)}
	if p.Since != "" {
		args = append(args, "--since="+p.Since)
	}
	args = append(args, explicit(p.Services, services)...)
	err = g.c.compose(ctx, l, lp, nil, args...)
	l.finish(started)
	return &ComposeLogsResult{Project: lp.project.Name, Process: res.Process}, err
}
