package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
)

// readiness is the answer of /readyz.
type readiness struct {
	Ready             bool       `json:"ready"`
	Reason            string     `json:"reason,omitempty"`
	AgentID           string     `json:"agent_id,omitempty"`
	LastHeartbeat     *time.Time `json:"last_heartbeat,omitempty"`
	HeartbeatInterval string     `json:"heartbeat_interval"`
	Draining          bool       `json:"draining,omitempty"`
	Standby           bool       `json:"standby,omitempty"`
}

// taskSummary is one row of /debug/tasks: never the payload or the result, which may hold
// secrets, nor the parts of the error that quote them.
type taskSummary struct {
	ID          string     `json:"id"`
	Type        string     `json:"type"`
	Phase       string     `json:"phase"`
	Created     time.Time  `json:"created"`
	Started     *time.Time `json:"started,omitempty"`
	Completed   *time.Time `json:"completed,omitempty"`
	Error       string     `json:"error,omitempty"`
	Reported    bool       `json:"reported"`
	ReportError string     `json:"report_error,omitempty"`
}

// debugTasks is the answer of /debug/tasks.
type debugTasks struct {
	AgentID string        `json:"agent_id"`
	Total   int           `json:"total"`
	Tasks   []taskSummary `json:"tasks"`
}

// listenHTTP opens the local listener (AGENT_HTTP_ADDR); nil when it is disabled.
func (a *agent) listenHTTP() (net.Listener, error) {
	if a.cfg.HTTPAddr == "" {
		return nil, nil
	}
	return listen(a.cfg.HTTPAddr, a.cfg.StateDir, a.log), nil
}

// serveHTTP serves /metrics, /healthz, /readyz and /debug/tasks on ln until ctx ends.
func (a *agent) serveHTTP(ctx context.Context, ln net.Listener) {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(agentGatherer(), promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		r := a.readiness(time.Now())
		code := http.StatusOK
		if !r.Ready {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, r)
	})
	mux.HandleFunc("GET /debug/tasks", func(w http.ResponseWriter, r *http.Request) {
		limit := 100
		if v := r.URL.Query().Get("limit"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				http.Error(w, "limit must be a positive integer", http.StatusBadRequest)
				return
			}
			limit = n
		}
		writeJSON(w, http.StatusOK, a.debugTasks(r.Context(), limit))
	})
	srv := &http.Server{Handler: requireToken(a.cfg.HTTPToken, mux), ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 30 * time.Second}
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	if _, waiting := ln.(*retryListener); !waiting {
		a.log.Info("Serving metrics and health", "addr", ln.Addr().String())
	}
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		a.log.Error(err, "HTTP listener stopped")
	}
}

// readiness: tasks can be made durable, registered, and the last heartbeat succeeded within
// two intervals. It never waits for the orchestrator: the sync side's state is read from
// atomics and short locks. In cluster mode a standby replica (another one holds the lease) is
// ready: it is healthy and takes over when the leader stops, and a rolling update must be able
// to count on it.
func (a *agent) readiness(now time.Time) readiness {
	interval := a.syncer.HeartbeatInterval()
	r := readiness{AgentID: a.syncer.AgentID(), HeartbeatInterval: interval.String(), Draining: a.syncer.Draining()}
	if a.standby != nil && a.standby() {
		r.Ready, r.Standby = true, true
		r.Reason = "standby: another replica holds the lease; this one takes over when it stops"
		return r
	}
	registered, regErr := a.syncer.Registration()
	last := a.syncer.LastHeartbeat()
	if !last.IsZero() {
		lt := last.UTC()
		r.LastHeartbeat = &lt
	}
	persistErr := a.durable()
	switch {
	case r.Draining:
		r.Reason = "draining: the agent is shutting down"
	case persistErr != nil:
		r.Reason = "agent cannot persist tasks: " + persistErr.Error()
	case !registered && regErr != "":
		r.Reason = "not registered with the orchestrator yet: " + regErr
	case !registered:
		r.Reason = "not registered with the orchestrator yet"
	case last.IsZero():
		r.Reason = "no heartbeat accepted yet"
	case now.Sub(last) > 2*interval:
		r.Reason = fmt.Sprintf("last accepted heartbeat %s ago (more than 2 x %s)", now.Sub(last).Round(time.Second), interval)
	default:
		r.Ready = true
	}
	return r
}

func (a *agent) debugTasks(ctx context.Context, limit int) debugTasks {
	out := debugTasks{AgentID: a.syncer.AgentID(), Tasks: []taskSummary{}}
	list, err := a.store.List(ctx)
	if err != nil {
		return out
	}
	out.Total = len(list.Items)
	items := list.Items
	slices.SortStableFunc(items, func(x, y agentv1.Task) int {
		return y.CreationTimestamp.Compare(x.CreationTimestamp.Time)
	})
	for i := range items[:min(limit, len(items))] {
		t := &items[i]
		s := taskSummary{
			ID: t.TaskID(), Type: t.Spec.Type, Phase: string(t.Status.Phase),
			Created: t.CreationTimestamp.UTC(), Error: withoutQuoted(t.Status.Error),
			Reported: t.Status.Report.FinalReported, ReportError: t.Status.Report.LastError,
		}
		if st := t.Status.StartTime; st != nil {
			v := st.UTC()
			s.Started = &v
		}
		if ct := t.Status.CompletionTime; ct != nil {
			v := ct.UTC()
			s.Completed = &v
		}
		out.Tasks = append(out.Tasks, s)
	}
	return out
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// withoutQuoted replaces what an error quotes (payload fragments: a command, a path, a key)
// by "...": /debug/tasks and `letsbe-agent status` show the kind of failure, the orchestrator
// gets the whole error.
func withoutQuoted(msg string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(msg, '"')
		if i < 0 {
			b.WriteString(msg)
			return b.String()
		}
		b.WriteString(msg[:i])
		// The closing quote, skipping escaped ones.
		j := i + 1
		for j < len(msg) && msg[j] != '"' {
			if msg[j] == '\\' {
				j++
			}
			j++
		}
		if j >= len(msg) {
			b.WriteString(`"..."`)
			return b.String()
		}
		b.WriteString(`"..."`)
		msg = msg[j+1:]
	}
}
