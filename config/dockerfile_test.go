package config_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// dockerfile is the parsed Dockerfile: its stages and its global ARG defaults.
type dockerfile struct {
	stages   []instructions.Stage
	metaArgs map[string]string
}

func parseDockerfile(t *testing.T) dockerfile {
	t.Helper()
	res, err := parser.Parse(bytes.NewReader(readRepoFile(t, "Dockerfile")))
	if err != nil {
		t.Fatalf("parse Dockerfile: %v", err)
	}
	for _, w := range res.Warnings {
		t.Errorf("Dockerfile warning: %s", w.Short)
	}
	// BuildKit's own lint rules that run while parsing (stage name casing, MAINTAINER, ...).
	lint := linter.New(&linter.Config{Warn: func(rule, _, _, msg string, _ []parser.Range) {
		t.Errorf("Dockerfile lint %s: %s", rule, msg)
	}})
	stages, metaArgs, err := instructions.Parse(res.AST, lint)
	if err != nil {
		t.Fatalf("Dockerfile instructions: %v", err)
	}
	df := dockerfile{stages: stages, metaArgs: map[string]string{}}
	for _, a := range metaArgs {
		for _, kv := range a.Args {
			if kv.Value != nil {
				df.metaArgs[kv.Key] = *kv.Value
			}
		}
	}
	return df
}

func (df dockerfile) stage(t *testing.T, name string) instructions.Stage {
	t.Helper()
	for _, s := range df.stages {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("Dockerfile has no stage %q", name)
	return instructions.Stage{}
}

// expand replaces ${NAME} and $NAME with the global ARG defaults.
func (df dockerfile) expand(s string) string {
	return os.Expand(s, func(k string) string { return df.metaArgs[k] })
}

func commandsOf[T instructions.Command](s instructions.Stage) []T {
	var out []T
	for _, c := range s.Commands {
		if v, ok := c.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

func lastOf[T instructions.Command](t *testing.T, s instructions.Stage, what string) T {
	t.Helper()
	cs := commandsOf[T](s)
	if len(cs) == 0 {
		t.Fatalf("stage %q has no %s", s.Name, what)
	}
	return cs[len(cs)-1]
}

func TestDockerfile(t *testing.T) {
	t.Parallel()
	df := parseDockerfile(t)

	t.Run("multi-stage with the agent last", func(t *testing.T) {
		var names []string
		for _, s := range df.stages {
			names = append(names, s.Name)
		}
		if diff := cmp.Diff([]string{"build", "dev-orchestrator", "agent"}, names); diff != "" {
			t.Errorf("stages (-want +got):\n%s", diff)
		}
	})

	t.Run("base images pinned to a release", func(t *testing.T) {
		stageNames := map[string]bool{}
		for _, s := range df.stages {
			base := df.expand(s.BaseName)
			if stageNames[base] {
				continue
			}
			stageNames[s.Name] = true
			name, tag, ok := strings.Cut(base, ":")
			if !ok || strings.Contains(base, "$") || !regexp.MustCompile(`^\d+\.\d+`).MatchString(tag) {
				t.Errorf("stage %q: base image %q (from %q) is not pinned to a version tag", s.Name, base, s.BaseName)
			}
			if tag == "latest" || strings.Contains(name, "@") {
				t.Errorf("stage %q: base image %q", s.Name, base)
			}
		}
	})

	t.Run("golang version matches go.mod", func(t *testing.T) {
		m := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(readRepoFile(t, "go.mod"))
		if m == nil {
			t.Fatal("go.mod has no go line")
		}
		if got := df.expand(df.stage(t, "build").BaseName); got != "golang:"+string(m[1]) {
			t.Errorf("build stage base = %q, want golang:%s (the go line of go.mod)", got, m[1])
		}
	})

	t.Run("static, stripped, versioned build of both commands", func(t *testing.T) {
		var build string
		for _, r := range commandsOf[*instructions.RunCommand](df.stage(t, "build")) {
			if cmd := strings.Join(r.CmdLine, " "); strings.Contains(cmd, "go build") {
				build = cmd
			}
		}
		for _, want := range []string{"CGO_ENABLED=0", "-trimpath", `-ldflags "-s -w `, "-X main.version=${VERSION}",
			"-X main.commit=${COMMIT}", "./cmd/letsbe-agent", "./cmd/letsbe-dev-orchestrator"} {
			if !strings.Contains(build, want) {
				t.Errorf("the go build command lacks %q:\n%s", want, build)
			}
		}
	})

	t.Run("agent runtime", func(t *testing.T) {
		agent := df.stage(t, "agent")
		if base := df.expand(agent.BaseName); !strings.HasPrefix(base, "docker:") || !strings.HasSuffix(base, "-cli") {
			t.Errorf("agent base image = %q, want Docker's official CLI image (docker CLI and compose plugin)", base)
		}
		checkUser(t, agent)
		ep := lastOf[*instructions.EntrypointCommand](t, agent, "ENTRYPOINT")
		if diff := cmp.Diff([]string{"/sbin/tini", "--", "/usr/local/bin/letsbe-agent"}, ep.CmdLine); diff != "" || ep.PrependShell {
			t.Errorf("ENTRYPOINT (-want +got):\n%s", diff)
		}
		if !slices.ContainsFunc(commandsOf[*instructions.RunCommand](agent), func(r *instructions.RunCommand) bool {
			return strings.Contains(strings.Join(r.CmdLine, " "), "apk add --no-cache tini")
		}) {
			t.Error("the agent stage does not install tini")
		}
		copies := commandsOf[*instructions.CopyCommand](agent)
		if !slices.ContainsFunc(copies, func(c *instructions.CopyCommand) bool {
			return c.From == "build" && slices.Contains(c.SourcePaths, "/out/letsbe-agent") && c.DestPath == "/usr/local/bin/letsbe-agent"
		}) {
			t.Error("the agent stage does not copy /out/letsbe-agent from the build stage to /usr/local/bin")
		}
		env := map[string]string{}
		var names []string
		for _, e := range commandsOf[*instructions.EnvCommand](agent) {
			for _, kv := range e.Env {
				env[kv.Key] = kv.Value
				names = append(names, kv.Key)
			}
		}
		checkAgentEnv(t, "Dockerfile agent stage", names, []string{"AGENT_STATE_DIR"})
		if env["AGENT_STATE_DIR"] != "/var/lib/letsbe-agent" {
			t.Errorf("AGENT_STATE_DIR = %q", env["AGENT_STATE_DIR"])
		}
		checkHealthcheck(t, agent, "CMD-SHELL", "/healthz", "127.0.0.1:9464")
	})

	t.Run("dev orchestrator runtime", func(t *testing.T) {
		orch := df.stage(t, "dev-orchestrator")
		checkUser(t, orch)
		checkHealthcheck(t, orch, "CMD", "http://127.0.0.1:8080/healthz")
		cmd := lastOf[*instructions.CmdCommand](t, orch, "CMD")
		if diff := cmp.Diff([]string{"--listen", "0.0.0.0:8080", "--allow-remote"}, cmd.CmdLine); diff != "" {
			t.Errorf("CMD (-want +got):\n%s", diff)
		}
	})
}

func checkUser(t *testing.T, s instructions.Stage) {
	t.Helper()
	user := lastOf[*instructions.UserCommand](t, s, "USER").User
	if name, _, _ := strings.Cut(user, ":"); name == "" || name == "0" || name == "root" {
		t.Errorf("stage %q runs as %q, want an unprivileged user", s.Name, user)
	}
}

func checkHealthcheck(t *testing.T, s instructions.Stage, kind string, wants ...string) {
	t.Helper()
	hc := lastOf[*instructions.HealthCheckCommand](t, s, "HEALTHCHECK").Health
	if len(hc.Test) < 2 || hc.Test[0] != kind {
		t.Fatalf("stage %q HEALTHCHECK test = %q, want %s", s.Name, hc.Test, kind)
	}
	all := strings.Join(hc.Test[1:], " ")
	for _, want := range wants {
		if !strings.Contains(all, want) {
			t.Errorf("stage %q HEALTHCHECK %q lacks %q", s.Name, all, want)
		}
	}
	if hc.Interval <= 0 || hc.Timeout <= 0 || hc.Timeout >= hc.Interval || hc.Retries < 1 {
		t.Errorf("stage %q HEALTHCHECK interval %s timeout %s retries %d", s.Name, hc.Interval, hc.Timeout, hc.Retries)
	}
}

// TestHealthcheckCommand runs the agent image's HEALTHCHECK shell command with a stand-in
// wget, to check the URL it derives from AGENT_HTTP_ADDR.
func TestHealthcheckCommand(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh:", err)
	}
	hc := lastOf[*instructions.HealthCheckCommand](t, parseDockerfile(t).stage(t, "agent"), "HEALTHCHECK").Health
	bin := t.TempDir()
	// The stand-in prints its arguments, as JSON, and succeeds.
	fake := "#!/bin/sh\nprintf '%s\\n' \"$@\"\n"
	if err := os.WriteFile(filepath.Join(bin, "wget"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ addr, wantURL string }{
		{"", "http://127.0.0.1:9464/healthz"},
		{"0.0.0.0:9464", "http://127.0.0.1:9464/healthz"},
		{"127.0.0.1:19000", "http://127.0.0.1:19000/healthz"},
		{"[::]:9470", "http://127.0.0.1:9470/healthz"},
	} {
		cmd := exec.CommandContext(t.Context(), "sh", "-c", hc.Test[1])
		cmd.Env = []string{"PATH=" + bin + ":/usr/bin:/bin"}
		if tt.addr != "" {
			cmd.Env = append(cmd.Env, "AGENT_HTTP_ADDR="+tt.addr)
		}
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("AGENT_HTTP_ADDR=%q: %v", tt.addr, err)
		}
		args := strings.Fields(string(out))
		if len(args) == 0 || args[len(args)-1] != tt.wantURL {
			b, _ := json.Marshal(args)
			t.Errorf("AGENT_HTTP_ADDR=%q: wget %s, want the URL %s", tt.addr, b, tt.wantURL)
		}
	}
}

// TestDockerignore checks that the build context keeps every file the image's go build reads
// (Go files, embedded files, go.mod, go.sum) and leaves out what it must not carry.
func TestDockerignore(t *testing.T) {
	t.Parallel()
	f, err := os.Open(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	list := exec.CommandContext(t.Context(), "go", "list", "-deps", "-f",
		`{{if not .Standard}}{{range .GoFiles}}{{$.Dir}}/{{.}}{{"\n"}}{{end}}{{range .EmbedFiles}}{{$.Dir}}/{{.}}{{"\n"}}{{end}}{{end}}`,
		"./cmd/letsbe-agent", "./cmd/letsbe-dev-orchestrator")
	list.Dir = root
	list.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := list.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	needed := []string{"go.mod", "go.sum"}
	for _, p := range strings.Fields(string(out)) {
		if rel, err := filepath.Rel(root, p); err == nil && !strings.HasPrefix(rel, "..") {
			needed = append(needed, rel) // files of this module (dependencies come from go mod download)
		}
	}
	if len(needed) < 10 {
		t.Fatalf("go list found only %v", needed)
	}
	for _, p := range needed {
		if excluded, err := pm.MatchesOrParentMatches(filepath.ToSlash(p)); err != nil || excluded {
			t.Errorf(".dockerignore excludes %s, which the image build needs (err %v)", p, err)
		}
	}
	for _, p := range []string{".git/config", "bin/letsbe-agent", "config/deploy_test.go", "executors/testdata/x", "README.md"} {
		if excluded, err := pm.MatchesOrParentMatches(p); err != nil || !excluded {
			t.Errorf(".dockerignore keeps %s in the build context (err %v)", p, err)
		}
	}
}
