package main_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/google/go-cmp/cmp"

	"github.com/letsbe/sysadmin-agent/internal/fakedocker"
	"github.com/letsbe/sysadmin-agent/orchestratorsync/orchestratortest"
)

// hostFixture is the directory tree of the host task tests.
type hostFixture struct {
	root, outside string
	docker        *fakedocker.Docker
}

func newHostFixture(t *testing.T) *hostFixture {
	t.Helper()
	base := t.TempDir()
	fx := &hostFixture{root: filepath.Join(base, "root"), outside: filepath.Join(base, "outside"), docker: fakedocker.New(t)}
	fx.docker.Running(t, "app", "web")
	for _, d := range []string{fx.root, fx.outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(fx.outside, "secret"), "outside, never touched\n", 0o600)
	if err := os.Symlink(fx.outside, filepath.Join(fx.root, "escape")); err != nil {
		t.Fatal(err)
	}
	return fx
}

func writeFile(t *testing.T, path, content string, mode fs.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

// treeDigest describes every entry under dir.
func treeDigest(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(path)
		if err != nil {
			return err
		}
		desc := fi.Mode().String()
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			desc += " " + hex.EncodeToString(sum[:])
		}
		out[path] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TestE2EHostTasks runs FILE_WRITE, ENV_UPDATE and DOCKER_RELOAD through the
// real binary: the good cases change what they should, every hostile one
// ends FAILED with nothing outside the root touched, and no .env value shows
// anywhere.
func TestE2EHostTasks(t *testing.T) {
	t.Parallel()
	const secret = "hunter2-e2e-s3cr3t"
	fx := newHostFixture(t)
	app := filepath.Join(fx.root, "app")
	writeFile(t, filepath.Join(app, ".env"), "# app settings\nexport DB_HOST=localhost\nDB_PASS='old'\nOBSOLETE=1\n", 0o640)
	writeFile(t, filepath.Join(app, "docker-compose.yml"), `services:
  web:
    image: nginx:${TAG:-latest}
    depends_on: [db]
  db:
    image: postgres:16
    environment:
      POSTGRES_PASSWORD: ${DB_PASS}
`, 0o644)
	writeFile(t, filepath.Join(fx.root, "broken", "docker-compose.yml"), "services:\n  web:\n    image: nginx\n    environment:\n      X: ${NOT_SET}\n", 0o644)
	writeFile(t, filepath.Join(fx.root, "token", "docker-compose.yml"), "services:\n  web:\n    image: nginx\n    environment:\n      T: ${AGENT_TOKEN}\n", 0o644)
	writeFile(t, filepath.Join(fx.root, "failing", "docker-compose.yml"), "services:\n  web:\n    image: nginx\n", 0o644)
	writeFile(t, filepath.Join(fx.root, "failing", "docker-fail"), "", 0o644)
	writeFile(t, filepath.Join(fx.root, "badenv", ".env"), "A=1\nB=\"unterminated "+secret+"\n", 0o600)
	outsideBefore := treeDigest(t, fx.outside)

	o := startOrchestrator(t, orchestratortest.Options{})
	a := startAgent(t, o, "",
		"PATH="+fx.docker.Bin+":"+os.Getenv("PATH"),
		"AGENT_FILE_ROOTS="+fx.root,
		"AGENT_MAX_FILE_BYTES=4Ki",
	)
	eventually(t, "registration", func() bool { return len(o.Agents()) == 1 })
	caps := o.Agents()[0].Capabilities
	for _, typ := range []string{"FILE_WRITE", "ENV_UPDATE", "DOCKER_RELOAD"} {
		if !slices.Contains(caps, typ) {
			t.Errorf("capabilities %v lack %s", caps, typ)
		}
	}

	payload := func(v map[string]any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	cases := []struct {
		name, typ, payload  string
		status, errContains string
		result              string // JSON the result must equal, when set
	}{
		// FILE_WRITE
		{name: "write", typ: "FILE_WRITE", payload: payload(map[string]any{"path": fx.root + "/conf/nginx/site.conf", "content": "server {}\n"}),
			status: "COMPLETED", result: fmt.Sprintf(`{"path":%q,"bytes_written":10,"sha256":%q,"changed":true}`, fx.root+"/conf/nginx/site.conf", sha256Hex("server {}\n"))},
		{name: "write base64 with mode", typ: "FILE_WRITE", payload: payload(map[string]any{"path": fx.root + "/keys/tls.key", "content": base64.StdEncoding.EncodeToString([]byte("\x00key\xff")), "encoding": "base64", "mode": "0600"}),
			status: "COMPLETED", result: fmt.Sprintf(`{"path":%q,"bytes_written":5,"sha256":%q,"changed":true}`, fx.root+"/keys/tls.key", sha256Hex("\x00key\xff"))},
		{name: "write traversal", typ: "FILE_WRITE", payload: payload(map[string]any{"path": fx.root + "/../outside/secret", "content": "pwned"}), status: "FAILED", errContains: "is outside the file roots (AGENT_FILE_ROOTS: " + fx.root + ")"},
		{name: "write through a symlink out", typ: "FILE_WRITE", payload: payload(map[string]any{"path": fx.root + "/escape/secret", "content": "pwned"}), status: "FAILED", errContains: "leaves the file root"},
		{name: "write new file through a symlink out", typ: "FILE_WRITE", payload: payload(map[string]any{"path": fx.root + "/escape/new/file", "content": "pwned"}), status: "FAILED", errContains: "leaves the file root"},
		{name: "write relative", typ: "FILE_WRITE", payload: payload(map[string]any{"path": "etc/passwd", "content": "x"}), status: "FAILED", errContains: "is not an absolute path"},
		{name: "write the root", typ: "FILE_WRITE", payload: payload(map[string]any{"path": fx.root, "content": "x"}), status: "FAILED", errContains: "is a file root itself"},
		{name: "write too large", typ: "FILE_WRITE", payload: payload(map[string]any{"path": fx.root + "/big", "content": strings.Repeat("x", 5000)}), status: "FAILED", errContains: "larger than the limit of 4096 bytes (AGENT_MAX_FILE_BYTES)"},
		{name: "write bad base64", typ: "FILE_WRITE", payload: payload(map[string]any{"path": fx.root + "/b64", "content": "%%%", "encoding": "base64"}), status: "FAILED", errContains: "content is not valid base64"},
		{name: "write bad mode", typ: "FILE_WRITE", payload: payload(map[string]any{"path": fx.root + "/m", "content": "", "mode": "u+rwx"}), status: "FAILED", errContains: `mode "u+rwx"`},
		{name: "write not an object", typ: "FILE_WRITE", payload: `[1]`, status: "FAILED", errContains: "invalid payload"},
		// ENV_UPDATE
		{name: "env update", typ: "ENV_UPDATE", payload: payload(map[string]any{"path": app + "/.env", "updates": map[string]string{"DB_PASS": secret, "TAG": "1.27", "INJECT": "x\nEVIL=1"}, "remove": []string{"OBSOLETE"}}),
			status: "COMPLETED", result: fmt.Sprintf(`{"path":%q,"updated_keys":["DB_PASS","INJECT","TAG"],"removed_keys":["OBSOLETE"],"changed":true}`, app+"/.env")},
		{name: "env new file", typ: "ENV_UPDATE", payload: payload(map[string]any{"path": fx.root + "/new/.env", "updates": map[string]string{"A": "1"}}), status: "FAILED", errContains: "directory " + fx.root + "/new does not exist"},
		{name: "env bad key", typ: "ENV_UPDATE", payload: payload(map[string]any{"path": app + "/.env", "updates": map[string]string{"BAD KEY": secret}}), status: "FAILED", errContains: `key "BAD KEY"`},
		{name: "env broken file", typ: "ENV_UPDATE", payload: payload(map[string]any{"path": fx.root + "/badenv/.env", "updates": map[string]string{"A": secret}}), status: "FAILED", errContains: "line 2: the quoted value of B is not terminated"},
		{name: "env outside", typ: "ENV_UPDATE", payload: payload(map[string]any{"path": fx.outside + "/.env", "updates": map[string]string{"A": secret}}), status: "FAILED", errContains: "is outside the file roots"},
		{name: "env symlink out", typ: "ENV_UPDATE", payload: payload(map[string]any{"path": fx.root + "/escape/.env", "updates": map[string]string{"A": secret}}), status: "FAILED", errContains: "leaves the file root"},
		// DOCKER_RELOAD
		{name: "reload broken project", typ: "DOCKER_RELOAD", payload: payload(map[string]any{"compose_path": fx.root + "/broken/docker-compose.yml"}), status: "FAILED", errContains: "variable NOT_SET is not set"},
		{name: "reload agent token", typ: "DOCKER_RELOAD", payload: payload(map[string]any{"compose_path": fx.root + "/token/docker-compose.yml"}), status: "FAILED", errContains: "variable AGENT_TOKEN is not set"},
		{name: "reload docker fails", typ: "DOCKER_RELOAD", payload: payload(map[string]any{"compose_path": fx.root + "/failing/docker-compose.yml"}), status: "FAILED", errContains: "docker compose up: exit status 3: pull access denied; no previous revision to roll back to (nothing was removed)"},
		{name: "reload outside", typ: "DOCKER_RELOAD", payload: payload(map[string]any{"compose_path": fx.outside + "/docker-compose.yml"}), status: "FAILED", errContains: "is outside the file roots"},
		{name: "reload unknown service", typ: "DOCKER_RELOAD", payload: payload(map[string]any{"compose_path": fx.root + "/failing/docker-compose.yml", "services": []string{"cache"}}), status: "FAILED", errContains: `service "cache" is not in compose project failing`},
	}
	ids := map[string]string{}
	for _, c := range cases {
		ids[c.name] = o.enqueue(t, c.typ, c.payload)
	}
	var states []orchestratortest.TaskState
	for _, c := range cases {
		st := o.waitFinal(t, ids[c.name])
		states = append(states, st)
		if st.Status != c.status || !strings.Contains(st.Error, c.errContains) {
			t.Errorf("%s: got %s %q, want %s containing %q", c.name, st.Status, st.Error, c.status, c.errContains)
		}
		if c.result != "" && string(st.Result) != c.result {
			t.Errorf("%s: result %s, want %s", c.name, st.Result, c.result)
		}
	}

	// The files are as asked.
	if b, _ := os.ReadFile(fx.root + "/conf/nginx/site.conf"); string(b) != "server {}\n" {
		t.Errorf("site.conf = %q", b)
	}
	if fi, err := os.Stat(fx.root + "/keys/tls.key"); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("tls.key: %v, %v", fi, err)
	}
	env, err := os.ReadFile(app + "/.env")
	if err != nil {
		t.Fatal(err)
	}
	wantEnv := "# app settings\nexport DB_HOST=localhost\nDB_PASS='" + secret + "'\nINJECT=\"x\\nEVIL=1\"\nTAG=1.27\n"
	if diff := cmp.Diff(wantEnv, string(env)); diff != "" {
		t.Errorf(".env (-want +got):\n%s", diff)
	}
	vars, err := dotenv.ParseWithLookup(bytes.NewReader(env), nil)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"DB_HOST": "localhost", "DB_PASS": secret, "INJECT": "x\nEVIL=1", "TAG": "1.27"}, vars); diff != "" {
		t.Errorf("compose-go reads the .env as (-want +got):\n%s", diff)
	}
	if fi, _ := os.Stat(app + "/.env"); fi.Mode().Perm() != 0o640 {
		t.Errorf(".env mode = %v, want 0640 kept", fi.Mode().Perm())
	}

	// Sequential steps: idempotence, then a reload that uses the edited .env.
	st := o.waitFinal(t, o.enqueue(t, "FILE_WRITE", payload(map[string]any{"path": fx.root + "/conf/nginx/site.conf", "content": "server {}\n"})))
	if st.Status != "COMPLETED" || !strings.Contains(string(st.Result), `"bytes_written":0`) || !strings.Contains(string(st.Result), `"changed":false`) {
		t.Errorf("rewrite of the same content: %s %s %s", st.Status, st.Error, st.Result)
	}
	st = o.waitFinal(t, o.enqueue(t, "ENV_UPDATE", payload(map[string]any{"path": app + "/.env", "updates": map[string]string{"DB_PASS": secret}})))
	if st.Status != "COMPLETED" || string(st.Result) != fmt.Sprintf(`{"path":%q,"updated_keys":[],"removed_keys":[],"changed":false}`, app+"/.env") {
		t.Errorf("same env update again: %s %s %s", st.Status, st.Error, st.Result)
	}
	runsBefore := len(fx.docker.Runs(t))
	st = o.waitFinal(t, o.enqueue(t, "DOCKER_RELOAD", payload(map[string]any{"compose_path": app + "/docker-compose.yml", "pull": true, "services": []string{"web"}})))
	states = append(states, st)
	if st.Status != "COMPLETED" {
		t.Fatalf("reload: %s %s %s", st.Status, st.Error, st.Result)
	}
	var res struct {
		Project  string `json:"project"`
		Services []struct {
			Name  string `json:"name"`
			State string `json:"state"`
		} `json:"services"`
		ExitCode int    `json:"exit_code"`
		Stdout   string `json:"stdout"`
	}
	if err := json.Unmarshal(st.Result, &res); err != nil {
		t.Fatal(err)
	}
	if res.Project != "app" || len(res.Services) != 1 || res.Services[0].Name != "web" || res.Services[0].State != "running" || res.ExitCode != 0 || res.Stdout != "pull done\nup done\n" {
		t.Errorf("reload result = %+v", res)
	}
	runs := fx.docker.Runs(t)
	base := []string{"compose", "--ansi", "never", "--progress", "plain", "-f", app + "/docker-compose.yml", "--project-directory", app, "-p", "app"}
	wantRuns := [][]string{append(slices.Clone(base), "pull", "web"), append(slices.Clone(base), "up", "-d", "--remove-orphans", "web")}
	if diff := cmp.Diff(wantRuns, runs[runsBefore:]); diff != "" {
		t.Errorf("docker runs (-want +got):\n%s", diff)
	}
	// Docker ran only for the valid projects: the failing one once, then the app twice.
	if len(runs) != 3 {
		t.Errorf("docker ran %d times, want 3: %q", len(runs), runs)
	}
	if dockerEnv := fx.docker.Env(t); strings.Contains(dockerEnv, "AGENT_") || strings.Contains(dockerEnv, "ORCHESTRATOR_URL") {
		t.Errorf("docker got agent variables:\n%s", dockerEnv)
	}

	// Nothing outside the root changed, and no secret shows anywhere.
	if diff := cmp.Diff(outsideBefore, treeDigest(t, fx.outside)); diff != "" {
		t.Errorf("outside the root changed (-before +after):\n%s", diff)
	}
	for _, st := range states {
		st.Payload = nil // the orchestrator's own copy
		b, _ := json.Marshal(st)
		if bytes.Contains(b, []byte(secret)) {
			t.Errorf("task %s (%s) shows a .env value: %s", st.ID, st.Type, b)
		}
	}
	a.stop()
	if strings.Contains(a.Output(), secret) {
		t.Errorf("the agent's log shows a .env value")
	}
}
