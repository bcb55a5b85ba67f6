package main_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/procfs"

	"github.com/letsbe/sysadmin-agent/orchestratorsync/orchestratortest"
)

// e2ePassword is the secret a PLAYWRIGHT task types; it must never leave the
// browser.
const e2ePassword = "e2e-Secr3t/pass word"

// needChromium fails the test unless Chromium is installed, or skips it when
// LETSBE_SKIP_BROWSER_TESTS=1 (CI installs Debian's chromium package).
func needChromium(t *testing.T) {
	t.Helper()
	if os.Getenv("LETSBE_SKIP_BROWSER_TESTS") == "1" {
		t.Skip("LETSBE_SKIP_BROWSER_TESTS=1: not running Chromium")
	}
	if _, err := exec.LookPath("chromium"); err != nil {
		t.Fatal("no chromium on PATH: install Debian's chromium package, or set LETSBE_SKIP_BROWSER_TESTS=1")
	}
}

// adminUI is a login form and a dashboard behind it.
func adminUI(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("GET /login", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<!doctype html><title>Sign in</title><form method="post" action="/session">
			<input id="user" name="user"><input id="password" name="password" type="password">
			<button id="submit">Sign in</button></form>`)
	})
	mux.HandleFunc("POST /session", func(w http.ResponseWriter, r *http.Request) {
		if r.PostFormValue("user") != "admin" || r.PostFormValue("password") != e2ePassword {
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		http.Redirect(w, r, "/setup", http.StatusSeeOther)
	})
	mux.HandleFunc("GET /setup", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<!doctype html><title>First-run wizard</title><h1 id="done">Setup complete</h1>`)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestE2EPlaywright(t *testing.T) {
	t.Parallel()
	needChromium(t)
	ui := adminUI(t)
	o := startOrchestrator(t, orchestratortest.Options{IssueAgentTokens: true})
	// Browser profiles go to a directory of this test (short: Chromium's
	// socket paths are limited), to find leftovers.
	tmp, err := os.MkdirTemp("", "lbe")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(tmp) })
	a := startAgent(t, o, "", "TMPDIR="+tmp, "AGENT_BROWSER_ALLOWED_HOSTS=127.0.0.1")

	login := fmt.Sprintf(`{"timeout_seconds": 60, "flow": {"steps": [
		{"action": "goto", "url": %q},
		{"action": "fill", "selector": "#user", "value": "admin"},
		{"action": "fill", "selector": "#password", "value": %q, "secret": true},
		{"action": "click", "selector": "#submit"},
		{"action": "wait_for_url", "url": "**/setup"},
		{"action": "expect_text", "selector": "#done", "text": "Setup complete"},
		{"action": "screenshot", "name": "setup"}
	]}}`, ui.URL+"/login", e2ePassword)
	failing := fmt.Sprintf(`{"flow": {"steps": [
		{"action": "goto", "url": %q},
		{"action": "fill", "selector": "#password", "value": %q, "secret": true},
		{"action": "click", "selector": "#no-such-button", "timeout_seconds": 1}
	]}}`, ui.URL+"/login", e2ePassword)
	refused := `{"flow": {"steps": [{"action": "goto", "url": "http://localhost/"}]}}`
	ids := []string{
		o.enqueue(t, "PLAYWRIGHT", login),
		o.enqueue(t, "PLAYWRIGHT", failing),
		o.enqueue(t, "PLAYWRIGHT", refused),
	}

	type result struct {
		Steps []struct {
			Index  int    `json:"index"`
			Action string `json:"action"`
			OK     bool   `json:"ok"`
			Error  string `json:"error"`
		} `json:"steps"`
		FinalURL    string `json:"final_url"`
		Title       string `json:"title"`
		Screenshots []struct {
			Name      string `json:"name"`
			PNGBase64 string `json:"png_base64"`
		} `json:"screenshots"`
		ConsoleErrors   []string `json:"console_errors"`
		BlockedRequests []string `json:"blocked_requests"`
	}
	decode := func(raw json.RawMessage) result {
		t.Helper()
		var r result
		if err := json.Unmarshal(raw, &r); err != nil {
			t.Fatalf("result %s: %v", raw, err)
		}
		return r
	}
	isPNG := func(b64 string) bool {
		raw, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			return false
		}
		_, err = png.DecodeConfig(bytes.NewReader(raw))
		return err == nil
	}

	st := o.waitFinal(t, ids[0])
	if st.Status != "COMPLETED" {
		t.Fatalf("login flow: %s %q\n%s", st.Status, st.Error, st.Result)
	}
	r := decode(st.Result)
	if len(r.Steps) != 7 || r.FinalURL != ui.URL+"/setup" || r.Title != "First-run wizard" ||
		len(r.Screenshots) != 1 || r.Screenshots[0].Name != "setup" || !isPNG(r.Screenshots[0].PNGBase64) {
		t.Errorf("login flow result: %+v", r)
	}

	st = o.waitFinal(t, ids[1])
	wantErr := `step 3 (click "#no-such-button"): timed out after 1s waiting for selector`
	if st.Status != "FAILED" || st.Error != wantErr {
		t.Errorf("failing flow: %s %q, want FAILED %q", st.Status, st.Error, wantErr)
	}
	r = decode(st.Result)
	if len(r.Steps) != 3 || r.Steps[2].OK || r.Steps[2].Index != 3 || len(r.Screenshots) != 1 ||
		r.Screenshots[0].Name != "failure" || !isPNG(r.Screenshots[0].PNGBase64) {
		t.Errorf("failing flow result: %+v", r)
	}

	st = o.waitFinal(t, ids[2])
	if st.Status != "FAILED" || !strings.Contains(st.Error, `host "localhost" is not in the browser host allowlist (AGENT_BROWSER_ALLOWED_HOSTS: 127.0.0.1)`) {
		t.Errorf("refused flow: %s %q", st.Status, st.Error)
	}

	// No browser is left, and neither is a profile.
	if pids := processesMentioning(tmp); len(pids) > 0 {
		t.Errorf("browser processes left: %v", pids)
	}
	if entries, _ := os.ReadDir(tmp); len(entries) > 0 {
		t.Errorf("left in the browser's temporary directory: %s", entries[0].Name())
	}

	if code := a.stop(); code != 0 {
		t.Errorf("exit code after SIGTERM = %d, want 0", code)
	}
	// The secret is nowhere but in the payload: not in a result, error or
	// event, not in a log line.
	for _, id := range ids {
		st, _ := o.Task(id)
		st.Payload = nil
		b, _ := json.Marshal(st)
		if bytes.Contains(b, []byte(e2ePassword)) {
			t.Errorf("task %s shows the secret: %s", id, b)
		}
	}
	a.logLines()
	if strings.Contains(a.Output(), e2ePassword) {
		t.Error("the secret appears in the agent's log")
	}
}

// processes lists the live (not zombie) processes other than the test's own whose argv
// satisfies match.
func processes(match func(argv []string) bool) []int {
	procs, _ := procfs.AllProcs()
	var pids []int
	for _, p := range procs {
		if p.PID == os.Getpid() {
			continue
		}
		if st, err := p.Stat(); err != nil || st.State == "Z" {
			continue
		}
		if argv, err := p.CmdLine(); err == nil && match(argv) {
			pids = append(pids, p.PID)
		}
	}
	return pids
}

// processesMentioning lists the live processes whose command line contains s.
func processesMentioning(s string) []int {
	return processes(func(argv []string) bool {
		return slices.ContainsFunc(argv, func(a string) bool { return strings.Contains(a, s) })
	})
}
