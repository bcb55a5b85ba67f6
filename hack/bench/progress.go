package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/letsbe/sysadmin-agent/orchestratorsync/orchestratortest"
)

// progressCost is what live progress costs: ECHO throughput (nothing streams) with the
// feature off and on, alternating batches, and the progress reports of chatty SHELL tasks.
type progressCost struct {
	Conc             int
	EchoOff, EchoOn  []batch
	ChattyInterval   time.Duration
	ChattyCmd        string
	Chatty           []chattyTask
	ChattyConcurrent int
}

// chattyTask is one SHELL task that printed as fast as it could.
type chattyTask struct {
	Ran       time.Duration // RUNNING to final, as the orchestrator saw it
	Reports   int           // progress reports with output
	Streamed  int64         // bytes of output they carried
	Gaps      int           // chunks after dropped bytes (output faster than the budget)
	MaxReport int           // largest chunk data, bytes
}

// perSecond is the rate of the reports after the first: the first goes out at once, and at
// most one per interval may follow, so n reports over a run of T allow (n-1)/T ≤ 1/interval.
func (c chattyTask) perSecond() float64 {
	if c.Reports < 2 || c.Ran <= 0 {
		return 0
	}
	return float64(c.Reports-1) / c.Ran.Seconds()
}

const (
	progressEchoTasks = 2000
	progressEchoRuns  = 3
	chattySeconds     = 5
	chattyTasks       = 2
)

func measureProgress(ctx context.Context, cfg *config) (progressCost, error) {
	res := progressCost{Conc: 4, ChattyInterval: time.Second, ChattyConcurrent: chattyTasks,
		ChattyCmd: fmt.Sprintf("timeout %d yes", chattySeconds)}
	type side struct {
		o     *orchestrator
		agent *agentProc
	}
	var sides [2]side
	for i, on := range []bool{false, true} {
		o := startOrchestrator(orchestratortest.Options{Progress: on})
		defer o.Close()
		agent, err := startAgent(cfg, o, fmt.Sprintf("progress-%v", on),
			"AGENT_MAX_CONCURRENT_TASKS=4", "AGENT_ALLOWED_COMMANDS=true,timeout,yes")
		if err != nil {
			return res, err
		}
		defer agent.stop()
		if err := agent.waitReady(o, 30*time.Second); err != nil {
			return res, err
		}
		if _, err := runBatch(ctx, o, cfg.warmup, cfg.batchTimeout()); err != nil {
			return res, fmt.Errorf("warm-up (progress %v): %w\n%s", on, err, agent.logTail())
		}
		sides[i] = side{o, agent}
	}
	for rep := range progressEchoRuns {
		for i, s := range sides {
			b, err := runBatch(ctx, s.o, progressEchoTasks, cfg.batchTimeout())
			if err != nil {
				return res, fmt.Errorf("ECHO batch: %w\n%s", err, s.agent.logTail())
			}
			if i == 0 {
				res.EchoOff = append(res.EchoOff, b)
			} else {
				res.EchoOn = append(res.EchoOn, b)
			}
		}
		progress("  ECHO run %d: progress off %.0f tasks/s, on %.0f tasks/s", rep+1, res.EchoOff[rep].rate(), res.EchoOn[rep].rate())
	}

	on := sides[1].o
	payload, _ := json.Marshal(map[string]string{"cmd": res.ChattyCmd})
	ids := make([]string, chattyTasks)
	for i := range ids {
		ids[i] = on.Enqueue("SHELL", payload, 0)
	}
	for _, id := range ids {
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		st, err := on.WaitTask(wctx, id, orchestratortest.TaskState.IsFinal)
		cancel()
		if err != nil {
			return res, fmt.Errorf("chatty SHELL: %w", err)
		}
		if st.Status != orchestratortest.StatusFailed || !strings.Contains(st.Error, "exit status 124") {
			return res, fmt.Errorf("chatty SHELL %s ended %s %q, want FAILED exit status 124 (timeout)", id, st.Status, st.Error)
		}
		c := chattyTask{Ran: st.FinalAt.Sub(st.RunningAt), Reports: st.Progress.Reports, Gaps: st.Progress.Gaps}
		for _, ch := range st.Progress.Chunks {
			c.Streamed += int64(ch.Length)
			c.MaxReport = max(c.MaxReport, ch.Length)
		}
		res.Chatty = append(res.Chatty, c)
		progress("  chatty SHELL %s: %d progress reports over %.1f s (%.2f/s), %s streamed", id, c.Reports, c.Ran.Seconds(), c.perSecond(), kib(c.Streamed))
	}
	return res, nil
}

func (p progressCost) rows() []row {
	if len(p.EchoOff) == 0 {
		return nil
	}
	off, on := medianRate(p.EchoOff), medianRate(p.EchoOn)
	rows := []row{{
		figure:   fmt.Sprintf("progress feature on, ECHO throughput (%d concurrent)", p.Conc),
		measured: fmt.Sprintf("%s tasks/s on vs %s tasks/s off (%.2f ×)", thousands(on), thousands(off), on/off),
		target:   "no change (nothing streams)", result: "—",
	}}
	worst := 0.0
	for _, c := range p.Chatty {
		worst = max(worst, c.perSecond())
	}
	if len(p.Chatty) > 0 {
		rows = append(rows, row{
			figure: fmt.Sprintf("progress reports of a chatty SHELL task (`%s`, %d at once)", p.ChattyCmd, p.ChattyConcurrent),
			measured: fmt.Sprintf("at most %.2f per second per task (AGENT_PROGRESS_INTERVAL %s), each ≤ %s of output",
				worst, p.ChattyInterval, kib(int64(p.maxReport()))),
			target: fmt.Sprintf("≤ 1 per %s per task", p.ChattyInterval), result: verdict(worst <= 1/p.ChattyInterval.Seconds()*1.05),
		})
	}
	return rows
}

func (p progressCost) maxReport() int {
	m := 0
	for _, c := range p.Chatty {
		m = max(m, c.MaxReport)
	}
	return m
}

func (p progressCost) document() string {
	if len(p.EchoOff) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("\n## Live progress\n\n")
	fmt.Fprintf(&b, "ECHO batches of %d tasks at concurrency %d, alternating between an orchestrator without and one with `features: [\"progress\"]`: off %s tasks/s, on %s tasks/s.\n\n",
		progressEchoTasks, p.Conc, rates(p.EchoOff), rates(p.EchoOn))
	fmt.Fprintf(&b, "Chatty SHELL tasks (`%s`, %d at once, default AGENT_PROGRESS_INTERVAL and AGENT_PROGRESS_MAX_BYTES):\n\n", p.ChattyCmd, p.ChattyConcurrent)
	b.WriteString("| task | ran | progress reports | per second | streamed | gaps (output dropped from the stream, kept in the result's head and tail) |\n| --- | --- | --- | --- | --- | --- |\n")
	for i, c := range p.Chatty {
		fmt.Fprintf(&b, "| %d | %.1f s | %d | %.2f | %s | %d |\n", i+1, c.Ran.Seconds(), c.Reports, c.perSecond(), kib(c.Streamed), c.Gaps)
	}
	return b.String()
}
