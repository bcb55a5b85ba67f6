// Package grafana holds the agent's Grafana dashboard (letsbe-agent.json: import it, pick the
// Prometheus data source); its Go test checks that the file is a dashboard Grafana loads and
// that every query is valid PromQL. It has no code.
package grafana
