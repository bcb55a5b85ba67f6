package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/letsbe/sysadmin-agent/internal/agenttest"
	"github.com/letsbe/sysadmin-agent/internal/testpoll"
	"github.com/letsbe/sysadmin-agent/orchestratorsync/orchestratortest"
)

// sideCmd, as the first argument, makes the bench binary run one side (sideMain) instead of
// the benchmark: the bench starts each side as its own process, so that the side's CPU time
// and allocations are measured as the agent's are.
const sideCmd = "side"

// sideStats is what a side process reports on stdout, one JSON line per "stats" line it reads
// and one when it ends.
type sideStats struct {
	Mallocs uint64 `json:"mallocs"` // runtime.MemStats.Mallocs so far
	Commits int64  `json:"commits"` // the durable reference's fdatasyncs so far
	Records int64  `json:"records"` // and the records they made durable
	Err     string `json:"err,omitempty"`
}

// sideMain runs one side: workers against the orchestrator at -orchestrator, with -log the
// durable reference (its log at that path), else the bare client. It answers each "stats" line
// on in with one JSON line of sideStats; when in ends it stops its workers and writes its
// last sideStats.
func sideMain(args []string, in io.Reader, out io.Writer) error {
	fs := flag.NewFlagSet(sideCmd, flag.ContinueOnError)
	base := fs.String("orchestrator", "", "base URL of the orchestrator")
	workers := fs.Int("workers", 1, "workers (the concurrency)")
	logPath := fs.String("log", "", "the durable reference's log (empty: the bare client)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var wal *groupLog
	if *logPath != "" {
		var err error
		if wal, err = openGroupLog(*logPath); err != nil {
			return err
		}
	}
	b, err := startBaseline(*base, *workers, wal)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(out)
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		if sc.Text() != "stats" {
			return fmt.Errorf("unknown command %q", sc.Text())
		}
		if err := enc.Encode(b.stats()); err != nil {
			return err
		}
	}
	b.stop()
	if wal != nil {
		if err := wal.close(); err != nil {
			return err
		}
	}
	return enc.Encode(b.stats())
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
	url     string
	agentID string
	hc      *http.Client
	wal     *groupLog // nil: the bare client
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	err     atomic.Pointer[error]
}

// startBaseline registers with the orchestrator at base and starts conc workers, each parked
// in a long poll until tasks come; with wal, they are the durable reference.
func startBaseline(base string, conc int, wal *groupLog) (*baseline, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = conc + 2
	b := &baseline{url: base, hc: &http.Client{Transport: tr}, wal: wal}
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
			if err := b.work(ctx); err != nil && ctx.Err() == nil && b.err.CompareAndSwap(nil, &err) {
				fmt.Fprintln(os.Stderr, "worker:", err)
			}
		})
	}
	return b, nil
}

func (b *baseline) stop() {
	b.cancel()
	b.wg.Wait()
}

func (b *baseline) stats() sideStats {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	st := sideStats{Mallocs: ms.Mallocs}
	if b.wal != nil {
		st.Commits, st.Records = b.wal.commits.Load(), b.wal.records.Load()
	}
	if p := b.err.Load(); p != nil {
		st.Err = (*p).Error()
	}
	return st
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
	req, err := http.NewRequestWithContext(ctx, method, b.url+path, rd)
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

// sideProc is a side running as its own process (the bench binary with sideCmd), its
// workers parked in long polls on its orchestrator.
type sideProc struct {
	cmd    *exec.Cmd
	in     io.WriteCloser
	stdout *os.File
	out    *json.Decoder
	stderr agenttest.Output
	done   chan struct{}
	last   sideStats // the last stats read
}

// startSide starts conc workers of a side against o as a process of its own, in dir (its HOME;
// with durable, the durable reference with its log in dir), with a clean environment as the
// agent's, and waits until all of them are parked.
func startSide(o *orchestrator, dir string, conc int, durable bool) (*sideProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	args := []string{sideCmd, "-orchestrator", o.URL, "-workers", strconv.Itoa(conc)}
	if durable {
		args = append(args, "-log", filepath.Join(dir, "tasks.log"))
	}
	// Its life is stdin's: closed, the side stops its workers and exits.
	cmd := exec.Command(exe, args...) //nolint:noctx // see above
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	s := &sideProc{cmd: cmd, done: make(chan struct{})}
	cmd.Stderr = &s.stderr
	if s.in, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	// A pipe of our own, not StdoutPipe: Wait, which runs meanwhile, would close that one
	// before the last stats are read.
	stdout, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = w
	s.stdout, s.out = stdout, json.NewDecoder(stdout)
	err = cmd.Start()
	w.Close()
	if err != nil {
		stdout.Close()
		return nil, fmt.Errorf("start side: %w", err)
	}
	go func() { _ = cmd.Wait(); close(s.done) }()
	// Wait until every worker is parked, as the agent is when a batch starts.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err = testpoll.Wait(ctx, 30*time.Second, func() error {
		select {
		case <-s.done:
			cancel() // no use waiting
			return fmt.Errorf("side exited: %s", s.failed())
		default:
		}
		if n := o.Stats().LongPollsWaiting; n < conc {
			return fmt.Errorf("%d of %d parked", n, conc)
		}
		return nil
	})
	if err != nil {
		_, _ = s.stop()
		return nil, fmt.Errorf("side workers did not start polling: %w", err)
	}
	return s, nil
}

// Pid is the side's process id.
func (s *sideProc) Pid() int { return s.cmd.Process.Pid }

// stats asks the side for its sideStats.
func (s *sideProc) stats() (sideStats, error) {
	if _, err := io.WriteString(s.in, "stats\n"); err != nil {
		return sideStats{}, fmt.Errorf("side stats: %w (%s)", err, s.failed())
	}
	var st sideStats
	if err := s.out.Decode(&st); err != nil {
		return sideStats{}, fmt.Errorf("side stats: %w (%s)", err, s.failed())
	}
	s.last = st
	return st, nil
}

func (s *sideProc) mallocs() (float64, error) {
	st, err := s.stats()
	return float64(st.Mallocs), err
}

// stop closes the side's stdin, waits for it to exit (killing it after 30 s) and reads its
// last stats.
func (s *sideProc) stop() (sideStats, error) {
	_ = s.in.Close()
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	var st sideStats
	err := s.out.Decode(&st) // the pipe keeps what it wrote before it exited
	s.stdout.Close()
	if err == nil && s.cmd.ProcessState.ExitCode() != 0 {
		err = errors.New(s.failed())
	}
	if err != nil {
		return st, fmt.Errorf("side: %w", err)
	}
	s.last = st
	return st, nil
}

// failed returns the end of what the side wrote to stderr (its errors).
func (s *sideProc) failed() string {
	e := s.stderr.String()
	if len(e) > 2000 {
		e = e[len(e)-2000:]
	}
	if e == "" {
		return "no error written"
	}
	return e
}
