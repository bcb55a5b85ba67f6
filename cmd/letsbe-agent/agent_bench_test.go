package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/letsbe/sysadmin-agent/config"
	"github.com/letsbe/sysadmin-agent/internal/agenttest"
	"github.com/letsbe/sysadmin-agent/orchestratorsync/orchestratortest"
)

// BenchmarkAgentEcho runs the whole agent in this process (memory mode, journal on the test's
// temporary directory, logs discarded at AGENT_LOG_LEVEL=info) against the reference
// orchestrator on loopback, also in this process. Each op is a batch of ECHO tasks enqueued at
// once, waited for until the last final report arrived. Besides ns/op it reports per task:
// CPU time of the process (µs/task), allocations and bytes (allocs/task, B/task), both sides
// included (the orchestrator's share is what a bare client costs it too); the journal's commits
// and the time they took (commit-µs/task: the wall time tasks wait on fsyncs); and the goroutines
// the process holds at idle beyond the orchestrator's (BENCH_GOROUTINES_OUT=file writes their
// stacks there). For CPU and allocation profiles: -cpuprofile, -memprofile.
func BenchmarkAgentEcho(b *testing.B) {
	for _, conc := range []int{1, 16} {
		b.Run("conc="+strconv.Itoa(conc), func(b *testing.B) { benchAgentEcho(b, conc) })
	}
}

const benchBatch = 500

func benchAgentEcho(b *testing.B, conc int) {
	orch := agenttest.Serve(orchestratortest.New(orchestratortest.Options{}), nil)
	defer orch.Close()
	idleBefore := runtime.NumGoroutine()
	env := map[string]string{
		"ORCHESTRATOR_URL":           orch.URL,
		"AGENT_TOKEN":                orchestratortest.DefaultEnrollmentToken,
		"AGENT_STATE_DIR":            b.TempDir(),
		"AGENT_FILE_ROOTS":           b.TempDir(),
		"AGENT_HTTP_ADDR":            "",
		"AGENT_MAX_CONCURRENT_TASKS": strconv.Itoa(conc),
		"AGENT_LOG_LEVEL":            "info",
	}
	cfg, err := config.Load(nil, func(k string) (string, bool) { v, ok := env[k]; return v, ok }, config.ModeRun, io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	log, flush, err := newLogger(cfg.LogFormat, cfg.LogLevel, io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	defer flush()
	skipNameValidation = true
	a, err := newAgent(cfg, log)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	}()
	select {
	case <-a.syncer.Registered():
	case <-time.After(10 * time.Second):
		b.Fatal("agent did not register")
	}
	payload := json.RawMessage(`{"message":"hello from the benchmark"}`)
	runBatch := func(n int) {
		ids := make([]string, n)
		for i := range ids {
			ids[i] = orch.Enqueue("ECHO", payload, 0)
		}
		wctx, wcancel := context.WithTimeout(ctx, time.Minute)
		defer wcancel()
		for _, id := range ids {
			st, err := orch.WaitTask(wctx, id, orchestratortest.TaskState.IsFinal)
			if err != nil {
				b.Fatal(err)
			}
			if st.Status != orchestratortest.StatusCompleted {
				b.Fatalf("task %s ended %s: %s", id, st.Status, st.Error)
			}
		}
	}
	runBatch(100) // warm up: connections, the controllers' workers, the journal's pages
	idle := waitIdleGoroutines(orch)
	if f := os.Getenv("BENCH_GOROUTINES_OUT"); f != "" {
		out, err := os.Create(f)
		if err != nil {
			b.Fatal(err)
		}
		_ = pprof.Lookup("goroutine").WriteTo(out, 1)
		_ = out.Close()
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	cpu0 := processCPU()
	commits0, commitTime0 := journalCommits(b)
	reconciles0 := reconciles(b)
	tasks := 0
	for b.Loop() {
		runBatch(benchBatch)
		tasks += benchBatch
	}
	cpu := processCPU() - cpu0
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(cpu.Microseconds())/float64(tasks), "cpu-µs/task")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(tasks), "allocs/task")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(tasks), "B/task")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(tasks), "ns/task")
	b.ReportMetric(float64(idle-idleBefore), "idle-goroutines")
	commits, commitTime := journalCommits(b)
	b.ReportMetric(float64(commits-commits0)/float64(tasks), "commits/task")
	b.ReportMetric((commitTime-commitTime0)*1e6/float64(tasks), "commit-µs/task")
	b.ReportMetric(float64(reconciles(b)-reconciles0)/float64(tasks), "reconciles/task")
}

// journalCommits returns the journal's write transactions so far (each one or two fsyncs) and
// the seconds they took, from letsbe_agent_journal_write_seconds.
func journalCommits(b *testing.B) (uint64, float64) {
	h := metricFamily(b, "letsbe_agent_journal_write_seconds").GetMetric()[0].GetHistogram()
	return h.GetSampleCount(), h.GetSampleSum()
}

// reconciles returns the reconciles of every controller so far, from
// controller_runtime_reconcile_total.
func reconciles(b *testing.B) float64 {
	var n float64
	for _, m := range metricFamily(b, "controller_runtime_reconcile_total").GetMetric() {
		n += m.GetCounter().GetValue()
	}
	return n
}

// metricFamily returns the named metric family of controller-runtime's registry.
func metricFamily(b *testing.B, name string) *dto.MetricFamily {
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name {
			return f
		}
	}
	b.Fatal("no " + name)
	return nil
}

// waitIdleGoroutines waits until the agent is parked in a long poll with nothing to do and
// returns the goroutines of the process then.
func waitIdleGoroutines(orch *agenttest.Orchestrator) int {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && orch.Stats().LongPollsWaiting == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // the last reports' goroutines return
	return runtime.NumGoroutine()
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(fmt.Sprint("getrusage: ", err))
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
