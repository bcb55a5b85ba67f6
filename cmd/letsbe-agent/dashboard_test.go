package main_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPath finds the browser for UI tests: AGENT_CHROMIUM_PATH or Debian's chromium. A
// missing browser fails the test (CI installs it) unless LETSBE_SKIP_BROWSER_TESTS=1.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if os.Getenv("LETSBE_SKIP_BROWSER_TESTS") == "1" {
		t.Skip("LETSBE_SKIP_BROWSER_TESTS=1: browser tests skipped on purpose")
	}
	for _, p := range []string{os.Getenv("AGENT_CHROMIUM_PATH"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatal("no Chromium found (install Debian's chromium, set AGENT_CHROMIUM_PATH, or LETSBE_SKIP_BROWSER_TESTS=1)")
	return ""
}

// headlessChromium starts a headless Chromium with a profile directory of its own (skipping
// the test as chromiumPath does); the context it returns, bounded by timeout, drives it. The
// browser starts with the first action and is closed by closeBrowser or at the end of the test.
func headlessChromium(t *testing.T, timeout time.Duration) (ctx context.Context, profile string, closeBrowser func()) {
	t.Helper()
	profile = t.TempDir()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.UserDataDir(profile),
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
	ctx, cancel := context.WithTimeout(bctx, timeout)
	closeBrowser = func() { cancel(); cancelBrowser(); cancelAlloc() }
	t.Cleanup(closeBrowser)
	return ctx, profile, closeBrowser
}

func TestE2EDevDashboardInChromium(t *testing.T) {
	t.Parallel()
	ctx, profile, closeBrowser := headlessChromium(t, 60*time.Second)
	url := startDev(t)

	err := chromedp.Do(ctx,
		chromedp.Navigate(url+"/"),
		chromedp.WaitVisible(`#enqueue`),
		chromedp.SetValue(`#type`, "ECHO"),
		chromedp.SetValue(`#payload`, `{"message": "from the dashboard"}`),
		chromedp.Click(`#submit`),
		chromedp.WaitVisible(`#tasks td.status.COMPLETED`),
	)
	if err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	status, err := chromedp.Run(ctx, chromedp.Text(`#tasks tr:first-child td.status`))
	if err != nil {
		t.Fatal(err)
	}
	output, err := chromedp.Run(ctx, chromedp.Text(`#tasks tr:first-child td.out`))
	if err != nil {
		t.Fatal(err)
	}
	if status != "COMPLETED" || !strings.Contains(output, "from the dashboard") {
		t.Fatalf("row: status %q output %q", status, output)
	}
	closeBrowser()
	// No Chromium with this test's profile survives.
	eventually(t, "Chromium to exit", func() bool { return len(processesMentioning(profile)) == 0 })
}
