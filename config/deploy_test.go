package config_test

// Tests of the deployment files: Dockerfile, docker-compose.yml, the systemd unit, the
// Kubernetes manifests and hack/install.sh. Each file is parsed by the library (or tool) that
// will consume it and checked against the agent's real settings, so that a renamed setting or
// a broken manifest fails here rather than on a tenant server.

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/letsbe/sysadmin-agent/config"
)

// repoRoot is the repository root, relative to this package's directory.
const repoRoot = ".."

func readRepoFile(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// agentEnvNames returns the environment variables the agent reads, taken from its own --help
// so that the list can never drift from the settings table.
func agentEnvNames(t *testing.T) []string {
	t.Helper()
	var help bytes.Buffer
	_, err := config.Load([]string{"--help"}, func(string) (string, bool) { return "", false }, config.ModeDev, &help)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("config.Load(--help) = %v, want flag.ErrHelp", err)
	}
	var names []string
	for _, m := range regexp.MustCompile(`\(env ([A-Z0-9_]+)`).FindAllStringSubmatch(help.String(), -1) {
		names = append(names, m[1])
	}
	slices.Sort(names)
	names = slices.Compact(names)
	for _, want := range []string{"ORCHESTRATOR_URL", "AGENT_TOKEN", "AGENT_STATE_DIR"} {
		if !slices.Contains(names, want) {
			t.Fatalf("the agent's --help names no %s (found %v)", want, names)
		}
	}
	return names
}

// checkAgentEnv fails for every variable in env that looks like an agent setting
// (AGENT_*, ORCHESTRATOR_*) but is not one, and for every name in required that is missing.
func checkAgentEnv(t *testing.T, where string, env, required []string) {
	t.Helper()
	known := agentEnvNames(t)
	for _, name := range env {
		if (strings.HasPrefix(name, "AGENT_") || strings.HasPrefix(name, "ORCHESTRATOR_")) && !slices.Contains(known, name) {
			t.Errorf("%s sets %s, which is not an agent setting (known: %s)", where, name, strings.Join(known, " "))
		}
	}
	for _, name := range required {
		if !slices.Contains(env, name) {
			t.Errorf("%s does not set %s", where, name)
		}
	}
}
