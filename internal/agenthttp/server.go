package agenthttp

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

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
)

// Readiness is the answer of /readyz.
type Readiness struct {
	Ready             bool       `json:"ready"`
	Reason            string     `json:"reason,omitempty"`
	AgentID           string     `json:"agent_id,omitempty"`
	LastHeartbeat     *time.Time `json:"last_heartbeat,omitempty"`
	HeartbeatInterval string     `json:"heartbeat_interval"`
	Draining          bool       `json:"draining,omitempty"`
	Standby           bool       `json:"standby,omitempty"`
}

// TaskSummary is one row of /debug/tasks: never the payload or the result, which may hold
// secrets, nor the parts of the error that quote them.
type TaskSummary struct {
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

// DebugTasks is the answer of /debug/tasks.
type DebugTasks struct {
	AgentID string        `json:"agent_id"`
	Total   int           `json:"total"`
	Tasks   []TaskSummary `json:"tasks"`
}

// Sources are what the endpoints read; each is called per request and must not wait for the
// orchestrator (atomics and short locks only).
type Sources struct {
	AgentID           func() string
	HeartbeatInterval func() time.Duration
	Draining          func() bool
	// Standby, in cluster mode, reports whether another replica leads; nil: never.
	Standby func() bool
	// Registration reports whether the agent is registered and, if not, the last error.
	Registration  func() (bool, string)
	LastHeartbeat func() time.Time
	// Durable is nil when Tasks can be made durable now, else why not.
	Durable func() error
	// Tasks lists the Tasks the agent holds.
	Tasks func(ctx context.Context) ([]agentv1.Task, error)
	// Gatherer serves /metrics.
	Gatherer prometheus.Gatherer
	// Token, when set, is required as a bearer token on every path but /healthz.
	Token string
}

// Handler serves /metrics, /healthz, /readyz and /debug/tasks from src.
func Handler(src Sources) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(src.Gatherer, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		r := Ready(src, time.Now())
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
		writeJSON(w, http.StatusOK, debugTasks(r.Context(), src, limit))
	})
	return RequireToken(src.Token, mux)
}

// Serve serves h on ln until ctx ends (then shuts down within 2 s).
func Serve(ctx context.Context, ln net.Listener, h http.Handler, log logr.Logger) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 30 * time.Second}
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	if _, waiting := ln.(*retryListener); !waiting {
		log.Info("Serving metrics and health", "addr", ln.Addr().String())
	}
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error(err, "HTTP listener stopped")
	}
}

// Ready is the readiness at now: tasks can be made durable, registered, and the last heartbeat succeeded within
// two intervals. It never waits for the orchestrator: the sync side's state is read from
// atomics and short locks. In cluster mode a standby replica (another one holds the lease) is
// ready: it is healthy and takes over when the leader stops, and a rolling update must be able
// to count on it.
func Ready(src Sources, now time.Time) Readiness {
	interval := src.HeartbeatInterval()
	r := Readiness{AgentID: src.AgentID(), HeartbeatInterval: interval.String(), Draining: src.Draining()}
	if src.Standby != nil && src.Standby() {
		r.Ready, r.Standby = true, true
		r.Reason = "standby: another replica holds the lease; this one takes over when it stops"
		return r
	}
	registered, regErr := src.Registration()
	last := src.LastHeartbeat()
	if !last.IsZero() {
		lt := last.UTC()
		r.LastHeartbeat = &lt
	}
	var persistErr error
	if src.Durable != nil {
		persistErr = src.Durable()
	}
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

func debugTasks(ctx context.Context, src Sources, limit int) DebugTasks {
	out := DebugTasks{AgentID: src.AgentID(), Tasks: []TaskSummary{}}
	items, err := src.Tasks(ctx)
	if err != nil {
		return out
	}
	out.Total = len(items)
	slices.SortStableFunc(items, func(x, y agentv1.Task) int {
		return y.CreationTimestamp.Compare(x.CreationTimestamp.Time)
	})
	for i := range items[:min(limit, len(items))] {
		t := &items[i]
		s := TaskSummary{
			ID: t.TaskID(), Type: t.Spec.Type, Phase: string(t.Status.Phase),
			Created: t.CreationTimestamp.UTC(), Error: WithoutQuoted(t.Status.Error),
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

// WithoutQuoted replaces what an error quotes (payload fragments: a command, a path, a key)
// by "...": /debug/tasks and `letsbe-agent status` show the kind of failure, the orchestrator
// gets the whole error.
func WithoutQuoted(msg string) string {
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
