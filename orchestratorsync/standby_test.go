package orchestratorsync_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/letsbe/sysadmin-agent/internal/testpoll"
	"github.com/letsbe/sysadmin-agent/orchestratorsync/wire"

	"github.com/go-logr/logr/testr"

	"github.com/letsbe/sysadmin-agent/api/store/memory"
	"github.com/letsbe/sysadmin-agent/orchestratorsync"
	"github.com/letsbe/sysadmin-agent/orchestratorsync/orchestratortest"
)

// TestSyncerBuiltBeforeTheIdentityWasSaved is a standby replica in cluster mode: its Syncer is
// built at start, when the state directory it shares with the leader holds no identity yet,
// and runs only once the leader is gone. It must register as the leader's agent, whose tasks
// it now reports.
func TestSyncerBuiltBeforeTheIdentityWasSaved(t *testing.T) {
	t.Parallel()
	orch := orchestratortest.New(orchestratortest.Options{IssueAgentTokens: true})
	hs := httptest.NewServer(orch)
	t.Cleanup(hs.Close)
	stateDir := t.TempDir()
	newSyncer := func() *orchestratorsync.Syncer {
		client, err := wire.NewClient(wire.Config{BaseURL: hs.URL, Token: orchestratortest.DefaultEnrollmentToken})
		if err != nil {
			t.Fatal(err)
		}
		mem := memory.New()
		s, err := orchestratorsync.New(orchestratorsync.Options{
			Client: client, Store: mem, Notifier: mem, StateDir: stateDir,
			EnrollmentToken: orchestratortest.DefaultEnrollmentToken, Hostname: "test", Version: "test",
			Capabilities: []string{"ECHO"}, HeartbeatInterval: 50 * time.Millisecond, PollInterval: 20 * time.Millisecond,
			LongPollWait: -1, Logger: testr.New(t),
		})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	run := func(s *orchestratorsync.Syncer) (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = s.Run(ctx) }()
		return func() { cancel(); <-done }
	}

	standby := newSyncer() // built first: nothing saved yet
	leader := newSyncer()
	stopLeader := run(leader)
	<-leader.Registered()
	first := leader.AgentID()
	stopLeader()

	stopStandby := run(standby)
	defer stopStandby()
	<-standby.Registered()
	if got := standby.AgentID(); got != first {
		t.Fatalf("the standby registered as %s, want the leader's agent %s", got, first)
	}
	testpoll.Until(t, waitTimeout, "a heartbeat with the leader's saved token", func() bool {
		ags := orch.Agents()
		return len(ags) == 1 && ags[0].Registrations == 2 && ags[0].Heartbeats >= 2
	})
	if n := orch.Stats().Unauthorized; n != 0 {
		t.Errorf("%d unauthorized answers, want none (the standby uses the saved token)", n)
	}
}
