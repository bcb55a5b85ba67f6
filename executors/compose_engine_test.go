package executors

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/letsbe/sysadmin-agent/internal/testengine"
	"github.com/letsbe/sysadmin-agent/internal/testpoll"
)

// dockerEngine is the Docker engine of the tests, prepared by hack/docker-engine.sh.
type dockerEngine struct {
	cli, host, config, image1, image2 string
}

var (
	engineOnce sync.Once
	engine     *dockerEngine
	engineWhy  string
)

// testEngine returns the engine (internal/testengine) once it answers, or skips the test loudly.
func testEngine(t testing.TB) *dockerEngine {
	t.Helper()
	engineOnce.Do(func() {
		e, err := testengine.Find("..")
		if err != nil {
			engineWhy = err.Error()
			return
		}
		engine = &dockerEngine{cli: e.CLI, host: e.Host, config: e.Config, image1: e.Image1, image2: e.Image2}
		if out, err := engine.cmd(context.Background(), "version", "--format", "{{.Server.Version}}").CombinedOutput(); err != nil {
			engineWhy = fmt.Sprintf("the Docker engine at %s does not answer: %v: %s", engine.host, err, out)
			engine = nil
		}
	})
	if engine == nil {
		t.Skipf("\n!!!!!!!!\n!!!!!!!! SKIP: no Docker engine for the compose tests: %s\n!!!!!!!!", engineWhy)
	}
	return engine
}

func (e *dockerEngine) cmd(ctx context.Context, args ...string) *exec.Cmd {
	c := exec.CommandContext(ctx, e.cli, args...)
	c.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=/root", "DOCKER_HOST=" + e.host, "DOCKER_CONFIG=" + e.config}
	return c
}

// docker runs docker and returns its stdout; a failure fails the test.
func (e *dockerEngine) docker(t testing.TB, args ...string) string {
	t.Helper()
	var stderr bytes.Buffer
	c := e.cmd(context.Background(), args...)
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		t.Fatalf("docker %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// engineProject is a Compose project of its own on the test engine: a root, a project
// directory with a unique name, a loopback port, and the executors.
type engineProject struct {
	e                  *dockerEngine
	root, dir, path    string
	name               string
	port               int
	cfg                DockerReloadConfig
	reload             *DockerReload
	status             *ComposeStatus
	logs               *ComposeLogs
	rollback           *ComposeRollback
	image1, image2     string
	image1ID, image2ID string
}

func newEngineProject(t *testing.T) *engineProject {
	t.Helper()
	e := testEngine(t)
	var b [4]byte
	_, _ = rand.Read(b[:])
	p := &engineProject{e: e, root: filepath.Join(t.TempDir(), "root"), name: "lbt-" + hex.EncodeToString(b[:]), image1: e.image1, image2: e.image2}
	p.dir = filepath.Join(p.root, p.name)
	p.path = filepath.Join(p.dir, "compose.yaml")
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p.port = freePort(t)
	p.cfg = DockerReloadConfig{
		Roots: []string{p.root}, Docker: e.cli, DockerHost: e.host, DockerConfig: e.config,
		StateDir: filepath.Join(t.TempDir(), "state"), Settle: time.Second, Poll: 100 * time.Millisecond,
		Process: NewProcess(ProcessConfig{KillGrace: 2 * time.Second}),
	}
	var err error
	if p.reload, err = NewDockerReload(p.cfg); err != nil {
		t.Fatal(err)
	}
	p.status, _ = NewComposeStatus(p.cfg)
	p.logs, _ = NewComposeLogs(p.cfg)
	p.rollback, _ = NewComposeRollback(p.cfg)
	p.image1ID = strings.TrimSpace(e.docker(t, "image", "inspect", "-f", "{{.Id}}", p.image1))
	p.image2ID = strings.TrimSpace(e.docker(t, "image", "inspect", "-f", "{{.Id}}", p.image2))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = e.cmd(ctx, "compose", "-p", p.name, "down", "-v", "--remove-orphans", "-t", "1").Run()
	})
	return p
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// webVersion is a compose file of one busybox httpd service: its image, its command, its
// healthcheck URL and restart policy vary.
type webVersion struct {
	image   string
	command string // default: serve /www (the page says "version N")
	health  string // the URL the healthcheck fetches; default the page
	restart string
	extra   string // more service lines
}

func (p *engineProject) write(t *testing.T, v webVersion) {
	t.Helper()
	cmdline := cmpOr(v.command, "httpd -f -p 80 -h /www")
	health := cmpOr(v.health, "http://127.0.0.1/")
	restart := cmpOr(v.restart, "unless-stopped")
	compose := fmt.Sprintf(`services:
  web:
    image: %s
    command: ["sh", "-c", %q]
    restart: %q
    ports: ["127.0.0.1:%d:80"]
    stop_grace_period: 1s
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", %q]
      interval: 300ms
      timeout: 2s
      retries: 3
%s`, v.image, cmdline, restart, p.port, health, v.extra)
	if err := os.WriteFile(p.path, []byte(compose), 0o644); err != nil {
		t.Fatal(err)
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (p *engineProject) deploy(t *testing.T, payload map[string]any) (*DockerReloadResult, error) {
	t.Helper()
	if payload == nil {
		payload = map[string]any{}
	}
	payload["compose_path"] = p.path
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	res, err := p.reload.Execute(ctx, marshalPayload(t, payload))
	r, _ := res.(*DockerReloadResult)
	return r, err
}

// page fetches the service's page on its loopback port, waiting for it.
func (p *engineProject) page(t *testing.T) string {
	t.Helper()
	return testpoll.Page(t, 30*time.Second, fmt.Sprintf("http://127.0.0.1:%d/", p.port))
}

// containerIDs lists the project's containers.
func (p *engineProject) containerIDs(t *testing.T) string {
	t.Helper()
	return strings.TrimSpace(p.e.docker(t, "ps", "-a", "-q", "--no-trunc", "--filter", "label=com.docker.compose.project="+p.name))
}

func wantOK(t *testing.T, res *DockerReloadResult, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("deploy: %v\nresult: %+v", err, res)
	}
	if len(res.Services) != 1 || res.Services[0].State != "running" || res.Services[0].Health != "healthy" {
		t.Fatalf("services = %+v, want web running and healthy", res.Services)
	}
}

// TestEngineDeployAndRollback: a good deploy, then new versions that fail their healthcheck,
// exit 1 or crash-loop: each ends FAILED, rolled back to revision 1 with its exact image, and
// the old page is served again.
func TestEngineDeployAndRollback(t *testing.T) {
	t.Parallel()
	testEngine(t)
	bad := []struct {
		name    string
		v       func(p *engineProject) webVersion
		wantErr string
	}{
		{name: "unhealthy", v: func(p *engineProject) webVersion {
			return webVersion{image: p.image2, health: "http://127.0.0.1/missing.html"}
		}, wantErr: "service web is unhealthy (health check: "},
		{name: "exits 1", v: func(p *engineProject) webVersion {
			return webVersion{image: p.image2, command: "echo starting; exit 1", restart: "no"}
		}, wantErr: "service web exited with code 1"},
		{name: "crash-loops", v: func(p *engineProject) webVersion {
			return webVersion{image: p.image2, command: "sleep 0.2; exit 1", restart: "always"}
		}, wantErr: "service web "},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := newEngineProject(t)
			p.write(t, webVersion{image: p.image1})
			res, err := p.deploy(t, nil)
			wantOK(t, res, err)
			if res.Revision != 1 || !res.Changed || res.RolledBack || res.Services[0].ImageID != p.image1ID {
				t.Errorf("first deploy = %+v", res)
			}
			if got := p.page(t); got != "version 1" {
				t.Fatalf("page = %q, want version 1", got)
			}

			p.write(t, tt.v(p))
			res, err = p.deploy(t, nil)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "rolled back to revision 1, which is healthy") {
				t.Fatalf("deploy of the bad version: %v, want %q and rolled back", err, tt.wantErr)
			}
			if !res.RolledBack || res.RollbackRevision != 1 || !res.RollbackHealthy || res.Revision != 2 {
				t.Errorf("result = %+v", res)
			}
			if got := p.page(t); got != "version 1" {
				t.Errorf("page after the rollback = %q, want version 1", got)
			}
			b, _ := os.ReadFile(p.path)
			if !strings.Contains(string(b), p.image1) {
				t.Errorf("the compose file is not restored:\n%s", b)
			}
			ids := p.containerIDs(t)
			img := strings.TrimSpace(p.e.docker(t, "inspect", "-f", "{{.Image}}", ids))
			if img != p.image1ID {
				t.Errorf("the rolled back container runs %s, want the recorded image %s", img, p.image1ID)
			}
		})
	}
}

// TestEngineGoodUpgradeAndStatus: a second good version becomes revision 2; redeploying it
// changes nothing; COMPOSE_STATUS reports no drift until a container is stopped;
// COMPOSE_ROLLBACK puts revision 1 back; COMPOSE_LOGS shows its output, masked.
func TestEngineGoodUpgradeAndStatus(t *testing.T) {
	t.Parallel()
	p := newEngineProject(t)
	const secret = "s3cr3t-logged-value"
	if err := os.WriteFile(filepath.Join(p.dir, ".env"), []byte("GREETING="+secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p.write(t, webVersion{image: p.image1, command: "echo hello $$GREETING; httpd -f -p 80 -h /www", extra: "    environment:\n      GREETING: ${GREETING}\n"})
	res, err := p.deploy(t, nil)
	wantOK(t, res, err)
	p.write(t, webVersion{image: p.image2, command: "echo hello $$GREETING; httpd -f -p 80 -h /www", extra: "    environment:\n      GREETING: ${GREETING}\n"})
	res, err = p.deploy(t, nil)
	wantOK(t, res, err)
	if res.Revision != 2 || !res.Changed {
		t.Errorf("upgrade = %+v", res)
	}
	if got := p.page(t); got != "version 2" {
		t.Errorf("page = %q, want version 2", got)
	}
	ids := p.containerIDs(t)
	res, err = p.deploy(t, nil)
	wantOK(t, res, err)
	if res.Revision != 2 || res.Changed || p.containerIDs(t) != ids {
		t.Errorf("an unchanged redeploy = %+v (containers %s, were %s)", res, p.containerIDs(t), ids)
	}

	ctx := t.Context()
	st, err := p.status.Execute(ctx, marshalPayload(t, map[string]any{"compose_path": p.path}))
	if err != nil {
		t.Fatal(err)
	}
	if s := st.(*ComposeStatusResult); s.Drifted || s.LastGoodRevision != 2 || len(s.Services) != 1 || s.Services[0].Health != "healthy" {
		t.Errorf("status = %+v", s)
	}
	logs, err := p.logs.Execute(ctx, marshalPayload(t, map[string]any{"compose_path": p.path, "tail": 50}))
	if err != nil {
		t.Fatal(err)
	}
	if l := logs.(*ComposeLogsResult); !strings.Contains(l.Process.Stdout, "hello ***") || strings.Contains(l.Process.Stdout+l.Process.Stderr, secret) {
		t.Errorf("logs = %+v, want the greeting masked", l)
	}

	p.e.docker(t, "stop", "-t", "1", ids)
	st, err = p.status.Execute(ctx, marshalPayload(t, map[string]any{"compose_path": p.path}))
	if err != nil {
		t.Fatal(err)
	}
	if s := st.(*ComposeStatusResult); !s.Drifted || len(s.Drift) != 1 || !strings.Contains(s.Drift[0], "service web is exited") {
		t.Errorf("status after docker stop = %+v, want drift", s)
	}

	rb, err := p.rollback.Execute(ctx, marshalPayload(t, map[string]any{"compose_path": p.path}))
	if err != nil {
		t.Fatalf("rollback: %v (%+v)", err, rb)
	}
	if r := rb.(*DockerReloadResult); r.Revision != 1 || !r.RollbackHealthy || r.Services[0].ImageID != p.image1ID {
		t.Errorf("rollback = %+v", r)
	}
	if got := p.page(t); got != "version 1" {
		t.Errorf("page after COMPOSE_ROLLBACK = %q, want version 1", got)
	}
	if _, err := p.rollback.Execute(ctx, marshalPayload(t, map[string]any{"compose_path": p.path, "revision": 9})); err == nil || !IsPermanent(err) {
		t.Errorf("rollback to an unknown revision = %v, want a refusal", err)
	}
}

// TestEngineFailuresThatChangeNothing: a first deploy that fails is FAILED and leaves its
// container for inspection; a failed pull and a dry run change nothing.
func TestEngineFailuresThatChangeNothing(t *testing.T) {
	t.Parallel()
	t.Run("first deploy fails", func(t *testing.T) {
		t.Parallel()
		p := newEngineProject(t)
		p.write(t, webVersion{image: p.image1, health: "http://127.0.0.1/missing.html"})
		res, err := p.deploy(t, nil)
		if err == nil || !strings.Contains(err.Error(), "service web is unhealthy") || !strings.Contains(err.Error(), "no previous revision to roll back to (nothing was removed)") {
			t.Fatalf("deploy = %v", err)
		}
		if res.RolledBack || len(res.Services) != 1 || res.Services[0].Health != "unhealthy" || p.containerIDs(t) == "" {
			t.Errorf("result = %+v, containers %q", res, p.containerIDs(t))
		}
	})
	t.Run("failed pull", func(t *testing.T) {
		t.Parallel()
		p := newEngineProject(t)
		p.write(t, webVersion{image: p.image1})
		res, err := p.deploy(t, nil)
		wantOK(t, res, err)
		ids := p.containerIDs(t)
		p.write(t, webVersion{image: "letsbe-test/no-such-image:1"})
		res, err = p.deploy(t, map[string]any{"pull": true})
		if err == nil || !strings.Contains(err.Error(), "docker compose pull: exit status") || !strings.Contains(err.Error(), "nothing was changed") {
			t.Fatalf("deploy with a failed pull = %v (%+v)", err, res)
		}
		if got := p.containerIDs(t); got != ids {
			t.Errorf("containers changed: %q, were %q", got, ids)
		}
		if got := p.page(t); got != "version 1" {
			t.Errorf("page = %q", got)
		}
	})
	t.Run("dry run", func(t *testing.T) {
		t.Parallel()
		p := newEngineProject(t)
		p.write(t, webVersion{image: p.image1})
		res, err := p.deploy(t, map[string]any{"dry_run": true})
		if err != nil {
			t.Fatalf("dry run: %v (%+v)", err, res)
		}
		if res.DryRun == nil || len(res.DryRun.Create) != 1 || !res.Changed || p.containerIDs(t) != "" {
			t.Errorf("dry run of a new project = %+v %+v, containers %q", res, res.DryRun, p.containerIDs(t))
		}
		res, err = p.deploy(t, nil)
		wantOK(t, res, err)
		ids := p.containerIDs(t)
		p.write(t, webVersion{image: p.image2})
		res, err = p.deploy(t, map[string]any{"dry_run": true})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.DryRun.Recreate) != 1 || !res.Changed || res.DryRun.LastGoodRevision != 1 || p.containerIDs(t) != ids {
			t.Errorf("dry run of a change = %+v %+v", res, res.DryRun)
		}
		if got := p.page(t); got != "version 1" {
			t.Errorf("page = %q", got)
		}
	})
	t.Run("policy refusal", func(t *testing.T) {
		t.Parallel()
		p := newEngineProject(t)
		p.write(t, webVersion{image: p.image1, extra: "    privileged: true\n    volumes: [\"/:/host\"]\n"})
		_, err := p.deploy(t, nil)
		if err == nil || !IsPermanent(err) || !strings.Contains(err.Error(), "service web: privileged: true is refused") || !strings.Contains(err.Error(), "service web: volumes: bind mount of /: outside the bind roots") {
			t.Fatalf("deploy = %v", err)
		}
		if p.containerIDs(t) != "" {
			t.Error("a refused project started containers")
		}
	})
}

// BenchmarkComposeGateVersusWait measures, on the same project in the same run, the time
// from `docker compose up -d` to healthy as the gate reports it, and the time of
// `docker compose up -d --wait`; it reports both and their ratio (gate/wait).
func BenchmarkComposeGateVersusWait(b *testing.B) {
	e := testEngine(b)
	root := filepath.Join(b.TempDir(), "root")
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	name := "lbb-" + hex.EncodeToString(rnd[:])
	dir := filepath.Join(root, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(dir, "compose.yaml")
	compose := fmt.Sprintf(`services:
  web:
    image: %s
    command: ["httpd", "-f", "-p", "80", "-h", "/www"]
    ports: ["127.0.0.1:%d:80"]
    stop_grace_period: 1s
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1/"]
      interval: 300ms
      timeout: 2s
      retries: 3
`, e.image1, freePort(b))
	if err := os.WriteFile(path, []byte(compose), 0o644); err != nil {
		b.Fatal(err)
	}
	c, err := newComposeCore(DockerReloadConfig{Roots: []string{root}, Docker: e.cli, DockerHost: e.host, DockerConfig: e.config, StateDir: b.TempDir(), Poll: DefaultComposePoll})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	lp, err := c.load(ctx, path)
	if err != nil {
		b.Fatal(err)
	}
	down := func() {
		_ = e.cmd(ctx, "compose", "-p", name, "down", "-v", "-t", "1").Run()
	}
	b.Cleanup(down)
	var gateTotal, waitTotal time.Duration
	for b.Loop() {
		down()
		l := &runLog{res: &DockerReloadResult{}, mask: func(s string) string { return s }}
		start := time.Now()
		if err := c.compose(ctx, l, lp, nil, "up", "-d", "--remove-orphans"); err != nil {
			b.Fatal(err)
		}
		g := &gate{core: c, project: lp.project, services: []string{"web"}, baseline: map[string]int{}, settle: c.settle, mask: l.mask}
		if _, err := g.wait(ctx, time.Minute); err != nil {
			b.Fatal(err)
		}
		gateTotal += time.Since(start)

		down()
		start = time.Now()
		if out, err := e.cmd(ctx, "compose", "-f", path, "-p", name, "up", "-d", "--wait").CombinedOutput(); err != nil {
			b.Fatalf("up --wait: %v: %s", err, out)
		}
		waitTotal += time.Since(start)
	}
	n := float64(b.N)
	b.ReportMetric(float64(gateTotal.Milliseconds())/n, "gate-ms/op")
	b.ReportMetric(float64(waitTotal.Milliseconds())/n, "wait-ms/op")
	b.ReportMetric(float64(gateTotal)/float64(waitTotal), "gate/wait")
}

// TestEngineLogsKeepEveryByte: output that is not UTF-8 (a container printing raw bytes,
// kept by the `local` log driver, which stores lines as bytes) comes back from COMPOSE_LOGS
// byte for byte: base64 with stdout_encoding in the result's JSON, masked like text.
func TestEngineLogsKeepEveryByte(t *testing.T) {
	t.Parallel()
	p := newEngineProject(t)
	const secret = "s3cr3t-logged-value"
	if err := os.WriteFile(filepath.Join(p.dir, ".env"), []byte("GREETING="+secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p.write(t, webVersion{
		image:   p.image1,
		command: `printf 'raw \377\376 %s \303\n' "$$GREETING"; httpd -f -p 80 -h /www`,
		extra:   "    environment:\n      GREETING: ${GREETING}\n    logging:\n      driver: local\n",
	})
	res, err := p.deploy(t, nil)
	wantOK(t, res, err)
	logs, err := p.logs.Execute(t.Context(), marshalPayload(t, map[string]any{"compose_path": p.path}))
	if err != nil {
		t.Fatal(err)
	}
	l := logs.(*ComposeLogsResult)
	if want := "raw \xff\xfe *** \xc3\n"; !strings.Contains(l.Process.Stdout, want) || strings.Contains(l.Process.Stdout, secret) {
		t.Fatalf("stdout = %q (stderr %q), want it to hold %q", l.Process.Stdout, l.Process.Stderr, want)
	}
	b, err := json.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	var wire struct {
		Stdout         string  `json:"stdout"`
		StdoutEncoding string  `json:"stdout_encoding"`
		StderrEncoding *string `json:"stderr_encoding"`
	}
	if err := json.Unmarshal(b, &wire); err != nil {
		t.Fatal(err)
	}
	got, err := base64.StdEncoding.DecodeString(wire.Stdout)
	if wire.StdoutEncoding != "base64" || wire.StderrEncoding != nil || err != nil || string(got) != l.Process.Stdout {
		t.Errorf("result JSON %s does not carry stdout as base64 of its bytes (decode: %v)", b, err)
	}
}
