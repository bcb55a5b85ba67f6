// Package memory is the in-memory store.Store and store.Notifier of plain servers (memory
// mode), and the in-memory store.Delivered of cluster mode and the tests.
//
// The store behaves like a tiny API server (see package store); with a Persister (the journal)
// every change is durable before it returns and, except for a creation, before anyone hears
// of it. It imports only the standard library, apimachinery and the Task API; it never runs
// anything and knows nothing of the orchestrator.
package memory
