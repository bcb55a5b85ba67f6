package main_test

import (
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/letsbe/sysadmin-agent/orchestratorsync/orchestratortest"
)

type doctorReport struct {
	Status string `json:"status"`
	Checks []struct {
		Name, Status, Message, Hint string
	} `json:"checks"`
}

// doctor runs `letsbe-agent doctor --json` with env and returns the checks by name and the
// exit code.
func doctor(t *testing.T, env ...string) (map[string]string, doctorReport, int) {
	t.Helper()
	out, code := runCLI(t, append([]string{"AGENT_DOCKER_BINARY=docker", "AGENT_ALLOWED_COMMANDS=true"}, env...), "doctor", "--json")
	var rep doctorReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("doctor --json: %v\n%s", err, out)
	}
	byName := map[string]string{}
	for _, c := range rep.Checks {
		byName[c.Name] = c.Status + " " + c.Message
	}
	return byName, rep, code
}

func stateDir(t *testing.T, mode os.FileMode) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestDoctor(t *testing.T) {
	t.Parallel()
	o := startOrchestrator(t, orchestratortest.Options{IssueAgentTokens: true})
	good := []string{"ORCHESTRATOR_URL=" + o.URL, "AGENT_TOKEN=" + orchestratortest.DefaultEnrollmentToken}

	// The reference orchestrator behind a clock an hour slow.
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Date", time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat))
		o.ServeHTTP(w, r)
	}))
	t.Cleanup(slow.Close)

	// The reference orchestrator over TLS, its certificate trusted through SSL_CERT_FILE.
	tlsSrv := httptest.NewTLSServer(o.Server)
	t.Cleanup(tlsSrv.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsSrv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}

	policyDir := t.TempDir()
	echoOnly := filepath.Join(policyDir, "echo-only.yaml")
	noType := filepath.Join(policyDir, "no-type.yaml")
	badPolicy := filepath.Join(policyDir, "bad.yaml")
	for file, body := range map[string]string{
		echoOnly:  "types: [ECHO]\n",
		noType:    "types: [NOPE]\n",
		badPolicy: "types: [ECHO]\nunknown: 1\n",
	} {
		if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	cases := []struct {
		name     string
		env      []string
		want     map[string]string // check name -> prefix of "STATUS message"
		wantCode int               // -1: 0 or 1 (docker and chromium differ between machines)
	}{
		{
			name: "ready to enroll",
			env:  append(good, "AGENT_STATE_DIR="+stateDir(t, 0o700)),
			want: map[string]string{
				"config": "OK orchestrator " + o.URL, "executors": "OK task types", "state-dir": "OK ",
				"state-dir.free": "OK ", "identity": "OK not registered yet", "journal": "OK no journal yet",
				"orchestrator.tcp": "OK connected", "orchestrator.token": "OK accepted", "orchestrator.clock": "OK within",
				"policy": "OK settings: 9 of 9 task types, 1 SHELL command patterns, sha256 ",
			},
			wantCode: -1,
		},
		{
			name:     "policy file",
			env:      append(good, "AGENT_STATE_DIR="+stateDir(t, 0o700), "AGENT_POLICY="+echoOnly),
			want:     map[string]string{"policy": "OK settings + " + echoOnly + ": 1 of 9 task types, 1 SHELL command patterns, sha256 "},
			wantCode: -1,
		},
		{
			name:     "policy allowing no type",
			env:      append(good, "AGENT_STATE_DIR="+stateDir(t, 0o700), "AGENT_POLICY="+noType),
			want:     map[string]string{"policy": "WARN settings + " + noType + ": no task type may run"},
			wantCode: 1,
		},
		{
			name:     "invalid policy file",
			env:      append(good, "AGENT_STATE_DIR="+stateDir(t, 0o700), "AGENT_POLICY="+badPolicy),
			want:     map[string]string{"policy": "FAIL invalid AGENT_POLICY: "},
			wantCode: 2,
		},
		{
			name:     "token refused",
			env:      []string{"ORCHESTRATOR_URL=" + o.URL, "AGENT_TOKEN=wrong", "AGENT_STATE_DIR=" + stateDir(t, 0o700)},
			want:     map[string]string{"orchestrator.token": "FAIL refused (401)"},
			wantCode: 2,
		},
		{
			name:     "orchestrator unreachable",
			env:      []string{"ORCHESTRATOR_URL=http://127.0.0.1:1", "AGENT_TOKEN=t", "AGENT_STATE_DIR=" + stateDir(t, 0o700)},
			want:     map[string]string{"orchestrator.tcp": "FAIL "},
			wantCode: 2,
		},
		{
			name:     "state directory open to others",
			env:      append(good, "AGENT_STATE_DIR="+stateDir(t, 0o755)),
			want:     map[string]string{"state-dir": "WARN ", "orchestrator.token": "OK accepted"},
			wantCode: 1,
		},
		{
			name:     "clock an hour off",
			env:      []string{"ORCHESTRATOR_URL=" + slow.URL, "AGENT_TOKEN=" + orchestratortest.DefaultEnrollmentToken, "AGENT_STATE_DIR=" + stateDir(t, 0o700)},
			want:     map[string]string{"orchestrator.clock": "FAIL this host's clock is "},
			wantCode: 2,
		},
		{
			name: "TLS",
			env: []string{"ORCHESTRATOR_URL=" + tlsSrv.URL, "AGENT_TOKEN=" + orchestratortest.DefaultEnrollmentToken,
				"AGENT_STATE_DIR=" + stateDir(t, 0o700), "SSL_CERT_FILE=" + caFile},
			want:     map[string]string{"orchestrator.tls": "OK TLS 1.3, certificate for", "orchestrator.token": "OK accepted"},
			wantCode: -1,
		},
		{
			name:     "TLS certificate not trusted",
			env:      []string{"ORCHESTRATOR_URL=" + tlsSrv.URL, "AGENT_TOKEN=t", "AGENT_STATE_DIR=" + stateDir(t, 0o700)},
			want:     map[string]string{"orchestrator.tls": "FAIL "},
			wantCode: 2,
		},
		{
			name:     "missing token",
			env:      []string{"ORCHESTRATOR_URL=" + o.URL, "AGENT_STATE_DIR=" + stateDir(t, 0o700)},
			want:     map[string]string{"config": "FAIL missing AGENT_TOKEN"},
			wantCode: 2,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got, rep, code := doctor(t, c.env...)
			if code != c.wantCode && (c.wantCode != -1 || code > 1) {
				t.Errorf("exit code %d, want %d", code, c.wantCode)
			}
			for name, prefix := range c.want {
				if !strings.HasPrefix(got[name], prefix) {
					t.Errorf("check %s = %q, want %q...", name, got[name], prefix)
				}
			}
			for _, ch := range rep.Checks {
				if ch.Status != "OK" && ch.Hint == "" && ch.Name != "orchestrator.clock" {
					t.Errorf("check %s is %s without a hint", ch.Name, ch.Status)
				}
				if strings.Contains(ch.Message+ch.Hint, orchestratortest.DefaultEnrollmentToken) {
					t.Errorf("check %s shows the token", ch.Name)
				}
			}
			if t.Failed() {
				t.Logf("report: %+v", rep)
			}
		})
	}
	if agents := o.Agents(); len(agents) != 0 {
		t.Errorf("doctor registered agents: %+v", agents)
	}
}

// doctor reads the journal of a stopped agent and leaves the journal of a running one alone.
func TestDoctorJournalOfRunningAndStoppedAgent(t *testing.T) {
	t.Parallel()
	o := startOrchestrator(t, orchestratortest.Options{})
	a := startAgent(t, o, "")
	a.httpAddr() // up: the journal is open
	env := []string{"ORCHESTRATOR_URL=" + o.URL, "AGENT_TOKEN=" + orchestratortest.DefaultEnrollmentToken, "AGENT_STATE_DIR=" + a.stateDir}
	got, _, _ := doctor(t, env...)
	if want := "OK in use by the running agent"; !strings.HasPrefix(got["journal"], want) {
		t.Errorf("journal of a running agent = %q, want %q...", got["journal"], want)
	}
	if want := "OK registered as agent "; !strings.HasPrefix(got["identity"], want) {
		t.Errorf("identity = %q, want %q...", got["identity"], want)
	}
	if code := a.stop(); code != 0 {
		t.Fatalf("agent exit code %d", code)
	}
	got, _, _ = doctor(t, env...)
	if want := "OK readable, 0 tasks held"; !strings.HasPrefix(got["journal"], want) {
		t.Errorf("journal of a stopped agent = %q, want %q...", got["journal"], want)
	}
}

// The text form: one line per check, then a summary.
func TestDoctorText(t *testing.T) {
	t.Parallel()
	out, code := runCLI(t, []string{"ORCHESTRATOR_URL=http://127.0.0.1:1", "AGENT_STATE_DIR=" + stateDir(t, 0o700)}, "doctor", "--token", "t")
	if code != 2 {
		t.Errorf("exit code %d, want 2", code)
	}
	for _, want := range []string{"WARN  config.token", "FAIL  orchestrator.tcp", "— hint: ", " OK, ", " WARN, 1 FAIL"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
