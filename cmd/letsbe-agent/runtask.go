package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/letsbe/sysadmin-agent/orchestratorsync/wire"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"

	"github.com/letsbe/sysadmin-agent/config"
	"github.com/letsbe/sysadmin-agent/internal/boundedread"
	"github.com/letsbe/sysadmin-agent/orchestratorsync/orchestratortest"
)

// runTaskToken is the enrollment token between run-task's agent and its loopback orchestrator.
const runTaskToken = "run-task"

// maxTaskFileBytes bounds the task file run-task, keys sign and policy check read: the default
// of AGENT_MAX_TASK_BYTES, the largest task the agent takes from an orchestrator.
const maxTaskFileBytes = 32 << 20

func newRunTaskCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "run-task FILE|-",
		Short: "Run one task from a JSON file (or standard input) here, and print the report that would be sent",
		Long: `Run one task, given as the orchestrator's JSON (the body of GET /tasks/next, e.g.
{"id":"t-1","type":"SHELL","payload":{"cmd":"uname -a"}}), on this host, and print the final
report the agent would send (the body of PATCH /tasks/{id}) on standard output.

The task goes the whole way an orchestrator's task goes: the same decoder, intake, reconciler,
executors and reporter, against an orchestrator that only lives on loopback for this run, with
a throwaway state directory. It really runs: a SHELL task runs its command, a FILE_WRITE task
writes its file (within AGENT_FILE_ROOTS). Settings are the agent's (flags, environment,
--config); logs go to standard error (errors only unless --log-level is set).

Exit codes: 0 the task COMPLETED, 1 it FAILED, 2 a usage or setup error (unreadable file, not
a task).`,
		Args: cobra.ExactArgs(1),
	}
	f := bindAgentFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		body, err := readTaskFile(cmd.InOrStdin(), args[0])
		if err != nil {
			return &exitError{code: exitSetup, err: err}
		}
		if _, err := wire.DecodeTask(body); err != nil {
			if ie, ok := errors.AsType[*wire.InvalidTaskError](err); !ok || ie.ID == "" {
				return &exitError{code: exitSetup, err: fmt.Errorf("%s: %w", args[0], err)}
			}
			// A task with an id but an unusable body is reported FAILED, as the agent would.
		}
		cfg, err := f.load(config.ModeDev)
		if err != nil {
			return err
		}
		if !f.flags.Changed("log-level") && !envSet("AGENT_LOG_LEVEL") {
			cfg.LogLevel = "error"
		}
		var report []byte
		err = serve(cmd, cfg, func(ctx context.Context, log logr.Logger) error {
			var err error
			report, err = runOneTask(ctx, cfg, body, log)
			return err
		})
		if err != nil {
			return err
		}
		out := cmd.OutOrStdout()
		if _, err := fmt.Fprintf(out, "%s\n", report); err != nil {
			return err
		}
		var st struct {
			Status string `json:"status"`
		}
		if json.Unmarshal(report, &st) != nil || st.Status != wire.StatusCompleted {
			return failed()
		}
		return nil
	}
	return cmd
}

// readTaskFile reads the task file name, or stdin for "-", up to maxTaskFileBytes.
func readTaskFile(stdin io.Reader, name string) ([]byte, error) {
	if name == "-" {
		return boundedread.Reader(stdin, "standard input", maxTaskFileBytes)
	}
	return boundedread.File(name, maxTaskFileBytes)
}

// runOneTask runs an agent against a loopback orchestrator that hands out body once, and
// returns the body of the final report it sent.
func runOneTask(ctx context.Context, cfg *config.Config, body []byte, log logr.Logger) ([]byte, error) {
	dir, err := os.MkdirTemp("", "letsbe-agent-run-task-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)

	orch := &oneTaskOrchestrator{
		ref:  orchestratortest.New(orchestratortest.Options{EnrollmentToken: runTaskToken}),
		task: body,
		done: make(chan struct{}),
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: orch, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer func() { _ = srv.Close() }()

	run := *cfg
	run.OrchestratorURL = "http://" + ln.Addr().String()
	run.Token = runTaskToken
	run.StateDir = filepath.Join(dir, "state")
	run.HTTPAddr = ""
	run.Store = config.StoreMemory
	run.PollInterval = 50 * time.Millisecond

	agentCtx, stop := context.WithCancel(ctx)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- runAgent(agentCtx, &run, log) }()
	select {
	case <-orch.done:
		stop()
		err = <-errc
	case err = <-errc:
		if err == nil {
			err = errors.New("the agent stopped before the task's final report")
		}
	}
	if report := orch.finalReport(); report != nil {
		return report, nil
	}
	return nil, err
}

// oneTaskOrchestrator is the reference orchestrator (registration, heartbeats) that hands out
// one task, as given, and keeps the final report sent for it.
type oneTaskOrchestrator struct {
	ref  http.Handler
	task []byte

	mu        sync.Mutex
	handedOut bool
	report    []byte
	done      chan struct{}
}

func (o *oneTaskOrchestrator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/tasks/next"):
		o.mu.Lock()
		first := !o.handedOut
		o.handedOut = true
		o.mu.Unlock()
		if !first {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(o.task)
	case r.Method == http.MethodPatch && strings.HasPrefix(r.URL.Path, "/tasks/"):
		b, err := io.ReadAll(io.LimitReader(r.Body, wire.MaxResponseBytes))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var st struct {
			Status string `json:"status"`
		}
		_ = json.Unmarshal(b, &st)
		if st.Status == wire.StatusCompleted || st.Status == wire.StatusFailed {
			o.mu.Lock()
			if o.report == nil {
				o.report = b
				close(o.done)
			}
			o.mu.Unlock()
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("{}"))
	default:
		o.ref.ServeHTTP(w, r)
	}
}

func (o *oneTaskOrchestrator) finalReport() []byte {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.report
}
