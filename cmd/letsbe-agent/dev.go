package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/go-logr/logr"

	"github.com/letsbe/sysadmin-agent/config"
	"github.com/letsbe/sysadmin-agent/internal/devguard"
	"github.com/letsbe/sysadmin-agent/internal/tasksig"
	"github.com/letsbe/sysadmin-agent/orchestratorsync/orchestratortest"
)

// devOptions are the flags only `letsbe-agent dev` takes, and what the command line and the
// environment set.
type devOptions struct {
	listen string
	// stateDirSet, fileRootsSet: AGENT_STATE_DIR or AGENT_FILE_ROOTS were set, so no temporary
	// directory replaces them.
	stateDirSet, fileRootsSet bool
	// taskKeysSet: AGENT_TASK_KEYS was set, so the agent does not trust the dev key instead.
	taskKeysSet bool
	// sign: the orchestrator signs every task (with a key made at start) and the agent trusts
	// that key only; --sign=false sends them unsigned, to try the refusal.
	sign bool
	// allowRemote lets --listen be a non-loopback address (--allow-remote).
	allowRemote bool
}

// devTaskTTL is the not_after the development orchestrator gives a task, from its handout.
const devTaskTTL = 10 * time.Minute

// runDev serves the reference orchestrator on opts.listen and runs an agent against it in the
// same process, so a newcomer can enqueue tasks with curl and watch them run.
func runDev(ctx context.Context, cfg *config.Config, opts devOptions, log logr.Logger) error {
	if !devguard.IsLoopbackAddr(opts.listen) && !opts.allowRemote {
		return fmt.Errorf("invalid --listen %s: not a loopback address; anyone who reaches it runs tasks on this machine as this user (add --allow-remote if that is really wanted)", opts.listen)
	}
	signer, err := tasksig.NewDevSigner(devTaskTTL)
	if err != nil {
		return err
	}
	orchOpts := orchestratortest.Options{EnrollmentToken: "dev-token", IssueAgentTokens: true, Progress: true}
	if opts.sign {
		orchOpts.Sign = signer.SignHandout
	}
	orch := orchestratortest.New(orchOpts)
	ln, err := net.Listen("tcp", opts.listen)
	if err != nil {
		return fmt.Errorf("listen on %s (--listen): %w", opts.listen, err)
	}
	if opts.allowRemote && !devguard.IsLoopbackAddr(opts.listen) {
		log.Info("WARNING: the development orchestrator listens on a non-loopback address; anyone who reaches it can run tasks on this machine", "listen", ln.Addr().String())
	}
	execs, err := buildExecutors(cfg, nil)
	if err != nil {
		return err
	}
	types := make([]string, 0, len(execs))
	for typ := range execs {
		types = append(types, typ)
	}
	slices.Sort(types)
	dir, err := os.MkdirTemp("", "letsbe-agent-dev-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if !opts.stateDirSet {
		cfg.StateDir = filepath.Join(dir, "state")
	}
	if !opts.taskKeysSet {
		// The agent trusts the key this orchestrator signs with, and nothing else.
		cfg.TaskKeys = filepath.Join(dir, "task-keys.json")
		if err := signer.WritePublicKeySet(cfg.TaskKeys); err != nil {
			return err
		}
	}
	if !opts.fileRootsSet {
		// Somewhere file tasks can be tried without touching the machine.
		root := filepath.Join(dir, "files")
		if err := os.MkdirAll(root, 0o755); err != nil {
			return err
		}
		cfg.FileRoots = []string{root}
	}
	sampleRoot := ""
	if len(cfg.FileRoots) > 0 {
		sampleRoot = cfg.FileRoots[0]
	}
	mux := http.NewServeMux()
	dash := dashboard(orch, types, sampleRoot)
	mux.Handle("GET /{$}", dash)
	mux.Handle("/dashboard/", dash)
	mux.Handle("/", orch)
	srv := &http.Server{Handler: devguard.Wrap(mux, devguard.Options{AllowRemote: opts.allowRemote}), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error(err, "Development orchestrator stopped")
		}
	}()
	defer func() {
		shutCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutCtx)
	}()

	base := "http://" + ln.Addr().String()
	cfg.OrchestratorURL = base
	cfg.Token = "dev-token"
	log.Info("Development orchestrator listening", "url", base, "dashboard", base+"/", "fileRoots", cfg.FileRoots,
		"signsTasks", opts.sign, "signingKey", signer.KID(), "taskKeys", cfg.TaskKeys,
		"try", "curl -s -XPOST "+base+`/dev/tasks -H 'Content-Type: application/json' -d '{"type":"ECHO","payload":{"message":"hello"}}'`)
	return runAgent(ctx, cfg, log)
}
