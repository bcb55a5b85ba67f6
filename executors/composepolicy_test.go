package executors

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestComposePolicy: what the default policy refuses, by service and field, and what the
// settings allow.
func TestComposePolicy(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	root := filepath.Join(base, "root")
	if err := os.MkdirAll(filepath.Join(root, "app", "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc", filepath.Join(root, "app", "etc-link")); err != nil {
		t.Fatal(err)
	}
	svc := func(body string) string { return "services:\n  web:\n    image: nginx\n" + body }
	tests := []struct {
		name    string
		compose string
		policy  ComposePolicy
		wantErr string // empty: allowed
	}{
		{name: "plain", compose: svc("    volumes: [./data:/data, cache:/cache]\nvolumes:\n  cache: {}\n")},
		{name: "privileged", compose: svc("    privileged: true\n"), wantErr: "service web: privileged: true is refused (AGENT_COMPOSE_ALLOW_PRIVILEGED)"},
		{name: "privileged allowed", compose: svc("    privileged: true\n"), policy: ComposePolicy{AllowPrivileged: true}},
		{name: "seccomp unconfined", compose: svc("    security_opt: [\"seccomp:unconfined\"]\n"), wantErr: `service web: security_opt "seccomp:unconfined" is refused`},
		{name: "pid host", compose: svc("    pid: host\n"), wantErr: "service web: pid: host is refused (AGENT_COMPOSE_ALLOW_HOST_NAMESPACES)"},
		{name: "ipc host", compose: svc("    ipc: host\n"), wantErr: "service web: ipc: host is refused"},
		{name: "network host", compose: svc("    network_mode: host\n"), wantErr: "service web: network_mode: host is refused"},
		{name: "network of another container", compose: svc("    network_mode: container:other\n"), wantErr: "service web: network_mode: container:other is refused"},
		{name: "host namespaces allowed", compose: svc("    network_mode: host\n    pid: host\n"), policy: ComposePolicy{AllowHostNamespaces: true}},
		{name: "cap_add", compose: svc("    cap_add: [SYS_ADMIN]\n"), wantErr: "service web: cap_add SYS_ADMIN is refused (AGENT_COMPOSE_ALLOWED_CAPABILITIES: none)"},
		{name: "cap_add allowed", compose: svc("    cap_add: [NET_BIND_SERVICE]\n"), policy: ComposePolicy{AllowedCapabilities: []string{"cap_net_bind_service"}}},
		{name: "cap_add ALL", compose: svc("    cap_add: [ALL]\n"), policy: ComposePolicy{AllowedCapabilities: []string{"NET_ADMIN"}}, wantErr: "cap_add ALL is refused"},
		{name: "devices", compose: svc("    devices: [\"/dev/sda:/dev/sda\"]\n"), wantErr: "service web: devices are refused (AGENT_COMPOSE_ALLOW_DEVICES)"},
		{name: "devices allowed", compose: svc("    devices: [\"/dev/fuse:/dev/fuse\"]\n"), policy: ComposePolicy{AllowDevices: true}},
		{name: "bind /", compose: svc("    volumes: [\"/:/host\"]\n"), wantErr: "service web: volumes: bind mount of /: outside the bind roots"},
		{name: "bind docker.sock", compose: svc("    volumes: [\"/var/run/docker.sock:/var/run/docker.sock\"]\n"), wantErr: "bind mount of /var/run/docker.sock: outside the bind roots"},
		{name: "bind outside", compose: svc("    volumes: [\"" + base + ":/x\"]\n"), wantErr: "bind mount of " + base + ": outside the bind roots"},
		{name: "bind through a symlink out", compose: svc("    volumes: [\"./etc-link:/x\"]\n"), wantErr: "resolves to /etc, outside the bind roots"},
		{name: "bind root / still refuses /etc", compose: svc("    volumes: [\"/etc:/x\"]\n"), policy: ComposePolicy{BindRoots: []string{"/"}}, wantErr: "/etc is a sensitive host path, refused unless AGENT_COMPOSE_BIND_ROOTS lists it exactly"},
		{name: "bind root / refuses docker.sock", compose: svc("    volumes: [\"/var/run/docker.sock:/s\"]\n"), policy: ComposePolicy{BindRoots: []string{"/"}}, wantErr: "sensitive host path"},
		{name: "docker.sock listed exactly", compose: svc("    volumes: [\"/var/run/docker.sock:/s\"]\n"), policy: ComposePolicy{BindRoots: []string{"/var/run/docker.sock"}}},
		{name: "a local volume bound to /etc", compose: svc("    volumes: [v:/x]\nvolumes:\n  v:\n    driver_opts: {type: none, o: bind, device: /etc}\n"), wantErr: "volume v: driver_opts.device /etc: outside the bind roots"},
		{name: "a secret file outside", compose: svc("    secrets: [s]\nsecrets:\n  s:\n    file: /etc/shadow\n"), wantErr: "secret s: file /etc/shadow: outside the bind roots"},
		{name: "a config file outside", compose: svc("    configs: [c]\nconfigs:\n  c:\n    file: /etc/passwd\n"), wantErr: "config c: file /etc/passwd: outside the bind roots"},
		{name: "every refusal at once", compose: svc("    privileged: true\n    pid: host\n"), wantErr: "service web: privileged: true is refused (AGENT_COMPOSE_ALLOW_PRIVILEGED)\nservice web: pid: host is refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(root, "app")
			// The compose file lives in the root; each case its own name.
			path := filepath.Join(dir, strings.NewReplacer(" ", "_", "/", "_").Replace(tt.name)+".yaml")
			mustWrite(t, path, tt.compose, 0o644)
			lp, err := loadComposeProject(t.Context(), &fileRoots{roots: []string{root}}, DefaultMaxFileBytes, path, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = tt.policy.withDefaults([]string{root}).Check(lp.project)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Check() = %v, want allowed", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Check() = %v, want an error containing %q", err, tt.wantErr)
			case err != nil && !IsPermanent(err):
				t.Errorf("Check() = %v, want a permanent refusal", err)
			}
		})
	}
}
