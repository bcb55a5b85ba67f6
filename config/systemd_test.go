package config_test

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-systemd/v22/unit"
	"github.com/google/go-cmp/cmp"

	"github.com/letsbe/sysadmin-agent/config"
)

// unitOptions maps "Section.Name" to the values of a unit file, in order.
type unitOptions map[string][]string

func parseUnit(t *testing.T, b []byte) unitOptions {
	t.Helper()
	opts, err := unit.DeserializeOptions(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("parse unit: %v", err)
	}
	u := unitOptions{}
	for _, o := range opts {
		u[o.Section+"."+o.Name] = append(u[o.Section+"."+o.Name], o.Value)
	}
	return u
}

func (u unitOptions) last(key string) string {
	if v := u[key]; len(v) > 0 {
		return v[len(v)-1]
	}
	return ""
}

func TestSystemdUnit(t *testing.T) {
	t.Parallel()
	u := parseUnit(t, readRepoFile(t, "config/systemd/letsbe-agent.service"))

	// What the agent and the other files rely on: it speaks sd_notify (READY, WATCHDOG) from
	// its main process, kills its task groups itself on the drain, finds its settings where
	// install.sh and the packages put them, and runs the binary where they install it.
	for key, want := range map[string]string{
		"Service.ExecStart":       "/usr/local/bin/letsbe-agent run",
		"Service.Type":            "notify",
		"Service.NotifyAccess":    "main",
		"Service.KillMode":        "mixed",
		"Service.EnvironmentFile": "/etc/letsbe-agent/agent.env",
	} {
		if got := u.last(key); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
	// Hardening that would break tasks (see the unit's comments).
	for _, key := range []string{"Service.User", "Service.DynamicUser", "Service.ProtectHome", "Service.ProtectProc",
		"Service.PrivateDevices", "Service.MemoryDenyWriteExecute", "Service.UMask", "Service.PrivateNetwork"} {
		if v, ok := u[key]; ok {
			t.Errorf("%s = %q is set; it breaks docker, ps or file tasks", key, v)
		}
	}
	if v := u.last("Service.CapabilityBoundingSet"); !strings.HasPrefix(v, "~") {
		t.Errorf("CapabilityBoundingSet = %q, want a deny-list (~...)", v)
	}
	if v := u.last("Service.SystemCallFilter"); !strings.HasPrefix(v, "~") {
		t.Errorf("SystemCallFilter = %q, want a deny-list (~...)", v)
	}

	// Stopping outlasts the agent's drain: 30s grace + 5s cancel + 10s flush.
	stop, err := time.ParseDuration(u.last("Service.TimeoutStopSec"))
	if err != nil || stop < 60*time.Second {
		t.Errorf("TimeoutStopSec = %q (%v), want at least 60s", u.last("Service.TimeoutStopSec"), err)
	}

	// The watchdog outlasts the agent's own stall limit with the default heartbeat (2 x 30s +
	// 15s), so only a stuck agent is restarted: the agent stops pinging, then systemd waits
	// WatchdogSec more.
	if wd, err := time.ParseDuration(u.last("Service.WatchdogSec")); err != nil || wd < 30*time.Second {
		t.Errorf("WatchdogSec = %q (%v), want at least 30s", u.last("Service.WatchdogSec"), err)
	}

	// The default state directory is the one StateDirectory= creates.
	env := map[string]string{}
	var names []string
	for _, kv := range u["Service.Environment"] {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
		names = append(names, k)
	}
	checkAgentEnv(t, "letsbe-agent.service", names, []string{"AGENT_STATE_DIR"})
	if got := env["AGENT_STATE_DIR"]; got != "/var/lib/"+u.last("Service.StateDirectory") {
		t.Errorf("AGENT_STATE_DIR = %q, want /var/lib/%s", got, u.last("Service.StateDirectory"))
	}
}

// parseEnvFile reads NAME=value lines and, separately, the names of commented-out
// "#NAME=value" lines.
func parseEnvFile(t *testing.T, b []byte) (set map[string]string, commented []string) {
	t.Helper()
	set = map[string]string{}
	name := regexp.MustCompile(`^#?([A-Z][A-Z0-9_]*)=(.*)$`)
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		m := name.FindStringSubmatch(line)
		switch {
		case m != nil && strings.HasPrefix(line, "#"):
			commented = append(commented, m[1])
		case m != nil:
			set[m[1]] = m[2]
		case line != "" && !strings.HasPrefix(line, "#"):
			t.Errorf("env file line %q is neither NAME=value nor a comment", line)
		}
	}
	return set, commented
}

func TestEnvFileTemplate(t *testing.T) {
	t.Parallel()
	set, commented := parseEnvFile(t, readRepoFile(t, "config/systemd/agent.env"))
	var names []string
	for k, v := range set {
		names = append(names, k)
		if v != "" {
			t.Errorf("template sets %s=%q; a template leaves values to the operator", k, v)
		}
	}
	checkAgentEnv(t, "agent.env", names, []string{"ORCHESTRATOR_URL", "AGENT_TOKEN"})
	checkAgentEnv(t, "agent.env (commented)", commented, nil)

	// Filled in as the README says, the agent accepts it.
	set["ORCHESTRATOR_URL"], set["AGENT_TOKEN"] = "https://orchestrator.example.test/api/v1", "enroll-123"
	if _, err := config.Load(nil, lookupIn(set), config.ModeRun, nil); err != nil {
		t.Errorf("the agent refuses the filled-in template: %v", err)
	}
}

// TestInstallScript runs hack/install.sh into a staging root, twice, and checks the files,
// their modes, that an existing environment file is kept, and (when systemd-analyze is
// installed) that systemd accepts the installed unit.
func TestInstallScript(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash:", err)
	}
	self, err := os.Executable() // a real executable to install: this test binary
	if err != nil {
		t.Fatal(err)
	}
	dest := t.TempDir()
	install := func(extraEnv ...string) string {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), "bash", filepath.Join(repoRoot, "hack", "install.sh"))
		cmd.Env = append(os.Environ(), append([]string{"DESTDIR=" + dest, "BINARY=" + self}, extraEnv...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("install.sh: %v\n%s", err, out)
		}
		return string(out)
	}
	install()

	want := map[string]os.FileMode{
		"usr/local/bin/letsbe-agent":              0o755,
		"etc/systemd/system/letsbe-agent.service": 0o644,
		"etc/letsbe-agent":                        os.ModeDir | 0o700,
		"etc/letsbe-agent/agent.env":              0o600,
	}
	got := map[string]os.FileMode{}
	err = filepath.WalkDir(dest, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dest, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		if _, ok := want[rel]; ok || !d.IsDir() {
			got[rel] = info.Mode()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("installed files and modes (-want +got):\n%s", diff)
	}
	for rel, src := range map[string]string{
		"usr/local/bin/letsbe-agent":              self,
		"etc/systemd/system/letsbe-agent.service": filepath.Join(repoRoot, "config/systemd/letsbe-agent.service"),
		"etc/letsbe-agent/agent.env":              filepath.Join(repoRoot, "config/systemd/agent.env"),
	} {
		if !sameContent(t, filepath.Join(dest, rel), src) {
			t.Errorf("%s differs from %s", rel, src)
		}
	}

	// A second run keeps the operator's environment file, content and mode.
	envFile := filepath.Join(dest, "etc/letsbe-agent/agent.env")
	if err := os.WriteFile(envFile, []byte("ORCHESTRATOR_URL=https://o.example.test\nAGENT_TOKEN=keep-me\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := install(); !strings.Contains(out, "Kept ") {
		t.Errorf("second install did not report keeping agent.env:\n%s", out)
	}
	if b, _ := os.ReadFile(envFile); !strings.Contains(string(b), "keep-me") {
		t.Errorf("second install overwrote agent.env: %q", b)
	}

	// Another PREFIX moves the binary, and ExecStart with it.
	install("PREFIX=/opt/letsbe-agent")
	unitFile, err := os.ReadFile(filepath.Join(dest, "etc/systemd/system/letsbe-agent.service"))
	if err != nil {
		t.Fatal(err)
	}
	if got := parseUnit(t, unitFile).last("Service.ExecStart"); got != "/opt/letsbe-agent/bin/letsbe-agent run" {
		t.Errorf("ExecStart with PREFIX=/opt/letsbe-agent = %q", got)
	}
	if _, err := os.Stat(filepath.Join(dest, "opt/letsbe-agent/bin/letsbe-agent")); err != nil {
		t.Error(err)
	}

	verifyUnit(t, unitFile, dest)
}

// verifyUnit runs systemd-analyze verify on the unit installed under dest, with ExecStart
// pointing into dest (verify checks that the program exists).
func verifyUnit(t *testing.T, unitFile []byte, dest string) {
	t.Helper()
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Logf("Skipping systemd-analyze verify: %v (apt-get install systemd provides it)", err)
		return
	}
	dir := t.TempDir()
	staged := strings.ReplaceAll(string(unitFile), "ExecStart=/", "ExecStart="+dest+"/")
	path := filepath.Join(dir, "letsbe-agent.service")
	if err := os.WriteFile(path, []byte(staged), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(t.Context(), analyze, "verify", path).CombinedOutput()
	// verify exits 0 on unknown keys and bad values, which it only prints: any output fails.
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

func sameContent(t *testing.T, a, b string) bool {
	t.Helper()
	x, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(x, y)
}
