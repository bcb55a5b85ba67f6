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
	"github.com/letsbe/sysadmin-agent/orchestratorsync/orchestratortest"
)

// devOptions are the flags only `letsbe-agent dev` takes, and what the command line and the
// environment set.
type devOptions struct {
	listen string
	// stateDirSet, fileRootsSet: AGENT_STATE_DIR or AGENT_FILE_ROOTS were set, so no temporary
	// directory replaces them.
	stateDirSet, fileRootsSet bool
}

// runDev serves the reference orchestrator on opts.listen and runs an agent against it in the
// same process, so a newcomer can enqueue tasks with curl and watch them run.
func runDev(ctx context.Context, cfg *config.Config, opts devOptions, log logr.Logger) error {
	orch := orchestratortest.New(orchestratortest.Options{EnrollmentToken: "dev-token", IssueAgentTokens: true, Progress: true})
	ln, err := net.Listen("tcp", opts.listen)
	if err != nil {
		return fmt.Errorf("listen on %s (--listen): %w", opts.listen, err)
	}
	execs, err := buildExecutors(cfg)
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
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
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
		"try", "curl -s -XPOST "+base+`/dev/tasks -d '{"type":"ECHO","payload":{"message":"hello"}}'`)
	return runAgent(ctx, cfg, log)
}
