// Package policy is the agent-side bound on what any task may do, whatever the orchestrator
// sends: the task types that may run, the SHELL command lines (by argument pattern), the
// directories each file task type may change and the hosts PLAYWRIGHT may reach. It reads the
// AGENT_POLICY file (strict YAML), merges it with the settings that are shorthands for the same
// rules (the narrower wins), and checks a task against the result. It never runs anything: the
// executors confine what a task does, this package refuses what must not even start.
package policy
