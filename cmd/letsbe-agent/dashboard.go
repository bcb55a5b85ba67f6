package main

import (
	_ "embed"
	"encoding/json"
	"html/template"
	"net/http"
	"slices"
	"time"

	"github.com/letsbe/sysadmin-agent/orchestratorsync/orchestratortest"
)

//go:embed dashboard.html
var dashboardHTML string

var dashboardTemplate = template.Must(template.New("dashboard").Parse(dashboardHTML))

type dashboardRow struct {
	ID, Type, Status, Created, Finished, Output string
}

// dashboard serves the development dashboard: the tasks of the embedded orchestrator,
// rendered on the server, refreshed and enqueued by a little JavaScript through /dev/tasks.
func dashboard(orch *orchestratortest.Server, types []string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		tasks := orch.Tasks()
		slices.Reverse(tasks)
		rows := make([]dashboardRow, 0, len(tasks))
		for _, t := range tasks {
			out := t.Error
			if out == "" && len(t.Result) > 0 {
				var v any
				if json.Unmarshal(t.Result, &v) == nil {
					b, _ := json.Marshal(v)
					out = string(b)
				}
			}
			r := dashboardRow{ID: t.ID, Type: t.Type, Status: t.Status, Created: t.CreatedAt.Local().Format(time.TimeOnly), Output: out}
			if !t.FinalAt.IsZero() {
				r.Finished = t.FinalAt.Local().Format(time.TimeOnly)
			}
			rows = append(rows, r)
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_ = dashboardTemplate.Execute(w, struct {
			Types []string
			Tasks []dashboardRow
		}{types, rows})
	})
}
