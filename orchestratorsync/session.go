package orchestratorsync

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
)

// session holds the agent's registration and re-registers when the orchestrator forgets it
// (heartbeat 404) or revokes its credential (401 anywhere). Concurrent callers that hit a 401
// with the same credential trigger one registration, not one each.
type session struct {
	client   *Client
	log      logr.Logger
	clock    Clock
	backoff  Backoff
	stateDir string
	enroll   string
	request  func() RegisterRequest
	onResp   func(*RegisterResponse)

	mu         sync.Mutex
	agentID    string
	generation uint64 // bumped by every successful registration
	failures   int    // consecutive registrations followed by an immediate 401
	registered chan struct{}
}

func (s *session) current() (string, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.agentID, s.generation
}

// register registers (retrying with backoff until it works or ctx ends) unless another caller
// already did since generation gen.
func (s *session) register(ctx context.Context, gen uint64, why string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.generation != gen {
		return nil
	}
	if gen > 0 {
		// Wait a little before re-registering after a revocation, growing with repetition, so
		// an orchestrator that keeps refusing us is not hammered.
		s.failures++
		if err := sleep(ctx, s.clock, s.backoff.Delay(s.failures-1)); err != nil {
			return err
		}
	}
	// Always start over from the enrollment token: the per-agent one may be what was revoked.
	s.client.SetToken(s.enroll)
	for attempt := 0; ; attempt++ {
		req := s.request()
		req.AgentID = s.agentID
		resp, err := s.client.Register(ctx, req)
		if err == nil {
			token := ""
			if resp.Token != "" {
				token = resp.Token
				s.client.SetToken(token)
			}
			if err := SaveIdentity(s.stateDir, Identity{AgentID: resp.AgentID, Token: token}); err != nil {
				// Not fatal: the agent works, it only re-registers after a restart.
				s.log.Error(err, "Cannot save the agent identity")
			}
			if s.agentID != "" && s.agentID != resp.AgentID {
				s.log.Info("Orchestrator assigned a new agent id", "previousAgentID", s.agentID, "agentID", resp.AgentID)
			}
			s.agentID = resp.AgentID
			s.generation++
			if s.onResp != nil {
				s.onResp(resp)
			}
			s.log.Info("Registered with the orchestrator", "agentID", s.agentID, "reason", why)
			select {
			case <-s.registered:
			default:
				close(s.registered)
			}
			return nil
		}
		delay := NextDelay(s.backoff, attempt, err)
		s.log.Error(err, "Registration failed; retrying", "retryIn", delay.Round(time.Millisecond).String())
		if err := sleep(ctx, s.clock, delay); err != nil {
			return err
		}
	}
}

// markHealthy resets the revocation back-off after a successful authenticated call.
func (s *session) markHealthy() {
	s.mu.Lock()
	s.failures = 0
	s.mu.Unlock()
}

// do runs call with the current agent id, re-registering and trying again on a 401.
func (s *session) do(ctx context.Context, call func(agentID string) error) error {
	for {
		id, gen := s.current()
		err := call(id)
		if err == nil {
			s.markHealthy()
			return nil
		}
		if !IsUnauthorized(err) {
			return err
		}
		s.log.Info("Orchestrator refused the agent's credential; registering again")
		if err := s.register(ctx, gen, "unauthorized"); err != nil {
			return fmt.Errorf("re-register: %w", err)
		}
	}
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, clock Clock, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C():
		return nil
	}
}
