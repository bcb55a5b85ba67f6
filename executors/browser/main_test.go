package browser

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"syscall"
	"testing"
)

// skipEnv, set to 1, skips the tests that run Chromium. Without it a missing
// Chromium fails them: CI installs Debian's chromium package.
const skipEnv = "LETSBE_SKIP_BROWSER_TESTS"

// needChromium fails the test (or skips it, when skipEnv=1) unless a
// Chromium can be found.
func needChromium(t *testing.T) {
	t.Helper()
	if os.Getenv(skipEnv) == "1" {
		t.Skipf("%s=1: not running Chromium", skipEnv)
	}
	for _, name := range chromiumNames {
		if _, err := exec.LookPath(name); err == nil {
			return
		}
	}
	t.Fatalf("no chromium on PATH: install Debian's chromium package (apt-get install chromium), or set %s=1 to skip the browser tests", skipEnv)
}

// newTestExecutor returns an executor whose browser profiles live in a
// temporary directory of the test.
func newTestExecutor(t *testing.T, cfg Config) (*Playwright, string) {
	t.Helper()
	needChromium(t)
	// Not t.TempDir(): Chromium's socket paths under it would be too long.
	dir, err := os.MkdirTemp("", "lbt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	cfg.TempDir = dir
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e, cfg.TempDir
}

// execute runs a flow and checks that nothing of the browser is left: no
// live process whose command line mentions the profile directory, and no
// profile.
func execute(ctx context.Context, t *testing.T, e *Playwright, tempDir, payload string) (*Result, error) {
	t.Helper()
	got, err := e.Execute(ctx, json.RawMessage(payload))
	assertNoBrowserLeft(t, tempDir)
	if got == nil {
		return nil, err
	}
	res, ok := got.(*Result)
	if !ok {
		t.Fatalf("result is a %T", got)
	}
	return res, err
}

// assertNoBrowserLeft fails the test if a process mentioning dir in its
// command line is alive (zombies waiting for init to reap them do not count)
// or if dir is not empty.
func assertNoBrowserLeft(t *testing.T, dir string) {
	t.Helper()
	if pids := processesMentioning(dir); len(pids) > 0 {
		t.Errorf("browser processes left after the task: %v", pids)
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) > 0 {
		t.Errorf("profile directory left after the task: %s", entries[0].Name())
	}
}
