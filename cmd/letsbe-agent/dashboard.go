package main

import (
	_ "embed"
	"encoding/json"
	"html/template"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/letsbe/sysadmin-agent/orchestratorsync/orchestratortest"
)

//go:embed dashboard.html
var dashboardHTML string

var dashboardTemplate = template.Must(template.New("dashboard").Parse(dashboardHTML))

// Limits of a task's summary in the list: the list stays small however big results are (a
// PLAYWRIGHT result carries base64 screenshots).
const (
	summaryMaxString = 120 // longer strings are cut
	summaryMaxBytes  = 240 // the whole summary
)

// dashboardSummary is one row of the task list.
type dashboardSummary struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Status   string `json:"status"`
	Created  string `json:"created"`
	Finished string `json:"finished,omitempty"`
	Summary  string `json:"summary"`
}

// dashboard serves the development dashboard of the embedded orchestrator: the page (the
// task list rendered on the server), GET /dashboard/tasks?q=&limit= (the newest tasks as
// summaries, filtered, with the counts, for the page's refresh) and POST /dashboard/tasks/{id}/cancel (through the next heartbeat's
// cancel_task_ids). A task's detail view reads GET /dev/tasks/{id}. fileRoot is where the
// sample payloads of file tasks point.
func dashboard(orch *orchestratortest.Server, types []string, fileRoot string) http.Handler {
	samples := samplePayloads(types, fileRoot)
	var cache summaryCache
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_ = dashboardTemplate.Execute(w, struct {
			Types   []string
			First   string
			Samples map[string]string
			List    taskList
		}{types, samples[firstType(types)], samples, cache.list(orch, "", 0)})
	})
	mux.HandleFunc("GET /dashboard/tasks", func(w http.ResponseWriter, r *http.Request) {
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(cache.list(orch, r.URL.Query().Get("q"), limit))
	})
	mux.HandleFunc("POST /dashboard/tasks/{task}/cancel", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("task")
		if _, ok := orch.Task(id); !ok {
			http.Error(w, "unknown task", http.StatusNotFound)
			return
		}
		orch.Cancel(id)
		w.WriteHeader(http.StatusAccepted)
	})
	return mux
}

// firstType is the type the form starts with: ECHO when there is one.
func firstType(types []string) string {
	if slices.Contains(types, "ECHO") || len(types) == 0 {
		return "ECHO"
	}
	return types[0]
}

// samplePayloads returns a sample payload (JSON text) for every type.
func samplePayloads(types []string, fileRoot string) map[string]string {
	if fileRoot == "" {
		fileRoot = "/opt/letsbe"
	}
	app := path.Join(fileRoot, "app")
	known := map[string]any{
		"ECHO":             map[string]any{"message": "hello"},
		"SHELL":            map[string]any{"cmd": "df -h /"},
		"FILE_WRITE":       map[string]any{"path": path.Join(app, "hello.txt"), "content": "hello\n", "mode": "0644"},
		"ENV_UPDATE":       map[string]any{"path": path.Join(app, ".env"), "updates": map[string]string{"GREETING": "hello"}},
		"DOCKER_RELOAD":    map[string]any{"compose_path": path.Join(app, "docker-compose.yml"), "pull": false},
		"COMPOSE_STATUS":   map[string]any{"compose_path": path.Join(app, "docker-compose.yml")},
		"COMPOSE_LOGS":     map[string]any{"compose_path": path.Join(app, "docker-compose.yml"), "tail": 200},
		"COMPOSE_ROLLBACK": map[string]any{"compose_path": path.Join(app, "docker-compose.yml")},
		"PLAYWRIGHT": map[string]any{"flow": map[string]any{"steps": []map[string]any{
			{"action": "goto", "url": "https://example.com/"},
			{"action": "expect_text", "selector": "h1", "text": "Example"},
			{"action": "screenshot", "name": "home"},
		}}},
	}
	out := make(map[string]string, len(types))
	for _, typ := range append(slices.Clone(types), "ECHO") {
		v, ok := known[typ]
		if !ok {
			v = map[string]any{}
		}
		b, _ := json.MarshalIndent(v, "", "  ")
		out[typ] = string(b)
	}
	return out
}

// Limits of the task list: the newest listDefault tasks (or those matching the filter) are
// shown, listMax at most on request, so that the page stays usable with thousands of tasks.
const (
	listDefault = 200
	listMax     = 1000
)

// taskList is the list as the page shows it: the tasks shown, how many match the filter and
// how many there are.
type taskList struct {
	Total   int                `json:"total"`
	Matched int                `json:"matched"`
	Tasks   []dashboardSummary `json:"tasks"`
}

// summaryCache keeps each task's summary until its state changes, so that refreshing the list
// every second does not decode every result again.
type summaryCache struct {
	mu sync.Mutex
	m  map[string]cachedSummary
}

type cachedSummary struct {
	status  string
	reports int
	s       dashboardSummary
}

// list returns the newest limit tasks (listDefault when limit ≤ 0, at most listMax) whose id,
// type, status or summary contains query (case-insensitive; all when empty).
func (c *summaryCache) list(orch *orchestratortest.Server, query string, limit int) taskList {
	if limit <= 0 {
		limit = listDefault
	}
	limit = min(limit, listMax)
	query = strings.ToLower(strings.TrimSpace(query))
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string]cachedSummary)
	}
	out := taskList{Tasks: []dashboardSummary{}}
	orch.EachTask(func(t *orchestratortest.TaskState) bool {
		out.Total++
		e, ok := c.m[t.ID]
		if !ok || e.status != t.Status || e.reports != t.Reports {
			e = cachedSummary{status: t.Status, reports: t.Reports, s: summary(t)}
			c.m[t.ID] = e
		}
		if query != "" && !matches(e.s, query) {
			return true
		}
		out.Matched++
		if len(out.Tasks) < limit {
			out.Tasks = append(out.Tasks, e.s)
		}
		return true
	})
	return out
}

// matches reports whether query (lower case) is in one of the row's columns.
func matches(s dashboardSummary, query string) bool {
	for _, v := range []string{s.ID, s.Type, s.Status, s.Summary} {
		if strings.Contains(strings.ToLower(v), query) {
			return true
		}
	}
	return false
}

// summary is one task's row.
func summary(t *orchestratortest.TaskState) dashboardSummary {
	s := dashboardSummary{ID: t.ID, Type: t.Type, Status: t.Status, Created: t.CreatedAt.Local().Format(time.TimeOnly), Summary: summarize(t)}
	if !t.FinalAt.IsZero() {
		s.Finished = t.FinalAt.Local().Format(time.TimeOnly)
	}
	return s
}

// summarize is a task's error, or its result with long strings cut, within summaryMaxBytes.
func summarize(t *orchestratortest.TaskState) string {
	out := t.Error
	if out == "" && len(t.Result) > 0 {
		var v any
		if json.Unmarshal(t.Result, &v) == nil {
			b, _ := json.Marshal(shorten(v))
			out = string(b)
		}
	}
	return cut(out, summaryMaxBytes)
}

// shorten cuts every long string of a decoded JSON value.
func shorten(v any) any {
	switch v := v.(type) {
	case string:
		if len(v) > summaryMaxString {
			return cut(v, summaryMaxString)
		}
	case []any:
		for i := range v {
			v[i] = shorten(v[i])
		}
	case map[string]any:
		for k := range v {
			v[k] = shorten(v[k])
		}
	}
	return v
}

// cut shortens s to at most n bytes (and an ellipsis), on a rune boundary.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return strings.TrimRight(s[:n], " ") + "…"
}
