// Command letsbe-agent is the LetsBe SysAdmin Agent: it takes work from the LetsBe
// Orchestrator and carries it out on this host.
//
//	letsbe-agent [run] [flags]   run the agent (flags and environment: see --help)
//	letsbe-agent dev [flags]     run the embedded development orchestrator and an agent against it
//	letsbe-agent status          show readiness and recent tasks of the local agent
//	letsbe-agent version         print the version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/letsbe/sysadmin-agent/config"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "version":
		fmt.Fprintln(stdout, versionString())
		return 0
	case "status":
		return runStatus(args, stdout, stderr)
	case "run", "dev":
	case "help":
		fmt.Fprintln(stdout, "usage: letsbe-agent [run|dev|status|version] [flags]; letsbe-agent run --help lists the flags")
		return 0
	default:
		fmt.Fprintf(stderr, "letsbe-agent: unknown command %q (want run, dev, status or version)\n", cmd)
		return 2
	}

	mode := config.ModeRun
	if cmd == "dev" {
		mode = config.ModeDev
	}
	devFlags, args := splitDevFlags(cmd, args)
	cfg, err := config.Load(args, config.LookupEnv, mode, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "letsbe-agent: %v\n", err)
		return 2
	}
	log, flush, err := newLogger(cfg.LogFormat, cfg.LogLevel, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "letsbe-agent: %v\n", err)
		return 2
	}
	defer flush()

	ctx, stop := signalContext(log)
	defer stop()

	if cmd == "dev" {
		err = runDev(ctx, cfg, devFlags, log)
	} else {
		err = runAgent(ctx, cfg, log)
	}
	if err != nil {
		log.Error(err, "Agent stopped")
		return 1
	}
	return 0
}

// signalContext returns a context that ends at the first SIGTERM or SIGINT. A second signal
// exits at once: whatever is durable stays so.
func signalContext(log interface{ Info(string, ...any) }) (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		sig := <-ch
		log.Info("Signal received; shutting down (send it again to exit at once)", "signal", sig.String())
		cancel()
		sig = <-ch
		log.Info("Second signal received; exiting now", "signal", sig.String())
		os.Exit(1)
	}()
	return ctx, func() { signal.Stop(ch); cancel() }
}
