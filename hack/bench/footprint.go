package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/letsbe/sysadmin-agent/internal/testpoll"
	"github.com/letsbe/sysadmin-agent/orchestratorsync/orchestratortest"
)

// idleFootprint is an idle agent's cost: heartbeats and long polls only.
type idleFootprint struct {
	From           string // when the window began: after the agent's page-out, or why not
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

// idleAgent is an agent started for the idle measurement; the window is taken later, once it
// is quiet (waitQuiet), so that start-up work (registration, the first heartbeat, the first GC
// cycles, the page-out) stays outside it.
type idleAgent struct {
	o       *orchestrator
	agent   *agentProc
	started time.Time
}

// Lines of the agent's debug log (cmd/letsbe-agent, trimMemory) at the first quiet check of
// internal/memtrim after start-up: it paged its executable out of its resident set, or cannot.
const (
	pagedOutLine  = "Paged out the executable now that the agent is quiet"
	noPageOutLine = "Cannot page out the executable"
)

// startIdle starts the idle agent from a copy of the binary of its own: MADV_PAGEOUT leaves the
// pages other processes map too, and the agents of the other measurements run the same file
// meanwhile, where on a server the agent is the only process running it. Its log level is
// debug, for its page-out line; an idle agent logs nothing else.
func startIdle(cfg *config) (*idleAgent, error) {
	bin := filepath.Join(cfg.stateDir("idle"), "letsbe-agent")
	if err := copyFile(cfg.agentBin, bin); err != nil {
		return nil, err
	}
	own := *cfg
	own.agentBin = bin
	o := startOrchestrator(orchestratortest.Options{})
	started := time.Now()
	agent, err := startAgent(&own, o, "idle", "AGENT_LOG_LEVEL=debug") // default intervals
	if err != nil {
		o.Close()
		return nil, err
	}
	if err := agent.waitReady(o, 30*time.Second); err != nil {
		agent.stop()
		o.Close()
		return nil, err
	}
	return &idleAgent{o: o, agent: agent, started: started}, nil
}

func (a *idleAgent) close() {
	a.agent.stop()
	a.o.Close()
}

// waitQuiet waits, up to timeout, until the agent has logged its page-out (or that it cannot
// page out), and says what it saw.
func (a *idleAgent) waitQuiet(ctx context.Context, timeout time.Duration) string {
	var seen string
	err := testpoll.Wait(ctx, timeout, func() error {
		for line := range strings.Lines(a.agent.Output()) {
			switch {
			case strings.Contains(line, pagedOutLine):
				seen = fmt.Sprintf("after its page-out of the executable, %.1f s after start", time.Since(a.started).Seconds())
			case strings.Contains(line, noPageOutLine):
				seen = fmt.Sprintf("%.1f s after start, where it logged that it cannot page out its executable", time.Since(a.started).Seconds())
			default:
				continue
			}
			return nil
		}
		return errors.New("no page-out yet")
	})
	if err != nil {
		return fmt.Sprintf("%.0f s after start, without a page-out of the executable", time.Since(a.started).Seconds())
	}
	return seen
}

// measure samples RSS and CPU time over window, then counts goroutines (which may end the
// process: see agentProc.goroutines).
func (a *idleAgent) measure(ctx context.Context, window time.Duration) (idleFootprint, error) {
	res := idleFootprint{Window: window, From: a.waitQuiet(ctx, time.Minute)}
	pid := a.agent.Pid()
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

// copyFile copies the executable src to dst, synced: the kernel pages out clean pages only, and
// the pages of a file just written stay dirty until written back.
func copyFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o755)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// retained is the agent's memory after many finished tasks.
type retained struct {
	Tasks        int
	PayloadBytes int // FILE_WRITE content per task; 0: small ECHO tasks
	Conc         int
	Elapsed      time.Duration
	Mem          memory
	PagedOut     bool // the agent's page-out of its executable was seen before Mem was read
}

// measureRetained runs n tasks through an agent and then reads its memory: small ECHO tasks,
// or, with payloadBytes, FILE_WRITEs of that many bytes (the same content to the same file, so
// the disk sees one write). The agent keeps the last 1,000 reported tasks in its store
// (controllers.TaskCollector), without their payloads and results.
func measureRetained(ctx context.Context, cfg *config, n, conc, payloadBytes int) (retained, error) {
	res := retained{Tasks: n, Conc: conc, PayloadBytes: payloadBytes}
	o := startOrchestrator(orchestratortest.Options{ForgetFinishedBodies: true})
	defer o.Close()
	root := filepath.Join(cfg.stateDir("retained"), "files")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return res, err
	}
	agent, err := startAgent(cfg, o, "retained", fmt.Sprintf("AGENT_MAX_CONCURRENT_TASKS=%d", conc), "AGENT_FILE_ROOTS="+root)
	if err != nil {
		return res, err
	}
	defer agent.stop()
	if err := agent.waitReady(o, 30*time.Second); err != nil {
		return res, err
	}
	var b batch
	if payloadBytes == 0 {
		b, err = runBatch(ctx, o, n, cfg.batchTimeout())
	} else {
		payload, _ := json.Marshal(map[string]string{"path": filepath.Join(root, "big.txt"), "content": strings.Repeat("x", payloadBytes)})
		b, err = runWindowed(ctx, o, "FILE_WRITE", payload, n, 4*conc, time.Duration(n/100+1)*cfg.batchTimeout())
	}
	if err != nil {
		return res, fmt.Errorf("%w\n%s", err, agent.logTail())
	}
	res.Elapsed = b.Elapsed
	if res.Mem, res.PagedOut, err = settledMemory(ctx, agent.Pid()); err != nil {
		return res, err
	}
	return res, nil
}

// settledMemory reads the agent's memory once it has settled after a run: the collector
// deletes reported Tasks on its own goroutine, and at its first quiet check (internal/memtrim,
// every memtrim.DefaultInterval) the agent returns a burst's garbage to the system and pages its
// executable out. RSS is read every second until the page-out is seen (file-backed RSS down to
// half of the most seen since the run) and RSS has not fallen by more than 1 MiB three times in
// a row, for at most 30 s; pagedOut says whether the page-out was seen.
func settledMemory(ctx context.Context, pid int) (m memory, pagedOut bool, err error) {
	const step, maxWait, slack = time.Second, 30 * time.Second, 1 << 20
	if m, err = readMemory(pid); err != nil {
		return m, false, err
	}
	mostFile := m.File
	for steady, waited := 0, time.Duration(0); (steady < 3 || !pagedOut) && waited < maxWait; waited += step {
		sleepCtx(ctx, step)
		next, err := readMemory(pid)
		if err != nil {
			return m, pagedOut, err
		}
		if next.RSS < m.RSS-slack {
			steady = 0
		} else {
			steady++
		}
		mostFile = max(mostFile, next.File)
		pagedOut = pagedOut || next.File < mostFile/2
		m = next
	}
	return m, pagedOut, nil
}

// runWindowed runs n tasks of one type and payload, keeping at most window of them enqueued
// and unfinished at once (so that the orchestrator never holds all their bodies at once), and
// waits until all are final; every one must complete.
func runWindowed(ctx context.Context, o *orchestrator, typ string, payload json.RawMessage, n, window int, timeout time.Duration) (batch, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	before := o.Stats()
	start := time.Now()
	var inFlight []string
	var last time.Time
	wait := func(id string) error {
		st, err := o.WaitTask(ctx, id, orchestratortest.TaskState.IsFinal)
		if err != nil {
			return fmt.Errorf("%w (%d of %d tasks final)", err, o.Stats().FinalReports-before.FinalReports, n)
		}
		if st.Status != orchestratortest.StatusCompleted {
			return fmt.Errorf("task %s ended %s: %s", id, st.Status, st.Error)
		}
		if st.FinalAt.After(last) {
			last = st.FinalAt
		}
		return nil
	}
	for range n {
		if len(inFlight) == window {
			if err := wait(inFlight[0]); err != nil {
				return batch{}, err
			}
			inFlight = inFlight[1:]
		}
		inFlight = append(inFlight, o.Enqueue(typ, payload, 0))
	}
	for _, id := range inFlight {
		if err := wait(id); err != nil {
			return batch{}, err
		}
	}
	return batch{Tasks: n, Elapsed: last.Sub(start.Round(0)), Requests: statsDelta(before, o.Stats())}, nil
}

func fileSize(path string) (int64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}
