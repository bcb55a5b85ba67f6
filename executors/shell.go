package executors

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/dotenv"
)

// ShellConfig configures a [Shell].
type ShellConfig struct {
	// AllowedCommands are the program names a SHELL task may run, e.g.
	// "ls", "df", "docker". Each must be a bare name, looked up in the
	// child's PATH. Allowing an interpreter or a program that runs other
	// programs (sh, env, xargs, find...) allows everything.
	AllowedCommands []string
	// Process runs the commands; nil means NewProcess(ProcessConfig{}).
	Process *Process
	// Roots are the file roots. A command whose cwd lies inside one and holds a .env (a
	// Compose project directory) gets that file's values masked as "***" in its output and
	// progress, as DOCKER_RELOAD masks them. None when empty.
	Roots []string
	// MaxEnvBytes caps the size of such a .env; default DefaultMaxFileBytes.
	MaxEnvBytes int64
}

// Shell is the SHELL executor: it runs one allowlisted command line,
// without a shell. It implements [Executor].
type Shell struct {
	allowed  []string // sorted, without duplicates
	proc     *Process
	roots    *fileRoots // nil without ShellConfig.Roots
	maxBytes int64
}

// NewShell returns a SHELL executor. It fails if an allowed command is not a
// bare program name.
func NewShell(cfg ShellConfig) (*Shell, error) {
	for _, name := range cfg.AllowedCommands {
		if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
			return nil, fmt.Errorf("allowed command %q: must be a bare program name", name)
		}
	}
	allowed := slices.Clone(cfg.AllowedCommands)
	slices.Sort(allowed)
	allowed = slices.Compact(allowed)
	proc := cfg.Process
	if proc == nil {
		proc = NewProcess(ProcessConfig{})
	}
	sh := &Shell{allowed: allowed, proc: proc, maxBytes: maxBytesOrDefault(cfg.MaxEnvBytes)}
	if len(cfg.Roots) > 0 {
		roots, err := newFileRoots(cfg.Roots)
		if err != nil {
			return nil, err
		}
		sh.roots = roots
	}
	return sh, nil
}

// shellPayload is the SHELL task payload.
type shellPayload struct {
	Cmd            string  `json:"cmd"`
	Cwd            string  `json:"cwd"`
	TimeoutSeconds float64 `json:"timeout_seconds"`
}

// shellRequest is a decoded and validated SHELL payload.
type shellRequest struct {
	argv    []string
	dir     string
	timeout time.Duration // 0: none of its own
}

// parseShellPayload decodes and validates a SHELL payload. Every error it
// returns is permanent.
func parseShellPayload(payload json.RawMessage) (shellRequest, error) {
	var p shellPayload
	if err := DecodePayload(payload, &p); err != nil {
		return shellRequest{}, err
	}
	if strings.TrimSpace(p.Cmd) == "" {
		return shellRequest{}, InvalidPayloadf("field \"cmd\" is required")
	}
	if p.Cwd != "" {
		if !filepath.IsAbs(p.Cwd) {
			return shellRequest{}, InvalidPayloadf("cwd %q is not an absolute path", p.Cwd)
		}
		fi, err := os.Stat(p.Cwd)
		if err != nil || !fi.IsDir() {
			return shellRequest{}, InvalidPayloadf("cwd %q is not an existing directory", p.Cwd)
		}
	}
	timeout, err := TimeoutSeconds("timeout_seconds", p.TimeoutSeconds)
	if err != nil {
		return shellRequest{}, err
	}
	argv, err := ParseCommandLine(p.Cmd)
	if err != nil {
		return shellRequest{}, err
	}
	if argv[0] == "" {
		return shellRequest{}, InvalidPayloadf("field \"cmd\" has an empty program name")
	}
	return shellRequest{argv: argv, dir: p.Cwd, timeout: timeout}, nil
}

// Execute implements [Executor] for a payload
// {"cmd": "df -h", "cwd"?: "/opt/app", "timeout_seconds"?: 30}. The result is
// a [*ProcessResult]; on a non-zero exit it comes with an [*ExitError].
func (s *Shell) Execute(ctx context.Context, payload json.RawMessage) (any, error) {
	req, err := parseShellPayload(payload)
	if err != nil {
		return nil, err
	}
	argv, err := s.allow(req.argv)
	if err != nil {
		return nil, err
	}
	ctx, cancel := WithTimeout(ctx, req.timeout)
	defer cancel()
	masks, err := projectEnvMasks(s.roots, s.maxBytes, req.dir)
	if err != nil {
		return nil, err
	}
	ProgressFrom(ctx).Mask(masks...)
	res, err := s.proc.Run(ctx, Command{Argv: argv, Dir: req.dir})
	maskOutput(res, masks)
	return res, err
}

// allow checks argv[0] against the allowlist and returns the argv to run.
//
// A bare name must be in the list. A path must be absolute and be the same
// file, after resolving symlinks, as an allowed name found in the child's
// PATH; argv[0] is then replaced by that name's path, so that a multi-call
// binary such as busybox runs the allowed program and not the one the path
// happens to be named after.
func (s *Shell) allow(argv []string) ([]string, error) {
	name := argv[0]
	if !strings.Contains(name, "/") {
		if _, found := slices.BinarySearch(s.allowed, name); found {
			return argv, nil
		}
		return nil, s.refuse(name)
	}
	if !filepath.IsAbs(name) {
		return nil, s.refuse(name)
	}
	resolved, err := filepath.EvalSymlinks(name)
	if err != nil {
		return nil, s.refuse(name)
	}
	fi, err := os.Stat(resolved)
	if err != nil || !fi.Mode().IsRegular() {
		return nil, s.refuse(name)
	}
	// Prefer the allowed name the path is called by, then the one its
	// target is called by, then any other.
	candidates := make([]string, 0, len(s.allowed)+2)
	candidates = append(candidates, filepath.Base(name), filepath.Base(resolved))
	candidates = append(candidates, s.allowed...)
	for _, cand := range candidates {
		if _, found := slices.BinarySearch(s.allowed, cand); !found {
			continue
		}
		path, err := s.proc.lookPath(cand)
		if err != nil {
			continue
		}
		afi, err := os.Stat(path)
		if err != nil || !os.SameFile(fi, afi) {
			continue
		}
		out := slices.Clone(argv)
		out[0] = path
		return out, nil
	}
	return nil, s.refuse(name)
}

func (s *Shell) refuse(name string) error {
	allowed := "none"
	if len(s.allowed) > 0 {
		allowed = strings.Join(s.allowed, ", ")
	}
	return Refusedf("command %q is not allowed (allowed: %s)", name, allowed)
}

// projectEnvMasks returns the values a SHELL command run in dir must not show: when dir lies
// inside a file root and holds a .env (a Compose project directory), the values of that file
// (as DOCKER_RELOAD masks them). The file is read through an os.Root on its root, like every
// task file. A .env that cannot be read or parsed is an error: the command could print what
// would not be masked.
func projectEnvMasks(roots *fileRoots, maxBytes int64, dir string) ([]string, error) {
	if roots == nil || dir == "" {
		return nil, nil
	}
	clean, root, rel, err := roots.locate("cwd", dir)
	if err != nil {
		return nil, nil // not in a root: nothing the agent knows to mask
	}
	rt, err := openRoot(root)
	if err != nil {
		return nil, nil
	}
	defer rt.Close()
	envPath := filepath.Join(clean, ".env")
	fi, err := rt.Stat(filepath.Join(rel, ".env"))
	switch {
	case errors.Is(err, fs.ErrNotExist) || isEscape(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("env file %s (its values are masked in the output): %w", envPath, unwrapPathError(err))
	case !fi.Mode().IsRegular():
		return nil, nil
	}
	f := &confinedFile{field: "the .env of cwd", path: envPath, root: root, name: ".env"}
	if f.dir, err = rt.OpenRoot(rel); err != nil {
		return nil, f.wrap("open the directory of", err)
	}
	defer f.Close()
	data, err := f.read(maxBytes)
	if err != nil {
		return nil, err
	}
	if _, err := scanEnv(data); err != nil {
		return nil, fmt.Errorf("env file %s (its values are masked in the output): %w", envPath, err)
	}
	values, err := dotenv.ParseWithLookup(bytes.NewReader(data), func(string) (string, bool) { return "", false })
	if err != nil {
		return nil, fmt.Errorf("env file %s (its values are masked in the output): %s", envPath, maskText(nil, err.Error()))
	}
	return maskValues(values, nil), nil
}
