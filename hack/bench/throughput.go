package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/letsbe/sysadmin-agent/internal/testpoll"
	"github.com/letsbe/sysadmin-agent/orchestratorsync/orchestratortest"
)

// echoPayload is the payload of every ECHO task the benchmark enqueues.
var echoPayload = json.RawMessage(`{"message":"hello from make bench"}`)

// batch is one measured batch of tasks.
type batch struct {
	Tasks    int
	Elapsed  time.Duration // first enqueue to the last final report
	Requests requests      // orchestrator requests during the batch
	// CPU and Mallocs are the agent process's user+system CPU time (/proc/PID/stat) and heap
	// allocations (go_memstats_mallocs_total of its /metrics) over the batch; agent batches
	// only.
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

// baseline is a bare Go HTTP client doing the minimum the protocol needs per task (next,
// RUNNING, final) with conc workers: the physical limit for this protocol on this machine.
// With a log it is the durable reference: an agent with the agent's delivery guarantee and
// nothing else. Each worker then makes the task durable (a record in the append-only log,
// fdatasync'd with group commit) before it runs it and acknowledges it (RUNNING), and the final
// status durable before it reports it. The two differ only by the log, so the agent's ratio to
// the reference is what the agent spends beyond the guarantee, its ratio to the bare client
// what it spends in all.
type baseline struct {
	o       *orchestrator
	agentID string
	hc      *http.Client
	conc    int
	wal     *groupLog // nil: the bare client
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	err     atomic.Pointer[error]
}

// startBaseline registers and starts conc workers, each parked in a long poll until tasks
// come; with wal, they are the durable reference.
func startBaseline(o *orchestrator, conc int, wal *groupLog) (*baseline, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = conc + 2
	b := &baseline{o: o, hc: &http.Client{Transport: tr}, conc: conc, wal: wal}
	host := "bench-baseline"
	if wal != nil {
		host = "bench-reference"
	}
	body := []byte(`{"hostname":"` + host + `","version":"bench","os":"linux","arch":"amd64","capabilities":["ECHO"]}`)
	resp, err := b.call(context.Background(), http.MethodPost, "/agents/register", body)
	if err != nil {
		return nil, err
	}
	var rr struct {
		AgentID string `json:"agent_id"`
	}
	if err := json.Unmarshal(resp, &rr); err != nil || rr.AgentID == "" {
		return nil, fmt.Errorf("register: bad answer %q", resp)
	}
	b.agentID = rr.AgentID
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	for range conc {
		b.wg.Go(func() {
			if err := b.work(ctx); err != nil && ctx.Err() == nil {
				b.err.CompareAndSwap(nil, &err)
			}
		})
	}
	// Wait until every worker is parked, as the agent is when a batch starts.
	err = testpoll.Wait(ctx, 10*time.Second, func() error {
		if n := o.Stats().LongPollsWaiting; n < conc {
			return fmt.Errorf("%d of %d parked", n, conc)
		}
		return nil
	})
	if err != nil {
		b.stop()
		return nil, fmt.Errorf("baseline workers did not start polling: %w", err)
	}
	return b, nil
}

func (b *baseline) stop() {
	b.cancel()
	b.wg.Wait()
}

func (b *baseline) failed() error {
	if p := b.err.Load(); p != nil {
		return *p
	}
	return nil
}

func (b *baseline) work(ctx context.Context) error {
	next := "/tasks/next?" + url.Values{"agent_id": {b.agentID}, "wait": {"1"}}.Encode()
	var task struct {
		ID      string          `json:"id"`
		Payload json.RawMessage `json:"payload"`
	}
	buf := make([]byte, 0, 512)
	var rec []byte // log records (appendRecord copies them)
	for ctx.Err() == nil {
		body, err := b.call(ctx, http.MethodGet, next, nil)
		if err != nil {
			return err
		}
		if len(body) == 0 {
			continue // 204: nothing yet
		}
		task.ID, task.Payload = "", nil
		if err := json.Unmarshal(body, &task); err != nil {
			return fmt.Errorf("decode task: %w", err)
		}
		if b.wal != nil {
			rec = takenRecord(rec[:0], task.ID, task.Payload)
			if err := b.wal.appendRecord(rec); err != nil {
				return fmt.Errorf("log task %s: %w", task.ID, err)
			}
		}
		started := time.Now().UTC().Format(time.RFC3339)
		ep := "/tasks/" + url.PathEscape(task.ID)
		buf = append(buf[:0], `{"agent_id":`...)
		buf = strconv.AppendQuote(buf, b.agentID)
		buf = append(buf, `,"status":"RUNNING","started_at":"`...)
		buf = append(buf, started...)
		buf = append(buf, `"}`...)
		if _, err := b.call(ctx, http.MethodPatch, ep, buf); err != nil {
			return err
		}
		buf = append(buf[:0], `{"agent_id":`...)
		buf = strconv.AppendQuote(buf, b.agentID)
		buf = append(buf, `,"status":"COMPLETED","result":`...)
		buf = append(buf, task.Payload...)
		buf = append(buf, `,"started_at":"`...)
		buf = append(buf, started...)
		buf = append(buf, `","finished_at":"`...)
		buf = time.Now().UTC().AppendFormat(buf, time.RFC3339)
		buf = append(buf, `"}`...)
		if b.wal != nil {
			rec = finalRecord(rec[:0], task.ID, "COMPLETED")
			if err := b.wal.appendRecord(rec); err != nil {
				return fmt.Errorf("log the end of task %s: %w", task.ID, err)
			}
		}
		if _, err := b.call(ctx, http.MethodPatch, ep, buf); err != nil {
			return err
		}
	}
	return nil
}

// call sends one request and returns the body of a 2xx answer (empty for 204).
func (b *baseline) call(ctx context.Context, method, path string, body []byte) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, b.o.URL+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+orchestratortest.DefaultEnrollmentToken)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, data)
	}
	return data, nil
}

// throughput is the result for one concurrency.
type throughput struct {
	Conc                       int
	Agent, Baseline, Reference []batch
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

// costPerTask returns the agent's CPU time and allocations per task over the batches.
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

// agentBatch is runBatch for the agent, with the agent's CPU time and allocations over it.
func agentBatch(ctx context.Context, o *orchestrator, agent *agentProc, n int, timeout time.Duration) (batch, error) {
	cpu0, err := readCPU(agent.Pid())
	if err != nil {
		return batch{}, err
	}
	m0, err := scrapeMetric(agent.HTTPAddr, "go_memstats_mallocs_total")
	if err != nil {
		return batch{}, err
	}
	b, err := runBatch(ctx, o, n, timeout)
	if err != nil {
		return b, err
	}
	cpu1, err := readCPU(agent.Pid())
	if err != nil {
		return b, err
	}
	m1, err := scrapeMetric(agent.HTTPAddr, "go_memstats_mallocs_total")
	if err != nil {
		return b, err
	}
	b.CPU, b.Mallocs = cpu1-cpu0, m1-m0
	return b, nil
}

// measureThroughput runs the agent, the bare client and the durable reference at conc, each
// against its own orchestrator, alternating their batches so that all see the same machine
// noise.
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
	base, err := startBaseline(ob, conc, nil)
	if err != nil {
		return res, err
	}
	defer base.stop()
	or := startOrchestrator(orchestratortest.Options{})
	defer or.Close()
	dir := cfg.stateDir(fmt.Sprintf("reference-%d", conc))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return res, err
	}
	wal, err := openGroupLog(filepath.Join(dir, "tasks.log"))
	if err != nil {
		return res, err
	}
	ref, err := startBaseline(or, conc, wal)
	if err != nil {
		_ = wal.close()
		return res, err
	}
	defer func() { ref.stop(); _ = wal.close() }()

	timeout := cfg.batchTimeout()
	if _, err := runBatch(ctx, oa, cfg.warmup, timeout); err != nil {
		return res, fmt.Errorf("agent warm-up: %w\n%s", err, agent.logTail())
	}
	if _, err := runBatch(ctx, ob, cfg.warmup, timeout); err != nil {
		return res, fmt.Errorf("baseline warm-up: %w (%v)", err, base.failed())
	}
	if _, err := runBatch(ctx, or, cfg.warmup, timeout); err != nil {
		return res, fmt.Errorf("durable reference warm-up: %w (%v)", err, ref.failed())
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
		a, err := agentBatch(ctx, oa, agent, cfg.tasks(conc), timeout)
		if err != nil {
			return res, fmt.Errorf("agent: %w\n%s", err, agent.logTail())
		}
		res.Agent = append(res.Agent, a)
		b, err := runBatch(ctx, ob, cfg.tasks(conc), timeout)
		if err != nil {
			return res, fmt.Errorf("baseline: %w (%v)", err, base.failed())
		}
		res.Baseline = append(res.Baseline, b)
		r, err := runBatch(ctx, or, cfg.tasks(conc), timeout)
		if err != nil {
			return res, fmt.Errorf("durable reference: %w (%v)", err, ref.failed())
		}
		res.Reference = append(res.Reference, r)
		cpu, allocs := costPerTask([]batch{a})
		progress("  concurrency %d, run %d: agent %.0f tasks/s (%.0f µs CPU, %.0f allocations per task), bare client %.0f tasks/s, durable reference %.0f tasks/s (%d fdatasyncs for %d records so far)",
			conc, rep+1, a.rate(), float64(cpu)/float64(time.Microsecond), allocs, b.rate(), r.rate(), wal.commits.Load(), wal.records.Load())
	}
	return res, nil
}
