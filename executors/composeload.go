package executors

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/compose-spec/compose-go/v2/consts"
	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/template"
	"github.com/compose-spec/compose-go/v2/types"
	"sigs.k8s.io/yaml"
)

// loadedProject is a Compose project loaded inside the file roots: compose-go's model and
// every file it was read from.
type loadedProject struct {
	project *types.Project
	path    string      // the compose file
	dir     string      // the project directory
	files   []stackFile // every file read, the compose file first
	values  map[string]string
	hash    string // sha256 of the files and of the normalized configuration
}

// stackFile is one file of a project, as read.
type stackFile struct {
	Path string      `json:"path"`
	Data []byte      `json:"data"`
	Mode fs.FileMode `json:"mode"`
	info fs.FileInfo // as read, to notice a change during the load
}

// composeLoader reads every file of a project through the file roots, for compose-go: the
// compose file, its .env, include files and their env files, extends files, and the services'
// env_file and label_file. Each must be a regular file (checked without opening it for a
// blocking read: a FIFO or a device is refused as such) of at most maxBytes.
type composeLoader struct {
	roots    *fileRoots
	maxBytes int64
	dir      string                // the project directory
	files    map[string]*stackFile // by path
	order    []string
	values   map[string]string // env file values, for masking
	last     map[string]string // the path each raw reference last resolved to (Dir)
}

func newComposeLoader(roots *fileRoots, maxBytes int64) *composeLoader {
	return &composeLoader{roots: roots, maxBytes: maxBytes, files: map[string]*stackFile{}, values: map[string]string{}, last: map[string]string{}}
}

// errNotFound marks a file that does not exist (an optional env file may not).
var errNotFound = errors.New("does not exist")

// read returns the content of the file at path (what for: "compose file", "env_file" ...),
// reading it inside the roots once.
func (l *composeLoader) read(what, path string) ([]byte, error) {
	clean := filepath.Clean(path)
	if f, ok := l.files[clean]; ok {
		return f.Data, nil
	}
	if l.roots == nil || len(l.roots.roots) == 0 {
		return nil, Refusedf("%s %q: no file roots are configured (AGENT_FILE_ROOTS)", what, path)
	}
	f, err := l.roots.openFile(what, clean, false)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.dir.Stat(f.name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("%s %s %w", what, clean, errNotFound)
	case err != nil:
		return nil, f.wrap("stat", err)
	case fi.IsDir():
		return nil, Refusedf("%s %q is not a regular file (a directory)", what, clean)
	case !fi.Mode().IsRegular():
		return nil, Refusedf("%s %q is not a regular file (%s): only regular files are read", what, clean, fileKind(fi.Mode()))
	case fi.Size() > l.maxBytes:
		return nil, Refusedf("%s %q is %d bytes, larger than the limit of %d bytes (AGENT_MAX_FILE_BYTES)", what, clean, fi.Size(), l.maxBytes)
	}
	data, err := f.read(l.maxBytes)
	if err != nil {
		return nil, err
	}
	l.files[clean] = &stackFile{Path: clean, Data: data, Mode: fi.Mode().Perm(), info: fi}
	l.order = append(l.order, clean)
	return data, nil
}

// isDir reports whether path is a directory inside the roots.
func (l *composeLoader) isDir(path string) bool {
	f, err := l.roots.openFile("file", path, false)
	if err != nil {
		return false
	}
	defer f.Close()
	fi, err := f.dir.Stat(f.name)
	return err == nil && fi.IsDir()
}

// fileKind names a non-regular file type for messages.
func fileKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	}
	return "mode " + m.String()
}

// readEnv reads an env file and records its values for masking. A missing optional file
// gives nil.
func (l *composeLoader) readEnv(what, path string, optional bool, lookup func(string) (string, bool)) (map[string]string, error) {
	data, err := l.read(what, path)
	if optional && errors.Is(err, errNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	// Refuse a broken file with a message that names lines and keys only; compose-go's would
	// quote the line.
	if _, err := scanEnv(data); err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, path, err)
	}
	values, err := dotenv.ParseWithLookup(bytes.NewReader(data), lookup)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %s", what, path, maskText(nil, err.Error()))
	}
	maps.Copy(l.values, values)
	return values, nil
}

// changed reports the first file that changed since it was read (a race with the load).
func (l *composeLoader) changed() error {
	for _, p := range l.order {
		f := l.files[p]
		cf, err := l.roots.openFile("file", p, false)
		if err != nil {
			return err
		}
		fi, err := cf.dir.Stat(cf.name)
		_ = cf.Close()
		if err != nil || !os.SameFile(fi, f.info) || fi.Size() != f.info.Size() || !fi.ModTime().Equal(f.info.ModTime()) {
			return fmt.Errorf("%s changed while the project was loaded; try again", p)
		}
	}
	return nil
}

// Accept implements loader.ResourceLoader: every reference is a file in the roots (no remote
// resources: git and OCI references end as files that do not exist).
func (l *composeLoader) Accept(string) bool { return true }

// Load implements loader.ResourceLoader for include and extends files: the file is read here,
// inside the roots (compose-go reads it again by path; changed() notices a swap), and the env
// files of its own include entries are checked the same way before compose-go reads them.
func (l *composeLoader) Load(ctx context.Context, p string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", context.Cause(ctx)
	}
	abs := p
	if !filepath.IsAbs(p) {
		base := l.dir
		if f, ok := ctx.Value(consts.ComposeFileKey{}).(string); ok && filepath.IsAbs(f) {
			base = filepath.Dir(f)
		}
		abs = filepath.Join(base, p)
	}
	abs = filepath.Clean(abs)
	data, err := l.read("compose file", abs)
	if err != nil {
		return "", err
	}
	if err := l.checkIncludes(abs, data); err != nil {
		return "", err
	}
	l.last[p] = abs
	return abs, nil
}

// Dir implements loader.ResourceLoader: the directory of the file a reference resolved to.
func (l *composeLoader) Dir(p string) string {
	if abs, ok := l.last[p]; ok {
		return filepath.Dir(abs)
	}
	if filepath.IsAbs(p) {
		return filepath.Dir(p)
	}
	return filepath.Join(l.dir, filepath.Dir(p))
}

// includeEntry is what checkIncludes needs of an include entry.
type includeEntry struct {
	Path             any `json:"path"`
	EnvFile          any `json:"env_file"`
	ProjectDirectory any `json:"project_directory"`
}

// checkIncludes reads, inside the roots, the env files the include entries of a compose file
// name (or the .env next to each included file), which compose-go reads by itself.
func (l *composeLoader) checkIncludes(file string, data []byte) error {
	var doc struct {
		Include []json.RawMessage `json:"include"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		// What compose-go would read cannot be told: nothing is read.
		return fmt.Errorf("invalid compose project %s: %w", file, err)
	}
	dir := filepath.Dir(file)
	for i, raw := range doc.Include {
		var e includeEntry
		var short string
		if json.Unmarshal(raw, &short) == nil {
			e.Path = short
		} else if err := json.Unmarshal(raw, &e); err != nil {
			return Refusedf("compose file %s: include entry %d is neither a path nor a mapping of path, env_file", file, i+1)
		}
		if e.ProjectDirectory != nil {
			return Refusedf("compose file %s: include project_directory is not supported (the included file's directory is its project directory)", file)
		}
		paths, envFiles := stringList(e.Path), stringList(e.EnvFile)
		for _, s := range append(slices.Clone(paths), envFiles...) {
			if strings.Contains(s, "$") {
				return Refusedf("compose file %s: include entry %q uses a variable; name include files and their env files literally", file, s)
			}
		}
		if len(paths) == 0 {
			continue
		}
		for _, f := range paths {
			if !filepath.IsAbs(f) {
				f = filepath.Join(dir, f)
			}
			if _, _, _, err := l.roots.locate("compose file", f); err != nil {
				return err
			}
		}
		if len(envFiles) == 0 {
			main := paths[0]
			if !filepath.IsAbs(main) {
				main = filepath.Join(dir, main)
			}
			if _, err := l.readEnv("env file", filepath.Join(filepath.Dir(main), ".env"), true, nil); err != nil {
				return err
			}
			continue
		}
		for _, f := range envFiles {
			if f == "/dev/null" {
				continue
			}
			if !filepath.IsAbs(f) {
				f = filepath.Join(dir, f)
			}
			if _, err := l.readEnv("include env_file", f, false, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// stringList reads a YAML string or list of strings.
func stringList(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// loadComposeProject loads and validates the project of the compose file at path with
// compose-go, every file read inside the roots, interpolating with env (docker's own
// environment) and the project's .env, as docker compose does. Variables that are not set are
// errors, not blanks. The load runs under ctx: when ctx ends, the task ends with its cause at
// once, whatever compose-go is doing.
func loadComposeProject(ctx context.Context, roots *fileRoots, maxBytes int64, path string, env map[string]string) (*loadedProject, error) {
	clean, _, _, err := roots.locate("compose_path", path)
	if err != nil {
		return nil, err
	}
	return underContext(ctx, func() (*loadedProject, error) {
		return loadConfined(ctx, roots, maxBytes, clean, env)
	})
}

// underContext runs fn, and returns at once with ctx's cause when ctx ends first: fn (say,
// compose-go stuck somewhere) is left to finish on its own, holding nothing of the task's.
// A panic in fn is an error.
func underContext[T any](ctx context.Context, fn func() (T, error)) (T, error) {
	type ret struct {
		v   T
		err error
	}
	done := make(chan ret, 1)
	go func() {
		var r ret
		defer func() {
			if p := recover(); p != nil {
				r.err = fmt.Errorf("compose-go panicked: %v", p)
			}
			done <- r
		}()
		r.v, r.err = fn()
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		return zero, context.Cause(ctx)
	}
}

func loadConfined(ctx context.Context, roots *fileRoots, maxBytes int64, path string, env map[string]string) (*loadedProject, error) {
	l := newComposeLoader(roots, maxBytes)
	l.dir = filepath.Dir(path)
	content, err := l.read("compose_path", path)
	if errors.Is(err, errNotFound) {
		return nil, fmt.Errorf("compose file %s does not exist", path)
	}
	if err != nil {
		return nil, err
	}
	if err := l.checkIncludes(path, content); err != nil {
		return nil, err
	}

	environment := types.Mapping{}
	maps.Copy(environment, env)
	// What docker compose does with the project's .env, from the bytes read inside the root:
	// the process environment wins, and serves references in the file.
	var dotEnv map[string]string
	if dotEnvPath := filepath.Join(l.dir, ".env"); !l.isDir(dotEnvPath) { // compose-go ignores a directory named .env
		dotEnv, err = l.readEnv("the project's .env", dotEnvPath, true, func(k string) (string, bool) {
			v, ok := env[k]
			return v, ok
		})
		if err != nil {
			return nil, err
		}
	}
	for k, v := range dotEnv {
		if _, ok := environment[k]; !ok {
			environment[k] = v
		}
	}

	mask := func(err error) string { return maskFuzzy(maskValues(l.values, nil), err.Error()) }
	details := types.ConfigDetails{
		WorkingDir:  l.dir,
		ConfigFiles: []types.ConfigFile{{Filename: path, Content: content}},
		Environment: environment,
	}
	project, err := loader.LoadWithContext(ctx, details,
		func(o *loader.Options) {
			// As docker compose: COMPOSE_PROJECT_NAME, else the file's name:, else the
			// directory's; COMPOSE_PROFILES.
			if n := environment["COMPOSE_PROJECT_NAME"]; n != "" {
				o.SetProjectName(n, true)
			} else {
				o.SetProjectName(loader.NormalizeProjectName(filepath.Base(l.dir)), false)
			}
			if p := environment["COMPOSE_PROFILES"]; p != "" {
				o.Profiles = strings.Split(p, ",")
			}
			o.ResourceLoaders = append([]loader.ResourceLoader{l}, o.ResourceLoaders...)
			o.SkipResolveEnvironment = true // resolveServiceFiles reads env_file inside the roots
			o.SkipResolveLabels = true
		},
		strictInterpolation,
	)
	if err != nil {
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		var perm *permanentError
		if errors.As(err, &perm) {
			return nil, err
		}
		return nil, fmt.Errorf("invalid compose project %s: %s", path, mask(err))
	}
	if err := l.resolveServiceFiles(project); err != nil {
		return nil, err
	}
	if err := l.changed(); err != nil {
		return nil, err
	}
	lp := &loadedProject{project: project, path: path, dir: l.dir, values: l.values}
	for _, p := range l.order {
		lp.files = append(lp.files, *l.files[p])
	}
	lp.hash, err = projectHash(project, lp.files)
	if err != nil {
		return nil, fmt.Errorf("compose project %s: %s", path, mask(err))
	}
	return lp, nil
}

// resolveServiceFiles does what compose-go's WithServicesEnvironmentResolved and
// WithServicesLabelsResolved do, reading the env_file and label_file of every service (and
// pre_start hook) inside the roots.
func (l *composeLoader) resolveServiceFiles(project *types.Project) error {
	for name, s := range project.Services {
		if err := l.resolveSpec(name, &s.ContainerSpec, project.Environment); err != nil {
			return err
		}
		for i := range s.PreStart {
			if err := l.resolveSpec(name, &s.PreStart[i].ContainerSpec, project.Environment); err != nil {
				return err
			}
		}
		project.Services[name] = s
	}
	return nil
}

func (l *composeLoader) resolveSpec(service string, spec *types.ContainerSpec, projectEnv types.Mapping) error {
	spec.Environment = spec.Environment.Resolve(projectEnv.Resolve)
	environment := types.Mapping{}
	maps.Copy(environment, spec.Environment.ToMapping())
	for _, ef := range spec.EnvFiles {
		if ef.Format != "" {
			return Refusedf("service %s: env_file %s: format %q is not supported", service, ef.Path, ef.Format)
		}
		values, err := l.readEnv(fmt.Sprintf("env_file of service %s:", service), ef.Path, !bool(ef.Required), func(k string) (string, bool) {
			if v, ok := projectEnv.Resolve(k); ok {
				return v, true
			}
			if v, ok := spec.Environment[k]; ok && v != nil {
				return *v, true
			}
			return "", false
		})
		if err != nil {
			return err
		}
		maps.Copy(environment, values)
	}
	spec.Environment = environment.ToMappingWithEquals().OverrideBy(spec.Environment)

	labels := types.Labels{}
	for _, lf := range spec.LabelFiles {
		values, err := l.readEnv(fmt.Sprintf("label_file of service %s:", service), lf, false, nil)
		if err != nil {
			return err
		}
		maps.Copy(labels, values)
	}
	if len(labels) > 0 {
		maps.Copy(labels, spec.Labels)
		spec.Labels = labels
	}
	return nil
}

// projectHash is the identity of a desired revision: the files' bytes and the normalized
// configuration (never stored or shown, only hashed).
func projectHash(project *types.Project, files []stackFile) (string, error) {
	h := sha256.New()
	for _, f := range files {
		fmt.Fprintf(h, "%d:%s%d:", len(f.Path), f.Path, len(f.Data))
		h.Write(f.Data)
	}
	model, err := project.MarshalJSON()
	if err != nil {
		return "", err
	}
	h.Write(model)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// normalizeProjectName is docker compose's default project name for a compose file: its
// directory's name, normalized.
func normalizeProjectName(composePath string) string {
	return loader.NormalizeProjectName(filepath.Base(filepath.Dir(composePath)))
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
