// Package prometheus holds the agent's Prometheus alert rules (alerts.yaml) and their promtool
// unit tests (alerts_test.yaml); its Go test runs promtool on them and checks that every alert
// is labelled, explained and points at a section of docs/operating.md. It has no code.
package prometheus
