package grafana_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// dashboard is the part of Grafana's dashboard model (schemaVersion 39) the test checks.
type dashboard struct {
	Title         string         `json:"title"`
	UID           string         `json:"uid"`
	SchemaVersion int            `json:"schemaVersion"`
	Time          map[string]any `json:"time"`
	Templating    struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	GridPos struct {
		X, Y, W, H int
	} `json:"gridPos"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
}

func load(t *testing.T) (dashboard, []byte) {
	t.Helper()
	b, err := os.ReadFile("letsbe-agent.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("letsbe-agent.json is no dashboard: %v", err)
	}
	return d, b
}

// panelTypes are Grafana's built-in panel types the dashboard may use (no plugin to install).
var panelTypes = []string{"row", "stat", "timeseries", "table", "gauge", "bargauge", "text"}

func TestDashboardModel(t *testing.T) {
	t.Parallel()
	d, raw := load(t)
	var generic map[string]any
	if err := json.Unmarshal(raw, &generic); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"title", "uid", "schemaVersion", "panels", "templating", "time", "refresh"} {
		if _, ok := generic[k]; !ok {
			t.Errorf("no %q", k)
		}
	}
	if _, ok := generic["id"]; ok {
		t.Error(`an "id": a dashboard to import has none (Grafana assigns it)`)
	}
	if d.Title == "" || d.UID == "" || len(d.UID) > 40 {
		t.Errorf("title %q, uid %q (want both, uid at most 40 characters)", d.Title, d.UID)
	}
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion %d: want 36 or later (data source references by uid)", d.SchemaVersion)
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
	}
	if vars["datasource"] != "datasource" || vars["instance"] != "query" {
		t.Errorf("templating: %v, want a datasource variable \"datasource\" and a query variable \"instance\"", vars)
	}

	ids := map[int]bool{}
	occupied := map[[2]int]int{} // grid cell -> panel id
	queries := 0
	for _, p := range d.Panels {
		name := fmt.Sprintf("panel %d %q", p.ID, p.Title)
		if p.ID <= 0 || ids[p.ID] {
			t.Errorf("%s: id missing or not unique", name)
		}
		ids[p.ID] = true
		if !slices.Contains(panelTypes, p.Type) {
			t.Errorf("%s: type %q is not a built-in panel", name, p.Type)
		}
		if p.Title == "" {
			t.Errorf("panel %d: no title", p.ID)
		}
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.Y < 0 || g.X+g.W > 24 {
			t.Errorf("%s: gridPos %+v outside the 24-column grid", name, g)
		}
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				if other, ok := occupied[[2]int{x, y}]; ok {
					t.Errorf("%s overlaps panel %d at (%d,%d)", name, other, x, y)
				}
				occupied[[2]int{x, y}] = p.ID
			}
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.Type != "prometheus" || p.Datasource.UID != "${datasource}" {
			t.Errorf("%s: datasource %+v, want the $datasource variable", name, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("%s: no query", name)
		}
		refs := map[string]bool{}
		for _, q := range p.Targets {
			if q.RefID == "" || refs[q.RefID] {
				t.Errorf("%s: refId %q missing or repeated", name, q.RefID)
			}
			refs[q.RefID] = true
			if strings.TrimSpace(q.Expr) == "" {
				t.Errorf("%s: empty expr", name)
			}
			if !strings.Contains(q.Expr, `instance=~"$instance"`) {
				t.Errorf("%s: %q does not filter by $instance", name, q.Expr)
			}
			queries++
		}
	}
	if queries == 0 {
		t.Fatal("no queries")
	}
}

// Exprs returns every query of the dashboard with Grafana's variables replaced by values, as
// Prometheus would get it.
func exprs(d dashboard) map[string]string {
	out := map[string]string{}
	r := strings.NewReplacer("$__rate_interval", "5m", "$instance", ".*")
	for _, p := range d.Panels {
		for _, q := range p.Targets {
			out[fmt.Sprintf("panel %d %q %s", p.ID, p.Title, q.RefID)] = r.Replace(q.Expr)
		}
	}
	return out
}

var ruleName = regexp.MustCompile(`[^a-zA-Z0-9_]`)

// TestDashboardQueriesParse has promtool parse every query (as recording rules). Without
// promtool the test skips loudly, except in CI, which must have it.
func TestDashboardQueriesParse(t *testing.T) {
	t.Parallel()
	path, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool is not installed; CI must have it (apt-get install prometheus)")
		}
		t.Skip("!!!!!!!! promtool is not installed (apt-get install prometheus): the dashboard's queries are NOT checked")
	}
	d, _ := load(t)
	type rule struct {
		Record string `json:"record"`
		Expr   string `json:"expr"`
	}
	var rules []rule
	for where, e := range exprs(d) {
		rules = append(rules, rule{Record: "dashboard:" + ruleName.ReplaceAllString(where, "_"), Expr: e})
	}
	slices.SortFunc(rules, func(a, b rule) int { return strings.Compare(a.Record, b.Record) })
	b, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "dashboard-rules.yaml")
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(t.Context(), path, "check", "rules", file).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules (the dashboard's queries): %v\n%s", err, out)
	}
}
