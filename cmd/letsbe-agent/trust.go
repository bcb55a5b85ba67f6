package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/go-logr/logr"

	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
	"github.com/letsbe/sysadmin-agent/config"
	"github.com/letsbe/sysadmin-agent/executors"
	"github.com/letsbe/sysadmin-agent/internal/policy"
	"github.com/letsbe/sysadmin-agent/internal/statedir"
	"github.com/letsbe/sysadmin-agent/internal/tasksig"
)

// trustGate decides, right before a Task starts and in both store modes, whether it may run:
// its expiry, its signature (with AGENT_TASK_KEYS) and the agent's policy. The reconcilers ask
// it through controllers.Options.Admit, so no path into the store (the poller, a restart from
// the journal, a Task custom resource created by anyone with access to the namespace) runs a
// task it refuses.
type trustGate struct {
	log      logr.Logger
	cfg      *config.Config
	types    []string
	keys     *tasksig.Keys // nil without AGENT_TASK_KEYS
	verifier *tasksig.Verifier
	policy   atomic.Pointer[policy.Policy]
	// agentID is this agent's id, set once the sync side exists.
	agentID func() string
}

func newTrustGate(cfg *config.Config, types []string, log logr.Logger) (*trustGate, error) {
	g := &trustGate{log: log, cfg: cfg, types: types}
	if cfg.TaskKeys != "" {
		keys, err := tasksig.OpenKeys(cfg.TaskKeys, log)
		if err != nil {
			return nil, fmt.Errorf("invalid AGENT_TASK_KEYS: %w", err)
		}
		g.keys = keys
		log.Info("Tasks must be signed", "keys", cfg.TaskKeys, "kids", keys.Current().KIDs(),
			"allowUnsigned", cfg.AllowUnsignedTasks, "requireExpiry", cfg.RequireTaskExpiry)
	} else {
		log.Info("Task signatures are not checked (AGENT_TASK_KEYS is not set)")
	}
	g.verifier = &tasksig.Verifier{
		Keys:          g.keys,
		AllowUnsigned: cfg.AllowUnsignedTasks,
		RequireExpiry: cfg.RequireTaskExpiry,
		AgentID:       func() string { return g.currentAgentID() },
	}
	pol, err := effectivePolicy(cfg, types)
	if err != nil {
		return nil, err
	}
	g.policy.Store(pol)
	log.Info("Task policy in force", "source", pol.Source, "sha256", pol.SHA256(), "types", pol.Types)
	return g, nil
}

// effectivePolicy is the policy of the settings, narrowed by AGENT_POLICY.
func effectivePolicy(cfg *config.Config, types []string) (*policy.Policy, error) {
	var file *policy.File
	if cfg.Policy != "" {
		var err error
		if file, err = policy.LoadFile(cfg.Policy); err != nil {
			return nil, fmt.Errorf("invalid AGENT_POLICY: %w", err)
		}
	}
	pol, err := policy.New(policy.Settings{
		Types: types, AllowedCommands: cfg.AllowedCommands, FileRoots: cfg.FileRoots,
		BrowserAllowedHosts: cfg.BrowserAllowedHosts, Compose: composeSettings(cfg),
	}, file, cfg.Policy)
	if err != nil {
		return nil, fmt.Errorf("invalid policy: %w", err)
	}
	return pol, nil
}

// composePolicyOf returns the compose policy of the gate's policy in force, once the gate is
// set; before that (no task runs then) the safe default, which refuses the most.
func composePolicyOf(gate *atomic.Pointer[trustGate]) func() executors.ComposePolicy {
	return func() executors.ComposePolicy {
		if g := gate.Load(); g != nil {
			return g.Policy().Compose
		}
		return executors.ComposePolicy{}
	}
}

func (g *trustGate) currentAgentID() string {
	if g.agentID == nil {
		return ""
	}
	return g.agentID()
}

// Policy returns the policy in force.
func (g *trustGate) Policy() *policy.Policy { return g.policy.Load() }

// admit implements controllers.Options.Admit: origin first (expiry, signature), then policy.
func (g *trustGate) admit(_ context.Context, task *agentv1.Task) error {
	if err := g.verifier.Check(task); err != nil {
		return err
	}
	return g.Policy().Check(task)
}

// watch follows changes of the key file until ctx ends.
func (g *trustGate) watch(ctx context.Context) {
	if g.keys == nil {
		return
	}
	if err := g.keys.Watch(ctx); err != nil {
		g.log.Error(err, "Cannot watch the trusted task keys for changes; send SIGHUP to reload them")
	}
}

// reload reads the key file and the policy file again (SIGHUP). What cannot be read is logged
// and what was in force stays.
func (g *trustGate) reload() {
	if g.keys != nil {
		_ = g.keys.Reload() // logged by Reload
	}
	if g.cfg.Policy == "" {
		return
	}
	pol, err := effectivePolicy(g.cfg, g.types)
	if err != nil {
		g.log.Error(err, "Cannot reload the policy; keeping the policy in force", "sha256", g.Policy().SHA256())
		return
	}
	g.policy.Store(pol)
	g.log.Info("Task policy reloaded", "source", pol.Source, "sha256", pol.SHA256(), "types", pol.Types)
}

// checkStateDir makes sure nobody but the agent's user can change what the agent loads from
// its state directory (identity, token, journal), creating the directory (0700) if it is
// missing. The error is the one line start-up stops with.
func checkStateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("AGENT_STATE_DIR %s: %w", dir, err)
	}
	if err := statedir.Check(dir); err != nil {
		return fmt.Errorf("unsafe AGENT_STATE_DIR: %w", err)
	}
	for _, name := range []string{"identity.json", "journal.db"} {
		if err := statedir.CheckFile(filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("unsafe AGENT_STATE_DIR: %w", err)
		}
	}
	return nil
}
