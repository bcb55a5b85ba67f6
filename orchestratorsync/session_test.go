package orchestratorsync_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/letsbe/sysadmin-agent/internal/testpoll"
	"github.com/letsbe/sysadmin-agent/orchestratorsync/wire"

	"github.com/go-logr/logr/testr"

	"github.com/letsbe/sysadmin-agent/api/store/memory"
	"github.com/letsbe/sysadmin-agent/orchestratorsync"
	"github.com/letsbe/sysadmin-agent/orchestratorsync/orchestratortest"
)

// answeredWithin runs f and fails the test if it has not returned before a generous deadline:
// a reader that waits for the orchestrator would hang far longer than that.
func answeredWithin(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatalf("%s did not answer while the registration is failing", what)
	}
}

// newTestSyncer builds (but does not run) a Syncer against url.
func newTestSyncer(t *testing.T, url, stateDir string, mem *memory.Store, extra ...func(*orchestratorsync.Options)) *orchestratorsync.Syncer {
	t.Helper()
	client, err := wire.NewClient(wire.Config{BaseURL: url, Token: orchestratortest.DefaultEnrollmentToken})
	if err != nil {
		t.Fatal(err)
	}
	opts := orchestratorsync.Options{
		Client: client, Store: mem, Notifier: mem, StateDir: stateDir,
		EnrollmentToken: orchestratortest.DefaultEnrollmentToken, Hostname: "test", Version: "test",
		Capabilities: []string{"ECHO"}, HeartbeatInterval: 50 * time.Millisecond, PollInterval: 20 * time.Millisecond,
		LongPollWait: -1, Backoff: orchestratorsync.Backoff{Base: 5 * time.Millisecond, Cap: 50 * time.Millisecond},
		Logger: testr.New(t),
	}
	for _, f := range extra {
		f(&opts)
	}
	s, err := orchestratorsync.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func runSyncer(t *testing.T, s *orchestratorsync.Syncer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func TestRegistrationStateNeverWaitsForTheOrchestrator(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
		reason  string
	}{
		{"token refused", func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, `{"error":"invalid enrollment token"}`, http.StatusUnauthorized)
		}, "status 401"},
		{"orchestrator failing", func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "down", http.StatusBadGateway)
		}, "status 502"},
		{"orchestrator hanging", func(_ http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body) // the server sees the client go away only after the body
			<-r.Context().Done()
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var registers atomic.Int64
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				registers.Add(1)
				tc.handler(w, r)
			}))
			t.Cleanup(hs.Close)
			s := newTestSyncer(t, hs.URL, t.TempDir(), memory.New())
			runSyncer(t, s)
			testpoll.Until(t, waitTimeout, "a registration attempt", func() bool { return registers.Load() > 0 })
			if tc.reason != "" {
				testpoll.Until(t, waitTimeout, "the registration error", func() bool {
					_, msg := s.Registration()
					return strings.Contains(msg, tc.reason)
				})
			}
			for range 20 {
				answeredWithin(t, "Registration, AgentID, LastHeartbeat", func() {
					ok, msg := s.Registration()
					if ok {
						t.Errorf("registered against a refusing orchestrator")
					}
					if strings.Contains(msg, orchestratortest.DefaultEnrollmentToken) {
						t.Errorf("registration error holds the token: %q", msg)
					}
					_ = s.AgentID()
					_ = s.LastHeartbeat()
					_ = s.OutboxDepth()
				})
			}
		})
	}
}

// TestRegistrationIsSingleFlight: a revoked credential seen by every loop at once costs one
// registration, not one per caller.
func TestRegistrationIsSingleFlight(t *testing.T) {
	t.Parallel()
	orch := orchestratortest.New(orchestratortest.Options{IssueAgentTokens: true})
	hs := httptest.NewServer(orch)
	t.Cleanup(hs.Close)
	mem := memory.New()
	s := newTestSyncer(t, hs.URL, t.TempDir(), mem, func(o *orchestratorsync.Options) {
		o.LongPollWait = time.Second
		o.MaxConcurrentTasks = 4
	})
	runSyncer(t, s)
	testpoll.Until(t, waitTimeout, "registration", func() bool { ok, _ := s.Registration(); return ok })
	for round := 1; round <= 3; round++ {
		before := orch.Stats().Register
		orch.RevokeTokens()
		// Every loop meets the revoked token (heartbeats within 50ms, polls within a second,
		// and the task's report); once the agent works again, one registration was made.
		testpoll.Until(t, waitTimeout, "the re-registration", func() bool { return orch.Stats().Register > before })
		id := orch.Enqueue("ECHO", nil, 0)
		testpoll.Until(t, waitTimeout, "the task after the revocation", func() bool { _, err := mem.Get(t.Context(), id); return err == nil })
		finish(t, mem, id, true)
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		_, err := orch.WaitTask(ctx, id, func(st orchestratortest.TaskState) bool { return st.IsFinal() })
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		hb := orch.Stats().Heartbeat
		testpoll.Until(t, waitTimeout, "heartbeats", func() bool { return orch.Stats().Heartbeat > hb+2 })
		if got := orch.Stats().Register - before; got != 1 {
			t.Errorf("round %d: %d registrations after one revocation, want 1", round, got)
		}
	}
}

// TestReportRefusedForeverDoesNotRunHot: heartbeats and polls work but every report is
// answered 401. Each re-registration lets a report try at most twice (before and after it), so
// the report rate is bound to the (backed-off) registration rate.
func TestReportRefusedForeverDoesNotRunHot(t *testing.T) {
	t.Parallel()
	orch := orchestratortest.New(orchestratortest.Options{})
	var reports atomic.Int64
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPatch {
			reports.Add(1)
			http.Error(w, `{"error":"invalid token"}`, http.StatusUnauthorized)
			return
		}
		orch.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	mem := memory.New()
	s := newTestSyncer(t, hs.URL, t.TempDir(), mem)
	runSyncer(t, s)
	id := orch.Enqueue("ECHO", nil, 0)
	testpoll.Until(t, waitTimeout, "the task", func() bool { _, err := mem.Get(t.Context(), id); return err == nil })
	finish(t, mem, id, true)
	testpoll.Until(t, waitTimeout, "six re-registrations", func() bool { return orch.Stats().Register >= 7 })
	regs, reps := int64(orch.Stats().Register), reports.Load()
	if reps > 2*regs+2 {
		t.Errorf("%d reports for %d registrations: the 401 loop is not bound to the re-registration back-off", reps, regs)
	}
}

func TestIdentityThatCannotBeSavedIsNotUsed(t *testing.T) {
	t.Parallel()
	orch := orchestratortest.New(orchestratortest.Options{IssueAgentTokens: true})
	hs := httptest.NewServer(orch)
	t.Cleanup(hs.Close)
	dir := t.TempDir()
	// identity.json is a directory: nothing can be renamed over it.
	if err := os.MkdirAll(filepath.Join(dir, "identity.json", "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	s := newTestSyncer(t, hs.URL, dir, memory.New())
	runSyncer(t, s)
	testpoll.Until(t, waitTimeout, "a failed registration", func() bool {
		_, msg := s.Registration()
		return strings.Contains(msg, "cannot keep that identity")
	})
	testpoll.Until(t, waitTimeout, "a retried registration", func() bool { return orch.Stats().Register >= 3 })
	st := orch.Stats()
	if st.Heartbeat != 0 || st.NextTask != 0 || st.Report != 0 {
		t.Errorf("the agent used an identity it could not save: %+v", st)
	}
	if ok, _ := s.Registration(); ok {
		t.Error("registered without a saved identity")
	}
}

func TestDamagedIdentityIsMovedAsideAndTheHeldTasksIDIsPresented(t *testing.T) {
	t.Parallel()
	orch := orchestratortest.New(orchestratortest.Options{IssueAgentTokens: true})
	hs := httptest.NewServer(orch)
	t.Cleanup(hs.Close)
	dir := t.TempDir()

	// A first agent takes a task and stops before reporting it.
	mem := memory.New()
	first := newTestSyncer(t, hs.URL, dir, mem)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = first.Run(ctx) })
	id := orch.Enqueue("ECHO", nil, 0)
	testpoll.Until(t, waitTimeout, "the task", func() bool { _, err := mem.Get(t.Context(), id); return err == nil })
	cancel()
	wg.Wait()
	agentID := first.AgentID()
	task, err := mem.Get(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if task.Spec.AgentID != agentID {
		t.Fatalf("spec.agentID = %q, want the id the task was received under, %q", task.Spec.AgentID, agentID)
	}

	// The identity file is damaged meanwhile; the restarted agent still holds the task.
	if err := os.WriteFile(filepath.Join(dir, "identity.json"), []byte(`{"agent_id":`), 0o600); err != nil {
		t.Fatal(err)
	}
	second := newTestSyncer(t, hs.URL, dir, mem)
	runSyncer(t, second)
	testpoll.Until(t, waitTimeout, "registration", func() bool { ok, _ := second.Registration(); return ok })
	if got := second.AgentID(); got != agentID {
		t.Fatalf("re-registered as %q, want the held task's agent id %q", got, agentID)
	}
	if got := len(orch.Agents()); got != 1 {
		t.Errorf("%d agents at the orchestrator, want 1", got)
	}
	aside, _ := filepath.Glob(filepath.Join(dir, "identity.json.damaged-*"))
	if len(aside) != 1 {
		t.Errorf("damaged identity not moved aside: %v", aside)
	}
	finish(t, mem, id, true)
	ctxWait, cancelWait := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancelWait()
	st, err := orch.WaitTask(ctxWait, id, func(st orchestratortest.TaskState) bool { return st.IsFinal() })
	if err != nil || st.Status != orchestratortest.StatusCompleted || st.FinalReports != 1 {
		t.Fatalf("final report under the old id: %+v %v", st, err)
	}
	saved, err := orchestratorsync.LoadIdentity(dir)
	if err != nil || saved.AgentID != agentID {
		t.Errorf("saved identity %+v %v, want agent %s", saved, err, agentID)
	}
}
