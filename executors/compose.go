package executors

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/template"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/go-logr/logr"
	"github.com/sirupsen/logrus"
)

// DockerReloadConfig configures a [DockerReload].
type DockerReloadConfig struct {
	// Roots are the directories a compose file must lie in.
	Roots []string
	// MaxBytes caps the size of the project's .env; default
	// DefaultMaxFileBytes.
	MaxBytes int64
	// Docker is the docker CLI: a name looked up in the child's PATH, or an
	// absolute path. Default "docker".
	Docker string
	// Process runs docker; nil means NewProcess(ProcessConfig{}). Its
	// environment is also the only one the compose file is interpolated
	// with, besides the project's .env: the agent's own never is.
	Process *Process
}

// DockerReload is the DOCKER_RELOAD executor: it validates a Compose project
// with compose-go, then runs `docker compose pull` (when asked) and
// `docker compose up -d --remove-orphans`. It implements [Executor].
type DockerReload struct {
	roots    *fileRoots
	maxBytes int64
	docker   string
	proc     *Process
}

// NewDockerReload returns a DOCKER_RELOAD executor.
func NewDockerReload(cfg DockerReloadConfig) (*DockerReload, error) {
	roots, err := newFileRoots(cfg.Roots)
	if err != nil {
		return nil, err
	}
	docker := cmp.Or(cfg.Docker, "docker")
	if strings.Contains(docker, "/") && !filepath.IsAbs(docker) {
		return nil, fmt.Errorf("docker binary %q: want a name or an absolute path", docker)
	}
	proc := cfg.Process
	if proc == nil {
		proc = NewProcess(ProcessConfig{})
	}
	return &DockerReload{roots: roots, maxBytes: maxBytesOrDefault(cfg.MaxBytes), docker: docker, proc: proc}, nil
}

// dockerReloadPayload is the DOCKER_RELOAD task payload.
type dockerReloadPayload struct {
	ComposePath    string   `json:"compose_path"`
	Pull           bool     `json:"pull"`
	Services       []string `json:"services"`
	TimeoutSeconds float64  `json:"timeout_seconds"`
}

// DockerReloadResult is the result of a DOCKER_RELOAD task.
type DockerReloadResult struct {
	// Project is the Compose project name.
	Project string `json:"project"`
	// Services are the services brought up: the ones asked for, or all.
	Services []string `json:"services"`
	// ExitCode is the exit status of the last docker command run.
	ExitCode int `json:"exit_code"`
	// Stdout and Stderr are the output of the docker commands, capped as
	// for SHELL, with the project's .env values masked.
	Stdout string `json:"stdout"`
	Stderr string `json:"stderr"`
	// Truncated is set when an output was longer than the cap.
	Truncated bool `json:"truncated"`
}

// Execute implements [Executor] for a payload
// {"compose_path": "/opt/letsbe/app/docker-compose.yml", "pull"?: false, "services"?: ["web"], "timeout_seconds"?: 600}.
// The result is a [*DockerReloadResult]; on a non-zero exit it comes with
// an [*ExitError].
func (d *DockerReload) Execute(ctx context.Context, payload json.RawMessage) (any, error) {
	var p dockerReloadPayload
	if err := DecodePayload(payload, &p); err != nil {
		return nil, err
	}
	timeout, err := payloadTimeout(p.TimeoutSeconds)
	if err != nil {
		return nil, err
	}
	for _, s := range p.Services {
		if s == "" {
			return nil, InvalidPayloadf("services: an empty service name")
		}
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, timeout, &TimeoutError{After: timeout})
		defer cancel()
	}

	cp, err := d.openProject(p.ComposePath)
	if err != nil {
		return nil, err
	}
	project, err := cp.load(ctx, d.childEnv())
	if err != nil {
		return nil, err
	}
	services, err := selectServices(project, p.Services)
	if err != nil {
		return nil, err
	}
	res := &DockerReloadResult{Project: project.Name, Services: services, ExitCode: -1}
	// Names the result shows anyway are not masked in the output.
	mask := cp.masker(append([]string{project.Name}, services...))
	// docker's output also streams as it comes (Progress): the same values are masked there.
	ProgressFrom(ctx).Mask(maskValues(cp.values, append([]string{project.Name}, services...))...)

	base := []string{d.docker, "compose", "-f", cp.path, "--project-directory", cp.dir, "-p", project.Name}
	var stdout, stderr strings.Builder
	run := func(args ...string) error {
		argv := append(slices.Clone(base), args...)
		if len(p.Services) > 0 {
			argv = append(argv, services...)
		}
		pr, err := d.proc.Run(ctx, Command{Argv: argv, Dir: cp.dir})
		stdout.WriteString(pr.Stdout)
		stderr.WriteString(pr.Stderr)
		res.ExitCode, res.Truncated = pr.ExitCode, res.Truncated || pr.Truncated
		if err != nil {
			var exitErr *ExitError
			if errors.As(err, &exitErr) {
				return fmt.Errorf("docker compose %s: %w", args[0], err)
			}
			return err
		}
		return nil
	}
	if p.Pull {
		err = run("pull")
	}
	if err == nil {
		err = run("up", "-d", "--remove-orphans")
	}
	res.Stdout, res.Stderr = mask(stdout.String()), mask(stderr.String())
	return res, err
}

// payloadTimeout validates a task's own timeout_seconds, as SHELL does.
func payloadTimeout(secs float64) (time.Duration, error) {
	switch {
	case secs < 0:
		return 0, InvalidPayloadf("timeout_seconds %v is negative", secs)
	case secs > float64(maxTimeoutSeconds):
		return 0, InvalidPayloadf("timeout_seconds %v is too large", secs)
	case secs > 0:
		return max(time.Duration(secs*float64(time.Second)), time.Millisecond), nil
	}
	return 0, nil
}

// childEnv is the environment docker runs with, as a map.
func (d *DockerReload) childEnv() map[string]string {
	env := map[string]string{}
	for _, kv := range d.proc.env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	return env
}

// composeProject is a compose file inside the roots, with its .env.
type composeProject struct {
	path    string            // the compose file, cleaned
	dir     string            // its directory: the project directory
	envPath string            // dir/.env
	dotEnv  []byte            // its content, nil if there is none
	values  map[string]string // its values, for masking
}

// openProject checks that the compose file and the project's .env lie in a
// root (through os.Root, so symbolic links cannot lead out) and reads the
// .env.
func (d *DockerReload) openProject(path string) (*composeProject, error) {
	clean, root, rel, err := d.roots.locate("compose_path", path)
	if err != nil {
		return nil, err
	}
	rt, err := openRoot(root)
	if err != nil {
		return nil, err
	}
	defer rt.Close()
	cp := &composeProject{path: clean, dir: filepath.Dir(clean), envPath: filepath.Join(filepath.Dir(clean), ".env")}
	fi, err := rt.Stat(rel)
	switch {
	case isEscape(err):
		return nil, escapeError("compose_path", clean, root)
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("compose file %s does not exist", clean)
	case err != nil:
		return nil, fmt.Errorf("compose file %s: %w", clean, unwrapPathError(err))
	case !fi.Mode().IsRegular():
		return nil, Refusedf("compose_path %q is not a regular file", clean)
	}

	envRel := filepath.Join(filepath.Dir(rel), ".env")
	fi, err = rt.Stat(envRel)
	switch {
	case isEscape(err):
		return nil, escapeError("the project's .env", cp.envPath, root)
	case errors.Is(err, fs.ErrNotExist):
		return cp, nil
	case err != nil:
		return nil, fmt.Errorf("env file %s: %w", cp.envPath, unwrapPathError(err))
	case fi.IsDir():
		return cp, nil // compose-go ignores a directory named .env
	}
	f := &confinedFile{field: "the project's .env", path: cp.envPath, root: root}
	if f.dir, err = rt.OpenRoot(filepath.Dir(rel)); err != nil {
		return nil, f.wrap("open the directory of", err)
	}
	defer f.Close()
	f.name = ".env"
	if cp.dotEnv, err = f.read(d.maxBytes); err != nil {
		return nil, err
	}
	return cp, nil
}

// load loads and validates the project with compose-go, interpolating with
// env (docker's own environment) and the .env, as docker compose does.
// Variables that are not set are errors, not blanks.
func (cp *composeProject) load(ctx context.Context, env map[string]string) (*types.Project, error) {
	environment := types.Mapping(maps.Clone(env))
	if cp.dotEnv != nil {
		// Refuse a broken .env with a message that names lines and keys
		// only; compose-go's would quote the line.
		if _, err := scanEnv(cp.dotEnv); err != nil {
			return nil, fmt.Errorf("env file %s: %w", cp.envPath, err)
		}
		// What cli.WithDotEnv does, from the bytes read inside the root: the
		// process environment wins, and serves references in the file.
		values, err := dotenv.ParseWithLookup(bytes.NewReader(cp.dotEnv), func(k string) (string, bool) {
			v, ok := env[k]
			return v, ok
		})
		if err != nil {
			return nil, fmt.Errorf("env file %s: %s", cp.envPath, maskText(nil, err.Error()))
		}
		cp.values = values
		environment.Merge(values)
	}
	opts, err := cli.NewProjectOptions([]string{cp.path},
		cli.WithWorkingDirectory(cp.dir),
		func(o *cli.ProjectOptions) error { o.Environment = environment; return nil },
		cli.WithDefaultProfiles(),
		cli.WithInterpolation(true),
		cli.WithLoadOptions(strictInterpolation),
	)
	if err != nil {
		return nil, fmt.Errorf("compose project %s: %s", cp.path, maskText(maskValues(cp.values, nil), err.Error()))
	}
	project, err := opts.LoadProject(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		return nil, fmt.Errorf("invalid compose project %s: %s", cp.path, maskText(maskValues(cp.values, nil), err.Error()))
	}
	return project, nil
}

// strictInterpolation makes a reference to a variable that is not set (with
// no default) an error: docker compose would warn and use a blank.
func strictInterpolation(o *loader.Options) {
	if o.Interpolate == nil {
		return
	}
	o.Interpolate.Substitute = func(tmpl string, mapping template.Mapping) (string, error) {
		return template.SubstituteWithOptions(tmpl, mapping, template.WithReplacementFunction(
			func(s string, m template.Mapping, cfg *template.Config) (string, error) {
				var missing string
				recording := func(name string) (string, bool) {
					v, ok := m(name)
					if !ok {
						missing = name
					}
					return v, ok
				}
				template.WithoutLogging(cfg)
				v, applied, err := template.DefaultReplacementAppliedFunc(s, recording, cfg)
				if err == nil && !applied && missing != "" {
					return "", fmt.Errorf("variable %s is not set (set it in the project's .env, or write ${%s:-default})", missing, missing)
				}
				return v, err
			}))
	}
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

// minMaskedLength is the length from which .env values are masked: shorter
// ones (ports, flags, small numbers) are everywhere in messages and are not
// secrets.
const minMaskedLength = 4

// maskValues returns the values to mask: every value of at least
// minMaskedLength bytes except the given names, longest first.
func maskValues(values map[string]string, except []string) []string {
	var out []string
	for _, v := range values {
		if len(v) >= minMaskedLength && !slices.Contains(except, v) && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	slices.SortFunc(out, func(a, b string) int { return cmp.Or(len(b)-len(a), strings.Compare(a, b)) })
	return out
}

// maskText replaces the given values in s with "***", and cuts what
// compose-go's dotenv parser quotes from a broken file.
func maskText(values []string, s string) string {
	if len(values) > 0 {
		pairs := make([]string, 0, 2*len(values))
		for _, v := range values {
			pairs = append(pairs, v, "***")
		}
		s = strings.NewReplacer(pairs...).Replace(s)
	}
	return maskDotenvQuotes(s)
}

// masker returns the masking of docker's output.
func (cp *composeProject) masker(except []string) func(string) string {
	values := maskValues(cp.values, except)
	return func(s string) string { return maskText(values, s) }
}

// maskDotenvQuotes cuts the text that compose-go's dotenv errors quote from
// an env file ("unexpected character ... in variable name <line>",
// "unterminated quoted value <value>"): an env_file of a service can hold
// secrets the .env masking does not know.
func maskDotenvQuotes(s string) string {
	for _, marker := range []string{"unterminated quoted value ", " in variable name "} {
		if i := strings.Index(s, marker); i >= 0 {
			end := strings.IndexByte(s[i+len(marker):], '\n')
			if end < 0 {
				s = s[:i+len(marker)] + "[...]"
			} else {
				s = s[:i+len(marker)] + "[...]" + s[i+len(marker)+end:]
			}
		}
	}
	return s
}

// RouteLogrus sends what libraries log through logrus's standard logger
// (compose-go does) to log: errors as errors, warnings at info level,
// info and debug messages at V(1), trace at V(2); logrus itself writes
// nothing. Call it once at start-up.
func RouteLogrus(log logr.Logger) {
	std := logrus.StandardLogger()
	std.SetOutput(io.Discard)
	std.SetFormatter(discardFormatter{})
	level := logrus.WarnLevel
	if log.V(2).Enabled() {
		level = logrus.TraceLevel
	} else if log.V(1).Enabled() {
		level = logrus.DebugLevel
	}
	std.SetLevel(level)
	std.ReplaceHooks(logrus.LevelHooks{})
	std.AddHook(logrusHook{log: log})
}

// discardFormatter spares formatting entries that are discarded anyway.
type discardFormatter struct{}

func (discardFormatter) Format(*logrus.Entry) ([]byte, error) { return nil, nil }

// logrusHook forwards logrus entries to a logr.Logger.
type logrusHook struct{ log logr.Logger }

func (logrusHook) Levels() []logrus.Level { return logrus.AllLevels }

func (h logrusHook) Fire(e *logrus.Entry) error {
	kv := make([]any, 0, 2*len(e.Data)+2)
	for _, k := range slices.Sorted(maps.Keys(e.Data)) {
		kv = append(kv, k, e.Data[k])
	}
	msg := e.Message
	switch {
	case e.Level <= logrus.ErrorLevel:
		h.log.Error(nil, msg, kv...)
	case e.Level == logrus.WarnLevel:
		h.log.Info(msg, append(kv, "logrusLevel", "warning")...)
	case e.Level <= logrus.DebugLevel:
		h.log.V(1).Info(msg, kv...)
	default:
		h.log.V(2).Info(msg, kv...)
	}
	return nil
}
