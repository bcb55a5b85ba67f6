package main_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// startDev runs `letsbe-agent dev` on a free port with the ticker helper allowed, and returns
// the dashboard's URL.
func startDev(t *testing.T) string {
	t.Helper()
	cmd := exec.Command(agentBinary, "dev", "--listen", "127.0.0.1:0")
	cmd.Env = []string{
		"PATH=" + helperDir + string(os.PathListSeparator) + os.Getenv("PATH"),
		"HOME=" + t.TempDir(), "AGENT_HTTP_ADDR=127.0.0.1:0",
		"AGENT_STATE_DIR=" + filepath.Join(t.TempDir(), "state"),
		"AGENT_ALLOWED_COMMANDS=echo,ticker",
		"AGENT_HEARTBEAT_INTERVAL=200ms", // cancellation travels with the heartbeat
		"AGENT_PROGRESS_INTERVAL=200ms",
	}
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &agentProc{t: t, cmd: cmd, out: out, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("dev output:\n%s", out.String())
		}
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

// headless returns a browser context for the test, closed at its end.
func headless(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("headless", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-sandbox", os.Geteuid() == 0),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	ctx, cancel := context.WithTimeout(bctx, 90*time.Second)
	t.Cleanup(func() { cancel(); cancelBrowser(); cancelAlloc() })
	return ctx
}

// enqueueInDashboard submits a task through the form; the page then shows its detail.
func enqueueInDashboard(typ, payload string) []chromedp.Action[chromedp.Void] {
	return []chromedp.Action[chromedp.Void]{
		chromedp.WaitVisible(`#enqueue`),
		chromedp.SetValue(`#type`, typ),
		chromedp.SetValue(`#payload`, payload),
		chromedp.Click(`#submit`),
		chromedp.WaitVisible(`#detail`),
	}
}

// runSteps runs the steps within a minute; on failure the error carries the page's task list
// and detail view.
func runSteps(ctx context.Context, url string, steps []chromedp.Action[chromedp.Void]) error {
	// The first action allocates the browser: on ctx, which outlives the steps' deadline.
	if err := chromedp.Do(ctx, steps[0]); err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	err := chromedp.Do(sctx, steps[1:]...)
	if err != nil {
		page, _ := chromedp.Run(ctx, chromedp.OuterHTML(`main`))
		errText, _ := chromedp.Run(ctx, chromedp.TextContent(`#form-error`))
		var tasks []byte
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, url+"/dashboard/tasks", nil)
		if resp, herr := http.DefaultClient.Do(req); herr == nil {
			tasks, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		return fmt.Errorf("%w; form error %q; tasks %s; page:\n%s", err, errText, tasks, page)
	}
	return nil
}

// waitJS polls a JavaScript condition in the page until it is true.
func waitJS(cond string) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](cond, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(60*time.Second))
}

func TestE2EDashboardLiveOutput(t *testing.T) {
	t.Parallel()
	url := startDev(t)
	ctx := headless(t)
	steps := append([]chromedp.Action[chromedp.Void]{chromedp.Navigate(url + "/")}, enqueueInDashboard("SHELL", `{"cmd": "ticker -n 15 -i 200ms"}`)...)
	steps = append(steps,
		// Lines appear while the task still runs: both read in one evaluation.
		waitJS(`document.getElementById("detail-status").textContent === "RUNNING" &&
			document.getElementById("detail-stdout").textContent.includes("line 3\n")`),
		chromedp.WaitVisible(`#detail-status.COMPLETED`),
	)
	if err := runSteps(ctx, url, steps); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	stdout, err := chromedp.Run(ctx, chromedp.TextContent(`#result-stdout`))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(stdout, "line 15\n") || !strings.HasPrefix(stdout, "line 1\n") {
		t.Errorf("final stdout in the detail view = %q", stdout)
	}
}

func TestE2EDashboardCancel(t *testing.T) {
	t.Parallel()
	url := startDev(t)
	ctx := headless(t)
	steps := append([]chromedp.Action[chromedp.Void]{chromedp.Navigate(url + "/")}, enqueueInDashboard("SHELL", `{"cmd": "ticker -n 600 -i 100ms"}`)...)
	steps = append(steps,
		chromedp.WaitVisible(`#detail-status.RUNNING`),
		chromedp.Click(`#cancel`),
		chromedp.WaitVisible(`#detail-status.FAILED`),
	)
	if err := runSteps(ctx, url, steps); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	errText, err := chromedp.Run(ctx, chromedp.TextContent(`#detail-error`))
	if err != nil {
		t.Fatal(err)
	}
	if errText != "cancelled" {
		t.Errorf("error of the cancelled task = %q, want cancelled", errText)
	}
}
