// Package deadline bounds calls by a timeout without a context and a timer per call on the
// hot paths of the sync side (orchestrator requests, report deliveries): calls that start
// close together share one context. It must not change what a timeout means beyond that:
// every call still ends within its timeout.
package deadline
