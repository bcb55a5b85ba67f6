package main_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// metricToken is a metric name of the agent's registry inside a PromQL expression.
var metricToken = regexp.MustCompile(`\b(letsbe_agent_|workqueue_|controller_runtime_|leader_election_|process_|go_)[a-zA-Z0-9_]*`)

// monitoringExprs returns the expressions of the alert rules and of the Grafana dashboard, by
// where they are.
func monitoringExprs(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	b, err := os.ReadFile(filepath.Join("..", "..", "config", "prometheus", "alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert, Expr string
			}
		}
	}
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatal(err)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			out["alert "+r.Alert] = r.Expr
		}
	}
	b, err = os.ReadFile(filepath.Join("..", "..", "config", "grafana", "letsbe-agent.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ RefID, Expr string }
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	for _, p := range dash.Panels {
		for _, q := range p.Targets {
			out["dashboard panel "+p.Title+" "+q.RefID] = q.Expr
		}
	}
	return out
}

// checkMonitoringMetrics checks that every metric the alert rules and the dashboard use is one
// the agent serves on /metrics (metrics, a scrape of a running agent that has run, failed and
// missed the orchestrator). Histograms are served as name_bucket, name_sum and name_count.
func checkMonitoringMetrics(t *testing.T, metrics string) {
	t.Helper()
	served := map[string]bool{}
	for line := range strings.Lines(metrics) {
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, typ, _ := strings.Cut(strings.TrimSpace(rest), " ")
			served[name] = true
			if typ == "histogram" || typ == "summary" {
				for _, s := range []string{"_bucket", "_sum", "_count"} {
					served[name+s] = true
				}
			}
		}
	}
	used := map[string]bool{}
	for where, expr := range monitoringExprs(t) {
		names := metricToken.FindAllString(expr, -1)
		if len(names) == 0 && !strings.HasPrefix(expr, "up{") { // up: Prometheus's own, per scrape
			t.Errorf("%s: %q uses none of the agent's metrics", where, expr)
		}
		for _, name := range names {
			used[name] = true
			if !served[name] {
				t.Errorf("%s uses %s, which the agent does not serve on /metrics", where, name)
			}
		}
	}
	// The metrics an operator alerts on are all used.
	for _, name := range []string{"letsbe_agent_registered", "letsbe_agent_last_heartbeat_timestamp_seconds",
		"letsbe_agent_outbox_reports", "letsbe_agent_journal_healthy", "letsbe_agent_journal_write_errors_total",
		"letsbe_agent_journal_write_seconds_bucket", "letsbe_agent_task_failures_total", "letsbe_agent_reports_abandoned_total"} {
		if !used[name] {
			t.Errorf("neither an alert nor the dashboard uses %s", name)
		}
	}
	if t.Failed() {
		names := make([]string, 0, len(served))
		for n := range served {
			names = append(names, n)
		}
		slices.Sort(names)
		t.Logf("served: %s", strings.Join(names, " "))
	}
}
