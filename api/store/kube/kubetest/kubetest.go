// Package kubetest runs a test package's tests against a real Kubernetes API server
// (controller-runtime's envtest: etcd and kube-apiserver, no cluster) with the Task and Stack
// CRDs installed. One API server serves the whole test package:
//
//	func TestMain(m *testing.M) { os.Exit(kubetest.Run(m)) }
//
//	func TestSomething(t *testing.T) {
//		env := kubetest.Get(t) // skips, loudly, when there is no API server
//		ns := env.Namespace(t)
//		st := env.NewStore(t, ns)
//		...
//	}
//
// The API server starts with the first test that calls Get, so a test package whose other
// tests need none (cmd/letsbe-agent, controllers) pays nothing for it when those run alone. The binaries come
// from KUBEBUILDER_ASSETS (hack/envtest-assets.sh prepares them; `make test` and CI set it).
// Without it the tests skip with a message saying so, never silently; with it, an API server
// that does not start fails every test that needs it. Temporary and cache files stay in the test
// process's own directory (see internal/testdirs), removed at the end.
package kubetest

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/letsbe/sysadmin-agent/api/store/kube"
	"github.com/letsbe/sysadmin-agent/internal/testdirs"
)

// startTimeout bounds the API server's start; generous, for a loaded 2-core machine.
const startTimeout = 2 * time.Minute

// Env is a running API server with the Task and Stack CRDs installed.
type Env struct {
	// Config reaches the API server as an administrator.
	Config *rest.Config
	// Client reads and writes directly (no cache); its Scheme is kube.NewScheme().
	Client client.Client
	// Scheme knows the built-in types and the Task API.
	Scheme *runtime.Scheme
	// StartTime is how long the API server took to start (with the CRD installed).
	StartTime time.Duration

	testEnv *envtest.Environment
	usersMu sync.Mutex
}

var (
	current    *Env
	startErr   error
	startOnce  sync.Once
	skipReason string
	running    atomic.Bool // Run was called
)

// Run runs the tests, then stops the API server if one of them started it; it returns the exit
// code for os.Exit. Without KUBEBUILDER_ASSETS, or in -short mode, the tests run without one
// (and those calling Get skip).
func Run(m *testing.M) int {
	defer func() {
		if err := testdirs.Cleanup(); err != nil {
			fmt.Fprintf(os.Stderr, "kubetest: %v\n", err)
		}
	}()
	running.Store(true)
	if !flag.Parsed() {
		flag.Parse()
	}
	switch {
	case testing.Short():
		skipReason = "no API server in -short mode"
	case os.Getenv("KUBEBUILDER_ASSETS") == "":
		skipReason = "SKIPPED: KUBEBUILDER_ASSETS is not set: the envtest binaries (etcd, kube-apiserver) " +
			"could not be prepared; run `make envtest-assets` (hack/envtest-assets.sh) and set " +
			"KUBEBUILDER_ASSETS to the directory it prints"
		fmt.Fprintln(os.Stderr, "!!!!!!!! kubetest: "+skipReason)
	}
	code := m.Run()
	if current != nil {
		begin := time.Now()
		if err := current.testEnv.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "kubetest: stop the API server: %v\n", err)
			code = max(code, 1)
		}
		if testing.Verbose() {
			fmt.Fprintf(os.Stderr, "kubetest: API server stopped in %v\n", time.Since(begin).Round(time.Millisecond))
		}
	}
	return code
}

func start() (*Env, error) {
	crds, err := crdDir()
	if err != nil {
		return nil, err
	}
	scheme := kube.NewScheme()
	te := &envtest.Environment{
		Scheme:                   scheme,
		CRDDirectoryPaths:        []string{crds},
		ErrorIfCRDPathMissing:    true,
		ControlPlaneStartTimeout: startTimeout,
	}
	begin := time.Now()
	cfg, err := te.Start()
	if err != nil {
		return nil, err
	}
	env := &Env{Config: cfg, Scheme: scheme, StartTime: time.Since(begin), testEnv: te}
	env.Client, err = client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		_ = te.Stop()
		return nil, fmt.Errorf("client: %w", err)
	}
	return env, nil
}

// crdDir finds config/crd/bases from the test's working directory (its package directory).
func crdDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "config", "crd", "bases"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Get returns the test package's API server, starting it on the first call, or skips t (with
// the reason) when there is none.
func Get(t testing.TB) *Env {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
	if !running.Load() {
		t.Fatal("kubetest: no API server: call kubetest.Run from TestMain")
	}
	startOnce.Do(func() {
		current, startErr = start()
		if startErr == nil && testing.Verbose() {
			fmt.Fprintf(os.Stderr, "kubetest: API server started in %v\n", current.StartTime.Round(time.Millisecond))
		}
	})
	if startErr != nil {
		t.Fatalf("kubetest: start the API server: %v", startErr)
	}
	return current
}

// Namespace creates a fresh namespace for one test. The API server has no namespace
// controller, so it is never really deleted; it goes with the API server.
func (e *Env) Namespace(t testing.TB) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "test-"}}
	if err := e.Client.Create(context.Background(), ns); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	return ns.Name
}

// Kubeconfig returns a kubeconfig that reaches the API server as a new user named name, in
// groups (beside system:authenticated), authenticated by a client certificate. The user may
// do only what RBAC grants it (nothing, to begin with), unless a group says otherwise
// (system:masters).
func (e *Env) Kubeconfig(t testing.TB, name string, groups ...string) []byte {
	t.Helper()
	e.usersMu.Lock() // envtest's AddUser is not safe for concurrent use
	defer e.usersMu.Unlock()
	user, err := e.testEnv.AddUser(envtest.User{Name: name, Groups: groups}, nil)
	if err != nil {
		t.Fatalf("add user %s: %v", name, err)
	}
	b, err := user.KubeConfig()
	if err != nil {
		t.Fatalf("kubeconfig of %s: %v", name, err)
	}
	return b
}

// NewStore returns a cluster store for namespace ns over Client and a cache of its own, which
// runs until the test ends.
func (e *Env) NewStore(t testing.TB, ns string) *kube.Store {
	t.Helper()
	return newStore(t, e, ns, kube.New)
}

// NewStackStore returns a cluster Stack store for namespace ns over Client and a cache of its
// own, which runs until the test ends.
func (e *Env) NewStackStore(t testing.TB, ns string) *kube.StackStore {
	t.Helper()
	return newStore(t, e, ns, kube.NewStackStore)
}

func newStore[S any](t testing.TB, e *Env, ns string, newFn func(context.Context, kube.Options) (S, error)) S {
	t.Helper()
	c, err := cache.New(e.Config, cache.Options{
		Scheme:            e.Scheme,
		DefaultNamespaces: map[string]cache.Config{ns: {}},
	})
	if err != nil {
		t.Fatalf("cache: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	st, err := newFn(ctx, kube.Options{
		Client:    e.Client,
		Informers: c,
		Namespace: ns,
		Logger:    testr.NewWithInterface(t, testr.Options{}),
	})
	if err != nil {
		cancel()
		t.Fatalf("store: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("cache: %v", err)
		}
	})
	syncCtx, cancelSync := context.WithTimeout(ctx, time.Minute)
	defer cancelSync()
	if !c.WaitForCacheSync(syncCtx) {
		t.Fatal("cache did not sync")
	}
	return st
}
