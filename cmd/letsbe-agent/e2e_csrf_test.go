package main_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// attackPage posts tasks to the development orchestrator the ways a web page can without the
// server's consent: a no-cors text/plain fetch, an auto-submitted form, and a JSON fetch
// (which needs a CORS preflight the server never grants). When every attempt has settled, the
// title says so.
const attackPage = `<!doctype html><html><body>
<iframe name="sink"></iframe>
<form id="f" method="POST" action="%[1]s/dev/tasks" target="sink" enctype="text/plain">
<input name='{"type":"SHELL","payload":{"cmd":"echo form","x":"' value='"}}'></form>
<script>
const target = %[1]q + "/dev/tasks";
const body = JSON.stringify({type: "SHELL", payload: {cmd: "echo pwned"}});
const settle = p => p.then(() => "sent", e => "blocked: " + e);
const form = new Promise(resolve => {
  document.querySelector("iframe").addEventListener("load", () => resolve("form loaded"), {once: true});
  document.getElementById("f").submit();
});
Promise.all([
  settle(fetch(target, {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"}, body})),
  settle(fetch(target, {method: "POST", headers: {"Content-Type": "application/json"}, body})),
  form,
]).then(r => { document.title = "settled " + r.join(" | "); });
</script></body></html>`

// TestE2EDevOrchestratorRefusesCrossOrigin opens a page served on another loopback origin in
// headless Chromium; its requests to `letsbe-agent dev` must not enqueue anything. A request
// under a foreign Host (DNS rebinding) is refused too.
func TestE2EDevOrchestratorRefusesCrossOrigin(t *testing.T) {
	t.Parallel()
	ctx, _, _ := headlessChromium(t, 60*time.Second)
	devURL := startDev(t)
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, attackPage, devURL)
	}))
	t.Cleanup(attacker.Close)

	err := chromedp.Do(ctx,
		chromedp.Navigate(attacker.URL+"/"),
		chromedp.Poll[chromedp.Void](`document.title.startsWith("settled")`, chromedp.WithPollingTimeout(30*time.Second)),
	)
	if err != nil {
		t.Fatalf("attack page: %v", err)
	}
	title, err := chromedp.Run(ctx, chromedp.Title())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("attack page: %s", title)

	list := get(t, devURL+"/dev/tasks", "")
	if strings.TrimSpace(list) != "[]" {
		t.Errorf("a cross-origin page enqueued tasks: %s", list)
	}
	// DNS rebinding: the same server under a name the attacker controls.
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, devURL+"/dev/tasks", nil)
	req.Host = "attacker.example"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("GET /dev/tasks with Host attacker.example: %d, want 421", resp.StatusCode)
	}
	// The legitimate client still works (and the task runs signed).
	req, _ = http.NewRequestWithContext(t.Context(), http.MethodPost, devURL+"/dev/tasks", strings.NewReader(`{"type":"ECHO","payload":{"message":"hi"}}`))
	req.Header.Set("Content-Type", "application/json")
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("JSON submission: %d", resp.StatusCode)
	}
	eventually(t, "the signed ECHO task to complete", func() bool {
		return strings.Contains(get(t, devURL+"/dev/tasks", ""), `"status":"COMPLETED"`)
	})
}

func get(t *testing.T, url, _ string) string {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
