package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/letsbe/sysadmin-agent/internal/agenttest"
	"github.com/letsbe/sysadmin-agent/orchestratorsync/orchestratortest"
)

// slowOrchestrator is the agent's throughput against an orchestrator that adds the same latency
// to every request (a far or busy one): the agent keeps up only if it has several requests in
// flight, as many as it has free slots.
type slowOrchestrator struct {
	Latency time.Duration
	Runs    []slowRun
}

type slowRun struct {
	Conc  int
	Batch batch
	// PeakPolls is the most next-task requests in flight at once during the batch.
	PeakPolls int
}

// ratio is the throughput at the highest concurrency over that at the lowest.
func (s slowOrchestrator) ratio() (lo, hi slowRun, r float64) {
	if len(s.Runs) < 2 {
		return lo, hi, 0
	}
	lo, hi = s.Runs[0], s.Runs[len(s.Runs)-1]
	return lo, hi, hi.Batch.rate() / lo.Batch.rate()
}

// slowTasks is the batch size at conc: about the same time for each concurrency if intake
// keeps up.
func (c *config) slowTasks(conc int) int { return c.latencyTasks * max(1, conc/2) }

// measureSlowOrchestrator runs the agent at concurrency 1 and targetTargetConc against an
// orchestrator answering every request (but the /dev ones) cfg.latency late: the reference
// orchestrator behind orchestratortest.Faulty with every request slow.
func measureSlowOrchestrator(ctx context.Context, cfg *config) (slowOrchestrator, error) {
	res := slowOrchestrator{Latency: cfg.latency}
	for _, conc := range []int{1, targetTargetConc} {
		srv := orchestratortest.New(orchestratortest.Options{})
		slow := orchestratortest.NewFaulty(srv, orchestratortest.FaultOptions{SlowRate: 1, SlowDelay: cfg.latency})
		polls := orchestratortest.NewInFlight(slow, "/tasks/next")
		o := agenttest.Serve(srv, polls)
		b, err := func() (batch, error) {
			defer o.Close()
			agent, err := startAgent(cfg, o, fmt.Sprintf("latency-%d", conc), "AGENT_MAX_CONCURRENT_TASKS="+strconv.Itoa(conc))
			if err != nil {
				return batch{}, err
			}
			defer agent.stop()
			if err := agent.waitReady(o, 30*time.Second); err != nil {
				return batch{}, err
			}
			if _, err := runBatch(ctx, o, 2*conc, cfg.batchTimeout()); err != nil {
				return batch{}, fmt.Errorf("warm-up: %w\n%s", err, agent.logTail())
			}
			polls.ResetPeak()
			b, err := measuredBatch(ctx, o, agent, cfg.slowTasks(conc), cfg.batchTimeout())
			if err != nil {
				return batch{}, fmt.Errorf("%w\n%s", err, agent.logTail())
			}
			return b, nil
		}()
		if err != nil {
			return res, fmt.Errorf("concurrency %d: %w", conc, err)
		}
		cpu, _ := costPerTask([]batch{b})
		_, peak := polls.Counts()
		progress("  %s latency, concurrency %d: %.0f tasks/s (%.2f next-task requests per task, at most %d at once; %.0f µs agent CPU per task)",
			cfg.latency, conc, b.rate(), float64(b.Requests.Next)/float64(b.Tasks), peak, float64(cpu)/float64(time.Microsecond))
		res.Runs = append(res.Runs, slowRun{Conc: conc, Batch: b, PeakPolls: peak})
	}
	return res, nil
}
