package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/procfs"

	"github.com/letsbe/sysadmin-agent/internal/agenttest"
	"github.com/letsbe/sysadmin-agent/orchestratorsync/orchestratortest"
)

// userHZ is the unit of utime and stime in /proc/PID/stat: USER_HZ, 100 on every Linux ABI
// Go supports (the kernel converts to it for user space whatever its own HZ).
const userHZ = 100

// orchestrator is the reference orchestrator served in-process on loopback.
type orchestrator = agenttest.Orchestrator

func startOrchestrator(opts orchestratortest.Options) *orchestrator {
	return agenttest.Serve(orchestratortest.New(opts), nil)
}

// agentProc is a running letsbe-agent, its output also in agent.log of its work directory.
type agentProc struct{ *agenttest.Agent }

// startAgent runs the binary against o with a clean environment plus env ("K=V") and
// cfg.agentEnv, its state and log (agent.log) in the work directory name. Its listener is
// on a pre-picked loopback port, never the default one: several agents run at once, next to
// other engineers' tests.
func startAgent(cfg *config, o *orchestrator, name string, env ...string) (*agentProc, error) {
	stateDir := cfg.stateDir(name)
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, err
	}
	logPath := filepath.Join(stateDir, "agent.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	a, err := agenttest.Start(agenttest.Options{
		Binary: cfg.agentBin, OrchestratorURL: o.URL,
		StateDir: filepath.Join(stateDir, "state"), Home: stateDir,
		Env: append([]string{
			"AGENT_ALLOWED_COMMANDS=true",
			"AGENT_LOG_LEVEL=info",
			"GOTRACEBACK=all",
		}, append(env, cfg.agentEnv...)...),
		Output: logFile,
	})
	if err != nil {
		logFile.Close()
		return nil, err
	}
	go func() { <-a.Done(); logFile.Close() }()
	return &agentProc{a}, nil
}

// mallocs returns the agent's heap allocations so far: go_memstats_mallocs_total of its
// /metrics.
func (p *agentProc) mallocs() (float64, error) {
	return scrapeMetric(p.HTTPAddr, "go_memstats_mallocs_total")
}

// stop sends SIGTERM and waits (SIGKILL after 30 s).
func (p *agentProc) stop() { _, _ = p.Stop(30 * time.Second) }

// logTail returns the end of the agent's log, for error messages.
func (p *agentProc) logTail() string { return p.OutputTail(4000) }

// waitReady waits until the agent registered with o and its poller asked for work.
func (p *agentProc) waitReady(o *orchestrator, timeout time.Duration) error {
	return p.WaitRegistered(context.Background(), o.Server, timeout)
}

// memory is a process's resident set from /proc/PID/status, in bytes.
type memory struct {
	RSS, HWM int64 // VmRSS and VmHWM: now and peak
	// Anon and File split RSS into anonymous memory (heap, stacks) and file-backed pages (the
	// mapped binary: shared with the page cache and reclaimable).
	Anon, File int64
}

func readMemory(pid int) (memory, error) {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return memory{}, err
	}
	return memoryOf(fs, pid)
}

// memoryOf reads VmRSS, VmHWM, RssAnon and RssFile from /proc/PID/status of fs.
func memoryOf(fs procfs.FS, pid int) (memory, error) {
	p, err := fs.Proc(pid)
	if err != nil {
		return memory{}, err
	}
	st, err := p.NewStatus()
	if err != nil {
		return memory{}, err
	}
	if st.VmRSS == 0 || st.VmHWM == 0 || st.RssAnon+st.RssFile == 0 {
		return memory{}, errors.New("VmRSS, VmHWM, RssAnon or RssFile missing from /proc/PID/status")
	}
	return memory{RSS: int64(st.VmRSS), HWM: int64(st.VmHWM), Anon: int64(st.RssAnon), File: int64(st.RssFile)}, nil
}

// readCPU returns the process's user+system CPU time from /proc/PID/stat.
func readCPU(pid int) (time.Duration, error) {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return 0, err
	}
	return cpuOf(fs, pid)
}

// cpuOf reads utime+stime (in USER_HZ ticks) from /proc/PID/stat of fs.
func cpuOf(fs procfs.FS, pid int) (time.Duration, error) {
	p, err := fs.Proc(pid)
	if err != nil {
		return 0, err
	}
	st, err := p.Stat()
	if err != nil {
		return 0, err
	}
	return time.Duration(st.UTime+st.STime) * time.Second / userHZ, nil
}

// goroutines counts the agent's goroutines: go_goroutines from its metrics listener when it
// has one, else from the stack dump of SIGQUIT (which ends the process). It says which.
func (p *agentProc) goroutines() (int, string, error) {
	if n, err := scrapeGoroutines(p.HTTPAddr); err == nil {
		return n, "go_goroutines of /metrics", nil
	}
	if err := p.Signal(syscall.SIGQUIT); err != nil {
		return 0, "", err
	}
	select {
	case <-p.Done():
	case <-time.After(10 * time.Second):
		return 0, "", errors.New("agent did not exit on SIGQUIT")
	}
	n := countGoroutines([]byte(p.Output()))
	if n == 0 {
		return 0, "", errors.New("no goroutine dump in the agent's output after SIGQUIT")
	}
	return n, "SIGQUIT stack dump, runtime goroutines left out", nil
}

// countGoroutines counts the goroutines of a Go stack dump as runtime.NumGoroutine does:
// without g0 ("goroutine 0") and without the runtime's own goroutines, those whose start
// function (the frame above runtime.goexit) is in package runtime, except runtime.main.
func countGoroutines(dump []byte) int {
	n := 0
	for _, block := range strings.Split(string(dump), "\n\n") {
		lines := strings.Split(strings.TrimSpace(block), "\n")
		if !strings.HasPrefix(lines[0], "goroutine ") || strings.HasPrefix(lines[0], "goroutine 0 ") {
			continue
		}
		start := ""
		for _, l := range lines[1:] {
			if l == "" || l[0] == '\t' || l[0] == ' ' || strings.HasPrefix(l, "created by ") ||
				strings.HasPrefix(l, "runtime.goexit(") || strings.HasPrefix(l, "...") {
				continue
			}
			start = l
		}
		if strings.HasPrefix(start, "runtime.") && !strings.HasPrefix(start, "runtime.main(") {
			continue
		}
		n++
	}
	return n
}

// scrapeGoroutines returns go_goroutines of the agent's /metrics.
func scrapeGoroutines(addr string) (int, error) {
	v, err := scrapeMetric(addr, "go_goroutines")
	return int(v), err
}

// scrapeMetric returns the value of the unlabelled metric name from the agent's /metrics.
func scrapeMetric(addr, name string) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	return metricValue(b, name)
}

// metricValue finds the sample of the unlabelled metric name in a Prometheus text exposition.
func metricValue(text []byte, name string) (float64, error) {
	for line := range strings.Lines(string(text)) {
		rest, ok := strings.CutPrefix(line, name+" ")
		if !ok {
			continue
		}
		f := strings.Fields(rest) // value, then an optional timestamp
		if len(f) == 0 {
			break
		}
		return strconv.ParseFloat(f[0], 64)
	}
	return 0, fmt.Errorf("no %s in /metrics", name)
}
