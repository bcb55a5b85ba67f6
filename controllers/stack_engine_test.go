package controllers_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/letsbe/sysadmin-agent/api/store/memory"
	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
	"github.com/letsbe/sysadmin-agent/controllers"
	"github.com/letsbe/sysadmin-agent/controllers/controllertest"
	"github.com/letsbe/sysadmin-agent/executors"
	"github.com/letsbe/sysadmin-agent/internal/testdirs"
	"github.com/letsbe/sysadmin-agent/internal/testengine"
	"github.com/letsbe/sysadmin-agent/internal/testpoll"
)

// stackWait bounds every wait of the Stack tests: deploys and heals on a loaded machine.
const stackWait = 3 * time.Minute

// The tests' Docker engine, asked for with the environment the test binary started with:
// kubetest (internal/testdirs) points XDG_CACHE_HOME, and so the go build cache where
// hack/docker-engine.sh keeps the engine, at a directory of its own.
var stackEngine, stackEngineErr = testengine.FindEnv("..", testdirs.OriginalEnviron())

// stackEnv is a Runner with Stacks over a memory store and the real Compose executors.
type stackEnv struct {
	tasks  *memory.Store
	stacks *memory.StackStore
	cfg    executors.DockerReloadConfig
}

func newStackEnv(t *testing.T, cfg executors.DockerReloadConfig, selfHeal bool, recheck time.Duration) *stackEnv {
	t.Helper()
	e := &stackEnv{tasks: memory.New(), stacks: memory.NewStackStore(), cfg: cfg}
	reload, err := executors.NewDockerReload(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rollback, err := executors.NewComposeRollback(cfg)
	if err != nil {
		t.Fatal(err)
	}
	obs, err := executors.NewStackObserver(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r, err := controllers.NewRunner(controllers.Options{
		Store: e.tasks, Notifier: e.tasks, Logger: testr.New(t), SkipNameValidation: true,
		Executors: map[string]executors.Executor{agentv1.TypeDockerReload: reload, agentv1.TypeComposeRollback: rollback},
		Stacks: &controllers.StackOptions{
			Store: e.stacks, Notifier: e.stacks, Observer: obs, RecheckInterval: recheck, SelfHeal: selfHeal,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	controllertest.Start(t, r.Start)
	return e
}

// waitStack waits until the Stack of project satisfies pred and returns it.
func (e *stackEnv) waitStack(t *testing.T, project, what string, pred func(*agentv1.Stack) bool) *agentv1.Stack {
	t.Helper()
	var got *agentv1.Stack
	testpoll.Until(t, stackWait, "stack "+project+": "+what, func() bool {
		s, err := e.stacks.Get(t.Context(), agentv1.StackName(project))
		if err != nil {
			return false
		}
		got = s
		return pred(s)
	})
	return got
}

// rechecked waits until the Stack was observed n more times after s.
func (e *stackEnv) rechecked(t *testing.T, s *agentv1.Stack, n int) *agentv1.Stack {
	t.Helper()
	for range n {
		last := s.Status.LastChecked.Time
		s = e.waitStack(t, s.Spec.Project, "another recheck", func(s *agentv1.Stack) bool {
			return s.Status.LastChecked != nil && s.Status.LastChecked.After(last)
		})
	}
	return s
}

func stackCondition(s *agentv1.Stack, typ string) string {
	c := meta.FindStatusCondition(s.Status.Conditions, typ)
	if c == nil {
		return ""
	}
	return string(c.Status)
}

// engineStack is a Compose project of one busybox httpd service with a healthcheck, on the
// tests' Docker engine.
type engineStack struct {
	eng        testengine.Engine
	name, path string
	cfg        executors.DockerReloadConfig
}

func newEngineStack(t *testing.T) *engineStack {
	t.Helper()
	eng, err := stackEngine, stackEngineErr
	if err == nil {
		err = exec.CommandContext(t.Context(), eng.CLI, "-H", eng.Host, "version").Run()
	}
	if err != nil {
		t.Skipf("\n!!!!!!!!\n!!!!!!!! SKIP: no Docker engine for the Stack tests: %v\n!!!!!!!!", err)
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	root := filepath.Join(t.TempDir(), "root")
	s := &engineStack{eng: eng, name: "lbs-" + hex.EncodeToString(b[:])}
	dir := filepath.Join(root, s.name)
	s.path = filepath.Join(dir, "compose.yaml")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	compose := fmt.Sprintf(`services:
  web:
    image: %s
    command: ["httpd", "-f", "-p", "80", "-h", "/www"]
    restart: unless-stopped
    ports: ["127.0.0.1:%d:80"]
    stop_grace_period: 1s
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1/"]
      interval: 300ms
      timeout: 2s
      retries: 3
`, eng.Image1, port)
	if err := os.WriteFile(s.path, []byte(compose), 0o644); err != nil {
		t.Fatal(err)
	}
	s.cfg = executors.DockerReloadConfig{
		Roots: []string{root}, Docker: eng.CLI, DockerHost: eng.Host, DockerConfig: eng.Config,
		StateDir: filepath.Join(t.TempDir(), "state"), Settle: time.Second, Poll: 100 * time.Millisecond,
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = s.docker(ctx, "compose", "-p", s.name, "down", "-v", "--remove-orphans", "-t", "1").Run()
	})
	return s
}

func (s *engineStack) docker(ctx context.Context, args ...string) *exec.Cmd {
	c := exec.CommandContext(ctx, s.eng.CLI, args...)
	c.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=/root", "DOCKER_HOST=" + s.eng.Host, "DOCKER_CONFIG=" + s.eng.Config}
	return c
}

func (s *engineStack) run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := s.docker(t.Context(), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func (s *engineStack) container(t *testing.T) string {
	t.Helper()
	return s.run(t, "ps", "-a", "-q", "--no-trunc", "--filter", "label=com.docker.compose.project="+s.name)
}

// deploy runs a DOCKER_RELOAD Task of the project through the reconcilers.
func (s *engineStack) deploy(t *testing.T, e *stackEnv, id string) {
	t.Helper()
	payload, _ := json.Marshal(map[string]any{"compose_path": s.path})
	controllertest.CreatePending(t, e.tasks, id, agentv1.TypeDockerReload, string(payload), 0)
	task := controllertest.WaitFor(t, e.tasks, id, stackWait, func(t *agentv1.Task) bool { return t.Status.Phase.IsFinal() })
	if task.Status.Phase != agentv1.TaskSucceeded {
		t.Fatalf("deploy %s: %s %s", id, task.Status.Phase, task.Status.Error)
	}
}

// TestStackReconcilerOnEngine: a good DOCKER_RELOAD makes the project's Stack, with its
// revision, Available; a stopped container makes it Degraded and Drifted at the next recheck;
// without self-healing it stays so (the agent never redeploys on its own); with it the
// service comes back through the health gate, once, and is not restarted again.
func TestStackReconcilerOnEngine(t *testing.T) {
	t.Parallel()
	for _, selfHeal := range []bool{false, true} {
		t.Run(fmt.Sprintf("selfHeal=%v", selfHeal), func(t *testing.T) {
			t.Parallel()
			s := newEngineStack(t)
			e := newStackEnv(t, s.cfg, selfHeal, 300*time.Millisecond)
			s.deploy(t, e, "deploy-1")
			st := e.waitStack(t, s.name, "available", func(st *agentv1.Stack) bool {
				return st.Status.ObservedGeneration == st.Generation && stackCondition(st, agentv1.StackConditionAvailable) == "True"
			})
			want := agentv1.StackSpec{Project: s.name, ComposePath: s.path, Revision: 1}
			if diff := cmp.Diff(want, st.Spec); diff != "" {
				t.Errorf("spec (-want +got):\n%s", diff)
			}
			if stackCondition(st, agentv1.StackConditionDegraded) != "False" || stackCondition(st, agentv1.StackConditionDrifted) != "False" ||
				len(st.Status.Services) != 1 || st.Status.Services[0].Health != "healthy" || len(st.Status.DegradedServices) != 0 {
				t.Errorf("status of a good deploy = %+v", st.Status)
			}

			s.run(t, "stop", "-t", "1", s.container(t))
			if !selfHeal {
				st = e.waitStack(t, s.name, "degraded", func(st *agentv1.Stack) bool {
					return stackCondition(st, agentv1.StackConditionDegraded) == "True"
				})
				if diff := cmp.Diff([]string{"web"}, st.Status.DegradedServices); diff != "" || stackCondition(st, agentv1.StackConditionAvailable) != "False" ||
					stackCondition(st, agentv1.StackConditionDrifted) != "True" || st.Status.Services[0].State != "exited" {
					t.Errorf("status after docker stop = %+v (degraded -want +got:\n%s)", st.Status, diff)
				}
				st = e.rechecked(t, st, 3)
				if stackCondition(st, agentv1.StackConditionDegraded) != "True" || st.Status.Heal != nil {
					t.Errorf("without self-healing the stack changed: %+v", st.Status)
				}
				if state := s.run(t, "inspect", "-f", "{{.State.Status}}", s.container(t)); state != "exited" {
					t.Errorf("without self-healing the container is %s", state)
				}
				return
			}
			st = e.waitStack(t, s.name, "healed", func(st *agentv1.Stack) bool {
				return st.Status.Heal != nil && stackCondition(st, agentv1.StackConditionAvailable) == "True"
			})
			if st.Status.Heal.Attempts != 1 || st.Status.Heal.Failures != 0 || st.Status.Heal.LastError != "" {
				t.Errorf("heal record = %+v", st.Status.Heal)
			}
			started := s.run(t, "inspect", "-f", "{{.State.StartedAt}}", s.container(t))
			st = e.rechecked(t, st, 5)
			if st.Status.Heal.Attempts != 1 || stackCondition(st, agentv1.StackConditionAvailable) != "True" {
				t.Errorf("after the heal: %+v, heal %+v", st.Status.Conditions, st.Status.Heal)
			}
			if again := s.run(t, "inspect", "-f", "{{.State.StartedAt}}", s.container(t)); again != started {
				t.Errorf("the healed container was restarted again: started %s, then %s", started, again)
			}
		})
	}
}

// TestStackObservationFailure: a Stack the agent cannot observe (its project has no revision
// recorded; in the field, docker failing) has its conditions Unknown with the reason, and is
// tried again.
func TestStackObservationFailure(t *testing.T) {
	t.Parallel()
	cfg := executors.DockerReloadConfig{Roots: []string{t.TempDir()}, StateDir: t.TempDir(), Docker: "/nonexistent/docker"}
	e := newStackEnv(t, cfg, true, 300*time.Millisecond)
	stack := &agentv1.Stack{ObjectMeta: metav1.ObjectMeta{Name: "gone"}, Spec: agentv1.StackSpec{Project: "gone", ComposePath: "/x/compose.yml", Revision: 3}}
	if err := e.stacks.Create(t.Context(), stack); err != nil {
		t.Fatal(err)
	}
	st := e.waitStack(t, "gone", "unknown", func(st *agentv1.Stack) bool { return stackCondition(st, agentv1.StackConditionAvailable) == "Unknown" })
	for _, c := range st.Status.Conditions {
		if c.Reason != agentv1.StackReasonObservationFailed || !strings.Contains(c.Message, "no last known good revision recorded") || c.ObservedGeneration != 1 {
			t.Errorf("condition %+v", c)
		}
	}
	e.rechecked(t, st, 1) // retried
}

// TestStackDockerEvents: with a recheck interval of an hour, a stopped container still makes
// its Stack Degraded at once, and a restarted one Available again: docker events bring the
// observation forward.
func TestStackDockerEvents(t *testing.T) {
	t.Parallel()
	s := newEngineStack(t)
	e := newStackEnv(t, s.cfg, false, time.Hour)
	s.deploy(t, e, "deploy-events")
	e.waitStack(t, s.name, "available", func(st *agentv1.Stack) bool { return stackCondition(st, agentv1.StackConditionAvailable) == "True" })
	id := s.container(t)
	s.run(t, "stop", "-t", "1", id)
	st := e.waitStack(t, s.name, "degraded after docker stop", func(st *agentv1.Stack) bool {
		return stackCondition(st, agentv1.StackConditionDegraded) == "True"
	})
	if diff := cmp.Diff([]string{"web"}, st.Status.DegradedServices); diff != "" {
		t.Errorf("degraded services (-want +got):\n%s", diff)
	}
	s.run(t, "start", id)
	e.waitStack(t, s.name, "available after docker start", func(st *agentv1.Stack) bool {
		return stackCondition(st, agentv1.StackConditionAvailable) == "True"
	})
}
