package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/letsbe/sysadmin-agent/orchestratorsync/wire"

	"github.com/go-logr/logr"

	"github.com/letsbe/sysadmin-agent/api/progress"
	"github.com/letsbe/sysadmin-agent/api/store"
	"github.com/letsbe/sysadmin-agent/api/store/journal"
	"github.com/letsbe/sysadmin-agent/api/store/memory"
	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
	"github.com/letsbe/sysadmin-agent/config"
	"github.com/letsbe/sysadmin-agent/controllers"
	"github.com/letsbe/sysadmin-agent/executors"
	"github.com/letsbe/sysadmin-agent/executors/browser"
	"github.com/letsbe/sysadmin-agent/internal/logging"
	"github.com/letsbe/sysadmin-agent/internal/memtrim"
	"github.com/letsbe/sysadmin-agent/orchestratorsync"
)

// flushTimeout bounds the delivery of final reports at shutdown; what is not delivered by then
// stays in the journal for the next start.
const flushTimeout = 10 * time.Second

// skipNameValidation lets several agents run in one process, one after another (the
// in-process benchmarks): controller-runtime refuses a controller name seen before.
var skipNameValidation bool

// agent is the wired-up process: the store, the controllers and the sync side.
type agent struct {
	cfg   *config.Config
	log   logr.Logger
	store store.Store
	// notifier tells of every change of store.
	notifier store.Notifier
	journal  *journal.Journal
	// dlv remembers the final reports the orchestrator accepted, for AGENT_TASK_DEDUP_WINDOW:
	// the journal (durably), or in memory in cluster mode.
	dlv      store.Delivered
	runner   *controllers.Runner
	syncer   *orchestratorsync.Syncer
	registry *controllers.Registry
	gc       *controllers.TaskCollector
	metrics  *agentMetrics
	// progress carries the live progress of running tasks from the controllers to the syncer.
	progress *progress.Hub
	// standby, in cluster mode, reports whether another replica leads (see cluster.go).
	standby func() bool
	// live is the sync loops' progress, for the systemd watchdog (notify.go).
	live *liveness
	// draining is set when the drain starts.
	draining atomic.Bool
	// trust admits Tasks right before they run (trust.go).
	trust *trustGate
	// stacks hold the Stack objects of the deployed Compose projects.
	stacks stackStore
}

// stackStore is a Stack store with notifications: memory.StackStore or kube.StackStore.
type stackStore interface {
	store.StackStore
	store.StackNotifier
}

// composeSettings is the compose policy of the AGENT_COMPOSE_* settings alone.
func composeSettings(cfg *config.Config) executors.ComposePolicy {
	return executors.ComposePolicy{
		AllowPrivileged:     cfg.ComposeAllowPrivileged,
		AllowHostNamespaces: cfg.ComposeAllowHostNamespaces,
		AllowedCapabilities: cfg.ComposeAllowedCapabilities,
		AllowDevices:        cfg.ComposeAllowDevices,
		BindRoots:           cfg.ComposeBindRoots,
	}
}

// composeConfig is the Compose executors' configuration, shared by the Stack observer.
func composeConfig(cfg *config.Config, proc *executors.Process, composePolicy func() executors.ComposePolicy) executors.DockerReloadConfig {
	return executors.DockerReloadConfig{
		Roots: cfg.FileRoots, MaxBytes: cfg.MaxFileBytes, Docker: cfg.DockerBinary, Process: proc,
		DockerHost: cfg.DockerHost, DockerConfig: cfg.DockerConfig,
		StateDir: cfg.StateDir, Revisions: cfg.StackRevisions,
		Policy: composeSettings(cfg), CurrentPolicy: composePolicy,
	}
}

// buildExecutors returns one executor per supported task type. composePolicy, when set,
// returns the compose policy in force for each task (the settings narrowed by AGENT_POLICY,
// which SIGHUP reloads); without it the settings alone apply.
func buildExecutors(cfg *config.Config, composePolicy func() executors.ComposePolicy) (map[string]executors.Executor, error) {
	proc := executors.NewProcess(executors.ProcessConfig{})
	shell, err := executors.NewShell(executors.ShellConfig{
		AllowedCommands: cfg.AllowedCommands, Process: proc, Roots: cfg.FileRoots, MaxEnvBytes: cfg.MaxFileBytes,
	})
	if err != nil {
		return nil, fmt.Errorf("SHELL executor: %w", err)
	}
	files := executors.FileConfig{Roots: cfg.FileRoots, MaxBytes: cfg.MaxFileBytes}
	fileWrite, err := executors.NewFileWrite(files)
	if err != nil {
		return nil, fmt.Errorf("FILE_WRITE executor: %w", err)
	}
	envUpdate, err := executors.NewEnvUpdate(files)
	if err != nil {
		return nil, fmt.Errorf("ENV_UPDATE executor: %w", err)
	}
	compose := composeConfig(cfg, proc, composePolicy)
	dockerReload, err := executors.NewDockerReload(compose)
	if err != nil {
		return nil, fmt.Errorf("DOCKER_RELOAD executor: %w", err)
	}
	composeStatus, err := executors.NewComposeStatus(compose)
	if err != nil {
		return nil, fmt.Errorf("COMPOSE_STATUS executor: %w", err)
	}
	composeLogs, err := executors.NewComposeLogs(compose)
	if err != nil {
		return nil, fmt.Errorf("COMPOSE_LOGS executor: %w", err)
	}
	composeRollback, err := executors.NewComposeRollback(compose)
	if err != nil {
		return nil, fmt.Errorf("COMPOSE_ROLLBACK executor: %w", err)
	}
	playwright, err := browser.New(browser.Config{
		ChromiumPath: cfg.ChromiumPath, AllowedHosts: cfg.BrowserAllowedHosts, MaxConcurrent: cfg.MaxBrowserTasks,
	})
	if err != nil {
		return nil, fmt.Errorf("invalid AGENT_BROWSER_ALLOWED_HOSTS: %w", err)
	}
	return map[string]executors.Executor{
		agentv1.TypeEcho:            executors.NewEcho(),
		agentv1.TypeShell:           shell,
		agentv1.TypeFileWrite:       fileWrite,
		agentv1.TypeEnvUpdate:       envUpdate,
		agentv1.TypeDockerReload:    dockerReload,
		agentv1.TypeComposeStatus:   composeStatus,
		agentv1.TypeComposeLogs:     composeLogs,
		agentv1.TypeComposeRollback: composeRollback,
		agentv1.TypePlaywright:      playwright,
	}, nil
}

// parts are what both store modes build the same way before their store exists: the
// executors, the task types (sorted, derived once), the trust gate and the process key.
type parts struct {
	execs      map[string]executors.Executor
	types      []string
	trust      *trustGate
	processKey []byte
	// stackObserver observes and heals the deployed Compose projects for the Stacks.
	stackObserver *executors.StackObserver
}

func newParts(cfg *config.Config, log logr.Logger) (*parts, error) {
	logging.RouteLogrus(log.WithName("compose"))
	var gate atomic.Pointer[trustGate] // set below, before any task runs
	execs, err := buildExecutors(cfg, composePolicyOf(&gate))
	if err != nil {
		return nil, err
	}
	if n := browser.RemoveLeftoverProfiles("", time.Now()); n > 0 {
		log.Info("Removed browser profiles left by an earlier run", "profiles", n)
	}
	if err := checkStateDir(cfg.StateDir); err != nil {
		return nil, err
	}
	processKey, err := loadProcessKey(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	types := executors.Types(execs)
	trust, err := newTrustGate(cfg, types, log.WithName("trust"))
	if err != nil {
		return nil, err
	}
	gate.Store(trust)
	observer, err := executors.NewStackObserver(composeConfig(cfg, executors.NewProcess(executors.ProcessConfig{}), composePolicyOf(&gate)))
	if err != nil {
		return nil, fmt.Errorf("stack observer: %w", err)
	}
	return &parts{execs: execs, types: types, trust: trust, processKey: processKey, stackObserver: observer}, nil
}

// newAgentOn builds the agent over the Tasks of st and the Stacks of stacks, in either mode:
// jnl is the journal behind st (nil in cluster mode), dlv remembers the accepted final reports.
func newAgentOn(cfg *config.Config, log logr.Logger, p *parts, st store.Store, n store.Notifier, stacks stackStore, jnl *journal.Journal, dlv store.Delivered) (*agent, error) {
	a := &agent{cfg: cfg, log: log, store: st, notifier: n, journal: jnl, dlv: dlv,
		registry: controllers.NewRegistry(), progress: progress.NewHub(), trust: p.trust, stacks: stacks}
	a.metrics = newAgentMetrics(a, p.execs)
	if jnl == nil {
		// No journal: its metrics would only ever say 0.
		a.metrics.unregisterJournal()
	}
	syncer, err := a.newSyncer(st, n, p.types)
	if err != nil {
		return nil, err
	}
	a.syncer = syncer
	p.trust.agentID = syncer.AgentID
	a.gc = &controllers.TaskCollector{Store: st, Notifier: n, Retention: cfg.TaskRetention, Logger: log.WithName("collector")}
	return a, nil
}

// controllerOptions configure the reconcilers, the same in both modes.
func (a *agent) controllerOptions(p *parts) controllers.Options {
	return controllers.Options{
		Store:                   a.store,
		Notifier:                a.notifier,
		Executors:               p.execs,
		MaxConcurrentReconciles: a.cfg.MaxConcurrentTasks,
		MaxConcurrentTasks:      a.cfg.MaxConcurrentTasks,
		MaxTimeout:              a.cfg.TaskTimeout,
		Logger:                  a.log.WithName("controllers"),
		Registry:                a.registry,
		Observe:                 a.metrics.observeTask,
		Progress:                a.progressOptions(),
		Admit:                   a.trust.admit,
		ProcessKey:              p.processKey,
		Stacks: &controllers.StackOptions{
			Store: a.stacks, Notifier: a.stacks, Observer: p.stackObserver,
			RecheckInterval: a.cfg.StackRecheckInterval, SelfHeal: a.cfg.StackSelfHeal,
		},
		SkipNameValidation: skipNameValidation,
	}
}

func newAgent(cfg *config.Config, log logr.Logger) (*agent, error) {
	p, err := newParts(cfg, log)
	if err != nil {
		return nil, err
	}
	journalWrites := newJournalWriteHistogram()
	jnl, err := journal.Open(cfg.StateDir, log.WithName("journal"),
		journal.WithDelivered(store.DeliveredLimits{Window: cfg.TaskDedupWindow}),
		journal.WithWriteObserver(func(elapsed time.Duration, _ error) { journalWrites.Observe(elapsed.Seconds()) }))
	if err != nil {
		return nil, err
	}
	mem := memory.New(memory.WithPersister(jnl))
	restored, err := jnl.Load(mem)
	if err != nil {
		_ = jnl.Close()
		return nil, err
	}
	if restored > 0 {
		log.Info("Restored unfinished or unreported tasks from the journal", "tasks", restored)
	}
	// Stacks are kept in memory only and rebuilt from the revision records at start
	// (package memory says why).
	a, err := newAgentOn(cfg, log, p, mem, mem, memory.NewStackStore(), jnl, jnl)
	if err != nil {
		_ = jnl.Close()
		return nil, err
	}
	a.metrics.register(journalWrites)
	if a.runner, err = controllers.NewRunner(a.controllerOptions(p)); err != nil {
		_ = jnl.Close()
		return nil, err
	}
	return a, nil
}

// progressOptions configure the controllers' live progress: the agent's own token is masked
// in every task's progress besides what the executors mask.
func (a *agent) progressOptions() controllers.ProgressOptions {
	return controllers.ProgressOptions{
		Hub:      a.progress,
		Interval: a.cfg.ProgressInterval,
		MaxBytes: int(a.cfg.ProgressMaxBytes),
		Masks:    []string{a.cfg.Token},
	}
}

// newSyncer builds the orchestrator client and the sync side over the Tasks of st (both
// modes); types are the task types the agent runs.
func (a *agent) newSyncer(st store.Store, n store.Notifier, types []string) (*orchestratorsync.Syncer, error) {
	if a.live == nil {
		a.live = newLiveness()
	}
	client, err := wire.NewClient(wire.Config{
		BaseURL:      a.cfg.OrchestratorURL,
		Token:        a.cfg.Token,
		UserAgent:    "letsbe-agent/" + version,
		MaxTaskBytes: a.cfg.MaxTaskBytes,
		Transport:    debugTransport(),
		Observe: func(endpoint string, code int, elapsed time.Duration) {
			a.live.observe(code)
			a.metrics.observeRequest(endpoint, code, elapsed)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("invalid ORCHESTRATOR_URL: %w", err)
	}
	hostname, _ := os.Hostname()
	return orchestratorsync.New(orchestratorsync.Options{
		Client:             client,
		Store:              st,
		Notifier:           n,
		StateDir:           a.cfg.StateDir,
		EnrollmentToken:    a.cfg.Token,
		Hostname:           hostname,
		Version:            version,
		Capabilities:       types,
		Labels:             a.cfg.Labels,
		HeartbeatInterval:  a.cfg.HeartbeatInterval,
		PollInterval:       a.cfg.PollInterval,
		MaxConcurrentTasks: a.cfg.MaxConcurrentTasks,
		MaxReportBytes:     int(a.cfg.MaxReportBytes),
		Durable:            a.durable,
		Unwritten:          a.unwritten,
		RunningTasks:       a.registry.Running,
		CancelTask: func(ctx context.Context, id string) {
			if _, err := controllers.Cancel(ctx, st, a.registry, id, controllers.ErrCancelled); err != nil {
				a.log.Error(err, "Cannot cancel task", "task", id)
			}
		},
		SystemInfo: func() wire.SystemInfo {
			si := executors.ReadSystemInfo(a.cfg.StateDir)
			return wire.SystemInfo{
				Load1: si.Load1, MemTotalBytes: si.MemTotalBytes,
				MemAvailableBytes: si.MemAvailableBytes, DiskFreeBytes: si.DiskFreeBytes,
			}
		},
		Delivered: a.dlv,
		Stacks:    a.stacks,
		OnRefused: func(t *agentv1.Task) { a.metrics.observeTask(t, 0) },
		Progress:  a.progress,
		Policy: func() *wire.PolicyReport {
			pol := a.trust.Policy()
			return &wire.PolicyReport{SHA256: pol.SHA256(), Summary: pol.Summary()}
		},
		Logger:  a.log.WithName("sync"),
		Backoff: orchestratorsync.Backoff{Base: a.cfg.BackoffBase},
	})
}

// run runs the agent until ctx ends, then drains: no new tasks, running ones get the grace
// period, the rest are cancelled, and final reports are flushed for a bounded time.
func (a *agent) run(ctx context.Context) error {
	defer func() {
		if err := a.journal.Close(); err != nil {
			a.log.Error(err, "Cannot close the journal")
		}
	}()
	defer a.metrics.unregister()
	ln, err := a.listenHTTP()
	if err != nil {
		return err
	}
	a.log.Info("Starting agent", "version", version, "orchestrator", a.cfg.OrchestratorURL,
		"stateDir", a.cfg.StateDir, "taskTypes", a.runner.Types(), "maxConcurrentTasks", a.cfg.MaxConcurrentTasks)

	runCtx, stopControllers := context.WithCancel(context.Background())
	a.trust.watch(runCtx)
	stopReload := onReload(a.reload)
	defer stopReload()
	syncCtx, stopSync := context.WithCancel(context.Background())
	// The parts run until they are stopped; should they all end on their own, so does run. The
	// last one to end closes allEnded (no goroutine waits on the WaitGroup for it).
	var wg sync.WaitGroup
	var running atomic.Int32
	running.Add(1) // held while the parts start: one that ends at once does not count as the last
	allEnded := make(chan struct{})
	ended := func() {
		if running.Add(-1) == 0 {
			close(allEnded)
		}
	}
	start := func(part func()) {
		running.Add(1)
		wg.Go(func() {
			defer ended()
			part()
		})
	}
	var runErr, syncErr error
	start(func() { runErr = a.runner.Start(runCtx) })
	start(func() { syncErr = a.syncer.Run(syncCtx) })
	start(func() {
		if err := a.gc.Start(runCtx); err != nil {
			a.log.Error(err, "Task collector stopped")
		}
	})
	if ln != nil {
		start(func() { a.serveHTTP(runCtx, ln) })
	}
	start(func() { a.superviseSystemd(runCtx) })
	start(func() { a.trimMemory(runCtx) })
	ended()

	select {
	case <-ctx.Done():
	case <-allEnded:
	}

	a.drain("the journal keeps them for the next start")
	stopSync()
	stopControllers()
	wg.Wait()
	a.log.Info("Agent stopped")
	return errors.Join(runErr, syncErr)
}

// drain stops taking tasks, lets the running ones finish within the shutdown grace, cancels
// the rest and flushes final reports for a bounded time; undelivered tells where those that did
// not go out stay.
func (a *agent) drain(undelivered string) {
	a.log.Info("Draining: no new tasks; waiting for running ones", "grace", a.cfg.ShutdownGrace.String())
	a.notifyStopping()
	a.syncer.Drain()
	a.waitIdle(a.cfg.ShutdownGrace)
	a.registry.CancelAll(controllers.ErrShuttingDown)
	a.cancelPending()
	a.waitIdle(5 * time.Second)

	flushCtx, cancelFlush := context.WithTimeout(context.Background(), flushTimeout)
	defer cancelFlush()
	if !a.syncer.Flush(flushCtx) {
		a.log.Info("Some final reports were not delivered before shutdown: " + undelivered)
	}
}

// waitIdle waits until no Task is unfinished, or d passes (controllers.WaitIdle: driven by
// the store's notifications).
func (a *agent) waitIdle(d time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	controllers.WaitIdle(ctx, a.store, a.notifier)
}

func (a *agent) unfinished() int { return controllers.Unfinished(context.Background(), a.store) }

// cancelPending fails the Tasks that never started.
func (a *agent) cancelPending() {
	controllers.CancelPending(context.Background(), a.store, a.registry, controllers.ErrShuttingDown)
}

// durable says whether Tasks can be made durable now: nil when they can (always, in cluster
// mode, where the API server keeps them), else why not.
func (a *agent) durable() error {
	if a.journal == nil {
		return nil
	}
	return a.journal.Healthy()
}

// unwritten reports whether the named Task holds a status the journal could not write yet.
func (a *agent) unwritten(name string) bool {
	return a.journal != nil && a.journal.Unwritten(name)
}

// trimMemory returns to the system what a burst of tasks left on the heap once the agent is
// quiet again, so that RSS after big tasks does not depend on their size, and takes the
// executable's pages out of the resident set once per quiet spell (internal/memtrim).
func (a *agent) trimMemory(ctx context.Context) {
	warned := false
	t := &memtrim.Trimmer{
		OnTrim: func(garbage uint64) {
			a.log.V(1).Info("Returned memory to the system after a burst of tasks", "bytes", garbage)
		},
		PageOut: true,
		OnPageOut: func(advised uint64, err error) {
			switch {
			case err == nil:
				a.log.V(1).Info("Paged out the executable now that the agent is quiet", "bytes", advised)
			case !warned: // once: the kernel or the sandbox will not change while the agent runs
				warned = true
				a.log.V(1).Info("Cannot page out the executable; its pages stay resident", "error", err.Error())
			}
		},
	}
	t.Run(ctx)
}

// reload re-reads the trusted keys and the policy (SIGHUP).
func (a *agent) reload() {
	a.log.Info("Reloading the trusted task keys and the policy")
	a.trust.reload()
}

func runAgent(ctx context.Context, cfg *config.Config, log logr.Logger) error {
	if cfg.Store == config.StoreKubernetes {
		return runCluster(ctx, cfg, log)
	}
	a, err := newAgent(cfg, log)
	if err != nil {
		return err
	}
	return a.run(ctx)
}
