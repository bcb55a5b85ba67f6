package orchestratortest_test

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/letsbe/sysadmin-agent/internal/testpoll"
	"github.com/letsbe/sysadmin-agent/orchestratorsync/orchestratortest"
)

func TestInFlight(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	c := orchestratortest.NewInFlight(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/tasks/next" {
			<-release
		}
		w.WriteHeader(http.StatusNoContent)
		_ = http.NewResponseController(w).Flush()
	}), "/tasks/next")
	hs := httptest.NewServer(c)
	defer hs.Close()
	get := func(path string) error {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, hs.URL+path, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		return resp.Body.Close()
	}
	if err := get("/agents/x/heartbeat"); err != nil {
		t.Fatal(err)
	}
	if now, peak := c.Counts(); now != 0 || peak != 0 {
		t.Fatalf("after another path: %d in flight, peak %d; want 0, 0", now, peak)
	}
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			if err := get("/tasks/next"); err != nil {
				t.Error(err)
			}
		})
	}
	testpoll.Until(t, 10*time.Second, "3 polls in flight", func() bool { now, peak := c.Counts(); return now == 3 && peak == 3 })
	close(release)
	wg.Wait()
	if now, peak := c.Counts(); now != 0 || peak != 3 {
		t.Fatalf("after every answer: %d in flight, peak %d; want 0, 3", now, peak)
	}
	c.ResetPeak()
	if _, peak := c.Counts(); peak != 0 {
		t.Fatalf("peak after ResetPeak = %d, want 0", peak)
	}
}
