package main_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/letsbe/sysadmin-agent/internal/tasksig"
	"github.com/letsbe/sysadmin-agent/orchestratorsync/orchestratortest"
)

// hostileOrchestrator is the reference orchestrator with a Sign hook that signs each task
// the way the test chose for its id: properly, or in one of the ways an attacker (or a broken
// orchestrator) would.
type hostileOrchestrator struct {
	*orchestrator
	mu      sync.Mutex
	modes   map[string]string
	signers map[string]*tasksig.Signer // by name: "trusted", "rotated", "stranger"
	sent    map[string][]byte          // bodies handed out, by id
}

func newSigner(t *testing.T) *tasksig.Signer {
	t.Helper()
	key, err := tasksig.GenerateKey(jose.EdDSA)
	if err != nil {
		t.Fatal(err)
	}
	s, err := tasksig.NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func startHostileOrchestrator(t *testing.T) *hostileOrchestrator {
	t.Helper()
	h := &hostileOrchestrator{
		modes: map[string]string{}, sent: map[string][]byte{},
		signers: map[string]*tasksig.Signer{"trusted": newSigner(t), "rotated": newSigner(t), "stranger": newSigner(t)},
	}
	h.orchestrator = startOrchestrator(t, orchestratortest.Options{Sign: h.sign})
	return h
}

// enqueueAs enqueues a task that will be handed out signed as mode says.
func (h *hostileOrchestrator) enqueueAs(t *testing.T, mode, typ, payload string) string {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	next := fmt.Sprintf("t-%d", len(h.Tasks())+1)
	h.modes[next] = mode
	if id := h.Enqueue(typ, json.RawMessage(payload), 0); id != next {
		t.Fatalf("enqueued %s, expected id %s", id, next)
	}
	return next
}

func (h *hostileOrchestrator) sign(body []byte, agentID string) ([]byte, error) {
	var task map[string]any
	if err := json.Unmarshal(body, &task); err != nil {
		return nil, err
	}
	id := task["id"].(string)
	h.mu.Lock()
	mode := h.modes[id]
	h.mu.Unlock()
	signWith := func(s *tasksig.Signer, forAgent string, ttl time.Duration) []byte {
		out, err := s.SignTaskJSON(body, forAgent, ttl, time.Now())
		if err != nil {
			panic(err)
		}
		return out
	}
	set := func(b []byte, k string, v any) []byte {
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		m[k] = v
		out, _ := json.Marshal(m)
		return out
	}
	var out []byte
	switch mode {
	case "signed":
		out = signWith(h.signers["trusted"], agentID, time.Minute)
	case "rotated":
		out = signWith(h.signers["rotated"], agentID, time.Minute)
	case "tampered":
		out = set(signWith(h.signers["trusted"], agentID, time.Minute), "payload", map[string]any{"path": task["payload"].(map[string]any)["path"], "content": "tampered"})
	case "timeout-raised":
		out = set(signWith(h.signers["trusted"], agentID, time.Minute), "timeout_seconds", 3600)
	case "other-agent":
		out = signWith(h.signers["trusted"], "a-somebody-else", time.Minute)
	case "expired":
		body = set(body, "not_after", time.Now().Add(-time.Minute).UTC().Format(time.RFC3339))
		out = signWith(h.signers["trusted"], agentID, 0)
	case "expired-unsigned":
		out = set(body, "not_after", time.Now().Add(-time.Minute).UTC().Format(time.RFC3339))
	case "unknown-kid":
		out = signWith(h.signers["stranger"], agentID, time.Minute)
	case "alg-none":
		hdr := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","kid":"` + h.signers["trusted"].KID() + `"}`))
		out = set(set(body, "agent_id", agentID), "signature", hdr+"..")
	case "replayed-signature":
		// The signature of another task (t-1, signed properly), on this one.
		var first map[string]any
		h.mu.Lock()
		_ = json.Unmarshal(h.sent["t-1"], &first)
		h.mu.Unlock()
		out = set(set(body, "signature", first["signature"]), "not_after", first["not_after"])
	case "unsigned", "verbatim": // verbatim: a body captured earlier, replayed as it was
		out = body
	default:
		return nil, fmt.Errorf("no mode for task %s", id)
	}
	h.mu.Lock()
	h.sent[id] = out
	h.mu.Unlock()
	return out, nil
}

func writeJWKS(t *testing.T, path string, signers ...*tasksig.Signer) {
	t.Helper()
	set := jose.JSONWebKeySet{}
	for _, s := range signers {
		set.Keys = append(set.Keys, s.PublicKeySet().Keys...)
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestE2ESignedTasksHostile runs the binary with AGENT_TASK_KEYS against an orchestrator that
// hands out properly signed tasks and every kind of bad one: each bad one ends FAILED with its
// refusal and writes nothing (each task is a FILE_WRITE of its own marker file). Then the key
// file is replaced: the rotated key is trusted at once, the old one no longer.
func TestE2ESignedTasksHostile(t *testing.T) {
	t.Parallel()
	h := startHostileOrchestrator(t)
	dir := t.TempDir()
	root := filepath.Join(dir, "files")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	keys := filepath.Join(dir, "keys", "task-keys.json")
	if err := os.MkdirAll(filepath.Dir(keys), 0o755); err != nil {
		t.Fatal(err)
	}
	writeJWKS(t, keys, h.signers["trusted"])

	type tcase struct{ mode, wantStatus, wantErr string }
	write := func(name string) string {
		return fmt.Sprintf(`{"path":%q,"content":"written"}`, filepath.Join(root, name))
	}
	cases := []tcase{
		{"signed", "COMPLETED", ""}, // t-1: the replayed-signature case copies its signature
		{"tampered", "FAILED", "signature: does not verify"},
		{"timeout-raised", "FAILED", "signature: does not verify"},
		{"other-agent", "FAILED", "signature: does not verify"},
		{"replayed-signature", "FAILED", "signature: does not verify"},
		{"expired", "FAILED", "expired: not_after"},
		{"expired-unsigned", "FAILED", "expired: not_after"},
		{"unknown-kid", "FAILED", "signature: unknown kid"},
		{"alg-none", "FAILED", `signature: algorithm "none" not accepted`},
		{"unsigned", "FAILED", "signature: the task is not signed"},
	}
	ids := map[string]string{}
	for _, c := range cases {
		ids[c.mode] = h.enqueueAs(t, c.mode, "FILE_WRITE", write(c.mode))
	}
	// t-1 must be handed out before the case that replays its signature: one task at a time.
	agent := startAgent(t, h.orchestrator, "", "AGENT_TASK_KEYS="+keys, "AGENT_FILE_ROOTS="+root, "AGENT_MAX_CONCURRENT_TASKS=1")
	for _, c := range cases {
		st := h.waitFinal(t, ids[c.mode])
		if st.Status != c.wantStatus || !strings.Contains(st.Error, c.wantErr) {
			t.Errorf("%s (%s): status %s error %q, want %s with %q", c.mode, ids[c.mode], st.Status, st.Error, c.wantStatus, c.wantErr)
		}
		_, err := os.Stat(filepath.Join(root, c.mode))
		if ran := err == nil; ran != (c.wantStatus == "COMPLETED") {
			t.Errorf("%s: marker file written = %v, want %v", c.mode, ran, c.wantStatus == "COMPLETED")
		}
	}

	// Rotation by file change: the new key only.
	writeJWKS(t, keys, h.signers["rotated"])
	eventually(t, "the keys reloaded", func() bool {
		return strings.Contains(agent.Output(), h.signers["rotated"].KID())
	})
	rotated := h.enqueueAs(t, "rotated", "FILE_WRITE", write("rotated"))
	old := h.enqueueAs(t, "signed", "FILE_WRITE", write("old-key"))
	if st := h.waitFinal(t, rotated); st.Status != "COMPLETED" {
		t.Errorf("task signed with the rotated key: %s %q", st.Status, st.Error)
	}
	if st := h.waitFinal(t, old); st.Status != "FAILED" || !strings.Contains(st.Error, "signature: unknown kid") {
		t.Errorf("task signed with the retired key: %s %q, want FAILED unknown kid", st.Status, st.Error)
	}

	// SIGHUP reloads (and does not stop the agent); a broken file keeps the keys in force.
	if err := os.WriteFile(keys, []byte("{broken"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := agent.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the failed reload logged", func() bool {
		return strings.Contains(agent.Output(), "keeping the keys in force")
	})
	still := h.enqueueAs(t, "rotated", "FILE_WRITE", write("after-broken-file"))
	if st := h.waitFinal(t, still); st.Status != "COMPLETED" {
		t.Errorf("task after a broken key file: %s %q, want COMPLETED with the keys in force", st.Status, st.Error)
	}
	if !agent.Alive() {
		t.Fatal("the agent exited on SIGHUP")
	}

	// A replayed id: the signed body of the first task, captured on the wire and handed out
	// again while its signature is still valid, is answered with the first run's final report
	// and not run again (its marker file, removed, stays absent).
	first := ids["signed"]
	firstFinal := h.waitFinal(t, first)
	if err := os.Remove(filepath.Join(root, "signed")); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	captured := h.sent[first]
	h.modes[first] = "verbatim"
	h.mu.Unlock()
	h.EnqueueRaw(first, "FILE_WRITE", captured)
	replay := h.waitFinal(t, first)
	if replay.Status != "COMPLETED" || string(replay.Result) != string(firstFinal.Result) {
		t.Errorf("replayed %s: %s %q result %s, want the first run's COMPLETED result %s", first, replay.Status, replay.Error, replay.Result, firstFinal.Result)
	}
	if _, err := os.Stat(filepath.Join(root, "signed")); err == nil {
		t.Errorf("replayed %s ran again: its marker file was written", first)
	}
	if code := agent.stop(); code != 0 {
		t.Errorf("exit code %d", code)
	}
}

// TestE2ESignedTaskSettings checks AGENT_ALLOW_UNSIGNED_TASKS and AGENT_REQUIRE_TASK_EXPIRY,
// and that a bad key file stops start-up with one line naming the setting.
func TestE2ESignedTaskSettings(t *testing.T) {
	t.Parallel()
	h := startHostileOrchestrator(t)
	dir := t.TempDir()
	keys := filepath.Join(dir, "task-keys.json")
	writeJWKS(t, keys, h.signers["trusted"])

	unsigned := h.enqueueAs(t, "unsigned", "ECHO", `{"message":"hi"}`)
	forged := h.enqueueAs(t, "unknown-kid", "ECHO", `{"message":"hi"}`)
	agent := startAgent(t, h.orchestrator, "", "AGENT_TASK_KEYS="+keys, "AGENT_ALLOW_UNSIGNED_TASKS=true", "AGENT_REQUIRE_TASK_EXPIRY=true")
	if st := h.waitFinal(t, unsigned); st.Status != "COMPLETED" {
		t.Errorf("unsigned task with AGENT_ALLOW_UNSIGNED_TASKS: %s %q", st.Status, st.Error)
	}
	if st := h.waitFinal(t, forged); st.Status != "FAILED" || !strings.Contains(st.Error, "unknown kid") {
		t.Errorf("badly signed task with AGENT_ALLOW_UNSIGNED_TASKS: %s %q, want FAILED", st.Status, st.Error)
	}
	agent.stop()

	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"keys":[{"kty":"oct","kid":"k","k":"c2VjcmV0"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), agentBinary)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "ORCHESTRATOR_URL=" + h.URL, "AGENT_TOKEN=x",
		"AGENT_STATE_DIR=" + filepath.Join(dir, "state"), "AGENT_HTTP_ADDR=", "AGENT_TASK_KEYS=" + bad}
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "invalid AGENT_TASK_KEYS") {
		t.Errorf("start with a symmetric key in AGENT_TASK_KEYS: err %v, output:\n%s", err, out)
	}
}

// TestE2EPolicyRefusals runs the binary with AGENT_POLICY: SHELL argument patterns, task types
// and file roots refuse what the settings alone would allow, naming the rule; the policy is
// reported at registration and the CLI says the same offline.
func TestE2EPolicyRefusals(t *testing.T) {
	t.Parallel()
	o := startOrchestrator(t, orchestratortest.Options{})
	dir := t.TempDir()
	root := filepath.Join(dir, "files")
	if err := os.MkdirAll(filepath.Join(root, "app"), 0o755); err != nil {
		t.Fatal(err)
	}
	pol := filepath.Join(dir, "policy.yaml")
	doc := fmt.Sprintf(`types: [SHELL, FILE_WRITE, DOCKER_RELOAD]
shell:
  commands:
    - echo hello *
    - uname **
    - git status
files:
  roots: [%[1]s]
compose:
  allow_privileged: false
  bind_roots: [%[1]s/data]
`, filepath.Join(root, "app"))
	if err := os.WriteFile(pol, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	// Compose projects the settings would deploy and the policy's compose rules refuse before
	// docker runs: a privileged service, and a bind mount outside the policy's bind roots.
	project := func(name, service string) string {
		path := filepath.Join(root, "app", name, "docker-compose.yml")
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte("services:\n  web:\n    image: letsbe-test/busybox:1\n"+service), 0o644); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf(`{"compose_path":%q}`, path)
	}
	privileged := project("privileged", "    privileged: true\n")
	bind := project("bind", fmt.Sprintf("    volumes: [\"%s:/x\"]\n", filepath.Join(root, "app")))
	env := []string{"AGENT_POLICY=" + pol, "AGENT_FILE_ROOTS=" + root, "AGENT_COMPOSE_ALLOW_PRIVILEGED=true"}
	cases := []struct{ typ, payload, status, errContains string }{
		{"SHELL", `{"cmd":"echo hello world"}`, "COMPLETED", ""},
		{"SHELL", `{"cmd":"uname -a"}`, "COMPLETED", ""},
		{"SHELL", `{"cmd":"echo goodbye world"}`, "FAILED", `policy.shell: command "echo goodbye world" matches no allowed pattern`},
		{"SHELL", `{"cmd":"echo hello two words"}`, "FAILED", "policy.shell"},
		{"SHELL", `{"cmd":"sleep 5"}`, "FAILED", "policy.shell"},
		{"SHELL", `{"cmd":"git status"}`, "FAILED", "policy.shell"}, // git is not in AGENT_ALLOWED_COMMANDS
		{"ECHO", `{"message":"hi"}`, "FAILED", `policy.types: task type "ECHO" is not allowed`},
		{"FILE_WRITE", fmt.Sprintf(`{"path":%q,"content":"x"}`, filepath.Join(root, "app", "ok")), "COMPLETED", ""},
		{"FILE_WRITE", fmt.Sprintf(`{"path":%q,"content":"x"}`, filepath.Join(root, "other")), "FAILED", "policy.files: FILE_WRITE path"},
		{"DOCKER_RELOAD", privileged, "FAILED", "service web: privileged: true is refused (AGENT_COMPOSE_ALLOW_PRIVILEGED and compose.allow_privileged in AGENT_POLICY " + pol + ")"},
		{"DOCKER_RELOAD", bind, "FAILED", "outside the bind roots (AGENT_COMPOSE_BIND_ROOTS and compose.bind_roots in AGENT_POLICY " + pol + ": " + filepath.Join(root, "app", "data") + ")"},
	}
	ids := make([]string, len(cases))
	for i, c := range cases {
		ids[i] = o.enqueue(t, c.typ, c.payload)
	}
	agent := startAgent(t, o, "", env...)
	for i, c := range cases {
		st := o.waitFinal(t, ids[i])
		if st.Status != c.status || !strings.Contains(st.Error, c.errContains) {
			t.Errorf("%s %s: %s %q, want %s with %q", c.typ, c.payload, st.Status, st.Error, c.status, c.errContains)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "other")); err == nil {
		t.Error("the refused FILE_WRITE wrote its file")
	}
	agents := o.Agents()
	if len(agents) != 1 || agents[0].Policy == nil || len(agents[0].Policy.SHA256) != 64 {
		t.Fatalf("registration did not report the policy: %+v", agents)
	}
	agent.stop()

	// The CLI, offline, with the same settings.
	show := exec.CommandContext(t.Context(), agentBinary, "policy", "show")
	show.Env = append([]string{"PATH=" + os.Getenv("PATH"), "AGENT_ALLOWED_COMMANDS=echo,sleep,false,true,uname"}, env...)
	out, err := show.Output()
	if err != nil {
		t.Fatalf("policy show: %v", err)
	}
	if !strings.Contains(string(out), agents[0].Policy.SHA256) {
		t.Errorf("policy show does not print the sha256 reported at registration (%s):\n%s", agents[0].Policy.SHA256, out)
	}
	task := filepath.Join(dir, "task.json")
	for _, c := range []struct {
		cmd  string
		code int
		out  string
	}{
		{"echo hello there", 0, "allowed"},
		{"echo bye", 1, "refused: policy.shell"},
	} {
		if err := os.WriteFile(task, fmt.Appendf(nil, `{"id":"t-x","type":"SHELL","payload":{"cmd":%q}}`, c.cmd), 0o644); err != nil {
			t.Fatal(err)
		}
		check := exec.CommandContext(t.Context(), agentBinary, "policy", "check", task)
		check.Env = show.Env
		out, _ := check.Output()
		if code := check.ProcessState.ExitCode(); code != c.code || !strings.Contains(string(out), c.out) {
			t.Errorf("policy check %q: exit %d %q, want %d with %q", c.cmd, code, out, c.code, c.out)
		}
	}
}

// TestE2EKeysCommands makes a key with `keys keygen` and signs a task with `keys sign`: the
// agent trusting the generated JWKS runs it.
func TestE2EKeysCommands(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), agentBinary, args...)
		cmd.Dir = dir
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("letsbe-agent %s: %v", strings.Join(args, " "), err)
		}
		return string(out)
	}
	run("keys", "keygen", "--private", "k.jwk", "--public", "k.jwks")
	fi, err := os.Stat(filepath.Join(dir, "k.jwk"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("private key: %v, mode %v", err, fi.Mode())
	}
	if err := exec.CommandContext(t.Context(), agentBinary, "keys", "keygen", "--private", filepath.Join(dir, "k.jwk"), "--public", filepath.Join(dir, "x")).Run(); err == nil {
		t.Error("keygen overwrote an existing private key")
	}
	if err := os.WriteFile(filepath.Join(dir, "task.json"), []byte(`{"id":"t-1","type":"ECHO","payload":{"message":"hi"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	signed := run("keys", "sign", "--key", "k.jwk", "--agent-id", "a-1", "--ttl", "1m", "task.json")
	var task map[string]any
	if err := json.Unmarshal([]byte(signed), &task); err != nil {
		t.Fatalf("signed task %q: %v", signed, err)
	}
	ks, err := tasksig.LoadKeySet(filepath.Join(dir, "k.jwks"))
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(task["payload"])
	if err := tasksig.Verify(ks, task["signature"].(string), tasksig.Fields{ID: "t-1", Type: "ECHO", Payload: payload, AgentID: "a-1", NotAfter: task["not_after"].(string)}); err != nil {
		t.Errorf("the signed task does not verify: %v", err)
	}
}

// TestE2EUnsafeStateDirStopsStartup: a state directory owned by nobody, or one anybody can
// write to, stops start-up with one line naming it, before anything is read from it.
func TestE2EUnsafeStateDirStopsStartup(t *testing.T) {
	t.Parallel()
	o := startOrchestrator(t, orchestratortest.Options{})
	base := t.TempDir()
	worldWritable := filepath.Join(base, "open")
	if err := os.Mkdir(worldWritable, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(worldWritable, 0o777); err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{worldWritable: "is writable by group or others (mode 0777)"}
	if os.Geteuid() == 0 {
		if nobody, err := user.Lookup("nobody"); err == nil {
			uid, _ := strconv.Atoi(nobody.Uid)
			owned := filepath.Join(base, "nobodys")
			if err := os.Mkdir(owned, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(owned, uid, -1); err != nil {
				t.Fatal(err)
			}
			cases[owned] = "is owned by uid " + nobody.Uid
		}
	}
	for dir, want := range cases {
		cmd := exec.CommandContext(t.Context(), agentBinary)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "ORCHESTRATOR_URL=" + o.URL, "AGENT_TOKEN=x",
			"AGENT_STATE_DIR=" + dir, "AGENT_HTTP_ADDR=", "AGENT_LOG_FORMAT=console"}
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "unsafe AGENT_STATE_DIR") || !strings.Contains(string(out), dir) || !strings.Contains(string(out), want) {
			t.Errorf("state dir %s: err %v, want a refusal naming it (%q); output:\n%s", dir, err, want, out)
		}
	}
	if n := o.Stats().Register; n != 0 {
		t.Errorf("an agent with an unsafe state directory registered %d times", n)
	}
}
