package policy

import (
	"strings"
	"testing"

	"github.com/letsbe/sysadmin-agent/executors"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"k8s.io/apimachinery/pkg/runtime"

	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
)

func TestPatternMatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		pattern string
		argv    []string
		want    bool
	}{
		{"docker compose ps", []string{"docker", "compose", "ps"}, true},
		{"docker compose ps", []string{"/usr/bin/docker", "compose", "ps"}, true},
		{"docker compose ps", []string{"docker", "compose", "ps", "-a"}, false},
		{"docker compose ps", []string{"docker", "run", "--privileged", "alpine"}, false},
		{"docker compose logs *", []string{"docker", "compose", "logs", "web"}, true},
		{"docker compose logs *", []string{"docker", "compose", "logs"}, false},
		{"docker compose logs *", []string{"docker", "compose", "logs", "web", "db"}, false},
		{"systemctl status *", []string{"systemctl", "status", "nginx"}, true},
		{"systemctl status *", []string{"systemctl", "stop", "nginx"}, false},
		{"journalctl -u * --since *", []string{"journalctl", "-u", "nginx", "--since", "1h ago"}, true},
		{"journalctl -u * --since *", []string{"journalctl", "-u", "nginx", "--until", "now"}, false},
		{"df **", []string{"df"}, true},
		{"df **", []string{"df", "-h", "/"}, true},
		{"df", []string{"df", "-h"}, false},
		{"journalctl --since=*", []string{"journalctl", "--since=today"}, true},
		{"journalctl --since=*", []string{"journalctl", "--until=today"}, false},
		{"ls /opt/*/logs", []string{"ls", "/opt/app/logs"}, true},
		{"ls /opt/*/logs", []string{"ls", "/opt/app/other"}, false},
		{"docker compose ps", []string{"dockerx", "compose", "ps"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.pattern+"/"+strings.Join(tt.argv, " "), func(t *testing.T) {
			t.Parallel()
			p, err := ParsePattern(tt.pattern)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Match(tt.argv); got != tt.want {
				t.Errorf("Match = %v, want %v", got, tt.want)
			}
		})
	}
	for _, bad := range []string{"", "  ", "/bin/ls", "*", "ls ** -l", "ls a**"} {
		if _, err := ParsePattern(bad); err == nil {
			t.Errorf("ParsePattern(%q) accepted", bad)
		}
	}
}

func TestParseFileStrict(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, doc, want string }{
		{"unknown key", "typs: [SHELL]", `unknown field "typs"`},
		{"unknown nested key", "shell: {command: [ls]}", `unknown field "command"`},
		{"duplicate key", "types: [SHELL]\ntypes: [ECHO]", "already set"},
		{"bad pattern", "shell: {commands: ['/bin/sh -c *']}", "bare program name"},
		{"relative root", "files: {roots: [opt]}", "not an absolute path"},
		{"unknown by_type", "files: {by_type: {SHELL: [/opt]}}", "not a file task type"},
		{"lower-case type", "types: [shell]", "not a task type"},
		{"unknown compose key", "compose: {allow_privilegd: false}", `unknown field "allow_privilegd"`},
		{"relative bind root", "compose: {bind_roots: [srv]}", "compose.bind_roots"},
		{"bad capability", "compose: {allowed_capabilities: ['NET_ADMIN, SYS_ADMIN']}", "not a capability name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseFile([]byte(tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseFile = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

var settings = Settings{
	Types:               []string{"DOCKER_RELOAD", "ECHO", "ENV_UPDATE", "FILE_WRITE", "PLAYWRIGHT", "SHELL"},
	AllowedCommands:     []string{"df", "docker", "journalctl", "systemctl"},
	FileRoots:           []string{"/opt/letsbe"},
	BrowserAllowedHosts: nil,
}

const doc = `
types: [SHELL, FILE_WRITE, ENV_UPDATE, PLAYWRIGHT, GIT_PULL]
shell:
  commands:
    - docker compose ps
    - docker compose logs *
    - systemctl status *
    - journalctl -u * --since *
    - df **
    - git status
files:
  roots: [/opt/letsbe/app, /srv]
  by_type:
    ENV_UPDATE: [/opt/letsbe/app/env]
browser:
  allowed_hosts: [127.0.0.1, "*.example.com"]
`

func TestNewNarrowerWins(t *testing.T) {
	t.Parallel()
	f, err := ParseFile([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(settings, f, "policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := &Policy{
		// GIT_PULL is not a type the agent has; ECHO and DOCKER_RELOAD are not in the file.
		Types: []string{"ENV_UPDATE", "FILE_WRITE", "PLAYWRIGHT", "SHELL"},
		// git is not in AGENT_ALLOWED_COMMANDS.
		Shell: []string{"df **", "docker compose logs *", "docker compose ps", "journalctl -u * --since *", "systemctl status *"},
		// /srv is outside AGENT_FILE_ROOTS.
		FileRoots:    map[string][]string{"ENV_UPDATE": {"/opt/letsbe/app/env"}, "FILE_WRITE": {"/opt/letsbe/app"}},
		BrowserHosts: []string{"*.example.com", "127.0.0.1"},
		// No compose section: the settings' (bind roots default to the file roots).
		Compose: executors.ComposePolicy{AllowedCapabilities: []string{}, BindRoots: []string{"/opt/letsbe"}},
		Source:  "settings + policy.yaml",
	}
	if diff := cmp.Diff(want, p, cmpopts.IgnoreUnexported(Policy{})); diff != "" {
		t.Errorf("policy (-want +got):\n%s", diff)
	}

	// Settings alone: the shorthands.
	p, err = New(settings, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"df **", "docker **", "journalctl **", "systemctl **"}, p.Shell); diff != "" {
		t.Errorf("shell from AGENT_ALLOWED_COMMANDS (-want +got):\n%s", diff)
	}
	if p.SHA256() == "" || len(p.SHA256()) != 64 {
		t.Errorf("SHA256 %q", p.SHA256())
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	f, err := ParseFile([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(settings, f, "policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, typ, payload string
		want               string // "" allowed
	}{
		{"compose ps", "SHELL", `{"cmd":"docker compose ps"}`, ""},
		{"compose logs of a service", "SHELL", `{"cmd":"docker compose logs web"}`, ""},
		{"docker run privileged", "SHELL", `{"cmd":"docker run --privileged -v /:/host alpine"}`, `policy.shell: command "docker run --privileged -v /:/host alpine" matches no allowed pattern`},
		{"compose down", "SHELL", `{"cmd":"docker compose down"}`, "policy.shell"},
		{"quoted args parsed as the executor does", "SHELL", `{"cmd":"journalctl -u nginx --since '1 hour ago'"}`, ""},
		{"systemctl stop", "SHELL", `{"cmd":"systemctl stop nginx"}`, "policy.shell"},
		{"git not in the settings", "SHELL", `{"cmd":"git status"}`, "policy.shell"},
		{"echo not in the file", "ECHO", `{}`, "policy.types: task type \"ECHO\" is not allowed"},
		{"file inside", "FILE_WRITE", `{"path":"/opt/letsbe/app/nginx.conf","content":""}`, ""},
		{"file outside the file's roots", "FILE_WRITE", `{"path":"/opt/letsbe/other/x","content":""}`, "policy.files: FILE_WRITE path \"/opt/letsbe/other/x\" is outside its roots"},
		{"file traversal", "FILE_WRITE", `{"path":"/opt/letsbe/app/../other/x","content":""}`, "policy.files"},
		{"env by type", "ENV_UPDATE", `{"path":"/opt/letsbe/app/.env","updates":{}}`, "policy.files: ENV_UPDATE path"},
		{"env by type inside", "ENV_UPDATE", `{"path":"/opt/letsbe/app/env/.env","updates":{}}`, ""},
		{"browser allowed", "PLAYWRIGHT", `{"flow":{"steps":[{"action":"goto","url":"https://mail.example.com/"}]}}`, ""},
		{"browser refused", "PLAYWRIGHT", `{"flow":{"steps":[{"action":"click","selector":"a"},{"action":"goto","url":"https://evil.test/"}]}}`, `policy.browser: step 2 (goto) host "evil.test" is not allowed`},
		{"unreadable payload left to the executor", "SHELL", `[1]`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			task := &agentv1.Task{Spec: agentv1.TaskSpec{Type: tt.typ, Payload: &runtime.RawExtension{Raw: []byte(tt.payload)}}}
			err := p.Check(task)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Check = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestBrowserHostsNarrowToNone(t *testing.T) {
	t.Parallel()
	f, err := ParseFile([]byte("browser: {allowed_hosts: [evil.test]}"))
	if err != nil {
		t.Fatal(err)
	}
	s := settings
	s.BrowserAllowedHosts = []string{"127.0.0.1"}
	p, err := New(s, f, "f")
	if err != nil {
		t.Fatal(err)
	}
	if p.BrowserHosts == nil || len(p.BrowserHosts) != 0 {
		t.Fatalf("hosts %#v, want none (empty, not nil)", p.BrowserHosts)
	}
	task := &agentv1.Task{Spec: agentv1.TaskSpec{Type: "PLAYWRIGHT", Payload: &runtime.RawExtension{Raw: []byte(`{"flow":{"steps":[{"action":"goto","url":"http://127.0.0.1/"}]}}`)}}}
	if err := p.Check(task); err == nil {
		t.Error("goto allowed with no host allowed")
	}
}

// TestComposeRulesNarrow: the policy's compose rules only take away from the AGENT_COMPOSE_*
// settings; a sensitive host path inside a broad bind root setting stays refused unless the
// setting lists it exactly; the rules change the policy's hash.
func TestComposeRulesNarrow(t *testing.T) {
	t.Parallel()
	set := settings
	set.Compose = executors.ComposePolicy{
		AllowPrivileged: true, AllowDevices: true,
		AllowedCapabilities: []string{"cap_net_bind_service", "NET_ADMIN"},
		BindRoots:           []string{"/"},
	}
	f, err := ParseFile([]byte(`
compose:
  allow_privileged: false
  allow_host_namespaces: true
  allowed_capabilities: [NET_BIND_SERVICE, SYS_ADMIN]
  bind_roots: [/opt/letsbe/app, /var/run/docker.sock]
`))
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(set, f, "policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := executors.ComposePolicy{
		AllowPrivileged:     false, // the rule takes it away
		AllowHostNamespaces: false, // the rule cannot give what the setting does not
		AllowDevices:        true,  // no rule: the setting
		AllowedCapabilities: []string{"NET_BIND_SERVICE"},
		BindRoots:           []string{"/opt/letsbe/app"}, // docker.sock: not listed by the setting
		PolicyFile:          "policy.yaml",
	}
	if diff := cmp.Diff(want, p.Compose); diff != "" {
		t.Errorf("compose policy (-want +got):\n%s", diff)
	}
	alone, err := New(set, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if alone.SHA256() == p.SHA256() {
		t.Error("the compose rules do not change the policy's hash")
	}
	if got := alone.Summary()["compose"].(composeCanonical); !got.AllowPrivileged || len(got.BindRoots) != 1 || got.BindRoots[0] != "/" {
		t.Errorf("summary of the settings alone: %+v", got)
	}
}
