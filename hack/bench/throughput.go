package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/letsbe/sysadmin-agent/orchestratorsync/orchestratortest"
)

// echoPayload is the payload of every ECHO task the benchmark enqueues.
var echoPayload = json.RawMessage(`{"message":"hello from make bench"}`)

// batch is one measured batch of tasks.
type batch struct {
	Tasks    int
	Elapsed  time.Duration // first enqueue to the last final report
	Requests requests      // orchestrator requests during the batch
	// CPU and Mallocs are the user+system CPU time (/proc/PID/stat) and heap allocations over
	// the batch of the process that ran it: the agent (go_memstats_mallocs_total of its
	// /metrics) or a side (runtime.MemStats.Mallocs it reports); zero when not measured.
	CPU     time.Duration
	Mallocs float64
}

func (b batch) rate() float64 { return float64(b.Tasks) / b.Elapsed.Seconds() }

// requests counts orchestrator requests by endpoint.
type requests struct {
	Next, Report, Heartbeat, Register int
}

func (r requests) total() int { return r.Next + r.Report + r.Heartbeat + r.Register }

func statsDelta(before, after orchestratortest.Stats) requests {
	return requests{
		Next:      after.NextTask - before.NextTask,
		Report:    after.Report - before.Report,
		Heartbeat: after.Heartbeat - before.Heartbeat,
		Register:  after.Register - before.Register,
	}
}

// runBatch enqueues n ECHO tasks at once and waits until the orchestrator holds all their final
// reports. Elapsed runs from just before the first enqueue to the last final report's arrival.
func runBatch(ctx context.Context, o *orchestrator, n int, timeout time.Duration) (batch, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	before := o.Stats()
	ids := make([]string, n)
	start := time.Now()
	for i := range ids {
		ids[i] = o.Enqueue("ECHO", echoPayload, 0)
	}
	var last time.Time
	for _, id := range ids {
		st, err := o.WaitTask(ctx, id, orchestratortest.TaskState.IsFinal)
		if err != nil {
			return batch{}, fmt.Errorf("%w (%d of %d tasks final)", err, o.Stats().FinalReports-before.FinalReports, n)
		}
		if st.Status != orchestratortest.StatusCompleted {
			return batch{}, fmt.Errorf("task %s ended %s: %s", id, st.Status, st.Error)
		}
		if st.FinalAt.After(last) {
			last = st.FinalAt
		}
	}
	// FinalAt is wall-clock time from the same process: comparable with start's wall clock.
	return batch{Tasks: n, Elapsed: last.Sub(start.Round(0)), Requests: statsDelta(before, o.Stats())}, nil
}

// throughput is the result for one concurrency.
type throughput struct {
	Conc                       int
	Agent, Baseline, Reference []batch
	Filed                      []batch // the agent as issue 16 found it, when measured
}

func medianRate(bs []batch) float64 {
	r := make([]float64, len(bs))
	for i, b := range bs {
		r[i] = b.rate()
	}
	return median(r)
}

// perTask returns requests per task summed over the batches.
func perTask(bs []batch) (next, report, total float64) {
	var n int
	var r requests
	for _, b := range bs {
		n += b.Tasks
		r.Next += b.Requests.Next
		r.Report += b.Requests.Report
		r.Heartbeat += b.Requests.Heartbeat
		r.Register += b.Requests.Register
	}
	if n == 0 {
		return 0, 0, 0
	}
	return float64(r.Next) / float64(n), float64(r.Report) / float64(n), float64(r.total()) / float64(n)
}

// costPerTask returns the CPU time and allocations per task over the batches.
func costPerTask(bs []batch) (cpu time.Duration, mallocs float64) {
	var n int
	for _, b := range bs {
		n += b.Tasks
		cpu += b.CPU
		mallocs += b.Mallocs
	}
	if n == 0 {
		return 0, 0
	}
	return cpu / time.Duration(n), mallocs / float64(n)
}

// meter is a process whose costs a batch measures: the agent (its allocations from its
// /metrics) or a side (from its sideStats).
type meter interface {
	Pid() int
	mallocs() (float64, error)
}

// measuredBatch is runBatch with the CPU time and allocations of the process m over it.
func measuredBatch(ctx context.Context, o *orchestrator, m meter, n int, timeout time.Duration) (batch, error) {
	cpu0, err := readCPU(m.Pid())
	if err != nil {
		return batch{}, err
	}
	m0, err := m.mallocs()
	if err != nil {
		return batch{}, err
	}
	b, err := runBatch(ctx, o, n, timeout)
	if err != nil {
		return b, err
	}
	cpu1, err := readCPU(m.Pid())
	if err != nil {
		return b, err
	}
	m1, err := m.mallocs()
	if err != nil {
		return b, err
	}
	b.CPU, b.Mallocs = cpu1-cpu0, m1-m0
	return b, nil
}

// measureThroughput runs the agent, the bare client and the durable reference at conc, each
// its own process against its own orchestrator, alternating their batches so that all see the
// same machine noise.
func measureThroughput(ctx context.Context, cfg *config, conc int) (throughput, error) {
	res := throughput{Conc: conc}
	oa := startOrchestrator(orchestratortest.Options{})
	defer oa.Close()
	agent, err := startAgent(cfg, oa, fmt.Sprintf("throughput-%d", conc),
		"AGENT_MAX_CONCURRENT_TASKS="+strconv.Itoa(conc))
	if err != nil {
		return res, err
	}
	defer agent.stop()
	if err := agent.waitReady(oa, 30*time.Second); err != nil {
		return res, err
	}
	ob := startOrchestrator(orchestratortest.Options{})
	defer ob.Close()
	base, err := startSide(ob, cfg.stateDir(fmt.Sprintf("baseline-%d", conc)), conc, false)
	if err != nil {
		return res, fmt.Errorf("bare client: %w", err)
	}
	defer func() { _, _ = base.stop() }()
	or := startOrchestrator(orchestratortest.Options{})
	defer or.Close()
	ref, err := startSide(or, cfg.stateDir(fmt.Sprintf("reference-%d", conc)), conc, true)
	if err != nil {
		return res, fmt.Errorf("durable reference: %w", err)
	}
	defer func() { _, _ = ref.stop() }()

	var filed *agentProc
	var of *orchestrator
	if cfg.filedBin != "" && conc == targetTargetConc {
		of = startOrchestrator(orchestratortest.Options{})
		defer of.Close()
		own := *cfg
		own.agentBin = cfg.filedBin
		if filed, err = startAgent(&own, of, fmt.Sprintf("filed-%d", conc),
			"AGENT_MAX_CONCURRENT_TASKS="+strconv.Itoa(conc)); err != nil {
			return res, fmt.Errorf("the agent as filed: %w", err)
		}
		defer filed.stop()
		if err := filed.waitReady(of, 30*time.Second); err != nil {
			return res, fmt.Errorf("the agent as filed: %w", err)
		}
	}

	timeout := cfg.batchTimeout()
	if filed != nil {
		if _, err := runBatch(ctx, of, cfg.warmup, timeout); err != nil {
			return res, fmt.Errorf("the agent as filed, warm-up: %w\n%s", err, filed.logTail())
		}
	}
	if _, err := runBatch(ctx, oa, cfg.warmup, timeout); err != nil {
		return res, fmt.Errorf("agent warm-up: %w\n%s", err, agent.logTail())
	}
	if _, err := runBatch(ctx, ob, cfg.warmup, timeout); err != nil {
		return res, fmt.Errorf("baseline warm-up: %w (%s)", err, base.failed())
	}
	if _, err := runBatch(ctx, or, cfg.warmup, timeout); err != nil {
		return res, fmt.Errorf("durable reference warm-up: %w (%s)", err, ref.failed())
	}
	begin := time.Now()
	for rep := range cfg.reps {
		if rep > 0 && cfg.budget > 0 {
			perConc := cfg.budget / time.Duration(len(cfg.concs))
			if next := time.Since(begin) / time.Duration(rep) * time.Duration(rep+1); next > perConc {
				progress("  concurrency %d: stopping after %d run(s) to stay within -throughput-budget", conc, rep)
				break
			}
		}
		a, err := measuredBatch(ctx, oa, agent, cfg.tasks(conc), timeout)
		if err != nil {
			return res, fmt.Errorf("agent: %w\n%s", err, agent.logTail())
		}
		res.Agent = append(res.Agent, a)
		b, err := measuredBatch(ctx, ob, base, cfg.tasks(conc), timeout)
		if err != nil {
			return res, fmt.Errorf("baseline: %w (%s)", err, base.failed())
		}
		res.Baseline = append(res.Baseline, b)
		r, err := measuredBatch(ctx, or, ref, cfg.tasks(conc), timeout)
		if err != nil {
			return res, fmt.Errorf("durable reference: %w (%s)", err, ref.failed())
		}
		res.Reference = append(res.Reference, r)
		progress("  concurrency %d, run %d: agent %s, bare client %s, durable reference %s (%d fdatasyncs for %d records so far)",
			conc, rep+1, batchCost(a), batchCost(b), batchCost(r), ref.last.Commits, ref.last.Records)
		if filed != nil {
			f, err := measuredBatch(ctx, of, filed, cfg.tasks(conc), timeout)
			if err != nil {
				return res, fmt.Errorf("the agent as filed: %w\n%s", err, filed.logTail())
			}
			res.Filed = append(res.Filed, f)
			progress("  concurrency %d, run %d: the agent as issue 16 found it %s", conc, rep+1, batchCost(f))
		}
	}
	return res, nil
}

// batchCost is a batch's rate and costs per task, for progress lines.
func batchCost(b batch) string {
	cpu, allocs := costPerTask([]batch{b})
	return fmt.Sprintf("%.0f tasks/s (%.0f µs CPU, %.0f allocations per task)", b.rate(), float64(cpu)/float64(time.Microsecond), allocs)
}
