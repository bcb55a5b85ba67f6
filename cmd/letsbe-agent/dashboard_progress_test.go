package main_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/letsbe/sysadmin-agent/internal/agenttest"
	"github.com/letsbe/sysadmin-agent/internal/testpoll"
)

// startDev runs `letsbe-agent dev` on a free port with the ticker helper allowed, and returns
// the dashboard's URL.
func startDev(t *testing.T) string {
	t.Helper()
	p := runAgent(t, agenttest.Options{
		Binary: agentBinary, Args: []string{"dev", "--listen", "127.0.0.1:0"},
		StateDir: filepath.Join(t.TempDir(), "state"), Home: t.TempDir(),
		Env: []string{
			"PATH=" + helperDir + string(os.PathListSeparator) + os.Getenv("PATH"),
			"AGENT_ALLOWED_COMMANDS=echo,ticker",
			"AGENT_HEARTBEAT_INTERVAL=200ms", // cancellation travels with the heartbeat
			"AGENT_PROGRESS_INTERVAL=200ms",
		},
	})
	var url string
	eventually(t, "the development orchestrator", func() bool {
		for _, l := range p.logLines() {
			if l["msg"] == "Development orchestrator listening" {
				url, _ = l["url"].(string)
				return true
			}
		}
		return false
	})
	return url
}

// dashboardPage is the dashboard open in a headless Chromium for one test.
type dashboardPage struct {
	t   *testing.T
	ctx context.Context
	url string
}

// openDashboard starts a browser on the dashboard at url, closed at the end of the test.
func openDashboard(t *testing.T, url string) *dashboardPage {
	t.Helper()
	ctx, _, _ := headlessChromium(t, 2*time.Minute)
	p := &dashboardPage{t: t, ctx: ctx, url: url}
	if err := chromedp.Do(ctx, chromedp.Navigate(url+"/"), chromedp.WaitVisible(`#enqueue`)); err != nil {
		t.Fatalf("open the dashboard: %v", err)
	}
	return p
}

// enqueue submits a task through the form; the page then shows its detail.
func (p *dashboardPage) enqueue(typ, payload string) {
	p.t.Helper()
	err := chromedp.Do(p.ctx,
		chromedp.SetValue(`#type`, typ),
		chromedp.SetValue(`#payload`, payload),
		chromedp.Click(`#submit`),
	)
	if err != nil {
		p.fail("enqueue: %v", err)
	}
}

// js evaluates an expression in the page.
func js[T any](p *dashboardPage, expr string) T {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		p.fail("evaluate %s: %v", expr, err)
	}
	return v
}

// waitFor evaluates a condition in the page until it holds, failing the test after a minute.
func (p *dashboardPage) waitFor(what, cond string) {
	p.t.Helper()
	err := testpoll.Wait(p.ctx, time.Minute, func() error {
		if !js[bool](p, cond) {
			return errors.New("not yet")
		}
		return nil
	})
	if err != nil {
		p.fail("timed out waiting for %s", what)
	}
}

// fail ends the test with the page's main part and the task list.
func (p *dashboardPage) fail(format string, args ...any) {
	p.t.Helper()
	page, _ := chromedp.Run(p.ctx, chromedp.OuterHTML(`main`))
	var tasks []byte
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, p.url+"/dashboard/tasks", nil)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		tasks, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if len(tasks) > 4<<10 {
		tasks = append(tasks[:4<<10:4<<10], "…"...)
	}
	if len(page) > 16<<10 {
		page = page[:16<<10] + "…"
	}
	p.t.Fatalf("%s\ntasks: %s\npage:\n%s", fmt.Sprintf(format, args...), tasks, page)
}

const (
	jsStatus = `document.getElementById("detail-status").textContent`
	jsDetail = `!document.getElementById("detail").hidden`
)

func TestE2EDashboardLiveOutput(t *testing.T) {
	t.Parallel()
	p := openDashboard(t, startDev(t))
	p.enqueue("SHELL", `{"cmd": "ticker -n 15 -i 200ms"}`)
	// Lines appear while the task still runs: both read in one evaluation.
	p.waitFor("live output while running", jsDetail+` && `+jsStatus+` === "RUNNING" &&
		document.getElementById("detail-stdout").textContent.includes("line 3\n")`)
	p.waitFor("the task to complete", jsStatus+` === "COMPLETED"`)
	stdout := js[string](p, `document.getElementById("result-stdout").textContent`)
	if !strings.HasPrefix(stdout, "line 1\n") || !strings.HasSuffix(stdout, "line 15\n") {
		t.Errorf("final stdout in the detail view = %q", stdout)
	}
}

func TestE2EDashboardCancel(t *testing.T) {
	t.Parallel()
	p := openDashboard(t, startDev(t))
	p.enqueue("SHELL", `{"cmd": "ticker -n 600 -i 100ms"}`)
	p.waitFor("the task to run", jsDetail+` && `+jsStatus+` === "RUNNING"`)
	// The button's own click handler (a synthetic mouse click needs the layout to settle).
	js[bool](p, `document.getElementById("cancel").click(), true`)
	p.waitFor("the task to end", jsStatus+` === "FAILED"`)
	if got := js[string](p, `document.getElementById("detail-error").textContent`); got != "cancelled" {
		t.Errorf("error of the cancelled task = %q, want cancelled", got)
	}
}

// TestE2EDashboardThousandTasks fills the dashboard with 1,000 tasks: the list shows the newest
// 200 and says so, its refresh stays small (summaries only), and the filter finds the oldest
// task among them.
func TestE2EDashboardThousandTasks(t *testing.T) {
	t.Parallel()
	url := startDev(t)
	const n = 1000
	var first string
	for i := range n {
		body := fmt.Sprintf(`{"type":"ECHO","payload":{"message":"task number %d"}}`, i)
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, url+"/dev/tasks", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var created struct{ ID string }
		err = json.NewDecoder(resp.Body).Decode(&created)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
			t.Fatalf("enqueue %d: %d %v", i, resp.StatusCode, err)
		}
		if i == 0 {
			first = created.ID
		}
	}
	list := func(query string) (taskListJSON, int) {
		t.Helper()
		resp, err := http.Get(url + "/dashboard/tasks?q=" + query)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var l taskListJSON
		if err := json.Unmarshal(b, &l); err != nil {
			t.Fatalf("GET /dashboard/tasks: %v: %s", err, b)
		}
		return l, len(b)
	}
	testpoll.UntilNil(t, 3*time.Minute, fmt.Sprintf("%d tasks completed", n), func() error {
		if l, _ := list("COMPLETED"); l.Matched != n {
			return fmt.Errorf("%d completed", l.Matched)
		}
		return nil
	})
	l, size := list("")
	if l.Total != n || l.Matched != n || len(l.Tasks) != 200 {
		t.Fatalf("list: total %d, matched %d, %d shown; want %d, %d, 200", l.Total, l.Matched, len(l.Tasks), n, n)
	}
	if size > 64<<10 {
		t.Errorf("the list's refresh is %d bytes, want at most 64 KiB", size)
	}

	p := openDashboard(t, url)
	p.waitFor("the newest 200 of 1,000 tasks", `document.querySelectorAll("#tasks tr").length === 200 &&
		document.getElementById("count").textContent === "newest 200 of 1000 tasks"`)
	// Typed as a user would: the page filters on the input event.
	js[bool](p, `(() => { const f = document.getElementById("filter"); f.value = "number 0"; f.dispatchEvent(new Event("input")); return true; })()`)
	p.waitFor("the oldest task alone", fmt.Sprintf(`document.querySelectorAll("#tasks tr").length === 1 &&
		document.querySelector("#tasks tr").dataset.id === %q &&
		document.getElementById("count").textContent === "1 shown, 1 of 1000 tasks match"`, first))
}

// taskListJSON is the dashboard's GET /dashboard/tasks answer.
type taskListJSON struct {
	Total   int `json:"total"`
	Matched int `json:"matched"`
	Tasks   []struct {
		ID      string `json:"id"`
		Status  string `json:"status"`
		Summary string `json:"summary"`
	} `json:"tasks"`
}
