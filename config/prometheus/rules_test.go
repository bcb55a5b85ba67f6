package prometheus_test

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// promtool runs promtool with args in this directory. Without promtool the test skips loudly,
// except in CI (CI set), which must have it (.ci/run installs Debian's prometheus package).
func promtool(t *testing.T, args ...string) {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool is not installed; CI must have it (apt-get install prometheus)")
		}
		t.Skip("!!!!!!!! promtool is not installed (apt-get install prometheus): the alert rules are NOT tested")
	}
	out, err := exec.CommandContext(t.Context(), path, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("promtool %s:\n%s", strings.Join(args, " "), out)
}

func TestRulesAreValid(t *testing.T) {
	t.Parallel()
	promtool(t, "check", "rules", "alerts.yaml")
}

func TestRulesUnitTests(t *testing.T) {
	t.Parallel()
	promtool(t, "test", "rules", "alerts_test.yaml")
}

type rule struct {
	Alert       string            `json:"alert"`
	Expr        string            `json:"expr"`
	For         string            `json:"for"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

func loadRules(t *testing.T) []rule {
	t.Helper()
	b, err := os.ReadFile("alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []rule `json:"rules"`
		} `json:"groups"`
	}
	if err := yaml.UnmarshalStrict(b, &f); err != nil {
		t.Fatal(err)
	}
	var rules []rule
	for _, g := range f.Groups {
		rules = append(rules, g.Rules...)
	}
	return rules
}

// TestEveryAlertIsExplainedAndTested: a severity, a summary, a description, a runbook that is
// a heading of docs/operating.md, and at least one promtool test case.
func TestEveryAlertIsExplainedAndTested(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../../docs/operating.md")
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	for line := range strings.SplitSeq(string(doc), "\n") {
		if title, ok := strings.CutPrefix(strings.TrimLeft(line, "#"), " "); ok && strings.HasPrefix(line, "#") {
			anchors[anchor(title)] = true
		}
	}
	tests, err := os.ReadFile("alerts_test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rules := loadRules(t)
	if len(rules) == 0 {
		t.Fatal("no rules in alerts.yaml")
	}
	for _, r := range rules {
		if r.Alert == "" {
			t.Errorf("a rule without an alert name (recording rules do not belong here): %q", r.Expr)
			continue
		}
		switch r.Labels["severity"] {
		case "critical", "warning", "info":
		default:
			t.Errorf("%s: severity %q, want critical, warning or info", r.Alert, r.Labels["severity"])
		}
		for _, k := range []string{"summary", "description", "runbook"} {
			if r.Annotations[k] == "" {
				t.Errorf("%s: no %s annotation", r.Alert, k)
			}
		}
		if rb := r.Annotations["runbook"]; rb != "" {
			a, ok := strings.CutPrefix(rb, "docs/operating.md#")
			if !ok || !anchors[a] {
				t.Errorf("%s: runbook %q is not a heading of docs/operating.md", r.Alert, rb)
			}
		}
		if !strings.Contains(string(tests), "alertname: "+r.Alert+"\n") {
			t.Errorf("%s: no test case in alerts_test.yaml", r.Alert)
		}
	}
}

var notAnchor = regexp.MustCompile(`[^a-z0-9 _-]`)

// anchor is the fragment GitHub gives a Markdown heading.
func anchor(title string) string {
	s := notAnchor.ReplaceAllString(strings.ToLower(strings.TrimSpace(title)), "")
	return strings.ReplaceAll(s, " ", "-")
}
