package config_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// instruction is one Dockerfile instruction, its continuation lines joined.
type instruction struct {
	keyword string // upper case: FROM, RUN, ENV, ...
	args    string
}

// stage is one FROM and the instructions after it.
type stage struct {
	name, base string
	instrs     []instruction
}

// dockerfile is the parsed Dockerfile: its stages and its global ARG defaults.
type dockerfile struct {
	stages   []stage
	metaArgs map[string]string
}

// parseDockerfile reads the instructions of the repository's Dockerfile: comments and blank
// lines dropped, lines ending in a backslash continued. It checks only what the invariants
// below need; the image build itself (docker build) is the full parser.
func parseDockerfile(t *testing.T) dockerfile {
	t.Helper()
	df := dockerfile{metaArgs: map[string]string{}}
	var cur strings.Builder
	add := func(line string) {
		keyword, args, _ := strings.Cut(strings.TrimSpace(line), " ")
		in := instruction{strings.ToUpper(keyword), strings.TrimSpace(args)}
		switch {
		case in.keyword == "FROM":
			f := strings.Fields(in.args)
			for len(f) > 0 && strings.HasPrefix(f[0], "--") {
				f = f[1:]
			}
			if len(f) != 3 || !strings.EqualFold(f[1], "AS") {
				t.Fatalf("Dockerfile: FROM %q, want FROM image AS name", in.args)
			}
			df.stages = append(df.stages, stage{name: f[2], base: f[0]})
		case len(df.stages) == 0 && in.keyword == "ARG":
			k, v, _ := strings.Cut(in.args, "=")
			df.metaArgs[k] = v
		case len(df.stages) == 0:
			t.Fatalf("Dockerfile: %s before the first FROM", in.keyword)
		default:
			st := &df.stages[len(df.stages)-1]
			st.instrs = append(st.instrs, in)
		}
	}
	for line := range strings.Lines(string(readRepoFile(t, "Dockerfile"))) {
		line = strings.TrimRight(line, "\r\n")
		if trimmed := strings.TrimSpace(line); trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		if body, ok := strings.CutSuffix(line, "\\"); ok {
			cur.WriteString(body)
			continue
		}
		cur.WriteString(line)
		add(cur.String())
		cur.Reset()
	}
	if cur.Len() > 0 {
		t.Fatal("Dockerfile ends in a continued line")
	}
	return df
}

func (df dockerfile) stage(t *testing.T, name string) stage {
	t.Helper()
	for _, s := range df.stages {
		if s.name == name {
			return s
		}
	}
	t.Fatalf("Dockerfile has no stage %q", name)
	return stage{}
}

// expand replaces ${NAME} and $NAME with the global ARG defaults.
func (df dockerfile) expand(s string) string {
	return os.Expand(s, func(k string) string { return df.metaArgs[k] })
}

// last returns the arguments of the stage's last instruction keyword ("" when it has none).
func (s stage) last(keyword string) string {
	for i := len(s.instrs) - 1; i >= 0; i-- {
		if s.instrs[i].keyword == keyword {
			return s.instrs[i].args
		}
	}
	return ""
}

// all returns the arguments of every instruction keyword of the stage.
func (s stage) all(keyword string) []string {
	var out []string
	for _, in := range s.instrs {
		if in.keyword == keyword {
			out = append(out, in.args)
		}
	}
	return out
}

// healthcheck is a parsed HEALTHCHECK: its options and its command (CMD-SHELL: one shell
// command line; CMD: the exec form's arguments).
type healthcheck struct {
	interval, timeout time.Duration
	kind              string
	command           []string
}

func (s stage) healthcheck(t *testing.T) healthcheck {
	t.Helper()
	args := s.last("HEALTHCHECK")
	opts, command, ok := strings.Cut(args, "CMD ")
	if !ok {
		t.Fatalf("stage %q: HEALTHCHECK %q without CMD", s.name, args)
	}
	hc := healthcheck{kind: "CMD-SHELL", command: []string{strings.TrimSpace(command)}}
	if err := json.Unmarshal([]byte(command), &hc.command); err == nil {
		hc.kind = "CMD"
	}
	for _, o := range strings.Fields(opts) {
		k, v, _ := strings.Cut(strings.TrimPrefix(o, "--"), "=")
		d, err := time.ParseDuration(v)
		switch k {
		case "interval":
			hc.interval = d
		case "timeout":
			hc.timeout = d
		default:
			continue
		}
		if err != nil {
			t.Errorf("stage %q: HEALTHCHECK --%s=%q: %v", s.name, k, v, err)
		}
	}
	return hc
}

func TestDockerfile(t *testing.T) {
	t.Parallel()
	df := parseDockerfile(t)

	t.Run("base images pinned to a release", func(t *testing.T) {
		stageNames := map[string]bool{}
		for _, s := range df.stages {
			base := df.expand(s.base)
			if stageNames[base] {
				continue
			}
			stageNames[s.name] = true
			name, tag, ok := strings.Cut(base, ":")
			if !ok || strings.Contains(base, "$") || !regexp.MustCompile(`^\d+\.\d+`).MatchString(tag) {
				t.Errorf("stage %q: base image %q (from %q) is not pinned to a version tag", s.name, base, s.base)
			}
			if tag == "latest" || strings.Contains(name, "@") {
				t.Errorf("stage %q: base image %q", s.name, base)
			}
		}
	})

	t.Run("golang version matches go.mod", func(t *testing.T) {
		m := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(readRepoFile(t, "go.mod"))
		if m == nil {
			t.Fatal("go.mod has no go line")
		}
		if got := df.expand(df.stage(t, "build").base); got != "golang:"+string(m[1]) {
			t.Errorf("build stage base = %q, want golang:%s (the go line of go.mod)", got, m[1])
		}
	})

	t.Run("runtime stages", func(t *testing.T) {
		for _, name := range []string{"agent", "dev-orchestrator"} {
			s := df.stage(t, name)
			user, _, _ := strings.Cut(s.last("USER"), ":")
			if user == "" || user == "0" || user == "root" {
				t.Errorf("stage %q runs as %q, want an unprivileged user", name, s.last("USER"))
			}
			if hc := s.healthcheck(t); hc.interval <= 0 || hc.timeout <= 0 || hc.timeout >= hc.interval {
				t.Errorf("stage %q HEALTHCHECK interval %s timeout %s, want a timeout shorter than the interval", name, hc.interval, hc.timeout)
			}
		}
	})

	t.Run("agent settings", func(t *testing.T) {
		var names []string
		for _, env := range df.stage(t, "agent").all("ENV") {
			for _, kv := range strings.Fields(env) {
				k, _, ok := strings.Cut(kv, "=")
				if !ok {
					t.Errorf("ENV %q: want NAME=value pairs", env)
				}
				names = append(names, k)
			}
		}
		checkAgentEnv(t, "Dockerfile agent stage", names, []string{"AGENT_STATE_DIR"})
	})
}

// TestHealthcheckCommand runs the agent image's HEALTHCHECK shell command with a stand-in
// wget, to check the URL it derives from AGENT_HTTP_ADDR.
func TestHealthcheckCommand(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh:", err)
	}
	hc := parseDockerfile(t).stage(t, "agent").healthcheck(t)
	if hc.kind != "CMD-SHELL" {
		t.Fatalf("agent HEALTHCHECK %q, want a shell command (it reads AGENT_HTTP_ADDR)", hc.command)
	}
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
		cmd := exec.CommandContext(t.Context(), "sh", "-c", hc.command[0])
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
