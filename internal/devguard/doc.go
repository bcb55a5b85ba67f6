// Package devguard protects the development orchestrator's HTTP surface (`letsbe-agent dev`,
// letsbe-dev-orchestrator) from the operator's own browser: a web page must not be able to
// enqueue a task (which the agent beside it runs as root) by a cross-origin form or fetch, nor
// read task results through DNS rebinding. It is HTTP middleware only; it knows nothing of
// tasks or agents.
package devguard
