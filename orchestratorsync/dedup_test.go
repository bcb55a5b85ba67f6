package orchestratorsync_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/letsbe/sysadmin-agent/api/store/memory"
	"github.com/letsbe/sysadmin-agent/internal/agenttest"
	"github.com/letsbe/sysadmin-agent/internal/testpoll"
	"github.com/letsbe/sysadmin-agent/orchestratorsync"
	"github.com/letsbe/sysadmin-agent/orchestratorsync/orchestratortest"
)

// mapDelivered is the simplest store.Delivered, for these tests.
type mapDelivered struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (d *mapDelivered) RecordDelivered(id string, body []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.m == nil {
		d.m = make(map[string][]byte)
	}
	d.m[id] = bytes.Clone(body)
}

func (d *mapDelivered) LookupDelivered(id string) ([]byte, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	b, ok := d.m[id]
	return bytes.Clone(b), ok
}

// TestHeldTaskOfferedAgainIsAcknowledgedNotRunTwice: the RUNNING acknowledgement is lost
// until the orchestrator re-queues the task; offered again, the agent holds it already and
// acknowledges it again instead of taking it twice.
func TestHeldTaskOfferedAgainIsAcknowledgedNotRunTwice(t *testing.T) {
	t.Parallel()
	orch := orchestratortest.New(orchestratortest.Options{AckTimeout: 50 * time.Millisecond})
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if st, _ := orch.Task("t-1"); r.Method == http.MethodPatch && st.Offers < 2 {
			body, _ := io.ReadAll(r.Body)
			if strings.Contains(string(body), `"status":"RUNNING"`) {
				http.Error(w, "lost", http.StatusServiceUnavailable)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		orch.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	mem := memory.New()
	s := newTestSyncer(t, hs.URL, t.TempDir(), mem, func(o *orchestratorsync.Options) {
		o.Delivered = &mapDelivered{}
		o.MaxConcurrentTasks = 2
		o.Backoff = orchestratorsync.Backoff{Base: time.Hour, Cap: time.Hour, Rand: func() float64 { return 1 }}
	})
	runSyncer(t, s)
	id := orch.Enqueue("ECHO", nil, 0)
	// The reporter's own retry of RUNNING is an hour away: only the answer to the second
	// offer can acknowledge the task in time.
	st := agenttest.WaitTask(t, orch, id, "the acknowledgement", waitTimeout, func(st orchestratortest.TaskState) bool {
		return st.Acknowledged && st.Status == orchestratortest.StatusRunning
	})
	if st.Offers < 2 {
		t.Errorf("offers = %d, want the task offered again", st.Offers)
	}
	list, err := mem.List(t.Context())
	if err != nil || len(list.Items) != 1 {
		t.Fatalf("store holds %d tasks (%v), want 1", len(list.Items), err)
	}
	finish(t, mem, id, true)
	st = agenttest.WaitTask(t, orch, id, "the final report", waitTimeout, func(st orchestratortest.TaskState) bool { return st.IsFinal() })
	if st.FinalReports != 1 {
		t.Errorf("final reports = %d, want 1", st.FinalReports)
	}
}

// TestDeliveredTaskOfferedAgainGetsTheSameReport: a task finished, reported and dropped from
// the store is offered once more (a forgetful orchestrator); the agent does not run it again
// and repeats the accepted final report byte for byte.
func TestDeliveredTaskOfferedAgainGetsTheSameReport(t *testing.T) {
	t.Parallel()
	orch := orchestratortest.New(orchestratortest.Options{})
	var mu sync.Mutex
	var offered []byte // the task body as first handed out
	var replay atomic.Bool
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == "/tasks/next" {
			mu.Lock()
			body := offered
			mu.Unlock()
			if replay.CompareAndSwap(true, false) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write(body)
				return
			}
			rec := httptest.NewRecorder()
			orch.ServeHTTP(rec, r)
			if rec.Code == http.StatusOK {
				mu.Lock()
				offered = rec.Body.Bytes()
				mu.Unlock()
			}
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			_, _ = w.Write(rec.Body.Bytes())
			return
		}
		orch.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	mem := memory.New()
	delivered := &mapDelivered{}
	s := newTestSyncer(t, hs.URL, t.TempDir(), mem, func(o *orchestratorsync.Options) { o.Delivered = delivered })
	runSyncer(t, s)
	id := orch.Enqueue("ECHO", []byte(`{"html":"<b>&</b>"}`), 0)
	testpoll.Until(t, waitTimeout, "the task", func() bool { _, err := mem.Get(t.Context(), id); return err == nil })
	finish(t, mem, id, true)
	agenttest.WaitTask(t, orch, id, "the final report", waitTimeout, func(st orchestratortest.TaskState) bool { return st.IsFinal() })
	testpoll.Until(t, waitTimeout, "the delivery recorded", func() bool { _, ok := delivered.LookupDelivered(id); return ok })
	if err := mem.Delete(t.Context(), id); err != nil {
		t.Fatal(err)
	}

	replay.Store(true)
	st := agenttest.WaitTask(t, orch, id, "the repeated final report", waitTimeout, func(st orchestratortest.TaskState) bool { return st.Duplicates >= 1 })
	if st.FinalReports != 1 || st.DifferingDuplicates != 0 || st.Status != orchestratortest.StatusCompleted {
		t.Errorf("after the repeat: %+v; want one final and a byte-identical repeat", st)
	}
	if _, err := mem.Get(t.Context(), id); !apierrors.IsNotFound(err) {
		t.Errorf("the task offered again was taken again: %v", err)
	}
}
