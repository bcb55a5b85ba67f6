package orchestratortest

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/letsbe/sysadmin-agent/orchestratorsync"
)

var emptyObject = []byte("{}")

func (s *Server) handleRegister(w http.ResponseWriter, r *http.Request) {
	s.n.register.Add(1)
	if !s.enrollmentOK(bearer(r)) {
		s.fail(w, http.StatusUnauthorized, "invalid enrollment token")
		return
	}
	var req orchestratorsync.RegisterRequest
	if !s.decodeBody(w, r, &req) {
		return
	}
	if strings.TrimSpace(req.Hostname) == "" {
		s.fail(w, http.StatusBadRequest, "hostname is required")
		return
	}
	s.mu.Lock()
	id := req.AgentID
	for id == "" || id != req.AgentID && s.agents[id] != nil {
		s.agentSeq++
		id = "a-" + strconv.Itoa(s.agentSeq)
	}
	a := s.agents[id]
	if a == nil {
		a = &agent{st: AgentState{ID: id}}
		s.agents[id] = a
		s.agentOrder = append(s.agentOrder, a)
	}
	a.known = true
	a.st.Registrations++
	a.st.Hostname, a.st.Version, a.st.OS, a.st.Arch = req.Hostname, req.Version, req.OS, req.Arch
	a.st.Capabilities, a.st.Labels = req.Capabilities, req.Labels
	resp := registerResponse{
		HeartbeatIntervalSeconds: max(s.opts.HeartbeatIntervalSeconds, 0),
		PollIntervalSeconds:      max(s.opts.PollIntervalSeconds, 0),
	}
	if s.opts.LegacyRegisterID {
		resp.ID = id
	} else {
		resp.AgentID = id
	}
	if s.opts.IssueAgentTokens {
		if a.token != "" {
			delete(s.tokens, a.token)
		}
		a.token = newToken()
		s.tokens[a.token] = id
		resp.Token = a.token
	}
	s.mu.Unlock()
	s.log.V(1).Info("Agent registered", "agent", id, "hostname", req.Hostname, "reused", req.AgentID != "")
	s.writeJSON(w, http.StatusCreated, resp)
}

type registerResponse struct {
	AgentID                  string  `json:"agent_id,omitempty"`
	ID                       string  `json:"id,omitempty"`
	Token                    string  `json:"token,omitempty"`
	HeartbeatIntervalSeconds float64 `json:"heartbeat_interval_seconds,omitempty"`
	PollIntervalSeconds      float64 `json:"poll_interval_seconds,omitempty"`
}

func (s *Server) handleHeartbeat(w http.ResponseWriter, r *http.Request) {
	s.n.heartbeat.Add(1)
	id := r.PathValue("agent")
	if !s.agentAuth(bearer(r), id) {
		s.fail(w, http.StatusUnauthorized, "invalid token")
		return
	}
	var req orchestratorsync.HeartbeatRequest
	if !s.decodeBody(w, r, &req) {
		return
	}
	if req.Status != orchestratorsync.StatusOnline && req.Status != orchestratorsync.StatusDraining {
		s.fail(w, http.StatusBadRequest, "status must be ONLINE or DRAINING")
		return
	}
	s.mu.Lock()
	a := s.agents[id]
	if a == nil || !a.known {
		s.mu.Unlock()
		s.fail(w, http.StatusNotFound, "unknown agent")
		return
	}
	a.st.Heartbeats++
	a.st.LastHeartbeat = time.Now().UTC()
	a.st.LastStatus = req.Status
	a.st.LastHeartbeatBody = req
	var resp orchestratorsync.HeartbeatResponse
	for _, tid := range a.cancels {
		if t := s.tasks[tid]; t != nil && !t.st.IsFinal() && t.st.AgentID == id {
			resp.CancelTaskIDs = append(resp.CancelTaskIDs, tid)
		}
	}
	a.cancels = nil
	s.mu.Unlock()
	if len(resp.CancelTaskIDs) == 0 {
		s.writeRaw(w, http.StatusOK, emptyObject)
		return
	}
	s.log.V(1).Info("Cancellation delivered", "agent", id, "tasks", resp.CancelTaskIDs)
	s.writeJSON(w, http.StatusOK, resp)
}

func (s *Server) handleNext(w http.ResponseWriter, r *http.Request) {
	s.n.next.Add(1)
	q := r.URL.Query()
	agentID := q.Get("agent_id")
	if agentID == "" {
		s.fail(w, http.StatusBadRequest, "agent_id is required")
		return
	}
	var wait time.Duration
	if ws, ok := q["wait"]; ok {
		n, err := strconv.Atoi(ws[0])
		if err != nil || n < 1 || n > 60 {
			s.fail(w, http.StatusBadRequest, "wait must be an integer from 1 to 60")
			return
		}
		wait = time.Duration(n) * time.Second
	}
	if s.opts.IgnoreWait {
		wait = 0
	}
	if !s.agentAuth(bearer(r), agentID) {
		s.fail(w, http.StatusUnauthorized, "invalid token")
		return
	}

	s.mu.Lock()
	if a := s.agents[agentID]; a == nil || !a.known {
		s.mu.Unlock()
		s.fail(w, http.StatusNotFound, "unknown agent")
		return
	}
	if t := s.popLocked(agentID); t != nil {
		s.mu.Unlock()
		s.sendTask(w, t, agentID)
		return
	}
	if wait == 0 {
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
		return
	}
	wt := &waiter{ch: make(chan struct{}, 1)}
	wt.el = s.waiters.PushBack(wt)
	s.mu.Unlock()

	s.n.waiting.Add(1)
	defer s.n.waiting.Add(-1)
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case <-wt.ch:
			s.mu.Lock()
			if t := s.popLocked(agentID); t != nil {
				s.mu.Unlock()
				s.sendTask(w, t, agentID)
				return
			}
			wt.el = s.waiters.PushFront(wt) // someone else took it: keep our place
			s.mu.Unlock()
		case <-timer.C:
			s.mu.Lock()
			t := s.popLocked(agentID)
			s.removeWaiterLocked(wt)
			s.mu.Unlock()
			if t != nil {
				s.sendTask(w, t, agentID)
				return
			}
			w.WriteHeader(http.StatusNoContent)
			return
		case <-r.Context().Done():
			s.mu.Lock()
			s.removeWaiterLocked(wt)
			s.mu.Unlock()
			return
		}
	}
}

// removeWaiterLocked unparks wt; if it had already been signalled, the signal goes on to the
// next parked poll so that a pending task is never left with sleeping pollers.
func (s *Server) removeWaiterLocked(wt *waiter) {
	if wt.el != nil {
		s.waiters.Remove(wt.el)
		wt.el = nil
		return
	}
	if s.hasPendingLocked() {
		s.wakeOneLocked()
	}
}

func (s *Server) sendTask(w http.ResponseWriter, t *task, agentID string) {
	s.n.assigned.Add(1)
	s.log.V(1).Info("Task assigned", "task", t.st.ID, "agent", agentID)
	s.writeRaw(w, http.StatusOK, t.wire) // wire is immutable after Enqueue
}

func (s *Server) handleReport(w http.ResponseWriter, r *http.Request) {
	s.n.report.Add(1)
	id := r.PathValue("task")
	tok := bearer(r)
	if !s.opts.IssueAgentTokens && !s.enrollmentOK(tok) {
		s.fail(w, http.StatusUnauthorized, "invalid token")
		return
	}
	var rep orchestratorsync.Report
	if !s.decodeBody(w, r, &rep) {
		return
	}
	if rep.AgentID == "" {
		s.fail(w, http.StatusBadRequest, "agent_id is required")
		return
	}
	if rep.Status != StatusRunning && !rep.IsFinal() {
		s.fail(w, http.StatusBadRequest, "status must be RUNNING, COMPLETED or FAILED")
		return
	}
	if !s.agentAuth(tok, rep.AgentID) {
		s.fail(w, http.StatusUnauthorized, "invalid token")
		return
	}
	if isJSONNull(rep.Result) {
		rep.Result = nil
	}
	now := time.Now().UTC()

	s.mu.Lock()
	t := s.tasks[id]
	if t == nil {
		s.mu.Unlock()
		s.fail(w, http.StatusNotFound, "unknown task")
		return
	}
	st := &t.st
	switch {
	case st.Status == StatusPending || st.AgentID != rep.AgentID:
		s.mu.Unlock()
		s.fail(w, http.StatusConflict, "task is not assigned to this agent")
		return
	case st.IsFinal():
		if !rep.IsFinal() || !sameOutcome(st, &rep) {
			s.mu.Unlock()
			s.fail(w, http.StatusConflict, "task is already final")
			return
		}
		st.Reports++
		st.Duplicates++
		s.n.duplicates.Add(1)
	case rep.Status == StatusRunning:
		st.Status = StatusRunning
		if st.RunningAt.IsZero() {
			st.RunningAt = now
		}
		if rep.StartedAt != nil {
			st.StartedAt = rep.StartedAt
		}
		if len(rep.Events) > 0 {
			st.Events = rep.Events
		}
		st.Reports++
	default:
		st.Status, st.Result, st.Error = rep.Status, rep.Result, rep.Error
		if rep.StartedAt != nil {
			st.StartedAt = rep.StartedAt
		}
		st.FinishedAt = rep.FinishedAt
		if len(rep.Events) > 0 {
			st.Events = rep.Events
		}
		st.FinalAt = now
		st.Reports++
		st.FinalReports++
		s.n.finals.Add(1)
	}
	t.notifyLocked()
	s.mu.Unlock()
	s.log.V(1).Info("Report accepted", "task", id, "agent", rep.AgentID, "status", rep.Status)
	s.writeRaw(w, http.StatusOK, emptyObject)
}

// sameOutcome reports whether a repeated final report is identical to the stored one: same
// status, error and (semantically) result. Times and events are not compared.
func sameOutcome(st *TaskState, rep *orchestratorsync.Report) bool {
	return st.Status == rep.Status && st.Error == rep.Error && jsonEqual(st.Result, rep.Result)
}

func jsonEqual(a, b json.RawMessage) bool {
	if isJSONNull(a) || isJSONNull(b) {
		return isJSONNull(a) && isJSONNull(b)
	}
	if bytes.Equal(a, b) {
		return true
	}
	var va, vb any
	da, db := json.NewDecoder(bytes.NewReader(a)), json.NewDecoder(bytes.NewReader(b))
	da.UseNumber()
	db.UseNumber()
	if da.Decode(&va) != nil || db.Decode(&vb) != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}

func isJSONNull(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || string(raw) == "null"
}

type devTask struct {
	Type           string          `json:"type"`
	Payload        json.RawMessage `json:"payload"`
	TimeoutSeconds int             `json:"timeout_seconds"`
}

func (s *Server) handleDevEnqueue(w http.ResponseWriter, r *http.Request) {
	s.n.dev.Add(1)
	var req devTask
	body := http.MaxBytesReader(w, r.Body, maxRequestBytes)
	if err := json.NewDecoder(body).Decode(&req); err != nil {
		s.fail(w, http.StatusBadRequest, "body must be {\"type\", \"payload\", \"timeout_seconds\"?}")
		return
	}
	if strings.TrimSpace(req.Type) == "" {
		s.fail(w, http.StatusBadRequest, "type is required")
		return
	}
	id := s.Enqueue(req.Type, req.Payload, req.TimeoutSeconds)
	s.writeJSON(w, http.StatusCreated, map[string]string{"id": id})
}

func (s *Server) handleDevList(w http.ResponseWriter, _ *http.Request) {
	s.n.dev.Add(1)
	s.writeJSON(w, http.StatusOK, s.Tasks())
}

func (s *Server) handleDevGet(w http.ResponseWriter, r *http.Request) {
	s.n.dev.Add(1)
	st, ok := s.Task(r.PathValue("task"))
	if !ok {
		s.fail(w, http.StatusNotFound, "unknown task")
		return
	}
	s.writeJSON(w, http.StatusOK, st)
}

func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > len("Bearer ") && strings.EqualFold(h[:len("Bearer ")], "Bearer ") {
		return strings.TrimSpace(h[len("Bearer "):])
	}
	return ""
}

func (s *Server) enrollmentOK(tok string) bool {
	return tok != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(s.opts.EnrollmentToken)) == 1
}

// agentAuth reports whether tok may act for agentID: the enrollment token, or with
// IssueAgentTokens the agent's current token.
func (s *Server) agentAuth(tok, agentID string) bool {
	if !s.opts.IssueAgentTokens {
		return s.enrollmentOK(tok)
	}
	if tok == "" {
		return false
	}
	s.mu.Lock()
	owner, ok := s.tokens[tok]
	s.mu.Unlock()
	return ok && owner == agentID
}

// decodeBody decodes a JSON request body of at most maxRequestBytes, answering 415, 413 or
// 400 itself when it cannot.
func (s *Server) decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		s.fail(w, http.StatusUnsupportedMediaType, "Content-Type must be application/json")
		return false
	}
	body := http.MaxBytesReader(w, r.Body, maxRequestBytes)
	if err := json.NewDecoder(body).Decode(v); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			s.fail(w, http.StatusRequestEntityTooLarge, "body too large")
			return false
		}
		s.fail(w, http.StatusBadRequest, "malformed JSON body")
		return false
	}
	return true
}

func (s *Server) fail(w http.ResponseWriter, code int, msg string) {
	switch code {
	case http.StatusUnauthorized:
		s.n.unauth.Add(1)
	case http.StatusNotFound:
		s.n.notFound.Add(1)
	case http.StatusConflict:
		s.n.conflicts.Add(1)
	default:
		s.n.badRequests.Add(1)
	}
	s.writeJSON(w, code, map[string]string{"error": msg})
}

func (s *Server) writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		s.log.Error(err, "Encode response")
		code, b = http.StatusInternalServerError, []byte(`{"error":"encode response"}`)
	}
	s.writeRaw(w, code, b)
}

func (s *Server) writeRaw(w http.ResponseWriter, code int, b []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(code)
	_, _ = w.Write(b)
}
