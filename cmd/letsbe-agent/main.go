// Command letsbe-agent is the LetsBe SysAdmin Agent: it takes work from the LetsBe
// Orchestrator and carries it out on this host.
//
//	letsbe-agent [run] [flags]   run the agent (flags and environment: see --help)
//	letsbe-agent dev [flags]     run the embedded development orchestrator and an agent against it
//	letsbe-agent status          show readiness and recent tasks of the local agent
//	letsbe-agent keys ...        make a task signing key, sign a task (keys help)
//	letsbe-agent policy ...      show the effective task policy, check a task against it
//	letsbe-agent version         print the version
//	letsbe-agent completion SHELL  print a shell completion script
//
// Exit codes: 0 done, 1 the agent (a check, a task) failed, 2 a usage or setup error. The
// command tree is in cli.go.
package main

import (
	"context"
	"os"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"

	"github.com/letsbe/sysadmin-agent/config"
	_ "github.com/letsbe/sysadmin-agent/internal/heapsample" // before the dependencies' init
)

func main() {
	os.Exit(execute(os.Args[1:], os.Stdout, os.Stderr))
}

// serve sets up the logger and the signal context of a long-running command and runs fn
// until it returns; an error from fn is logged and exits 1.
func serve(cmd *cobra.Command, cfg *config.Config, fn func(context.Context, logr.Logger) error) error {
	log, flush, err := newLogger(cfg.LogFormat, cfg.LogLevel, cmd.ErrOrStderr())
	if err != nil {
		return &exitError{code: exitSetup, err: err}
	}
	defer flush()

	tuneGC(os.LookupEnv)
	ctx, stop := signalContext(log)
	defer stop()

	if err := fn(ctx, log); err != nil {
		log.Error(err, "Agent stopped")
		return failed()
	}
	return nil
}
