package orchestratortest

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"
)

var emptyObject = []byte("{}")

func (s *Server) handleRegister(w http.ResponseWriter, r *http.Request) {
	s.n.register.Add(1)
	if !s.enrollmentOK(bearer(r)) {
		s.fail(w, http.StatusUnauthorized, "invalid enrollment token")
		return
	}
	var req registerRequest
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
	a.st.Capabilities, a.st.Labels, a.st.Policy = req.Capabilities, req.Labels, req.Policy
	resp := registerResponse{
		HeartbeatIntervalSeconds: max(s.opts.HeartbeatIntervalSeconds, 0),
		PollIntervalSeconds:      max(s.opts.PollIntervalSeconds, 0),
		AckTimeoutSeconds:        s.ackTimeout().Seconds(),
		Features:                 s.features(),
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

func (s *Server) handleHeartbeat(w http.ResponseWriter, r *http.Request) {
	s.n.heartbeat.Add(1)
	id := r.PathValue("agent")
	// The enrollment token for an agent this server does not know is a valid credential for
	// the wrong agent: 404 (re-register), not 401. letsbe-agent doctor relies on it to check a
	// token without registering.
	if tok := bearer(r); !s.agentAuth(tok, id) && (!s.enrollmentOK(tok) || s.knownAgent(id)) {
		s.fail(w, http.StatusUnauthorized, "invalid token")
		return
	}
	raw, ok := s.readBody(w, r)
	if !ok {
		return
	}
	var req HeartbeatBody
	if err := json.Unmarshal(raw, &req); err != nil {
		s.fail(w, http.StatusBadRequest, "malformed JSON body")
		return
	}
	if msg := checkStacks(raw); msg != "" {
		s.fail(w, http.StatusBadRequest, msg)
		return
	}
	if req.Status != "ONLINE" && req.Status != "DRAINING" {
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
	var resp heartbeatResponse
	for _, tid := range a.cancels {
		if t := s.tasks[tid]; t != nil && !t.st.IsFinal() && t.st.AgentID == id {
			resp.CancelTaskIDs = append(resp.CancelTaskIDs, tid)
		}
	}
	a.cancels = nil
	s.mu.Unlock()
	if len(resp.CancelTaskIDs) == 0 {
		_ = s.writeRaw(w, http.StatusOK, emptyObject)
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

	bootID := q.Get("boot_id")

	s.mu.Lock()
	a := s.agents[agentID]
	if a == nil || !a.known {
		s.mu.Unlock()
		s.fail(w, http.StatusNotFound, "unknown agent")
		return
	}
	if bootID != "" && a.oldBoots[bootID] {
		// A poll of an earlier boot of this agent: that process is gone or going.
		s.mu.Unlock()
		s.n.superseded.Add(1)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if bootID != "" && bootID != a.st.BootID {
		s.newBootLocked(a, bootID)
	}
	if r.Context().Err() != nil {
		// The client went away before we answered: hand it nothing.
		s.mu.Unlock()
		s.n.gone.Add(1)
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
	wt := &waiter{ch: make(chan struct{}, 1), drop: make(chan struct{}), agentID: agentID, bootID: bootID}
	wt.el = s.waiters.PushBack(wt)
	s.parked[wt] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.parked, wt)
		s.mu.Unlock()
	}()

	s.n.waiting.Add(1)
	defer s.n.waiting.Add(-1)
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case <-wt.ch:
			s.mu.Lock()
			if r.Context().Err() != nil {
				// Gone while we were woken: pass the wake-up on, never the task.
				s.removeWaiterLocked(wt)
				s.mu.Unlock()
				s.n.gone.Add(1)
				return
			}
			if isClosed(wt.drop) {
				s.removeWaiterLocked(wt)
				s.mu.Unlock()
				s.n.superseded.Add(1)
				w.WriteHeader(http.StatusNoContent)
				return
			}
			if t := s.popLocked(agentID); t != nil {
				s.mu.Unlock()
				s.sendTask(w, t, agentID)
				return
			}
			wt.el = s.waiters.PushFront(wt) // someone else took it: keep our place
			s.mu.Unlock()
		case <-wt.drop:
			s.mu.Lock()
			s.removeWaiterLocked(wt)
			s.mu.Unlock()
			s.n.superseded.Add(1)
			w.WriteHeader(http.StatusNoContent)
			return
		case <-timer.C:
			s.mu.Lock()
			var t *task
			if r.Context().Err() == nil && !isClosed(wt.drop) {
				t = s.popLocked(agentID)
			}
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

// newBootLocked records a new boot of agent a and drops the parked long polls of its earlier
// boots: their process is gone, and a task handed to one of them would be lost.
func (s *Server) newBootLocked(a *agent, bootID string) {
	if a.st.BootID != "" {
		if a.oldBoots == nil {
			a.oldBoots = make(map[string]bool)
		}
		if len(a.oldBoots) >= 1024 {
			clear(a.oldBoots) // bounded: a very old boot id polling again is merely not refused
		}
		a.oldBoots[a.st.BootID] = true
	}
	a.st.BootID = bootID
	a.st.Boots++
	for wt := range s.parked {
		if wt.agentID == a.st.ID && wt.bootID != bootID && !isClosed(wt.drop) {
			close(wt.drop)
		}
	}
	s.log.V(1).Info("Agent restarted", "agent", a.st.ID, "bootID", bootID)
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
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
	body := t.wire // wire is immutable after Enqueue (ForgetFinishedBodies drops it once final: sent by then)
	if s.opts.Sign != nil {
		var err error
		if body, err = s.opts.Sign(body, agentID); err != nil {
			s.log.Error(err, "Cannot sign the task", "task", t.st.ID)
			s.writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "sign task"})
			return
		}
	}
	if err := s.writeRaw(w, http.StatusOK, body); err != nil {
		// It surely did not arrive: offer it again now rather than after the ack timeout.
		s.mu.Lock()
		if t.st.Status == StatusAssigned && !t.st.Acknowledged {
			s.requeueLocked(t)
		}
		s.mu.Unlock()
	}
}

func (s *Server) handleReport(w http.ResponseWriter, r *http.Request) {
	s.n.report.Add(1)
	id := r.PathValue("task")
	tok := bearer(r)
	if !s.opts.IssueAgentTokens && !s.enrollmentOK(tok) {
		s.fail(w, http.StatusUnauthorized, "invalid token")
		return
	}
	var rep report
	raw, ok := s.readBody(w, r)
	if !ok {
		return
	}
	if err := json.Unmarshal(raw, &rep); err != nil {
		s.fail(w, http.StatusBadRequest, "malformed JSON body")
		return
	}
	if rep.AgentID == "" {
		s.fail(w, http.StatusBadRequest, "agent_id is required")
		return
	}
	if rep.Status != StatusRunning && !rep.isFinal() {
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
	case st.AgentID != rep.AgentID || st.AgentID == "":
		// Never handed to this agent (a task re-queued after its ack timeout stays its
		// last agent's until another one takes it).
		s.mu.Unlock()
		s.fail(w, http.StatusConflict, "task is not assigned to this agent")
		return
	case st.IsFinal():
		if !rep.isFinal() || !sameOutcome(st, &rep) {
			s.mu.Unlock()
			s.fail(w, http.StatusConflict, "task is already final")
			return
		}
		st.Reports++
		st.Duplicates++
		if !bytes.Equal(bytes.TrimSpace(raw), t.finalBody) {
			st.DifferingDuplicates++
		}
		s.n.duplicates.Add(1)
	case rep.Status == StatusRunning:
		s.acknowledgeLocked(t)
		st.Status = StatusRunning
		if st.RunningAt.IsZero() {
			st.RunningAt = now
		}
		if rep.StartedAt != nil {
			st.StartedAt = rep.StartedAt
		}
		st.Events = mergeEvents(st.Events, rep.Events)
		st.Reports++
		st.RunningReports++
	default:
		s.acknowledgeLocked(t)
		t.finalBody = bytes.Clone(bytes.TrimSpace(raw))
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
		if s.opts.ForgetFinishedBodies {
			st.Payload, t.wire = nil, nil
		}
	}
	t.notifyLocked()
	s.mu.Unlock()
	s.log.V(1).Info("Report accepted", "task", id, "agent", rep.AgentID, "status", rep.Status)
	_ = s.writeRaw(w, http.StatusOK, emptyObject)
}

// sameOutcome reports whether a repeated final report is identical to the stored one: same
// status, error and (semantically) result. Times and events are not compared.
func sameOutcome(st *TaskState, rep *report) bool {
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

// knownAgent reports whether agentID is registered.
func (s *Server) knownAgent(agentID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.agents[agentID]
	return a != nil && a.known
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
	raw, ok := s.readBody(w, r)
	if !ok {
		return false
	}
	if err := json.Unmarshal(raw, v); err != nil {
		s.fail(w, http.StatusBadRequest, "malformed JSON body")
		return false
	}
	return true
}

// readBody reads a JSON request body of at most maxRequestBytes, answering 415 or 413 itself
// when it cannot.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		s.fail(w, http.StatusUnsupportedMediaType, "Content-Type must be application/json")
		return nil, false
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			s.fail(w, http.StatusRequestEntityTooLarge, "body too large")
			return nil, false
		}
		s.fail(w, http.StatusBadRequest, "cannot read the body")
		return nil, false
	}
	return raw, true
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
	_ = s.writeRaw(w, code, b)
}

func (s *Server) writeRaw(w http.ResponseWriter, code int, b []byte) error {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(code)
	if _, err := w.Write(b); err != nil {
		return err
	}
	return http.NewResponseController(w).Flush()
}
