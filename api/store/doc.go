// Package store is the seam between the Task and Stack objects and where they live: the Store
// and Notifier interfaces of Tasks the reconcilers and the sync side depend on, StackStore and
// StackNotifier of Stacks, Delivered (the accepted final reports kept for deduplication),
// MutateStatus, MutateStack and ErrNotDurable. It holds no
// implementation; those are its subpackages, one tree for everything about where objects live:
//
//	api/store            the interfaces (this package)
//	api/store/memory     the in-memory Store, StackStore and Delivered of plain servers
//	api/store/journal    the bbolt write-ahead journal behind memory (memory mode's durability)
//	api/store/kube       the Store and StackStore on a Kubernetes API server (cluster mode)
//	api/store/kube/kubetest  envtest harness: a real API server with the CRDs, for tests
//	api/store/storetest  the conformance suites every implementation passes
//
// The tree sits under api/ because the repository's top level is fixed (cmd, api, controllers,
// executors, orchestratorsync, config, hack, docs, internal) and neither controllers (which must
// not hold what the sync side uses) nor orchestratorsync (whose plain-Go rule the API-server
// store would break) is the store's home. The rule that api imports only apimachinery and the
// standard library is about the API types that go into a cluster unchanged: api/v1alpha1, and
// this package, keep to it; journal (bbolt) and kube (controller-runtime) are implementations
// and import what they implement with.
//
// Every implementation behaves like a tiny API server: objects go in and out as deep copies,
// every write bumps resourceVersion, a write with a stale resourceVersion fails with a
// Conflict, and errors are apimachinery's NotFound, AlreadyExists and Conflict. No store runs
// anything or knows the orchestrator's wire format.
package store
