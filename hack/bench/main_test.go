package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/procfs"

	"github.com/letsbe/sysadmin-agent/orchestratorsync/orchestratortest"
)

// fakeProc returns a /proc holding one process, 4242, whose file name has the content given.
func fakeProc(t *testing.T, name, content string) procfs.FS {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "4242"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "4242", name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	fs, err := procfs.NewFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

func TestMemoryOf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    memory
		wantErr bool
	}{
		{
			name: "both",
			in:   "Name:\tletsbe-agent\nVmPeak:\t 1300 kB\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\nRssAnon:\t    4096 kB\nRssFile:\t    6144 kB\nRssShmem:\t       0 kB\nThreads:\t7\n",
			want: memory{RSS: 10 << 20, HWM: 20 << 20, Anon: 4 << 20, File: 6 << 20},
		},
		{name: "missing", in: "Name:\tx\nVmRSS:\t 1 kB\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := memoryOf(fakeProc(t, "status", tt.in), 4242)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Fatalf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestCPUOf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    time.Duration
		wantErr bool
	}{
		{
			// utime 150, stime 25 ticks; the command name holds a space and a ')'.
			name: "odd command name",
			in:   "4242 (letsbe (x) agent) S 1 4242 4242 0 -1 4194560 900 0 0 0 150 25 0 0 20 0 7 0 12345 1000 2000 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0",
			want: 1750 * time.Millisecond,
		},
		{name: "short", in: "1 (a) S 1 2 3", wantErr: true},
		{name: "no parenthesis", in: "garbage", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := cpuOf(fakeProc(t, "stat", tt.in), 4242)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestReadOwnProcess(t *testing.T) {
	t.Parallel()
	if m, err := readMemory(os.Getpid()); err != nil || m.RSS <= 0 || m.HWM < m.RSS {
		t.Errorf("readMemory = %+v, %v", m, err)
	}
	if _, err := readCPU(os.Getpid()); err != nil {
		t.Errorf("readCPU: %v", err)
	}
}

// dump is a shortened SIGQUIT stack dump of the agent (Go 1.26 format).
const dump = `SIGQUIT: quit
PC=0x493421 m=0 sigcode=0

goroutine 0 gp=0x1f82580 m=0 mp=0x1f839c0 [idle]:
runtime.futex(0x1f83b18, 0x80, 0x0, 0x0, 0x0, 0x0)
	runtime/sys_linux_amd64.s:557 +0x21 fp=0x7ffc6367a3f8 sp=0x7ffc6367a3f0 pc=0x493421
runtime.mcall()
	runtime/asm_amd64.s:463 +0x4e fp=0x7ffc6367a4e0 sp=0x7ffc6367a4c8 pc=0x48e0ae

goroutine 1 gp=0x3bc6e0c341e0 m=nil [select]:
runtime.gopark(0x3bc6e1097cf8?, 0x2?, 0x0?, 0xde?, 0x3bc6e1097c4c?)
	runtime/proc.go:462 +0xce fp=0x3bc6e1097ab8 sp=0x3bc6e1097a98 pc=0x48602e
main.main()
	github.com/letsbe/sysadmin-agent/cmd/letsbe-agent/main.go:24 +0x5f fp=0x3bc6e1097f50 sp=0x3bc6e1097ee8 pc=0x10ae61f
runtime.main()
	runtime/proc.go:290 +0x29d fp=0x3bc6e1097fe0 sp=0x3bc6e1097f50 pc=0x44df7d
runtime.goexit({})
	runtime/asm_amd64.s:1771 +0x1 fp=0x3bc6e1097fe8 sp=0x3bc6e1097fe0 pc=0x490041

goroutine 3 gp=0x3bc6e0c34d20 m=nil [GC sweep wait]:
runtime.gopark(0x1?, 0x0?, 0x0?, 0x0?, 0x0?)
	runtime/proc.go:462 +0xce fp=0x3bc6e0c8cf38 sp=0x3bc6e0c8cf18 pc=0x48602e
runtime.bgsweep(0x3bc6e0cb2000)
	runtime/mgcsweep.go:323 +0xdf fp=0x3bc6e0c8cfa8 sp=0x3bc6e0c8cf60 pc=0x42d29f
runtime.gcenable.gowrap1()
	runtime/mgc.go:214 +0x17 fp=0x3bc6e0c8cfc8 sp=0x3bc6e0c8cfa8 pc=0x41f8f7
runtime.goexit({})
	runtime/asm_amd64.s:1771 +0x1 fp=0x3bc6e0c8cfd0 sp=0x3bc6e0c8cfc8 pc=0x490041
created by runtime.gcenable in goroutine 1
	runtime/mgc.go:214 +0x66

goroutine 40 gp=0x3bc6e11001e0 m=3 mp=0x3bc6e0c97008 [syscall]:
runtime.notetsleepg(0x1fa4dc0, 0xffffffffffffffff)
	runtime/lock_futex.go:123 +0x29 fp=0x3bc6e0c8f7a0 sp=0x3bc6e0c8f778 pc=0x4226a9
os/signal.signal_recv()
	runtime/sigqueue.go:152 +0x29 fp=0x3bc6e0c8f7c0 sp=0x3bc6e0c8f7a0 pc=0x48ab49
os/signal.loop()
	os/signal/signal_unix.go:23 +0x13 fp=0x3bc6e0c8f7e0 sp=0x3bc6e0c8f7c0 pc=0x10933b3
runtime.goexit({})
	runtime/asm_amd64.s:1771 +0x1 fp=0x3bc6e0c8f7e8 sp=0x3bc6e0c8f7e0 pc=0x490041
created by os/signal.Notify.func1.1 in goroutine 1
	os/signal/signal.go:152 +0x1f

goroutine 49 gp=0x3bc6e0d4b4a0 m=nil [chan receive]:
runtime.gopark(0x0?, 0x0?, 0x0?, 0x0?, 0x0?)
	runtime/proc.go:462 +0xce fp=0x3bc6e0c8e6d0 sp=0x3bc6e0c8e6b0 pc=0x48602e
github.com/letsbe/sysadmin-agent/orchestratorsync/journal.(*Journal).commitLoop(0x3bc6e0d8c150)
	github.com/letsbe/sysadmin-agent/orchestratorsync/journal/journal.go:143 +0xa5 fp=0x3bc6e0c8e7c8 sp=0x3bc6e0c8e6f0 pc=0x1023d65
github.com/letsbe/sysadmin-agent/orchestratorsync/journal.Open.gowrap1()
	github.com/letsbe/sysadmin-agent/orchestratorsync/journal/journal.go:73 +0x17 fp=0x3bc6e0c8e7e0 sp=0x3bc6e0c8e7c8 pc=0x1023b57
runtime.goexit({})
	runtime/asm_amd64.s:1771 +0x1 fp=0x3bc6e0c8e7e8 sp=0x3bc6e0c8e7e0 pc=0x490041
created by github.com/letsbe/sysadmin-agent/orchestratorsync/journal.Open in goroutine 1
	github.com/letsbe/sysadmin-agent/orchestratorsync/journal/journal.go:73 +0x1c5

rax    0xca
rip    0x493421
`

func TestCountGoroutines(t *testing.T) {
	t.Parallel()
	// 1 (main), 40 (os/signal.loop), 49 (journal); not 0 (g0) nor 3 (runtime.bgsweep).
	if got := countGoroutines([]byte(dump)); got != 3 {
		t.Fatalf("countGoroutines = %d, want 3", got)
	}
	if got := countGoroutines([]byte(`{"level":"info","msg":"Starting agent"}`)); got != 0 {
		t.Fatalf("countGoroutines of a log = %d, want 0", got)
	}
}

func TestParseGoBench(t *testing.T) {
	t.Parallel()
	raw := `goos: linux
goarch: amd64
pkg: github.com/letsbe/sysadmin-agent/api/store
cpu: Intel(R) Xeon(R) Processor
BenchmarkMemoryCreateGetUpdate-2   	  100000	     10000 ns/op	    4000 B/op	      50 allocs/op
BenchmarkMemoryCreateGetUpdate-2   	  100000	     30000 ns/op	    4000 B/op	      50 allocs/op
BenchmarkMemoryCreateGetUpdate-2   	  100000	     20000 ns/op	    4000 B/op	      50 allocs/op
PASS
ok  	github.com/letsbe/sysadmin-agent/api/store	3.1s
pkg: github.com/letsbe/sysadmin-agent/executors
BenchmarkShellTrue
BenchmarkShellTrue-2   	    1000	   1500000 ns/op	   12.5 extra/op
`
	got, err := parseGoBench(strings.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	want := []goBench{
		{Pkg: "github.com/letsbe/sysadmin-agent/api/store", Name: "BenchmarkMemoryCreateGetUpdate", Runs: 3,
			Metrics: map[string]float64{"ns/op": 20000, "B/op": 4000, "allocs/op": 50}},
		{Pkg: "github.com/letsbe/sysadmin-agent/executors", Name: "BenchmarkShellTrue", Runs: 1,
			Metrics: map[string]float64{"ns/op": 1500000, "extra/op": 12.5}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
}

func TestStatistics(t *testing.T) {
	t.Parallel()
	if got := median([]float64{3, 1, 2}); got != 2 {
		t.Errorf("median odd = %v", got)
	}
	if got := median([]float64{4, 1, 3, 2}); got != 2.5 {
		t.Errorf("median even = %v", got)
	}
	ds := make([]time.Duration, 200)
	for i := range ds {
		ds[len(ds)-1-i] = time.Duration(i+1) * time.Millisecond // 200 ms .. 1 ms, unsorted
	}
	for _, tt := range []struct {
		p    float64
		want time.Duration
	}{{50, 100 * time.Millisecond}, {99, 198 * time.Millisecond}, {100, 200 * time.Millisecond}} {
		if got := percentile(ds, tt.p); got != tt.want {
			t.Errorf("percentile(%v) = %v, want %v", tt.p, got, tt.want)
		}
	}
	for in, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -4200: "-4,200"} {
		if got := thousands(in); got != want {
			t.Errorf("thousands(%v) = %q, want %q", in, got, want)
		}
	}
}

func TestGroupLog(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "tasks.log")
	l, err := openGroupLog(path)
	if err != nil {
		t.Fatal(err)
	}
	const workers, perWorker = 8, 25
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			var rec []byte
			for i := range perWorker {
				id := fmt.Sprintf("t-%d-%d", w, i)
				rec = takenRecord(rec[:0], id, []byte("{\n \"message\": \"a \\\"quoted\\\" line\"\n}"))
				if err := l.appendRecord(rec); err != nil {
					t.Error(err)
					return
				}
				rec = finalRecord(rec[:0], id, "COMPLETED")
				if err := l.appendRecord(rec); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := l.close(); err != nil {
		t.Fatal(err)
	}
	if got, commits := l.records.Load(), l.commits.Load(); got != 2*workers*perWorker || commits < 1 || commits > got {
		t.Fatalf("records %d (want %d), commits %d", got, 2*workers*perWorker, commits)
	}
	taken, final, err := logState(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(taken) != workers*perWorker || len(final) != workers*perWorker {
		t.Fatalf("taken %d, final %d, want %d each", len(taken), len(final), workers*perWorker)
	}
	for id, st := range final {
		if st != "COMPLETED" {
			t.Fatalf("task %s: final %q", id, st)
		}
	}
}

func TestLogStateRefusesFinalBeforeTaken(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "tasks.log")
	if err := os.WriteFile(path, finalRecord(nil, "t-1", "COMPLETED"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := logState(path); err == nil {
		t.Fatal("logState accepted a final record without a taken one")
	}
}

// TestMain lets the test binary run a side when a test starts one (startSide runs
// os.Executable with sideCmd), as the bench binary does.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == sideCmd {
		if err := sideMain(os.Args[2:], os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "bench side:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestSides runs the bare client and the durable reference as processes against the
// reference orchestrator: every task completes with one RUNNING and one final report, the
// batch has the side's CPU time and allocations, and the durable reference's log holds every
// task taken and finished.
func TestSides(t *testing.T) {
	t.Parallel()
	// Enough tasks for the CPU time, read in clock ticks of 10 ms, not to round to zero.
	const n = 400
	for _, durable := range []bool{false, true} {
		t.Run(fmt.Sprintf("durable=%v", durable), func(t *testing.T) {
			t.Parallel()
			o := startOrchestrator(orchestratortest.Options{})
			defer o.Close()
			dir := t.TempDir()
			side, err := startSide(o, dir, 4, durable)
			if err != nil {
				t.Fatal(err)
			}
			b, err := measuredBatch(t.Context(), o, side, n, time.Minute)
			st, serr := side.stop()
			if err != nil {
				t.Fatalf("%v (%s)", err, side.failed())
			}
			if serr != nil {
				t.Fatal(serr)
			}
			// Next-task requests parked before the batch are not counted.
			if b.Tasks != n || b.Requests.Report != 2*n || b.CPU <= 0 || b.Mallocs < n {
				t.Fatalf("batch %+v", b)
			}
			if !durable {
				if st.Commits != 0 || st.Records != 0 {
					t.Fatalf("bare client logged: %+v", st)
				}
				return
			}
			if st.Records != 2*n || st.Commits < 1 || st.Commits > st.Records {
				t.Fatalf("stats %+v, want %d records", st, 2*n)
			}
			taken, final, err := logState(filepath.Join(dir, "tasks.log"))
			if err != nil {
				t.Fatal(err)
			}
			if len(taken) != n || len(final) != n {
				t.Fatalf("log: %d taken, %d final, want %d each", len(taken), len(final), n)
			}
		})
	}
}

// TestSideExitReported starts a side against an orchestrator that refuses it: startSide
// returns the side's own error, not that its workers never parked.
func TestSideExitReported(t *testing.T) {
	t.Parallel()
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "no", http.StatusUnauthorized)
	}))
	defer hs.Close()
	o := startOrchestrator(orchestratortest.Options{})
	defer o.Close()
	o.URL = hs.URL
	_, err := startSide(o, t.TempDir(), 1, false)
	if err == nil || !strings.Contains(err.Error(), "side exited") || !strings.Contains(err.Error(), "401") {
		t.Fatalf("startSide = %v, want the side's exit with its 401", err)
	}
}

func TestMetricValue(t *testing.T) {
	t.Parallel()
	text := []byte("# HELP go_memstats_mallocs_total Total number of heap objects allocated.\n" +
		"# TYPE go_memstats_mallocs_total counter\ngo_memstats_mallocs_total_extra 7\n" +
		"go_memstats_mallocs_total 1.234567e+06\ngo_goroutines 42 1700000000\n")
	tests := []struct {
		name    string
		want    float64
		wantErr bool
	}{
		{name: "go_memstats_mallocs_total", want: 1234567},
		{name: "go_goroutines", want: 42},
		{name: "go_threads", wantErr: true},
	}
	for _, tt := range tests {
		got, err := metricValue(text, tt.name)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("metricValue(%s) = %v, %v; want %v (error %v)", tt.name, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestCostPerTask(t *testing.T) {
	t.Parallel()
	cpu, allocs := costPerTask([]batch{{Tasks: 100, CPU: 30 * time.Millisecond, Mallocs: 20000}, {Tasks: 300, CPU: 50 * time.Millisecond, Mallocs: 60000}})
	if cpu != 200*time.Microsecond || allocs != 200 {
		t.Fatalf("costPerTask = %v, %v; want 200µs, 200", cpu, allocs)
	}
	if cpu, allocs := costPerTask(nil); cpu != 0 || allocs != 0 {
		t.Fatalf("costPerTask(nil) = %v, %v", cpu, allocs)
	}
}

func TestHandWritten(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{in: "# Benchmarks\n\n## Results\n", want: ""},
		{in: "# Benchmarks\n\n## Results\n\n## Measured by hand\n\nstep 1\n", want: "\n## Measured by hand\n\nstep 1\n"},
		{in: "## Measured by hands\n", want: ""},
	}
	for _, tt := range tests {
		if got := handWritten(tt.in); got != tt.want {
			t.Errorf("handWritten(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestFiledRow reports the agent's CPU per task over the agent as issue 16 found it against
// the 150 of 370 µs, and says why when that agent was not measured.
func TestFiledRow(t *testing.T) {
	tp := throughput{Conc: 16, Filed: []batch{{Tasks: 100, Elapsed: time.Second, CPU: 100 * time.Millisecond}}}
	r := &results{FiledFrom: "abc1234"}
	for _, tc := range []struct {
		cpu    time.Duration
		ratio  string
		result string
	}{
		{400 * time.Microsecond, "0.40 ×", "pass"},
		{420 * time.Microsecond, "0.42 ×", "**miss**"},
	} {
		rw := r.filedRow(tp, tc.cpu)
		if !strings.HasPrefix(rw.measured, tc.ratio) || !strings.Contains(rw.measured, "abc1234: 1,000 µs") || rw.result != tc.result || !strings.HasPrefix(rw.target, "≤ 0.41 ×") {
			t.Errorf("cpu %s: %+v", tc.cpu, rw)
		}
	}
	missing := (&results{FiledMissing: "git archive 3cd86f2: exit status 128"}).filedRow(throughput{Conc: 16}, time.Millisecond)
	if missing.measured != "not measured: git archive 3cd86f2: exit status 128" || missing.result != "—" {
		t.Errorf("not measured: %+v", missing)
	}
}

// TestBuildFiled builds the agent at a commit of this repository without touching its working
// tree, and names a commit it does not hold.
func TestBuildFiled(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the agent")
	}
	if err := exec.Command("git", "cat-file", "-e", filedCommit+"^{commit}").Run(); err != nil {
		t.Skipf("this clone does not hold %s (shallow?): %v", filedCommit, err)
	}
	dir := t.TempDir()
	bin, err := buildFiled(dir, filedCommit)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s version: %v\n%s", bin, err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "src-"+filedCommit)); !os.IsNotExist(err) {
		t.Errorf("the source tree is left behind: %v", err)
	}
	if _, err := buildFiled(t.TempDir(), "0000000000000000000000000000000000000000"); err == nil || !strings.Contains(err.Error(), "git archive") {
		t.Errorf("a missing commit: %v", err)
	}
}
