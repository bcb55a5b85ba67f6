// Package store keeps Task objects: the Store interface the reconcilers and the sync side
// depend on, and Memory, the in-memory implementation used on plain servers.
//
// The store behaves like a tiny API server: objects go in and out as deep copies, every write
// bumps resourceVersion, a write with a stale resourceVersion fails with a Conflict, and errors
// are apimachinery's NotFound, AlreadyExists and Conflict. It imports only the standard library,
// apimachinery and the Task API; it never runs anything and knows nothing of the orchestrator.
package store
