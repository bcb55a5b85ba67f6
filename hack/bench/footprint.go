package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/letsbe/sysadmin-agent/orchestratorsync/orchestratortest"
)

// idleFootprint is an idle agent's cost: heartbeats and long polls only.
type idleFootprint struct {
	Window         time.Duration
	Start, End     memory        // at the start and the end of the window
	CPU            time.Duration // user+system CPU time over the window
	Heartbeats     int           // heartbeats the orchestrator received in the window
	NextTasks      int           // next-task requests in the window
	Goroutines     int
	GoroutinesFrom string
}

func (f idleFootprint) cpuPercent() float64 {
	return 100 * f.CPU.Seconds() / f.Window.Seconds()
}

// idleAgent is an agent started for the idle measurement; the window is taken later, so that
// start-up work (registration, the first heartbeat, the first GC cycles) stays outside it.
type idleAgent struct {
	o     *orchestrator
	agent *agentProc
}

func startIdle(cfg *config) (*idleAgent, error) {
	o := startOrchestrator(orchestratortest.Options{})
	agent, err := startAgent(cfg, o, "idle") // default intervals
	if err != nil {
		o.Close()
		return nil, err
	}
	if err := agent.waitReady(o, 30*time.Second); err != nil {
		agent.stop()
		o.Close()
		return nil, err
	}
	return &idleAgent{o: o, agent: agent}, nil
}

func (a *idleAgent) close() {
	a.agent.stop()
	a.o.Close()
}

// measure samples RSS and CPU time over window, then counts goroutines (which may end the
// process: see agentProc.goroutines).
func (a *idleAgent) measure(ctx context.Context, window time.Duration) (idleFootprint, error) {
	res := idleFootprint{Window: window}
	pid := a.agent.pid()
	m0, err := readMemory(pid)
	if err != nil {
		return res, err
	}
	cpu0, err := readCPU(pid)
	if err != nil {
		return res, err
	}
	s0 := a.o.Stats()
	t0 := time.Now()
	sleepCtx(ctx, window)
	cpu1, err := readCPU(pid)
	if err != nil {
		return res, err
	}
	res.Window = time.Since(t0)
	m1, err := readMemory(pid)
	if err != nil {
		return res, err
	}
	s1 := a.o.Stats()
	res.Start, res.End, res.CPU = m0, m1, cpu1-cpu0
	res.Heartbeats, res.NextTasks = s1.Heartbeat-s0.Heartbeat, s1.NextTask-s0.NextTask
	res.Goroutines, res.GoroutinesFrom, err = a.agent.goroutines()
	if err != nil {
		return res, fmt.Errorf("count goroutines: %w", err)
	}
	return res, nil
}

// retained is the agent's memory after many finished tasks.
type retained struct {
	Tasks   int
	Conc    int
	Elapsed time.Duration
	Mem     memory
}

// measureRetained runs n ECHO tasks through an agent and then reads its memory. The agent keeps
// the last 1,000 reported tasks in its store (orchestratorsync.Options.RetainFinished) and
// evicts older ones.
func measureRetained(ctx context.Context, cfg *config, n, conc int) (retained, error) {
	res := retained{Tasks: n, Conc: conc}
	o := startOrchestrator(orchestratortest.Options{})
	defer o.Close()
	agent, err := startAgent(cfg, o, "retained", fmt.Sprintf("AGENT_MAX_CONCURRENT_TASKS=%d", conc))
	if err != nil {
		return res, err
	}
	defer agent.stop()
	if err := agent.waitReady(o, 30*time.Second); err != nil {
		return res, err
	}
	b, err := runBatch(ctx, o, n, cfg.batchTimeout())
	if err != nil {
		return res, fmt.Errorf("%w\n%s", err, agent.logTail())
	}
	res.Elapsed = b.Elapsed
	sleepCtx(ctx, 2*time.Second) // evictions run on their own goroutines
	m, err := readMemory(agent.pid())
	if err != nil {
		return res, err
	}
	res.Mem = m
	return res, nil
}

func fileSize(path string) (int64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}
