// Command bench measures the agent as the operator sees it: end-to-end throughput of the real
// stripped binary against the reference orchestrator (served in-process on loopback) next to a
// bare HTTP client doing the same protocol and a durable reference (the same client keeping the
// agent's delivery guarantee with an fdatasync'd, group-committed log), each side a process of
// its own (the bench binary started with "side"), the CPU time and allocations per task of the
// agent and of both sides, the agent's throughput against an orchestrator that answers every
// request late, pickup latency, footprint, the SHELL executor's overhead, and the Go
// micro-benchmarks of the store and reconcile pipeline (read from the raw `go test -bench`
// output). It prints one markdown table, compared with the targets of issues 6 and 16, and
// writes it with the machine facts and the details to docs/benchmarks.md.
//
//	go run ./hack/bench -agent bin/letsbe-agent -gobench bin/bench-raw.txt -out docs/benchmarks.md
//
// `make bench` builds the binary, runs the Go benchmarks and then this.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type config struct {
	agentBin     string
	filedBin     string // the agent as issue 16 found it (empty: not measured)
	filedCommit  string // built from this commit unless filedBin is given
	out          string
	goBenchRaw   string
	workDir      string
	tasksN       int
	concs        []int
	reps         int
	budget       time.Duration // for all throughput runs; at least one run per concurrency
	warmup       int
	pickupTasks  int
	pollInterval time.Duration
	idleWindow   time.Duration
	retainTasks  int
	retainConc   int
	retainBytes  int
	shellRuns    int
	latency      time.Duration // added to every request of the slow orchestrator
	latencyTasks int           // tasks of its batch at concurrency 1 (more at higher ones)
	agentEnv     []string      // extra environment for every agent (experiments, profiling)
	keep         bool          // keep the work directory (agent logs and state)
	only         map[string]bool
}

// sections are the measurements, in the order they run.
var sections = []string{"idle", "throughput", "latency", "pickup", "retained", "shell", "progress"}

// wants reports whether section runs (all do unless -only names some).
func (c *config) wants(section string) bool { return len(c.only) == 0 || c.only[section] }

func (c *config) stateDir(name string) string { return filepath.Join(c.workDir, name) }

func (c *config) tasks(int) int { return c.tasksN }

// batchTimeout bounds one batch: generous, so that only a stuck agent hits it.
func (c *config) batchTimeout() time.Duration { return 3 * time.Minute }

var started = time.Now()

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%5.1fs] "+format+"\n", append([]any{time.Since(started).Seconds()}, args...)...)
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == sideCmd {
		if err := sideMain(os.Args[2:], os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "bench side:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg := &config{}
	var concs, agentEnv, only string
	flag.StringVar(&cfg.agentBin, "agent", "", "the stripped letsbe-agent binary (default: build one into a temporary directory)")
	flag.StringVar(&cfg.filedBin, "filed-agent", "", "the agent as issue 16 found it, already built (default: build it from -filed-commit)")
	flag.StringVar(&cfg.filedCommit, "filed-commit", filedCommit, "the commit of the agent issue 16 found, built to measure it at concurrency 16 next to the agent (empty: not measured)")
	flag.StringVar(&cfg.out, "out", "docs/benchmarks.md", "markdown file to write (empty: none)")
	flag.StringVar(&cfg.goBenchRaw, "gobench", "", "raw `go test -bench` output to summarise (empty: none)")
	flag.IntVar(&cfg.tasksN, "tasks", 5000, "ECHO tasks per throughput run")
	flag.StringVar(&concs, "concurrency", "1,4,16", "AGENT_MAX_CONCURRENT_TASKS values for throughput")
	flag.IntVar(&cfg.reps, "runs", 3, "measured throughput runs per concurrency (median reported)")
	flag.DurationVar(&cfg.budget, "throughput-budget", 210*time.Second, "time for all throughput runs: fewer runs when they are slow (at least one per concurrency; 0: no limit)")
	flag.IntVar(&cfg.warmup, "warmup", 300, "ECHO tasks run before measuring, per agent and baseline")
	flag.IntVar(&cfg.pickupTasks, "pickup", 200, "tasks for each pickup-latency measurement")
	flag.DurationVar(&cfg.pollInterval, "poll-interval", 100*time.Millisecond, "AGENT_POLL_INTERVAL for interval polling")
	flag.DurationVar(&cfg.idleWindow, "idle", 30*time.Second, "idle CPU measurement window")
	flag.IntVar(&cfg.retainTasks, "retain", 10000, "ECHO tasks run before measuring retained memory")
	flag.IntVar(&cfg.retainConc, "retain-concurrency", 16, "AGENT_MAX_CONCURRENT_TASKS for the retained-memory run")
	flag.IntVar(&cfg.retainBytes, "retain-payload", 0, "bytes of each task of the retained-memory run: FILE_WRITEs of that size (0: small ECHO tasks)")
	flag.DurationVar(&cfg.latency, "latency", 20*time.Millisecond, "latency the slow orchestrator adds to every request")
	flag.IntVar(&cfg.latencyTasks, "latency-tasks", 200, "ECHO tasks of the slow-orchestrator run at concurrency 1 (conc/2 times as many at conc)")
	flag.IntVar(&cfg.shellRuns, "shell-runs", 300, "runs of each of SHELL true and exec true")
	flag.StringVar(&agentEnv, "agent-env", "", "extra environment for every agent, K=V separated by spaces (experiments)")
	flag.BoolVar(&cfg.keep, "keep", false, "keep the work directory with the agents' logs and state")
	flag.StringVar(&only, "only", "", "comma-separated sections to run (default all): "+strings.Join(sections, ","))
	flag.Parse()
	if only != "" {
		cfg.only = map[string]bool{}
		for s := range strings.SplitSeq(only, ",") {
			if !slices.Contains(sections, s) {
				return fmt.Errorf("-only: unknown section %q", s)
			}
			cfg.only[s] = true
		}
	}
	cfg.agentEnv = strings.Fields(agentEnv)
	for s := range strings.SplitSeq(concs, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("-concurrency: bad value %q", s)
		}
		cfg.concs = append(cfg.concs, n)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	work, err := os.MkdirTemp("", "letsbe-bench-")
	if err != nil {
		return err
	}
	if cfg.keep {
		progress("Agents' logs and state: %s", work)
	} else {
		defer os.RemoveAll(work)
	}
	cfg.workDir = work
	if cfg.agentBin == "" {
		cfg.agentBin = filepath.Join(work, "letsbe-agent")
		progress("Building the stripped agent binary")
		if err := buildAgent(cfg.agentBin, ""); err != nil {
			return err
		}
	}
	if cfg.agentBin, err = filepath.Abs(cfg.agentBin); err != nil {
		return err
	}

	res := &results{Facts: machineFacts(work)}
	if cfg.wants("throughput") && slices.Contains(cfg.concs, targetTargetConc) {
		if cfg.filedBin == "" && cfg.filedCommit != "" {
			progress("Building the agent as issue 16 found it (%s)", cfg.filedCommit)
			if cfg.filedBin, err = buildFiled(work, cfg.filedCommit); err != nil {
				res.FiledMissing = err.Error()
				progress("  not measured: %v", err)
			}
		}
		if cfg.filedBin != "" {
			if cfg.filedBin, err = filepath.Abs(cfg.filedBin); err != nil {
				return err
			}
			res.FiledFrom = cfg.filedCommit
		}
	}
	if err := measureAll(ctx, cfg, res); err != nil {
		return err
	}
	res.Facts.LoadEnd = loadAverage()
	res.Facts.Duration = time.Since(started)

	table := res.summary()
	fmt.Println(table)
	if cfg.out != "" {
		if err := os.MkdirAll(filepath.Dir(cfg.out), 0o755); err != nil {
			return err
		}
		doc := res.document(cfg, table)
		if old, err := os.ReadFile(cfg.out); err == nil {
			doc += handWritten(string(old))
		}
		if err := os.WriteFile(cfg.out, []byte(doc), 0o644); err != nil {
			return err
		}
		progress("Wrote %s", cfg.out)
	}
	return nil
}

func measureAll(ctx context.Context, cfg *config, res *results) error {
	var err error
	if res.BinarySize, err = fileSize(cfg.agentBin); err != nil {
		return err
	}

	for _, conc := range cfg.concs {
		if !cfg.wants("throughput") {
			break
		}
		progress("Throughput at concurrency %d: up to %d runs of %d ECHO tasks, agent and baseline alternating", conc, cfg.reps, cfg.tasks(conc))
		tp, err := measureThroughput(ctx, cfg, conc)
		if err != nil {
			return fmt.Errorf("throughput at %d: %w", conc, err)
		}
		res.Throughput = append(res.Throughput, tp)
	}

	if cfg.wants("latency") {
		progress("Throughput with %s added to every orchestrator request, concurrency 1 and %d", cfg.latency, targetTargetConc)
		if res.Slow, err = measureSlowOrchestrator(ctx, cfg); err != nil {
			return fmt.Errorf("slow orchestrator: %w", err)
		}
	}

	// The idle window runs next to the pickup measurements, which keep their own agent nearly
	// idle too; it takes the idle agent's own CPU time, whatever else the machine does.
	var idleErr error
	idleDone := make(chan struct{})
	if cfg.wants("idle") {
		progress("Dependency floor: hack/bench/floor's anonymous memory")
		if res.Floor, err = measureFloor(cfg.workDir); err != nil {
			return err
		}
		progress("Idle agent: %s window once it is quiet (default heartbeat interval and long poll)", cfg.idleWindow)
		idle, err := startIdle(cfg)
		if err != nil {
			return fmt.Errorf("idle agent: %w", err)
		}
		go func() {
			defer close(idleDone)
			defer idle.close()
			res.Idle, idleErr = idle.measure(ctx, cfg.idleWindow) // once it is quiet
			progress("Idle window done (from %s)", res.Idle.From)
		}()
	} else {
		close(idleDone)
	}

	for _, longPoll := range []bool{true, false} {
		if !cfg.wants("pickup") {
			break
		}
		mode := "long poll"
		if !longPoll {
			mode = "interval polling every " + cfg.pollInterval.String()
		}
		progress("Pickup latency, %s: %d tasks one at a time", mode, cfg.pickupTasks)
		p, err := measurePickup(ctx, cfg, longPoll)
		if err != nil {
			return fmt.Errorf("pickup latency (%s): %w", mode, err)
		}
		res.Pickup = append(res.Pickup, p)
	}

	<-idleDone
	if idleErr != nil {
		return fmt.Errorf("idle agent: %w", idleErr)
	}

	if cfg.wants("retained") {
		progress("Memory after %d tasks (payload %d bytes)", cfg.retainTasks, cfg.retainBytes)
		if res.Retained, err = measureRetained(ctx, cfg, cfg.retainTasks, cfg.retainConc, cfg.retainBytes); err != nil {
			return fmt.Errorf("retained memory: %w", err)
		}
	}

	if cfg.wants("shell") {
		progress("SHELL overhead: %d runs each", cfg.shellRuns)
		if res.Shell, err = measureShell(ctx, cfg.shellRuns); err != nil {
			return err
		}
	}

	if cfg.wants("progress") {
		progress("Live progress: ECHO throughput with the feature off and on, then chatty SHELL tasks")
		if res.Progress, err = measureProgress(ctx, cfg); err != nil {
			return fmt.Errorf("progress: %w", err)
		}
	}

	if cfg.goBenchRaw != "" {
		f, err := os.Open(cfg.goBenchRaw)
		if err != nil {
			return err
		}
		res.GoBench, err = parseGoBench(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("read %s: %w", cfg.goBenchRaw, err)
		}
		res.GoBenchRaw = cfg.goBenchRaw
	}
	return ctx.Err()
}

// buildAgent builds the agent of the module in dir (empty: the working directory's) as
// `make build` does: static, stripped, trimmed paths.
func buildAgent(out, dir string) error {
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, "./cmd/letsbe-agent")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build letsbe-agent: %w", err)
	}
	return nil
}

// handMeasured heads the part of docs/benchmarks.md written by hand (measurements of single
// sides while a change is made, with their load averages); a run keeps it, after what it writes.
const handMeasured = "## Measured by hand"

// handWritten returns the part of an earlier document from its handMeasured heading to the end,
// or "".
func handWritten(doc string) string {
	i := strings.Index(doc, "\n"+handMeasured+"\n")
	if i < 0 {
		return ""
	}
	return doc[i:]
}
