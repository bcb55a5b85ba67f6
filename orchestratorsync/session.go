package orchestratorsync

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/utils/clock"

	"github.com/letsbe/sysadmin-agent/orchestratorsync/wire"

	"github.com/go-logr/logr"
	"golang.org/x/sync/singleflight"
)

// reregisterResetAfter is how long re-registrations must stay away before their back-off
// starts again from the base delay.
const reregisterResetAfter = 10 * time.Minute

// session holds the agent's registration and re-registers when the orchestrator forgets it
// (404) or revokes its credential (401 anywhere). It alone owns the credential: the other
// loops call the orchestrator through do, with the client of the credential in force.
//
// Registration is single-flight: concurrent callers share one registration, which runs on the
// session's own context (not a caller's), so a caller giving up does not abort it for the
// others. No lock is held across a network call or a sleep: readers (readiness, metrics,
// status) take the short lock or read an atomic and never wait for the orchestrator.
type session struct {
	// root is the client of the enrollment token; cur the one of the credential in force.
	root     *wire.Client
	cur      atomic.Pointer[wire.Client]
	log      logr.Logger
	clock    clock.Clock
	backoff  Backoff
	stateDir string
	enroll   string
	request  func() wire.RegisterRequest
	onResp   func(*wire.RegisterResponse)
	// save writes the identity before it is used; SaveIdentity when nil.
	save func(dir string, id Identity) error

	flight singleflight.Group
	// base is the context registrations run on: the Syncer's Run context.
	base atomic.Pointer[context.Context]

	registeredNow atomic.Bool // registered, and no registration attempt failed since
	registered    chan struct{}
	closeOnce     sync.Once

	mu          sync.Mutex // guards the fields below; never held across a call or a sleep
	agentID     string
	generation  uint64 // bumped by every successful registration
	lastErr     string // the last registration failure, "" after a success
	reregisters int    // re-registrations in the current streak (back-off exponent)
	lastRereg   time.Time
	saved       Identity      // what the identity file holds, as far as this process knows
	inflight    chan struct{} // closed when the latest registration flight ends
}

// current returns the agent id in use and the registration generation.
func (s *session) current() (string, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.agentID, s.generation
}

// currentID returns the agent id in use ("" before the first registration).
func (s *session) currentID() string {
	id, _ := s.current()
	return id
}

// status reports whether the agent is registered and, when it is not, the last registration
// error ("" when none was seen yet).
func (s *session) status() (bool, string) {
	if s.registeredNow.Load() {
		return true, ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return false, s.lastErr
}

// start sets the context registrations run on.
func (s *session) start(ctx context.Context) { s.base.Store(&ctx) }

func (s *session) baseContext() context.Context {
	if p := s.base.Load(); p != nil {
		return *p
	}
	return context.Background()
}

// register registers (retrying with backoff until it works or the session's context ends)
// unless another caller already did since generation gen. Concurrent callers share one
// registration; each waits for it only as long as its own ctx lasts.
func (s *session) register(ctx context.Context, gen uint64, why string) error {
	if _, g := s.current(); g != gen {
		return nil
	}
	ch := s.flight.DoChan("register", func() (any, error) {
		done := make(chan struct{})
		defer close(done)
		s.mu.Lock()
		s.inflight = done
		s.mu.Unlock()
		return nil, s.registerLoop(s.baseContext(), gen, why)
	})
	select {
	case res := <-ch:
		return res.Err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// wait returns once the latest registration flight has ended (its context is the Run
// context: call it after that ended, so that nothing touches the state directory any more).
func (s *session) wait() {
	s.mu.Lock()
	ch := s.inflight
	s.mu.Unlock()
	if ch != nil {
		<-ch
	}
}

// registerLoop is the one registration in flight.
func (s *session) registerLoop(ctx context.Context, gen uint64, why string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, g := s.current(); g != gen {
		return nil
	}
	if gen > 0 {
		// A re-registration (401 or 404): wait first, growing with repetition, so an
		// orchestrator that keeps refusing us is not hammered.
		if err := sleep(ctx, s.clock, s.reregisterDelay()); err != nil {
			return err
		}
	}
	for attempt := 0; ; attempt++ {
		err := s.registerOnce(ctx, why)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.failed(err)
		delay := NextDelay(s.backoff, attempt, err)
		s.log.Error(err, "Registration failed; retrying", "retryIn", delay.Round(time.Millisecond).String())
		if err := sleep(ctx, s.clock, delay); err != nil {
			return err
		}
	}
}

// reregisterDelay returns the wait before a re-registration: half to all of the back-off
// ceiling of the current streak, so a credential refused forever costs at most one
// registration per back-off cap (whatever the other calls do meanwhile).
func (s *session) reregisterDelay() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	if !s.lastRereg.IsZero() && now.Sub(s.lastRereg) > reregisterResetAfter {
		s.reregisters = 0
	}
	ceiling := s.backoff.ceiling(s.reregisters)
	s.reregisters++
	s.lastRereg = now
	return ceiling/2 + s.backoff.Delay(s.reregisters-1)/2
}

// registerOnce makes one registration attempt. The identity is saved before it is used: if it
// cannot be saved, the attempt fails and the agent keeps its old id (it never reports under an
// id it could not keep across a restart).
func (s *session) registerOnce(ctx context.Context, why string) error {
	// Always start over from the enrollment token: the per-agent one may be what was revoked.
	req := s.request()
	s.mu.Lock()
	req.AgentID = s.agentID
	prev, saved := s.agentID, s.saved
	s.mu.Unlock()
	resp, err := s.root.Register(ctx, req)
	if err != nil {
		return err
	}
	next := s.root
	if resp.Token != "" {
		if next, err = s.root.WithToken(resp.Token); err != nil {
			return fmt.Errorf("registered as %s but the answer's token is unusable: %w", resp.AgentID, err)
		}
	}
	id := Identity{AgentID: resp.AgentID, Token: resp.Token}
	if id != saved {
		save := s.save
		if save == nil {
			save = SaveIdentity
		}
		if err := save(s.stateDir, id); err != nil {
			return fmt.Errorf("registered as %s but cannot keep that identity, so not using it: %w", resp.AgentID, err)
		}
	}
	s.cur.Store(next)
	if prev != "" && prev != resp.AgentID {
		s.log.Info("Orchestrator assigned a new agent id", "previousAgentID", prev, "agentID", resp.AgentID)
	}
	s.mu.Lock()
	s.agentID = resp.AgentID
	s.saved = id
	s.generation++
	s.lastErr = ""
	s.mu.Unlock()
	if s.onResp != nil {
		s.onResp(resp)
	}
	s.registeredNow.Store(true)
	s.closeOnce.Do(func() { close(s.registered) })
	s.log.Info("Registered with the orchestrator", "agentID", resp.AgentID, "reason", why)
	return nil
}

// failed records a failed registration attempt for readiness. The message never holds a
// token (the client strips the one it sent; the enrollment token is masked here too).
func (s *session) failed(err error) {
	msg := err.Error()
	if s.enroll != "" {
		msg = strings.ReplaceAll(msg, s.enroll, "[redacted]")
	}
	s.mu.Lock()
	s.lastErr = msg
	s.mu.Unlock()
	s.registeredNow.Store(false)
}

// do runs call with the client of the credential in force and the current agent id. On a
// 401 it re-registers (rate-limited) and tries once more; a second 401 is returned to the
// caller, whose own back-off applies.
func (s *session) do(ctx context.Context, call func(c *wire.Client, agentID string) error) error {
	id, gen := s.current()
	err := call(s.cur.Load(), id)
	if err == nil || !wire.IsUnauthorized(err) {
		return err
	}
	s.log.Info("Orchestrator refused the agent's credential; registering again")
	if rerr := s.register(ctx, gen, "unauthorized"); rerr != nil {
		return errors.Join(err, fmt.Errorf("re-register: %w", rerr))
	}
	id, _ = s.current()
	return call(s.cur.Load(), id)
}

// useIdentity starts from a saved identity before the first registration: its agent id (or,
// without one, held: the id the held Tasks were received under) and its token, if usable.
func (s *session) useIdentity(id Identity, readErr error, held string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.generation > 0 {
		return
	}
	if readErr == nil {
		s.saved = id
	}
	switch {
	case id.AgentID != "":
		s.agentID = id.AgentID
	case held != "":
		s.log.Info("No usable saved identity; registering with the agent id the held tasks were received under", "agentID", held)
		s.agentID = held
	}
	s.useToken(id.Token)
}

// useToken makes token (the per-agent one, "" for the enrollment token) the credential in
// force; a token that cannot be sent falls back to the enrollment token.
func (s *session) useToken(token string) {
	c := s.root
	if token != "" {
		if withToken, err := s.root.WithToken(token); err == nil {
			c = withToken
		} else {
			s.log.Error(err, "The saved per-agent token cannot be used; registering with the enrollment token")
		}
	}
	s.cur.Store(c)
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, clk clock.Clock, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := clk.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C():
		return nil
	}
}
