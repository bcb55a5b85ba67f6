package main

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/letsbe/sysadmin-agent/orchestratorsync/wire"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/letsbe/sysadmin-agent/orchestratorsync"
)

// readyTimeout bounds the wait for registration before READY=1: an unreachable orchestrator
// must not hold up the boot (the agent keeps trying in the background).
const readyTimeout = 30 * time.Second

// statusInterval is how often STATUS= is refreshed when no watchdog is configured.
const statusInterval = 5 * time.Second

// workerSlack is how long a task may run past its timeout before its worker counts as wedged:
// the kill grace, the wait delay and the final status write all fit in it.
const workerSlack = 2 * time.Minute

// liveness records the progress of the sync loops: every request to the orchestrator, answered
// or not, is an attempt of a loop that is not stuck.
type liveness struct {
	start    time.Time
	lastSync atomic.Int64 // unix nanoseconds of the last request attempt
	lastOK   atomic.Bool  // whether it was answered
}

func newLiveness() *liveness { return &liveness{start: time.Now()} }

// observe is called after every orchestrator request.
func (l *liveness) observe(code int) {
	l.lastSync.Store(time.Now().UnixNano())
	l.lastOK.Store(code > 0 && code < 500)
}

// healthy reports whether the agent makes progress: the sync loops sent a request within the
// longest gap a healthy agent has (two heartbeat intervals plus a request timeout, plus the
// back-off cap when the last attempt failed), and no task runs past its timeout plus
// workerSlack (a worker that does not come back). The store answering at all is part of it:
// a wedged store blocks this call, and the pings stop.
func (a *agent) healthy(now time.Time) (bool, string) {
	last := a.live.start
	if n := a.live.lastSync.Load(); n != 0 {
		last = time.Unix(0, n)
	}
	limit := 2*a.syncer.HeartbeatInterval() + wire.DefaultTimeout
	if !a.live.lastOK.Load() {
		limit += orchestratorsync.DefaultBackoffCap
	}
	if gap := now.Sub(last); gap > limit {
		return false, fmt.Sprintf("no request to the orchestrator for %s (limit %s): the sync loops are stuck", gap.Round(time.Second), limit)
	}
	list, err := a.store.List(context.Background())
	if err != nil {
		return false, "store: " + err.Error()
	}
	for i := range list.Items {
		t := &list.Items[i]
		if t.Status.Phase.IsFinal() || t.Status.StartTime == nil {
			continue
		}
		timeout := a.cfg.TaskTimeout
		if t.Spec.Timeout != nil && t.Spec.Timeout.Duration < timeout {
			timeout = t.Spec.Timeout.Duration
		}
		if over := now.Sub(t.Status.StartTime.Time) - timeout; over > workerSlack {
			return false, fmt.Sprintf("task %s is running %s past its timeout: its worker does not come back", t.TaskID(), over.Round(time.Second))
		}
	}
	return true, ""
}

// superviseSystemd speaks the sd_notify protocol when the agent runs under systemd
// (NOTIFY_SOCKET set; Type=notify): READY=1 once registered or after readyTimeout, STATUS=
// lines, and WATCHDOG=1 at a third of WatchdogSec= while healthy reports progress. It returns
// when ctx ends.
func (a *agent) superviseSystemd(ctx context.Context) {
	if os.Getenv("NOTIFY_SOCKET") == "" {
		return
	}
	watchdog, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		a.log.Error(err, "Invalid systemd watchdog settings; not feeding the watchdog")
	}
	tick := statusInterval
	if watchdog > 0 {
		tick = watchdog / 3
	}
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	readyTimer := time.NewTimer(debugReadyTimeout(readyTimeout))
	defer readyTimer.Stop()

	ready, stalled := false, false
	lastStatus := ""
	for {
		var state string
		select {
		case <-ctx.Done():
			return
		case <-a.syncer.Registered():
			if !ready {
				ready = true
				state = "READY=1\n"
			}
		case <-readyTimer.C:
			if !ready {
				ready = true
				a.log.Info("Not registered yet; telling systemd the agent is up anyway", "waited", readyTimeout.String())
				state = "READY=1\n"
			}
		case now := <-ticker.C:
			if watchdog > 0 {
				if ok, why := a.healthy(now); ok {
					stalled = false
					state = "WATCHDOG=1\n"
				} else {
					if !stalled {
						a.log.Error(nil, "Not feeding the systemd watchdog: the agent is stuck; systemd will restart it", "reason", why)
					}
					stalled = true
					lastStatus = "" // say it at every tick
					state = "STATUS=stuck, not feeding the watchdog: " + why + "\n"
				}
			}
		}
		if status := a.statusLine(); !stalled && status != lastStatus {
			state += "STATUS=" + status + "\n"
			lastStatus = status
		}
		if state != "" {
			if _, err := daemon.SdNotify(false, state); err != nil {
				a.log.V(1).Info("Cannot notify systemd", "error", err.Error())
			}
		}
	}
}

// statusLine is the STATUS= systemctl status shows.
func (a *agent) statusLine() string {
	running := len(a.registry.Running())
	switch {
	case a.draining.Load():
		return fmt.Sprintf("draining: %d tasks running", running)
	case a.syncer.AgentID() == "":
		return "waiting for the orchestrator: not registered yet"
	default:
		return fmt.Sprintf("registered as %s, running %d tasks", a.syncer.AgentID(), running)
	}
}

// notifyStopping tells systemd the agent is draining.
func (a *agent) notifyStopping() {
	a.draining.Store(true)
	if os.Getenv("NOTIFY_SOCKET") == "" {
		return
	}
	_, _ = daemon.SdNotify(false, "STOPPING=1\nSTATUS="+a.statusLine()+"\n")
}
