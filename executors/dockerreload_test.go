package executors

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/letsbe/sysadmin-agent/internal/fakedocker"
)

// composeFixture is a file root with a project directory "app".
type composeFixture struct {
	root, app, outside, state string
	docker                    *fakedocker.Docker
	exec                      *DockerReload
}

func newComposeFixture(t *testing.T, files map[string]string) *composeFixture {
	t.Helper()
	base := t.TempDir()
	fx := &composeFixture{root: filepath.Join(base, "root"), outside: filepath.Join(base, "outside"), state: filepath.Join(base, "state"), docker: fakedocker.New(t)}
	fx.app = filepath.Join(fx.root, "app")
	for _, d := range []string{fx.app, fx.outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, content := range files {
		mustWrite(t, filepath.Join(fx.app, name), content, 0o644)
	}
	var err error
	fx.exec, err = NewDockerReload(fx.config())
	if err != nil {
		t.Fatal(err)
	}
	return fx
}

// config is the Compose executors' configuration of the fixture: a quick gate.
func (fx *composeFixture) config() DockerReloadConfig {
	return DockerReloadConfig{Roots: []string{fx.root}, Process: testProcess(ProcessConfig{Env: []string{"PATH=" + fx.docker.Bin + ":/usr/bin:/bin", "HOME=/root"}}), StateDir: fx.state, Settle: 50 * time.Millisecond, Poll: 10 * time.Millisecond}
}

const composeWeb = `services:
  web:
    image: nginx:${TAG:-latest}
    depends_on: [db]
  db:
    image: postgres:16
    environment:
      POSTGRES_PASSWORD: ${DB_PASS}
  debug:
    image: busybox
    profiles: [debug]
`

func TestDockerReload(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		files    map[string]string
		payload  string             // %s is the compose path
		wantRes  DockerReloadResult // Services: see wantSvcs
		wantSvcs []string
		wantRuns []string // the subcommand and services of each run
	}{
		{
			name:    "up",
			files:   map[string]string{"docker-compose.yml": composeWeb, ".env": "DB_PASS=pw\n"},
			payload: `{"compose_path": %q}`,
			wantRes: DockerReloadResult{Project: "app", Revision: 1, Changed: true, Process: ProcessResult{Stdout: "up done\n"}}, wantSvcs: []string{"db", "web"},
			wantRuns: []string{"up -d --remove-orphans"},
		},
		{
			name:    "pull then up, some services",
			files:   map[string]string{"compose.yaml": composeWeb, ".env": "DB_PASS=pw\nTAG=1.27\n"},
			payload: `{"compose_path": %q, "pull": true, "services": ["web", "db", "web"]}`,
			wantRes: DockerReloadResult{Project: "app", Revision: 1, Changed: true, Process: ProcessResult{Stdout: "pull done\nup done\n"}}, wantSvcs: []string{"web", "db"},
			wantRuns: []string{"pull web db", "up -d --remove-orphans web db"},
		},
		{
			name:    "a service of an inactive profile",
			files:   map[string]string{"compose.yaml": composeWeb, ".env": "DB_PASS=pw\n"},
			payload: `{"compose_path": %q, "services": ["debug"]}`,
			wantRes: DockerReloadResult{Project: "app", Revision: 1, Changed: true, Process: ProcessResult{Stdout: "up done\n"}}, wantSvcs: []string{"debug"},
			wantRuns: []string{"up -d --remove-orphans debug"},
		},
		{
			name:    "profile from the .env",
			files:   map[string]string{"compose.yaml": composeWeb, ".env": "DB_PASS=pw\nCOMPOSE_PROFILES=debug\n"},
			payload: `{"compose_path": %q}`,
			wantRes: DockerReloadResult{Project: "app", Revision: 1, Changed: true, Process: ProcessResult{Stdout: "up done\n"}}, wantSvcs: []string{"db", "debug", "web"},
			wantRuns: []string{"up -d --remove-orphans"},
		},
		{
			name:    "name from the file",
			files:   map[string]string{"compose.yaml": "name: shop\n" + composeWeb, ".env": "DB_PASS=pw\n"},
			payload: `{"compose_path": %q}`,
			wantRes: DockerReloadResult{Project: "shop", Revision: 1, Changed: true, Process: ProcessResult{Stdout: "up done\n"}}, wantSvcs: []string{"db", "web"},
			wantRuns: []string{"up -d --remove-orphans"},
		},
		{
			name:    "name from the .env",
			files:   map[string]string{"compose.yaml": composeWeb, ".env": "DB_PASS=pw\nCOMPOSE_PROJECT_NAME=tenant17\n"},
			payload: `{"compose_path": %q}`,
			wantRes: DockerReloadResult{Project: "tenant17", Revision: 1, Changed: true, Process: ProcessResult{Stdout: "up done\n"}}, wantSvcs: []string{"db", "web"},
			wantRuns: []string{"up -d --remove-orphans"},
		},
		{
			name:    "no .env needed",
			files:   map[string]string{"compose.yaml": "services:\n  web:\n    image: nginx\n    environment:\n      HOME_DIR: ${HOME}\n"},
			payload: `{"compose_path": %q}`,
			wantRes: DockerReloadResult{Project: "app", Revision: 1, Changed: true, Process: ProcessResult{Stdout: "up done\n"}}, wantSvcs: []string{"web"},
			wantRuns: []string{"up -d --remove-orphans"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fx := newComposeFixture(t, tt.files)
			var path string
			for name := range tt.files {
				if name != ".env" {
					path = filepath.Join(fx.app, name)
				}
			}
			fx.docker.Running(t, tt.wantRes.Project, tt.wantSvcs...)
			got, err := fx.exec.Execute(t.Context(), json.RawMessage(fmt.Sprintf(tt.payload, path)))
			if err != nil {
				t.Fatal(err)
			}
			res := got.(*DockerReloadResult)
			var svcs []string
			for _, s := range res.Services {
				svcs = append(svcs, s.Name)
			}
			if diff := cmp.Diff(tt.wantSvcs, svcs); diff != "" {
				t.Errorf("services (-want +got):\n%s", diff)
			}
			res.Services, res.Process.DurationMS = nil, 0
			if diff := cmp.Diff(&tt.wantRes, res); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
			runs := fx.docker.Runs(t)
			if len(runs) != len(tt.wantRuns) {
				t.Fatalf("docker ran %d times (%q), want %d", len(runs), runs, len(tt.wantRuns))
			}
			for i, run := range runs {
				want := append([]string{"compose", "--ansi", "never", "--progress", "plain", "-f", path, "--project-directory", fx.app, "-p", tt.wantRes.Project}, strings.Fields(tt.wantRuns[i])...)
				if diff := cmp.Diff(want, run); diff != "" {
					t.Errorf("run %d: argv (-want +got):\n%s", i, diff)
				}
			}
		})
	}
}

// TestDockerReloadInvalid: every project compose-go refuses ends the task
// with compose-go's message, and docker never runs.
func TestDockerReloadInvalid(t *testing.T) {
	t.Parallel()
	const secret = "p4ssw0rd-s3cr3t"
	tests := []struct {
		name      string
		files     map[string]string
		payload   string // %s is the path of docker-compose.yml
		permanent bool
		wantErr   string
	}{
		{name: "YAML syntax", files: map[string]string{"docker-compose.yml": "services:\n  web:\n    image: [nginx\n"}, wantErr: "invalid compose project"},
		{name: "not a compose file", files: map[string]string{"docker-compose.yml": "services:\n  web:\n    imag: nginx\n"}, wantErr: "services.web.imag"},
		{name: "unknown dependency", files: map[string]string{"docker-compose.yml": "services:\n  web:\n    image: nginx\n    depends_on: [cache]\n"}, wantErr: "depends on undefined service"},
		{name: "unknown network", files: map[string]string{"docker-compose.yml": "services:\n  web:\n    image: nginx\n    networks: [back]\n"}, wantErr: "undefined network back"},
		{name: "missing variable", files: map[string]string{"docker-compose.yml": composeWeb}, wantErr: "variable DB_PASS is not set"},
		{name: "agent variable", files: map[string]string{"docker-compose.yml": "services:\n  web:\n    image: nginx\n    environment:\n      T: ${AGENT_TOKEN}\n"}, wantErr: "variable AGENT_TOKEN is not set"},
		{name: "required variable", files: map[string]string{"docker-compose.yml": "services:\n  web:\n    image: nginx:${TAG:?set TAG first}\n"}, wantErr: "required variable TAG is missing a value: set TAG first"},
		{name: "bad interpolation", files: map[string]string{"docker-compose.yml": "services:\n  web:\n    image: nginx:${TAG\n"}, wantErr: "invalid interpolation format"},
		{name: "missing env_file", files: map[string]string{"docker-compose.yml": "services:\n  web:\n    image: nginx\n    env_file: [app.env]\n"}, wantErr: "app.env"},
		{name: "broken env_file", files: map[string]string{"docker-compose.yml": "services:\n  web:\n    image: nginx\n    env_file: [app.env]\n", "app.env": "A=\"" + secret + "\n"}, wantErr: "line 1: the quoted value of A is not terminated"},
		{name: "broken .env", files: map[string]string{"docker-compose.yml": composeWeb, ".env": "DB_PASS='" + secret + "\n"}, wantErr: "/app/.env: line 1: the quoted value of DB_PASS is not terminated"},
		{name: "a .env value in a message", files: map[string]string{"docker-compose.yml": "services:\n  web:\n    image: nginx\n    ports: [\"${PORT}\"]\n", ".env": "PORT=" + secret + "\n"}, wantErr: "***"},
		{name: "a .env value cast", files: map[string]string{"docker-compose.yml": "services:\n  web:\n    image: nginx\n    scale: ${N}\n", ".env": "N=" + secret + "\n"}, wantErr: "***"},
		{name: "unknown service", files: map[string]string{"docker-compose.yml": composeWeb, ".env": "DB_PASS=x\n"}, payload: `{"compose_path": %q, "services": ["web", "cache"]}`, permanent: true, wantErr: `service "cache" is not in compose project app (services: db, web, debug)`},
		{name: "empty service", files: map[string]string{"docker-compose.yml": composeWeb}, payload: `{"compose_path": %q, "services": [""]}`, permanent: true, wantErr: "an empty service name"},
		{name: "negative timeout", files: map[string]string{"docker-compose.yml": composeWeb}, payload: `{"compose_path": %q, "timeout_seconds": -1}`, permanent: true, wantErr: "timeout_seconds -1 is negative"},
		{name: "services not a list", files: map[string]string{"docker-compose.yml": composeWeb}, payload: `{"compose_path": %q, "services": "web"}`, permanent: true, wantErr: `field "services" must be an array`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fx := newComposeFixture(t, tt.files)
			payload := tt.payload
			if payload == "" {
				payload = `{"compose_path": %q}`
			}
			res, err := fx.exec.Execute(t.Context(), json.RawMessage(fmt.Sprintf(payload, filepath.Join(fx.app, "docker-compose.yml"))))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Execute() = %+v, %v; want an error containing %q", res, err, tt.wantErr)
			}
			if IsPermanent(err) != tt.permanent {
				t.Errorf("IsPermanent(%v) = %v, want %v", err, IsPermanent(err), tt.permanent)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("the error shows a secret: %v", err)
			}
			if runs := fx.docker.Runs(t); len(runs) > 0 {
				t.Errorf("docker ran: %q", runs)
			}
		})
	}
}

// TestDockerReloadAgentEnvironment: the agent's own variables never reach
// the interpolation, even when they are set in its process.
func TestDockerReloadAgentEnvironment(t *testing.T) {
	t.Setenv("AGENT_TOKEN", "agent-secret-token")
	fx := newComposeFixture(t, map[string]string{"compose.yaml": "services:\n  web:\n    image: nginx\n    environment:\n      T: ${AGENT_TOKEN}\n"})
	_, err := fx.exec.Execute(t.Context(), marshalPayload(t, map[string]any{"compose_path": filepath.Join(fx.app, "compose.yaml")}))
	if err == nil || !strings.Contains(err.Error(), "variable AGENT_TOKEN is not set") {
		t.Fatalf("Execute() error = %v, want AGENT_TOKEN not set", err)
	}
	// Nor docker's environment.
	fx = newComposeFixture(t, map[string]string{"compose.yaml": "services:\n  web:\n    image: nginx\n"})
	fx.docker.Running(t, "app", "web")
	if _, err := fx.exec.Execute(t.Context(), marshalPayload(t, map[string]any{"compose_path": filepath.Join(fx.app, "compose.yaml")})); err != nil {
		t.Fatal(err)
	}
	if env := fx.docker.Env(t); strings.Contains(env, "AGENT_TOKEN") {
		t.Errorf("docker got the agent's variables:\n%s", env)
	}
}

func TestDockerReloadDockerFails(t *testing.T) {
	t.Parallel()
	files := map[string]string{"compose.yaml": composeWeb, ".env": "DB_PASS=supersecretpassword\n"}
	tests := []struct {
		name      string
		fail      string
		pull      bool
		wantErr   string
		wantRuns  int
		wantCode  int
		wantError string
	}{
		{name: "pull fails, up is not run", fail: "pull", pull: true, wantErr: "docker compose pull: exit status 3", wantRuns: 1, wantCode: 3},
		{name: "up fails", fail: "up", pull: true, wantErr: "docker compose up: exit status 3", wantRuns: 2, wantCode: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fx := newComposeFixture(t, files)
			fx.docker.Set(t, "fail-"+tt.fail, "")
			fx.docker.Set(t, "stdout", "using password supersecretpassword\n")
			res, err := fx.exec.Execute(t.Context(), marshalPayload(t, map[string]any{"compose_path": filepath.Join(fx.app, "compose.yaml"), "pull": tt.pull}))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || ExitCode(err) != tt.wantCode {
				t.Fatalf("Execute() error = %v, want %q", err, tt.wantErr)
			}
			r := res.(*DockerReloadResult)
			if r.Process.ExitCode != tt.wantCode || !strings.Contains(r.Process.Stderr, "cannot "+tt.fail+": no such image") {
				t.Errorf("result = %+v", r)
			}
			if strings.Contains(r.Process.Stdout, "supersecretpassword") || !strings.Contains(r.Process.Stdout, "using password ***") {
				t.Errorf("stdout does not mask the .env value: %q", r.Process.Stdout)
			}
			if runs := fx.docker.Runs(t); len(runs) != tt.wantRuns {
				t.Errorf("docker ran %d times, want %d", len(runs), tt.wantRuns)
			}
		})
	}

	t.Run("no docker", func(t *testing.T) {
		t.Parallel()
		fx := newComposeFixture(t, files)
		cfg := fx.config()
		cfg.Docker = "no-such-docker"
		d, err := NewDockerReload(cfg)
		if err != nil {
			t.Fatal(err)
		}
		_, err = d.Execute(t.Context(), marshalPayload(t, map[string]any{"compose_path": filepath.Join(fx.app, "compose.yaml")}))
		if err == nil || !strings.Contains(err.Error(), `start no-such-docker: exec: "no-such-docker": executable file not found`) {
			t.Errorf("Execute() error = %v", err)
		}
	})

	t.Run("timeout", func(t *testing.T) {
		t.Parallel()
		fx := newComposeFixture(t, files)
		fx.docker.Set(t, "sleep", "")
		_, err := fx.exec.Execute(t.Context(), marshalPayload(t, map[string]any{"compose_path": filepath.Join(fx.app, "compose.yaml"), "timeout_seconds": 0.2}))
		var te *TimeoutError
		if !errors.As(err, &te) {
			t.Errorf("Execute() error = %v, want a timeout", err)
		}
	})
}

func TestDockerReloadConfinement(t *testing.T) {
	t.Parallel()
	fx := newComposeFixture(t, map[string]string{"compose.yaml": "services:\n  web:\n    image: nginx\n"})
	mustWrite(t, filepath.Join(fx.outside, "compose.yaml"), "services:\n  evil:\n    image: evil\n", 0o644)
	mustWrite(t, filepath.Join(fx.outside, ".env"), "X=1\n", 0o644)
	for link, target := range map[string]string{
		"root/link.yaml":   filepath.Join(fx.outside, "compose.yaml"),
		"root/linkdir":     fx.outside,
		"root/inside.yaml": "app/compose.yaml",
	} {
		if err := os.Symlink(target, filepath.Join(filepath.Dir(fx.root), link)); err != nil {
			t.Fatal(err)
		}
	}
	envApp := filepath.Join(fx.root, "envapp")
	if err := os.MkdirAll(envApp, 0o755); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(envApp, "compose.yaml"), "services:\n  web:\n    image: nginx\n", 0o644)
	if err := os.Symlink(filepath.Join(fx.outside, ".env"), filepath.Join(envApp, ".env")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path string
		permanent  bool
		wantErr    string
	}{
		{name: "outside", path: filepath.Join(fx.outside, "compose.yaml"), permanent: true, wantErr: "is outside the file roots"},
		{name: "traversal", path: fx.root + "/../outside/compose.yaml", permanent: true, wantErr: "is outside the file roots"},
		{name: "relative", path: "app/compose.yaml", permanent: true, wantErr: "is not an absolute path"},
		{name: "missing", path: "", permanent: true, wantErr: `field "compose_path" is required`},
		{name: "symlink outside", path: fx.root + "/link.yaml", permanent: true, wantErr: "leaves the file root"},
		{name: "symlinked directory outside", path: fx.root + "/linkdir/compose.yaml", permanent: true, wantErr: "leaves the file root"},
		{name: ".env symlink outside", path: envApp + "/compose.yaml", permanent: true, wantErr: "the project's .env \"" + envApp + "/.env\" leaves the file root"},
		{name: "a directory", path: fx.app, permanent: true, wantErr: "is not a regular file"},
		{name: "no such file", path: fx.app + "/nope.yaml", wantErr: "compose file " + fx.app + "/nope.yaml does not exist"},
	}
	for _, tt := range tests {
		_, err := fx.exec.Execute(t.Context(), marshalPayload(t, map[string]any{"compose_path": tt.path}))
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s: Execute() error = %v, want %q", tt.name, err, tt.wantErr)
			continue
		}
		if IsPermanent(err) != tt.permanent {
			t.Errorf("%s: IsPermanent(%v) = %v, want %v", tt.name, err, IsPermanent(err), tt.permanent)
		}
	}
	if runs := fx.docker.Runs(t); len(runs) > 0 {
		t.Errorf("docker ran: %q", runs)
	}
	// A symbolic link that stays inside the root is followed.
	fx.docker.Running(t, "root", "web")
	res, err := fx.exec.Execute(t.Context(), marshalPayload(t, map[string]any{"compose_path": fx.root + "/inside.yaml"}))
	if err != nil {
		t.Fatal(err)
	}
	if r := res.(*DockerReloadResult); r.Project != "root" || len(fx.docker.Runs(t)) != 1 {
		t.Errorf("result = %+v, runs %q", r, fx.docker.Runs(t))
	}
}

// BenchmarkDockerReloadValidate measures loading and validating a
// three-service project with compose-go, the part of DOCKER_RELOAD before
// docker runs.
func BenchmarkDockerReloadValidate(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "app")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte(composeWeb), 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".env"), []byte("DB_PASS=pw\nTAG=1.27\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	d, err := NewDockerReload(DockerReloadConfig{Roots: []string{filepath.Dir(dir)}})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := d.c.load(b.Context(), filepath.Join(dir, "compose.yaml")); err != nil {
			b.Fatal(err)
		}
	}
}

// TestParseDryRun: what docker compose --dry-run prints, each container once.
func TestParseDryRun(t *testing.T) {
	t.Parallel()
	out := "DRY-RUN MODE -  Container p-web-1  Recreate\nDRY-RUN MODE -  Container p-web-1  Recreated\nDRY-RUN MODE -  Container 81c3_p-web-1  Starting\n" +
		"DRY-RUN MODE -  Container p-db-1  Creating\nDRY-RUN MODE -  Container p-db-1  Created\nDRY-RUN MODE -  Container p-old-1  Stopping\nDRY-RUN MODE -  Container p-old-1  Removing\nDRY-RUN MODE -  Container p-old-1  Removed\nnoise\n"
	got := parseDryRun(out, "p", 3)
	want := DryRunPlan{Create: []string{"p-db-1"}, Recreate: []string{"p-web-1"}, Remove: []string{"p-old-1"}, LastGoodRevision: 3}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("plan (-want +got):\n%s", diff)
	}
}
