package main

import (
	"context"
	"net"

	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
	"github.com/letsbe/sysadmin-agent/internal/agenthttp"
)

// listenHTTP opens the local listener (AGENT_HTTP_ADDR); nil when it is disabled.
func (a *agent) listenHTTP() (net.Listener, error) {
	if a.cfg.HTTPAddr == "" {
		return nil, nil
	}
	return agenthttp.Listen(a.cfg.HTTPAddr, a.cfg.StateDir, a.log), nil
}

// serveHTTP serves the local HTTP surface (internal/agenthttp) on ln until ctx ends.
func (a *agent) serveHTTP(ctx context.Context, ln net.Listener) {
	agenthttp.Serve(ctx, ln, agenthttp.Handler(a.httpSources()), a.log)
}

// httpSources are what the local endpoints read of the agent.
func (a *agent) httpSources() agenthttp.Sources {
	return agenthttp.Sources{
		AgentID:           a.syncer.AgentID,
		HeartbeatInterval: a.syncer.HeartbeatInterval,
		Draining:          a.syncer.Draining,
		Standby:           a.standby,
		Registration:      a.syncer.Registration,
		LastHeartbeat:     a.syncer.LastHeartbeat,
		Durable:           a.durable,
		Tasks: func(ctx context.Context) ([]agentv1.Task, error) {
			list, err := a.store.List(ctx)
			if err != nil {
				return nil, err
			}
			return list.Items, nil
		},
		Gatherer: agentGatherer(),
		Token:    a.cfg.HTTPToken,
	}
}
