package orchestratorsync_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/letsbe/sysadmin-agent/internal/testpoll"
	"github.com/letsbe/sysadmin-agent/orchestratorsync/wire"

	"github.com/go-logr/logr/funcr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/letsbe/sysadmin-agent/api/store/memory"
	"github.com/letsbe/sysadmin-agent/orchestratorsync"
)

// hostileOrch is an orchestrator with its own types that answers as badly as it may: a per-agent
// token with a trailing newline first, intervals of a nanosecond, a 100,000-id cancel list on
// every heartbeat, and raw task bodies (a 40 KiB id, a lone surrogate).
type hostileOrch struct {
	mu         sync.Mutex
	registers  int
	heartbeats int
	polls      int
	tasks      []string            // raw bodies still to hand out
	reports    map[string][]string // task id (as the path says) -> statuses
	auths      map[string]int      // Authorization headers seen after registration
}

func (h *hostileOrch) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case r.URL.Path == "/agents/register":
		h.registers++
		token := "good-token"
		if h.registers == 1 {
			token = "good-token\n"
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"agent_id": "a-1", "token": token,
			"heartbeat_interval_seconds": 1e-9, "poll_interval_seconds": 1e-9})
	case strings.HasSuffix(r.URL.Path, "/heartbeat"):
		h.heartbeats++
		h.auths[r.Header.Get("Authorization")]++
		_, _ = w.Write(cancelList)
	case r.URL.Path == "/tasks/next":
		h.polls++
		if len(h.tasks) == 0 {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		body := h.tasks[0]
		h.tasks = h.tasks[1:]
		_, _ = io.WriteString(w, body)
	case strings.HasPrefix(r.URL.Path, "/tasks/") && r.Method == http.MethodPatch:
		id, _ := url.PathUnescape(strings.TrimPrefix(r.URL.EscapedPath(), "/tasks/"))
		var rep struct {
			Status string `json:"status"`
			Error  string `json:"error"`
		}
		_ = json.NewDecoder(r.Body).Decode(&rep)
		h.reports[id] = append(h.reports[id], rep.Status+":"+rep.Error)
		w.WriteHeader(http.StatusNoContent)
	default:
		http.NotFound(w, r)
	}
}

// cancelList is the heartbeat answer: 100,000 ids, one of them a task the agent holds.
var cancelList = func() []byte {
	ids := make([]string, 0, 100_000)
	for i := range 99_999 {
		ids = append(ids, fmt.Sprintf("x%d", i))
	}
	ids = append(ids, "t-held")
	b, _ := json.Marshal(map[string]any{"cancel_task_ids": ids})
	return b
}()

func (h *hostileOrch) get(f func(h *hostileOrch) bool) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return f(h)
}

func TestHostileIntervalsCancelListsTokensAndIDs(t *testing.T) {
	t.Parallel()
	longID := strings.Repeat("L", 40<<10)
	h := &hostileOrch{reports: map[string][]string{}, auths: map[string]int{}, tasks: []string{
		`{"id":"t-held","type":"ECHO","payload":{}}`,
		`{"id":"` + longID + `","type":"ECHO","payload":{}}`,
		`{"id":"t-\ud800","type":"ECHO","payload":{}}`,
		`{"id":"t-after","type":"ECHO","payload":{}}`,
	}}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)

	var lines atomic.Int64
	var mu sync.Mutex
	seen := map[string]int{}
	log := funcr.New(func(prefix, args string) {
		lines.Add(1)
		mu.Lock()
		defer mu.Unlock()
		for _, m := range []string{"long cancel list", "heartbeat interval below", "poll interval below", "no usable id", "token is not a valid header value"} {
			if strings.Contains(args, m) {
				seen[m]++
			}
		}
		if strings.Contains(args, "good-token") {
			seen["token in a log line"]++
		}
	}, funcr.Options{})

	client, err := wire.NewClient(wire.Config{BaseURL: srv.URL, Token: "enroll"})
	if err != nil {
		t.Fatal(err)
	}
	mem := memory.New()
	var cancels sync.Map
	s, err := orchestratorsync.New(orchestratorsync.Options{
		Client: client, Store: mem, Notifier: mem, StateDir: t.TempDir(), EnrollmentToken: "enroll",
		Capabilities: []string{"ECHO"}, MaxConcurrentTasks: 4, LongPollWait: -1,
		CancelTask: func(_ context.Context, id string) {
			n, _ := cancels.LoadOrStore(id, new(atomic.Int64))
			n.(*atomic.Int64).Add(1)
		},
		Backoff: orchestratorsync.Backoff{Base: 5 * time.Millisecond, Cap: 50 * time.Millisecond},
		Logger:  log,
	})
	if err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	runSyncer(t, s)

	testpoll.Until(t, waitTimeout, "the long id reported and two heartbeats", func() bool {
		return h.get(func(h *hostileOrch) bool { return len(h.reports[longID]) > 0 && h.heartbeats >= 2 })
	})
	testpoll.Until(t, waitTimeout, "t-after taken", func() bool { _, err := mem.Get(context.Background(), "t-after"); return err == nil })

	if d := s.HeartbeatInterval(); d != time.Second {
		t.Errorf("heartbeat interval %s, want the 1s minimum", d)
	}
	h.get(func(h *hostileOrch) bool {
		// The first registration's token was refused; the second was used from then on.
		if h.registers != 2 || h.auths["Bearer good-token"] != h.heartbeats {
			t.Errorf("%d registrations, heartbeats authorised %v", h.registers, h.auths)
		}
		// Empty polls are 100 ms apart at least (a nanosecond asked): an upper bound from the
		// time the test took, whatever the machine's speed, not thousands a second.
		if limit := int(time.Since(started)/orchestratorsync.MinPollInterval) + 10; h.polls > limit {
			t.Errorf("%d polls, want at most %d", h.polls, limit)
		}
		if got := h.reports[longID]; len(got) != 1 || !strings.HasPrefix(got[0], "FAILED:invalid task: task id too long: 40960 bytes") {
			t.Errorf("reports of the long id: %.200q", got)
		}
		if len(h.reports) != 3 { // the long id, and the RUNNING acknowledgements of t-held and t-after
			t.Errorf("reports for %d ids", len(h.reports))
		}
		return true
	})
	if _, err := mem.Get(context.Background(), longID); !apierrors.IsNotFound(err) {
		t.Errorf("the long id reached the store: %v", err)
	}
	if got := s.TasksDropped(); got != 1 {
		t.Errorf("%d tasks dropped, want 1 (the lone surrogate)", got)
	}
	cancels.Range(func(k, v any) bool {
		if k != "t-held" && k != "t-after" {
			t.Errorf("cancelled %q, which the agent does not hold", k)
		}
		return true
	})
	if _, ok := cancels.Load("t-held"); !ok {
		t.Errorf("t-held was not cancelled")
	}
	mu.Lock()
	defer mu.Unlock()
	want := map[string]int{"long cancel list": 1, "heartbeat interval below": 1, "poll interval below": 1, "no usable id": 1, "token is not a valid header value": 1}
	for k, n := range want {
		if seen[k] != n {
			t.Errorf("%q logged %d times, want %d", k, seen[k], n)
		}
	}
	if seen["token in a log line"] > 0 {
		t.Errorf("the token was logged")
	}
	if n := lines.Load(); n > 60 {
		t.Errorf("%d log lines", n)
	}
	h.get(func(h *hostileOrch) bool {
		t.Logf("%d log lines, %d heartbeats, %d polls", lines.Load(), h.heartbeats, h.polls)
		return true
	})
}
