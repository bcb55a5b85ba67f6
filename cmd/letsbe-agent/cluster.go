package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/letsbe/sysadmin-agent/api/store"
	"github.com/letsbe/sysadmin-agent/api/store/kube"
	"github.com/letsbe/sysadmin-agent/api/store/memory"
	"github.com/letsbe/sysadmin-agent/config"
	"github.com/letsbe/sysadmin-agent/controllers"
)

// leaseName names the Lease the replicas of cluster mode compete for.
const leaseName = "letsbe-agent"

// clusterAgent is the agent in cluster mode (AGENT_STORE=kubernetes): Tasks are custom
// resources in one namespace, the same reconcilers run under a controller-runtime manager, and
// with leader election only the replica holding the Lease polls, heartbeats, reports, runs
// Tasks and collects old ones; the others stand by with a warm cache. The API server plays the
// journal's part: a new leader finds every Task where the last one left it.
type clusterAgent struct {
	*agent
	mgr ctrl.Manager
}

func runCluster(ctx context.Context, cfg *config.Config, log logr.Logger) error {
	c, err := newClusterAgent(ctx, cfg, log)
	if err != nil {
		return err
	}
	return c.run(ctx)
}

func newClusterAgent(ctx context.Context, cfg *config.Config, log logr.Logger) (*clusterAgent, error) {
	p, err := newParts(cfg, log)
	if err != nil {
		return nil, err
	}
	restCfg, err := ctrl.GetConfig()
	if err != nil {
		return nil, fmt.Errorf("kubernetes store (AGENT_STORE): no cluster to talk to (in-cluster config or KUBECONFIG): %w", err)
	}
	restCfg = rest.CopyConfig(restCfg)
	restCfg.UserAgent = "letsbe-agent/" + version
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme: kube.NewScheme(),
		Logger: log.WithName("manager"),
		Cache:  cache.Options{DefaultNamespaces: map[string]cache.Config{cfg.Namespace: {}}},
		// The agent's own listener (AGENT_HTTP_ADDR) serves controller-runtime's registry and
		// the health endpoints; the manager opens no port.
		Metrics:                       metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress:        "0",
		LeaderElection:                cfg.LeaderElection,
		LeaderElectionID:              leaseName,
		LeaderElectionNamespace:       cfg.Namespace,
		LeaderElectionResourceLock:    resourcelock.LeasesResourceLock,
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 &cfg.LeaseDuration,
		RenewDeadline:                 &cfg.LeaseRenewDeadline,
		RetryPeriod:                   &cfg.LeaseRetryPeriod,
	})
	if err != nil {
		return nil, fmt.Errorf("kubernetes store: manager: %w", err)
	}
	st, err := kube.New(ctx, kube.Options{
		Client:    mgr.GetClient(),
		Reader:    mgr.GetAPIReader(), // the reconcilers read their own writes
		Informers: mgr.GetCache(),
		Namespace: cfg.Namespace,
		Logger:    log.WithName("store"),
	})
	if err != nil {
		return nil, err
	}

	stacks, err := kube.NewStackStore(ctx, kube.Options{
		Client:    mgr.GetClient(),
		Reader:    mgr.GetAPIReader(),
		Informers: mgr.GetCache(),
		Namespace: cfg.Namespace,
		Logger:    log.WithName("store"),
	})
	if err != nil {
		return nil, err
	}

	a, err := newAgentOn(cfg, log, p, st, st, stacks, nil, memory.NewDelivered(store.DeliveredLimits{Window: cfg.TaskDedupWindow}))
	if err != nil {
		return nil, err
	}
	a.standby = func() bool {
		select {
		case <-mgr.Elected():
			return false
		default:
			return true
		}
	}
	if err := controllers.SetupWithManager(mgr, a.controllerOptions(p)); err != nil {
		return nil, err
	}
	// The Syncer is built on every replica and runs on the leader only; it reads the identity
	// in AGENT_STATE_DIR (shared by the replicas) again when it starts, so a new leader speaks
	// for the same agent as the last one.
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error { // leader only, as every Runnable that does not say otherwise
		log.Info("Leading: taking over the tasks in the cluster, polling the orchestrator", "namespace", cfg.Namespace)
		return a.syncer.Run(ctx)
	})); err != nil {
		return nil, err
	}
	if err := mgr.Add(a.gc); err != nil {
		return nil, err
	}
	return &clusterAgent{agent: a, mgr: mgr}, nil
}

// run runs the manager until ctx ends. Then the leader drains as in memory mode (no new tasks,
// running ones get the grace period, the rest are cancelled, final reports are flushed) and the
// manager stops, releasing the Lease so that a standby takes over at once. A standby just
// stops. When the manager stops by itself (the Lease lost, the API server unreachable at
// start), running tasks are cancelled and run returns the error: the process must exit.
func (c *clusterAgent) run(ctx context.Context) error {
	defer c.metrics.unregister()
	ln, err := c.listenHTTP()
	if err != nil {
		return err
	}
	c.log.Info("Starting agent", "version", version, "orchestrator", c.cfg.OrchestratorURL,
		"store", c.cfg.Store, "namespace", c.cfg.Namespace, "leaderElection", c.cfg.LeaderElection,
		"stateDir", c.cfg.StateDir, "maxConcurrentTasks", c.cfg.MaxConcurrentTasks)

	httpCtx, stopHTTP := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stopHTTP()
	if ln != nil {
		wg.Go(func() { c.serveHTTP(httpCtx, ln) })
	}
	wg.Go(func() { c.trimMemory(httpCtx) })
	mgrCtx, stopManager := context.WithCancel(context.Background())
	defer stopManager()
	c.trust.watch(mgrCtx)
	defer onReload(c.reload)()
	mgrDone := make(chan error, 1)
	go func() { mgrDone <- c.mgr.Start(mgrCtx) }()

	select {
	case <-ctx.Done():
	case err := <-mgrDone:
		c.registry.CancelAll(controllers.ErrShuttingDown)
		c.waitRunning(5 * time.Second)
		if err == nil {
			err = errors.New("stopped unexpectedly")
		}
		return fmt.Errorf("kubernetes store: manager: %w", err)
	}

	if !c.standby() {
		c.drain("the next leader delivers them")
	}
	stopManager()
	err = <-mgrDone
	c.log.Info("Agent stopped")
	return err
}

// waitRunning waits until no Task executes in this process, or d passes.
func (c *clusterAgent) waitRunning(d time.Duration) {
	deadline := time.Now().Add(d)
	for len(c.registry.Running()) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
}
