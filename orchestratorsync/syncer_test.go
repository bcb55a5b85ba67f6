package orchestratorsync_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/letsbe/sysadmin-agent/orchestratorsync/wire"

	"github.com/go-logr/logr/testr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/letsbe/sysadmin-agent/api/store"
	"github.com/letsbe/sysadmin-agent/api/store/memory"
	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
	"github.com/letsbe/sysadmin-agent/internal/testpoll"
	"github.com/letsbe/sysadmin-agent/orchestratorsync"
	"github.com/letsbe/sysadmin-agent/orchestratorsync/orchestratortest"
)

// syncFixture runs a Syncer against the reference orchestrator, optionally behind a handler
// wrapper, with no controllers: the test moves Tasks through their phases by hand.
type syncFixture struct {
	orch   *orchestratortest.Server
	mem    *memory.Store
	syncer *orchestratorsync.Syncer
	cancel context.CancelFunc
	done   chan struct{}
}

// serve serves h (the reference orchestrator, maybe wrapped) on loopback until the test ends,
// and returns a client of it with the enrollment token.
func serve(t *testing.T, h http.Handler) *wire.Client {
	t.Helper()
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	client, err := wire.NewClient(wire.Config{BaseURL: hs.URL, Token: orchestratortest.DefaultEnrollmentToken})
	if err != nil {
		t.Fatal(err)
	}
	return client
}

func startSyncer(t *testing.T, maxTasks int, wrap func(http.Handler) http.Handler, extra ...func(*orchestratorsync.Options)) *syncFixture {
	t.Helper()
	orch := orchestratortest.New(orchestratortest.Options{IssueAgentTokens: true})
	var h http.Handler = orch
	if wrap != nil {
		h = wrap(orch)
	}
	client := serve(t, h)
	mem := memory.New()
	opts := orchestratorsync.Options{
		Client: client, Store: mem, Notifier: mem, StateDir: t.TempDir(),
		EnrollmentToken: orchestratortest.DefaultEnrollmentToken, Hostname: "test", Version: "test",
		Capabilities: []string{"ECHO"}, MaxConcurrentTasks: maxTasks,
		HeartbeatInterval: 50 * time.Millisecond, PollInterval: 20 * time.Millisecond, LongPollWait: time.Second,
		Backoff: orchestratorsync.Backoff{Base: 5 * time.Millisecond, Cap: 50 * time.Millisecond},
		Logger:  testr.New(t),
	}
	for _, f := range extra {
		f(&opts)
	}
	s, err := orchestratorsync.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &syncFixture{orch: orch, mem: mem, syncer: s, cancel: cancel, done: make(chan struct{})}
	go func() { defer close(f.done); _ = s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-f.done })
	return f
}

// waitTimeout bounds every wait of these tests for the syncer or the orchestrator.
const waitTimeout = 20 * time.Second

// finish moves a local Task to a final phase, as a reconciler would.
func finish(t *testing.T, s store.Store, name string, ok bool) {
	t.Helper()
	_, err := store.MutateStatus(context.Background(), s, name, func(task *agentv1.Task) bool {
		now := metav1.Now()
		task.Status.MarkRunning(now, 1)
		if ok {
			task.Status.MarkSucceeded(now, 1)
		} else {
			task.Status.MarkFailed(now, 1, agentv1.ReasonFailed, "boom")
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestPollerNeverTakesMoreThanItsSlots(t *testing.T) {
	t.Parallel()
	f := startSyncer(t, 2, nil)
	ids := []string{}
	for range 5 {
		ids = append(ids, f.orch.Enqueue("ECHO", []byte(`{}`), 0))
	}
	testpoll.Until(t, waitTimeout, "two tasks taken", func() bool { return f.mem.Len() == 2 })
	// Heartbeats go on; no third task arrives while both slots are held.
	testpoll.Until(t, waitTimeout, "a few heartbeats", func() bool { a := f.orch.Agents(); return len(a) == 1 && a[0].Heartbeats >= 3 })
	if n := f.mem.Len(); n != 2 {
		t.Fatalf("holding %d tasks with 2 slots", n)
	}
	if got := f.orch.Agents()[0].LastHeartbeatBody.QueuedTasks; got != 2 {
		t.Errorf("queued_tasks = %d, want 2", got)
	}
	// Finishing one frees one slot: exactly one more is taken.
	finish(t, f.mem, ids[0], true)
	testpoll.Until(t, waitTimeout, "a third task", func() bool { return f.mem.Len() == 3 })
	testpoll.Until(t, waitTimeout, "the final report", func() bool { s, _ := f.orch.Task(ids[0]); return s.Status == "COMPLETED" })
	if n := f.mem.Len(); n != 3 {
		t.Fatalf("holding %d tasks, want 3", n)
	}
}

// TestReportsInFlightStayWithinReportWorkers: final reports that are ready together go out on
// ReportWorkers workers at once, no more and no fewer, and every one is delivered; the
// syncer returns at shutdown without waiting for its idle workers.
func TestReportsInFlightStayWithinReportWorkers(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var inFlight, peak int
	slowReports := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !strings.Contains(r.URL.Path, "/tasks/") || strings.HasSuffix(r.URL.Path, "/tasks/next") {
				next.ServeHTTP(w, r)
				return
			}
			mu.Lock()
			inFlight++
			peak = max(peak, inFlight)
			mu.Unlock()
			time.Sleep(20 * time.Millisecond)
			next.ServeHTTP(w, r)
			mu.Lock()
			inFlight--
			mu.Unlock()
		})
	}
	const tasks, workers = 8, 2
	f := startSyncer(t, tasks, slowReports, func(o *orchestratorsync.Options) { o.ReportWorkers = workers })
	var ids []string
	for range tasks {
		ids = append(ids, f.orch.Enqueue("ECHO", []byte(`{}`), 0))
	}
	testpoll.Until(t, waitTimeout, "every task taken", func() bool { return f.mem.Len() == tasks })
	for _, id := range ids {
		finish(t, f.mem, id, true)
	}
	testpoll.Until(t, waitTimeout, "every final report", func() bool {
		for _, id := range ids {
			if s, _ := f.orch.Task(id); s.Status != "COMPLETED" {
				return false
			}
		}
		return true
	})
	mu.Lock()
	defer mu.Unlock()
	if peak != workers {
		t.Errorf("%d reports in flight at most, want %d (ReportWorkers)", peak, workers)
	}
	stopped := make(chan struct{})
	go func() { f.cancel(); <-f.done; close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(waitTimeout):
		t.Fatal("the syncer did not return after its context ended")
	}
}

// TestUnsupportedTypeIsStoredForItsReconciler: a task of a type no executor handles is stored
// like any other (the controllers' unsupported-type reconciler fails it); once failed, it is
// reported and its slot comes back.
func TestUnsupportedTypeIsStoredForItsReconciler(t *testing.T) {
	t.Parallel()
	f := startSyncer(t, 1, nil)
	id := f.orch.Enqueue("REBOOT", []byte(`{}`), 0)
	testpoll.Until(t, waitTimeout, "the task stored", func() bool { _, err := f.mem.Get(context.Background(), id); return err == nil })
	_, err := store.MutateStatus(context.Background(), f.mem, id, func(task *agentv1.Task) bool {
		now := metav1.Now()
		task.Status.MarkPending(now, 1)
		task.Status.MarkFailed(now, 1, agentv1.ReasonUnsupportedType, `unsupported task type "REBOOT"`)
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	testpoll.Until(t, waitTimeout, "FAILED report", func() bool { s, _ := f.orch.Task(id); return s.Status == "FAILED" })
	s, _ := f.orch.Task(id)
	if s.Error != `unsupported task type "REBOOT"` {
		t.Fatalf("error %q", s.Error)
	}
	// The slot came back: the next task is taken.
	id2 := f.orch.Enqueue("ECHO", []byte(`{}`), 0)
	testpoll.Until(t, waitTimeout, "next task taken", func() bool { _, err := f.mem.Get(context.Background(), id2); return err == nil })
}

func TestReporterStopsOn409And404(t *testing.T) {
	t.Parallel()
	var patches atomic.Int32
	var refuse atomic.Int32 // HTTP status to answer PATCHes with
	f := startSyncer(t, 2, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPatch {
				patches.Add(1)
				if code := refuse.Load(); code != 0 {
					http.Error(w, "refused", int(code))
					return
				}
			}
			next.ServeHTTP(w, r)
		})
	})
	for _, code := range []int32{409, 404} {
		refuse.Store(code)
		id := f.orch.Enqueue("ECHO", []byte(`{}`), 0)
		testpoll.Until(t, waitTimeout, "intake", func() bool { _, err := f.mem.Get(context.Background(), id); return err == nil })
		finish(t, f.mem, id, true)
		testpoll.Until(t, waitTimeout, "the refusal recorded", func() bool {
			task, err := f.mem.Get(context.Background(), id)
			return err == nil && task.Status.Report.FinalReported && task.Status.Report.Rejected
		})
		before := patches.Load()
		time.Sleep(200 * time.Millisecond) // 40 backoff ceilings: a retry would show
		if after := patches.Load(); after != before {
			t.Errorf("%d: %d more PATCHes after a final refusal", code, after-before)
		}
		task, _ := f.mem.Get(context.Background(), id)
		if !strings.Contains(task.Status.Report.LastError, "refused") {
			t.Errorf("%d: LastError %q", code, task.Status.Report.LastError)
		}
	}
}

func TestRunningReportIsSupersededAndFinalRetried(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var statuses []string
	var failFinal atomic.Int32
	failFinal.Store(3)
	f := startSyncer(t, 1, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPatch {
				body, _ := io.ReadAll(r.Body)
				r.Body = io.NopCloser(bytes.NewReader(body))
				s := string(body)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case strings.Contains(s, `"RUNNING"`):
					statuses = append(statuses, "RUNNING:503")
					w.Header().Set("Retry-After", "0")
					http.Error(w, "down", http.StatusServiceUnavailable)
					return
				case failFinal.Add(-1) >= 0:
					statuses = append(statuses, "FINAL:503")
					http.Error(w, "down", http.StatusServiceUnavailable)
					return
				}
				statuses = append(statuses, "FINAL:ok")
			}
			next.ServeHTTP(w, r)
		})
	})
	id := f.orch.Enqueue("ECHO", []byte(`{}`), 0)
	testpoll.Until(t, waitTimeout, "intake", func() bool { _, err := f.mem.Get(context.Background(), id); return err == nil })
	_, err := store.MutateStatus(context.Background(), f.mem, id, func(task *agentv1.Task) bool {
		task.Status.MarkRunning(metav1.Now(), 1)
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	// RUNNING (the acknowledgement) is retried with backoff until the final report supersedes it.
	testpoll.Until(t, waitTimeout, "RUNNING retried", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(statuses) >= 3
	})
	finish(t, f.mem, id, false)
	testpoll.Until(t, waitTimeout, "final delivered", func() bool {
		task, _ := f.mem.Get(context.Background(), id)
		return task.Status.Report.FinalReported
	})
	mu.Lock()
	defer mu.Unlock()
	got := strings.Join(statuses, ",")
	first := strings.Index(got, "FINAL")
	if first < 0 || strings.Count(got[:first], "RUNNING:503") < 3 || strings.Contains(got[first:], "RUNNING") {
		t.Fatalf("PATCH sequence %s, want RUNNING:503 at least 3 times, then only finals", got)
	}
	if want := "FINAL:503,FINAL:503,FINAL:503,FINAL:ok"; got[first:] != want {
		t.Fatalf("final PATCHes %s, want %s", got[first:], want)
	}
}

// panicsOnView panics the first time a final Task is read through it (the reporter reads
// one to build its final report), as a bug in building the report would.
type panicsOnView struct {
	*memory.Store
	panicked atomic.Bool
}

func (s *panicsOnView) View(ctx context.Context, name string) (*agentv1.Task, error) {
	t, err := s.Store.View(ctx, name)
	if err == nil && t.Status.Phase.IsFinal() && s.panicked.CompareAndSwap(false, true) {
		panic("report builder fell over")
	}
	return t, err
}

// TestReportDeliveryPanicIsRetried: a panic while delivering a report neither takes the agent
// down nor loses the report: it is tried again, and delivered.
func TestReportDeliveryPanicIsRetried(t *testing.T) { // not parallel: it sets panicRetry
	orchestratorsync.SetPanicRetry(t, 50*time.Millisecond)
	var st *panicsOnView
	f := startSyncer(t, 1, nil, func(o *orchestratorsync.Options) {
		st = &panicsOnView{Store: o.Store.(*memory.Store)}
		o.Store = st
	})
	id := f.orch.Enqueue("ECHO", []byte(`{}`), 0)
	testpoll.Until(t, waitTimeout, "intake", func() bool { _, err := f.mem.Get(context.Background(), id); return err == nil })
	finish(t, f.mem, id, true)
	testpoll.Until(t, waitTimeout, "the final report", func() bool { s, _ := f.orch.Task(id); return s.Status == "COMPLETED" })
	if !st.panicked.Load() {
		t.Error("the report was delivered without the panic: the test proves nothing")
	}
}

func TestLoopsSurviveAPanic(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	f := startSyncer(t, 1, nil, func(o *orchestratorsync.Options) {
		o.SystemInfo = func() wire.SystemInfo {
			if calls.Add(1) == 1 {
				panic("sensor fell off")
			}
			return wire.SystemInfo{Load1: 0.5}
		}
	})
	// The heartbeat loop panics on its first beat, is restarted, and beats on; work goes on.
	testpoll.Until(t, waitTimeout, "heartbeats after the panic", func() bool { a := f.orch.Agents(); return len(a) == 1 && a[0].Heartbeats >= 2 })
	id := f.orch.Enqueue("ECHO", []byte(`{}`), 0)
	testpoll.Until(t, waitTimeout, "intake", func() bool { _, err := f.mem.Get(context.Background(), id); return err == nil })
	finish(t, f.mem, id, true)
	testpoll.Until(t, waitTimeout, "final report", func() bool { s, _ := f.orch.Task(id); return s.Status == "COMPLETED" })
}
