package orchestratortest_test

import (
	"testing"
	"time"

	"github.com/letsbe/sysadmin-agent/orchestratorsync/orchestratortest"
)

func TestFakeClock(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	c := orchestratortest.NewFakeClock(start)
	long := c.NewTimer(10 * time.Second)
	short := c.After(time.Second)
	stopped := c.NewTimer(2 * time.Second)
	if err := c.WaitForTimers(t.Context(), 3); err != nil {
		t.Fatal(err)
	}
	if !stopped.Stop() || stopped.Stop() {
		t.Error("Stop should report active once")
	}
	c.Advance(time.Second)
	if got := <-short; !got.Equal(start.Add(time.Second)) {
		t.Errorf("short fired at %v", got)
	}
	select {
	case <-long.C():
		t.Fatal("long timer fired early")
	default:
	}
	if c.Timers() != 1 {
		t.Errorf("Timers = %d, want 1", c.Timers())
	}
	c.Advance(time.Minute)
	<-long.C()
	if !c.Now().Equal(start.Add(61 * time.Second)) {
		t.Errorf("Now = %v", c.Now())
	}
	if long.Reset(time.Second) {
		t.Error("Reset of a fired timer reported active")
	}
	c.Advance(time.Second)
	<-long.C()
	select {
	case <-stopped.C():
		t.Error("stopped timer fired")
	default:
	}
	immediate := c.NewTimer(0)
	<-immediate.C()
}

func TestFakeClockWaitForTimersWakesOnArm(t *testing.T) {
	t.Parallel()
	c := orchestratortest.NewFakeClock(time.Unix(0, 0))
	done := make(chan error, 1)
	go func() { done <- c.WaitForTimers(t.Context(), 1) }()
	tm := c.NewTimer(time.Hour)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	tm.Stop()
}
