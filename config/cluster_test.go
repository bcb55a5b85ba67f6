package config

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func lookup(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// clusterSettings are the cluster-mode fields of a Config, for comparison.
type clusterSettings struct {
	Store, Namespace                                        string
	LeaderElection                                          bool
	LeaseDuration, LeaseRenewDeadline, LeaseRetryPeriod, TR time.Duration
}

func clusterOf(c *Config) clusterSettings {
	return clusterSettings{c.Store, c.Namespace, c.LeaderElection, c.LeaseDuration, c.LeaseRenewDeadline, c.LeaseRetryPeriod, c.TaskRetention}
}

func TestClusterSettings(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat(podNamespaceFile); err == nil {
		t.Skipf("running in a pod (%s exists): the default namespace is the pod's", podNamespaceFile)
	}
	base := map[string]string{"ORCHESTRATOR_URL": "http://x", "AGENT_TOKEN": "t"}
	cases := []struct {
		name string
		env  map[string]string
		args []string
		want clusterSettings
	}{
		{"defaults", nil, nil, clusterSettings{"memory", "letsbe-system", true, 15 * time.Second, 10 * time.Second, 2 * time.Second, time.Hour}},
		{"kubernetes from the environment", map[string]string{
			"AGENT_STORE": "Kubernetes", "AGENT_NAMESPACE": "tenant-7", "AGENT_LEADER_ELECTION": "false",
			"AGENT_LEASE_DURATION": "4s", "AGENT_LEASE_RENEW_DEADLINE": "3s", "AGENT_LEASE_RETRY_PERIOD": "500ms",
			"AGENT_TASK_RETENTION": "10m",
		}, nil, clusterSettings{"kubernetes", "tenant-7", false, 4 * time.Second, 3 * time.Second, 500 * time.Millisecond, 10 * time.Minute}},
		{"flags", nil, []string{"--store", "kubernetes", "--namespace", "ops", "--lease-duration", "3s", "--lease-renew-deadline", "2s", "--lease-retry-period", "1s"},
			clusterSettings{"kubernetes", "ops", true, 3 * time.Second, 2 * time.Second, time.Second, time.Hour}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{}
			for k, v := range base {
				env[k] = v
			}
			for k, v := range c.env {
				env[k] = v
			}
			cfg, err := Load(c.args, lookup(env), ModeRun, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(c.want, clusterOf(cfg)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestClusterSettingsInvalid(t *testing.T) {
	t.Parallel()
	cases := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"AGENT_STORE": "etcd"}, "AGENT_STORE"},
		{map[string]string{"AGENT_NAMESPACE": "Not_A_Namespace"}, "AGENT_NAMESPACE"},
		{map[string]string{"AGENT_LEADER_ELECTION": "maybe"}, "AGENT_LEADER_ELECTION"},
		{map[string]string{"AGENT_LEASE_DURATION": "100ms"}, "AGENT_LEASE_DURATION"},
		{map[string]string{"AGENT_TASK_RETENTION": "1ms"}, "AGENT_TASK_RETENTION"},
		{map[string]string{"AGENT_STORE": "kubernetes", "AGENT_LEASE_DURATION": "10s"}, "AGENT_LEASE_DURATION"},
		{map[string]string{"AGENT_STORE": "kubernetes", "AGENT_LEASE_RENEW_DEADLINE": "2s"}, "AGENT_LEASE_RENEW_DEADLINE"},
	}
	for _, c := range cases {
		env := map[string]string{"ORCHESTRATOR_URL": "http://x", "AGENT_TOKEN": "t"}
		for k, v := range c.env {
			env[k] = v
		}
		_, err := Load(nil, lookup(env), ModeRun, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: error %v, want one line naming %s", c.env, err, c.want)
		}
	}
	// The lease timings only matter with leader election in cluster mode.
	env := map[string]string{"ORCHESTRATOR_URL": "http://x", "AGENT_TOKEN": "t", "AGENT_LEASE_DURATION": "10s"}
	if _, err := Load(nil, lookup(env), ModeRun, io.Discard); err != nil {
		t.Errorf("memory store with odd lease timings: %v", err)
	}
	env["AGENT_STORE"], env["AGENT_LEADER_ELECTION"] = "kubernetes", "false"
	if _, err := Load(nil, lookup(env), ModeRun, io.Discard); err != nil {
		t.Errorf("kubernetes store without leader election, odd lease timings: %v", err)
	}
}

func TestDefaultNamespaceFromThePod(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "namespace")
	if got := defaultNamespace(file); got != DefaultNamespace {
		t.Errorf("without the file: %q, want %q", got, DefaultNamespace)
	}
	if err := os.WriteFile(file, []byte("tenant-42\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := defaultNamespace(file); got != "tenant-42" {
		t.Errorf("with the file: %q, want tenant-42", got)
	}
}
