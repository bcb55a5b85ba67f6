// Command letsbe-dev-orchestrator serves the in-memory reference orchestrator
// (orchestratorsync/orchestratortest) on its own, for docker-compose and for running an agent
// binary against it by hand. It is a development tool: everything is kept in memory and lost
// on exit, and the only authentication is a bearer comparison.
//
//	letsbe-dev-orchestrator [--listen 127.0.0.1:8080] [--enrollment-token dev-token] [flags]
//
// It signs every task it hands out with a key it makes at start (--sign=false turns that off)
// and serves the public key at GET /dev/jwks.json (--jwks-out writes it to a file too), for an
// agent's AGENT_TASK_KEYS. Task submissions must be JSON from a loopback Host and no foreign
// Origin; a non-loopback --listen needs --allow-remote.
//
// Besides the orchestrator API (/agents/..., /tasks/...) and the /dev/tasks endpoints to
// enqueue and inspect tasks, it answers GET /healthz with 200 "ok".
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/go-logr/logr"

	"github.com/letsbe/sysadmin-agent/internal/devguard"
	"github.com/letsbe/sysadmin-agent/internal/tasksig"
	"github.com/letsbe/sysadmin-agent/orchestratorsync/orchestratortest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := run(ctx, os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}

// options are the command-line flags.
type options struct {
	listen            string
	enrollmentToken   string
	issueAgentTokens  bool
	progress          bool
	heartbeatInterval time.Duration
	pollInterval      time.Duration
	ackTimeout        time.Duration
	logLevel          string
	sign              bool
	taskTTL           time.Duration
	jwksOut           string
	allowRemote       bool
}

func parseFlags(args []string, out io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("letsbe-dev-orchestrator", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&o.listen, "listen", "127.0.0.1:8080", "address to serve on (host:port; port 0 picks a free one)")
	fs.StringVar(&o.enrollmentToken, "enrollment-token", orchestratortest.DefaultEnrollmentToken, "bearer token agents register with (AGENT_TOKEN of the agent)")
	fs.BoolVar(&o.issueAgentTokens, "issue-agent-tokens", true, "answer register with a per-agent token that the agent must use afterwards")
	fs.BoolVar(&o.progress, "progress", true, "announce the feature \"progress\" at register: agents send live output and events while a task runs")
	fs.DurationVar(&o.heartbeatInterval, "heartbeat-interval", 0, "heartbeat interval sent at registration (0: the agent's own)")
	fs.DurationVar(&o.pollInterval, "poll-interval", 0, "poll interval sent at registration (0: the agent's own)")
	fs.DurationVar(&o.ackTimeout, "ack-timeout", orchestratortest.DefaultAckTimeout, "how long a handed-out task waits for its first report before it is offered again (sent as ack_timeout_seconds)")
	fs.StringVar(&o.logLevel, "log-level", "info", "info, or debug to log every request the orchestrator handles")
	fs.BoolVar(&o.sign, "sign", true, "sign every task handed out with a key made at start (its JWKS at GET /dev/jwks.json); false sends them unsigned")
	fs.DurationVar(&o.taskTTL, "task-ttl", 10*time.Minute, "not_after of a signed task, from its handout (0: none)")
	fs.StringVar(&o.jwksOut, "jwks-out", "", "also write the signing key's public JWKS to this file (AGENT_TASK_KEYS of the agent)")
	fs.BoolVar(&o.allowRemote, "allow-remote", false, "allow a non-loopback --listen and any Host header (anyone who reaches it can run tasks on the agents)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case o.enrollmentToken == "":
		return o, errors.New("invalid --enrollment-token: must not be empty")
	case o.heartbeatInterval < 0 || o.pollInterval < 0:
		return o, errors.New("invalid --heartbeat-interval or --poll-interval: must not be negative")
	case o.ackTimeout < time.Second:
		return o, fmt.Errorf("invalid --ack-timeout %s: must be at least 1s", o.ackTimeout)
	case o.logLevel != "info" && o.logLevel != "debug":
		return o, fmt.Errorf("invalid --log-level %q: want info or debug", o.logLevel)
	case o.taskTTL < 0:
		return o, errors.New("invalid --task-ttl: must not be negative")
	case !o.allowRemote && !devguard.IsLoopbackAddr(o.listen):
		return o, fmt.Errorf("invalid --listen %s: not a loopback address; add --allow-remote if anyone who reaches it may run tasks on the agents", o.listen)
	}
	return o, nil
}

// run serves until ctx ends and returns the exit code.
func run(ctx context.Context, args []string, stderr io.Writer) int {
	opts, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "letsbe-dev-orchestrator: %v\n", err)
		return 2
	}
	level := slog.LevelInfo
	if opts.logLevel == "debug" {
		level = slog.Level(-1) // logr's V(1)
	}
	log := logr.FromSlogHandler(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	signer, err := tasksig.NewDevSigner(opts.taskTTL)
	if err != nil {
		fmt.Fprintf(stderr, "letsbe-dev-orchestrator: signing key: %v\n", err)
		return 1
	}
	if opts.jwksOut != "" {
		if err := signer.WritePublicKeySet(opts.jwksOut); err != nil {
			fmt.Fprintf(stderr, "letsbe-dev-orchestrator: --jwks-out: %v\n", err)
			return 1
		}
	}
	orchOpts := orchestratortest.Options{
		EnrollmentToken:          opts.enrollmentToken,
		IssueAgentTokens:         opts.issueAgentTokens,
		Progress:                 opts.progress,
		HeartbeatIntervalSeconds: opts.heartbeatInterval.Seconds(),
		PollIntervalSeconds:      opts.pollInterval.Seconds(),
		AckTimeout:               opts.ackTimeout,
		Logger:                   log,
	}
	if opts.sign {
		orchOpts.Sign = signer.SignHandout
	}
	orch := orchestratortest.New(orchOpts)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /dev/jwks.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_ = json.NewEncoder(w).Encode(signer.PublicKeySet())
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.Handle("/", orch)

	ln, err := net.Listen("tcp", opts.listen)
	if err != nil {
		fmt.Fprintf(stderr, "letsbe-dev-orchestrator: listen on %s (--listen): %v\n", opts.listen, err)
		return 1
	}
	srv := &http.Server{Handler: devguard.Wrap(mux, devguard.Options{AllowRemote: opts.allowRemote}), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("Development orchestrator listening", "url", "http://"+ln.Addr().String(),
		"issueAgentTokens", opts.issueAgentTokens, "signsTasks", opts.sign, "signingKey", signer.KID())
	if opts.allowRemote && !devguard.IsLoopbackAddr(opts.listen) {
		log.Info("WARNING: listening on a non-loopback address; anyone who reaches it can run tasks on the agents", "listen", ln.Addr().String())
	}

	select {
	case err = <-served:
		log.Error(err, "Development orchestrator stopped")
		return 1
	case <-ctx.Done():
	}
	log.Info("Shutting down")
	// Parked long polls end when their connection is closed; give them a moment first.
	shutCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		_ = srv.Close()
	}
	return 0
}
