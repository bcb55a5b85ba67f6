package orchestratortest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/letsbe/sysadmin-agent/internal/testpoll"
)

// TestTaskNeverHandedToAGoneLongPoll forces the race a real deployment hits now and then: a
// parked long poll is woken for a new task at the moment its client goes away. Whichever the
// handler sees first, the task must stay PENDING for the next poll.
func TestTaskNeverHandedToAGoneLongPoll(t *testing.T) {
	t.Parallel()
	s := New(Options{})
	s.agents["a-1"] = &agent{st: AgentState{ID: "a-1"}, known: true}
	for i := range 100 {
		ctx, cancel := context.WithCancel(t.Context())
		req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/tasks/next?agent_id=a-1&wait=60", nil)
		req.Header.Set("Authorization", "Bearer "+DefaultEnrollmentToken)
		rec := httptest.NewRecorder()
		done := make(chan struct{})
		go func() { defer close(done); s.ServeHTTP(rec, req) }()
		testpoll.Until(t, 20*time.Second, "the long poll to park", func() bool { return s.n.waiting.Load() == 1 })
		// The client goes away as the task that wakes its poll comes, in either order.
		s.mu.Lock()
		var id string
		if i%2 == 0 {
			cancel()
			id = s.enqueueLocked("ECHO", []byte(`{}`), 0)
		} else {
			id = s.enqueueLocked("ECHO", []byte(`{}`), 0)
			cancel()
		}
		s.mu.Unlock()
		<-done
		s.mu.Lock()
		st := s.tasks[id].st
		st2 := st.Status
		s.tasks[id].st.Status = StatusFailed // out of the way of the next round
		s.mu.Unlock()
		if st2 != StatusPending || rec.Code == http.StatusOK && rec.Body.Len() > 0 {
			t.Fatalf("round %d: task handed to a gone client: status %s, answer %d %q", i, st2, rec.Code, rec.Body.String())
		}
	}
	if got := s.Stats().GoneClients; got == 0 {
		t.Errorf("GoneClients = 0; the gone-client check never ran in 100 rounds")
	}
}
