package config_test

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/letsbe/sysadmin-agent/config"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load(nil, env(map[string]string{"ORCHESTRATOR_URL": "https://orch.example.com/api/v1/", "AGENT_TOKEN": "tok"}), config.ModeRun, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.OrchestratorURL != "https://orch.example.com/api/v1" || cfg.StateDir != "/var/lib/letsbe-agent" ||
		cfg.HeartbeatInterval != 30*time.Second || cfg.PollInterval != 5*time.Second || cfg.MaxConcurrentTasks != 4 ||
		cfg.TaskTimeout != time.Hour || cfg.LogFormat != "json" || cfg.LogLevel != "info" || cfg.HTTPAddr != "127.0.0.1:9464" ||
		cfg.ShutdownGrace != 30*time.Second {
		t.Errorf("defaults: %+v", cfg)
	}
	if diff := cmp.Diff([]string{"/opt/letsbe"}, cfg.FileRoots); diff != "" {
		t.Errorf("file roots (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(config.DefaultAllowedCommands, cfg.AllowedCommands); diff != "" {
		t.Errorf("allowed commands (-want +got):\n%s", diff)
	}
}

func TestPrecedenceFlagsEnvFileDefaults(t *testing.T) {
	t.Parallel()
	file := writeFile(t, `
orchestrator-url: http://from-file
token: file-token
max-concurrent-tasks: 7
poll-interval: 2s
heartbeat-interval: 10s
allowed-commands: [ls, df]
labels: {region: eu-1, tier: gold}
`)
	e := env(map[string]string{"AGENT_POLL_INTERVAL": "3s", "AGENT_MAX_CONCURRENT_TASKS": "8", "AGENT_TOKEN": "env-token"})
	cfg, err := config.Load([]string{"--config", file, "--max-concurrent-tasks", "9"}, e, config.ModeRun, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	type got struct {
		URL, Token string
		Max        int
		Poll, HB   time.Duration
		Cmds       []string
		Labels     map[string]string
	}
	want := got{"http://from-file", "env-token", 9, 3 * time.Second, 10 * time.Second, []string{"df", "ls"}, map[string]string{"region": "eu-1", "tier": "gold"}}
	if diff := cmp.Diff(want, got{cfg.OrchestratorURL, cfg.Token, cfg.MaxConcurrentTasks, cfg.PollInterval, cfg.HeartbeatInterval, cfg.AllowedCommands, cfg.Labels}); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestInvalidSettingsNameTheSetting(t *testing.T) {
	t.Parallel()
	base := map[string]string{"ORCHESTRATOR_URL": "http://x", "AGENT_TOKEN": "super-secret"}
	cases := []struct {
		env  map[string]string
		args []string
		want string
	}{
		{map[string]string{"AGENT_MAX_CONCURRENT_TASKS": "0"}, nil, "AGENT_MAX_CONCURRENT_TASKS"},
		{map[string]string{"AGENT_TASK_TIMEOUT": "forever"}, nil, "AGENT_TASK_TIMEOUT"},
		{map[string]string{"AGENT_LOG_LEVEL": "loud"}, nil, "AGENT_LOG_LEVEL"},
		{map[string]string{"AGENT_FILE_ROOTS": "relative/path"}, nil, "AGENT_FILE_ROOTS"},
		{map[string]string{"AGENT_LABELS": "novalue"}, nil, "AGENT_LABELS"},
		{map[string]string{"AGENT_HTTP_ADDR": "nocolon"}, nil, "AGENT_HTTP_ADDR"},
		{map[string]string{"AGENT_STATE_DIR": "rel"}, nil, "AGENT_STATE_DIR"},
		{map[string]string{"AGENT_ALLOWED_COMMANDS": "/bin/ls"}, nil, "AGENT_ALLOWED_COMMANDS"},
		{map[string]string{"ORCHESTRATOR_URL": "not a url"}, nil, "ORCHESTRATOR_URL"},
		{nil, []string{"--poll-interval", "1"}, "--poll-interval"},
		{nil, []string{"--config", "/nonexistent.yaml"}, "--config"},
	}
	for _, c := range cases {
		e := map[string]string{}
		for k, v := range base {
			e[k] = v
		}
		for k, v := range c.env {
			e[k] = v
		}
		_, err := config.Load(c.args, env(e), config.ModeRun, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v %v: error %v, want one naming %s", c.env, c.args, err, c.want)
			continue
		}
		if strings.Contains(err.Error(), "super-secret") || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: error %q echoes the token or spans lines", c.env, err)
		}
	}
	// Required in run mode, optional in dev mode.
	if _, err := config.Load(nil, env(nil), config.ModeRun, io.Discard); err == nil || !strings.Contains(err.Error(), "ORCHESTRATOR_URL") {
		t.Errorf("missing URL: %v", err)
	}
	if _, err := config.Load(nil, env(nil), config.ModeDev, io.Discard); err != nil {
		t.Errorf("dev mode: %v", err)
	}
}

func TestConfigFileErrors(t *testing.T) {
	t.Parallel()
	for body, want := range map[string]string{
		"orchestrator_url: http://x\n": `unknown key "orchestrator_url"`,
		"poll-interval: [1, [2]]\n":    "nested",
		"poll-interval: 5\n":           "AGENT_POLL_INTERVAL",
		"::: not yaml":                 "--config",
		"labels: {a: {b: c}}\n":        "nested",
	} {
		_, err := config.Load([]string{"--config", writeFile(t, body)}, env(map[string]string{"ORCHESTRATOR_URL": "http://x", "AGENT_TOKEN": "t"}), config.ModeRun, io.Discard)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want it to mention %s", body, err, want)
		}
	}
}

func TestEmptyHTTPAddrDisables(t *testing.T) {
	t.Parallel()
	e := env(map[string]string{"ORCHESTRATOR_URL": "http://x", "AGENT_TOKEN": "t", "AGENT_HTTP_ADDR": "", "AGENT_POLL_INTERVAL": ""})
	cfg, err := config.Load(nil, e, config.ModeRun, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTPAddr != "" || cfg.PollInterval != 5*time.Second {
		t.Errorf("HTTPAddr %q (want empty: disabled), PollInterval %s (empty means default)", cfg.HTTPAddr, cfg.PollInterval)
	}
}

func TestOrchestratorURLNeverEchoesCredentials(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{
		"https://user:hunter2@orch.example.com/",
		"https://orch.example.com/api?token=hunter2",
		"ftp://orch.example.com/?hunter2",
		"https://orch.example.com/#hunter2",
		"://hunter2@",
	} {
		_, err := config.Load(nil, env(map[string]string{"ORCHESTRATOR_URL": raw, "AGENT_TOKEN": "t"}), config.ModeRun, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "ORCHESTRATOR_URL") {
			t.Errorf("ORCHESTRATOR_URL %q: err %v, want a refusal naming the setting", raw, err)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("ORCHESTRATOR_URL %q: the error shows the secret: %v", raw, err)
		}
	}
}

func TestHTTPAddrRemoteNeedsTokenOrFlag(t *testing.T) {
	t.Parallel()
	base := map[string]string{"ORCHESTRATOR_URL": "http://x", "AGENT_TOKEN": "t"}
	tests := []struct {
		env  map[string]string
		want string // "" ok
	}{
		{map[string]string{"AGENT_HTTP_ADDR": "0.0.0.0:9464"}, "not a loopback address"},
		{map[string]string{"AGENT_HTTP_ADDR": ":9464"}, "not a loopback address"},
		{map[string]string{"AGENT_HTTP_ADDR": "0.0.0.0:9464", "AGENT_HTTP_ALLOW_REMOTE": "true"}, ""},
		{map[string]string{"AGENT_HTTP_ADDR": "0.0.0.0:9464", "AGENT_HTTP_TOKEN": "tok"}, ""},
		{map[string]string{"AGENT_HTTP_ADDR": "127.0.0.1:9464"}, ""},
		{map[string]string{"AGENT_HTTP_ADDR": "[::1]:9464"}, ""},
		{map[string]string{"AGENT_HTTP_TOKEN": "has space"}, "AGENT_HTTP_TOKEN"},
	}
	for _, tt := range tests {
		e := map[string]string{}
		for k, v := range base {
			e[k] = v
		}
		for k, v := range tt.env {
			e[k] = v
		}
		_, err := config.Load(nil, env(e), config.ModeRun, io.Discard)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%v: %v", tt.env, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%v: err %v, want %q", tt.env, err, tt.want)
		case err != nil && strings.Contains(err.Error(), "has space"):
			t.Errorf("the error shows the token: %v", err)
		}
	}
}
