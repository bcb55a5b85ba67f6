package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/letsbe/sysadmin-agent/internal/testpoll"
	"github.com/letsbe/sysadmin-agent/orchestratorsync/orchestratortest"
)

// pickup is the result of one pickup-latency run.
type pickup struct {
	LongPoll     bool
	PollInterval time.Duration // interval polling only
	Latencies    []time.Duration
	// Superseded counts tasks whose RUNNING report was never sent because the task was already
	// final when the reporter got to it; for those the final report's arrival is used.
	Superseded int
}

// measurePickup enqueues n ECHO tasks one at a time to an idle agent and takes, for each, the
// time from enqueue to the arrival of its RUNNING report (the orchestrator's own timestamps).
// With long poll each task is enqueued once the agent's poll is parked; with interval polling
// (an orchestrator that ignores wait) after a random pause within the poll interval, so that
// enqueues fall uniformly over the polling cycle.
func measurePickup(ctx context.Context, cfg *config, longPoll bool) (pickup, error) {
	res := pickup{LongPoll: longPoll}
	o := startOrchestrator(orchestratortest.Options{IgnoreWait: !longPoll})
	defer o.Close()
	var env []string
	name := "pickup-longpoll"
	if !longPoll {
		res.PollInterval = cfg.pollInterval
		env = append(env, "AGENT_POLL_INTERVAL="+cfg.pollInterval.String())
		name = "pickup-interval"
	}
	agent, err := startAgent(cfg, o, name, env...)
	if err != nil {
		return res, err
	}
	defer agent.stop()
	if err := agent.waitReady(o, 30*time.Second); err != nil {
		return res, err
	}
	const warmup = 10
	for i := range warmup + cfg.pickupTasks {
		if longPoll {
			if err := waitParked(ctx, o); err != nil {
				return res, fmt.Errorf("%w\n%s", err, agent.logTail())
			}
		} else {
			sleepCtx(ctx, rand.N(cfg.pollInterval))
		}
		id := o.Enqueue("ECHO", echoPayload, 0)
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		st, err := o.WaitTask(wctx, id, orchestratortest.TaskState.IsFinal)
		cancel()
		if err != nil {
			return res, fmt.Errorf("%w\n%s", err, agent.logTail())
		}
		if i < warmup {
			continue
		}
		reported := st.RunningAt
		if reported.IsZero() {
			reported = st.FinalAt
			res.Superseded++
		}
		res.Latencies = append(res.Latencies, reported.Sub(st.CreatedAt))
	}
	return res, nil
}

// waitParked waits until the agent's next-task request is parked in the orchestrator.
func waitParked(ctx context.Context, o *orchestrator) error {
	err := testpoll.Wait(ctx, 10*time.Second, func() error {
		if o.Stats().LongPollsWaiting == 0 {
			return errors.New("no long poll parked")
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("agent did not park a long poll: %w", err)
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
