// Package kube keeps Tasks and Stacks as custom resources on a Kubernetes API server: a
// store.Store and store.Notifier (Store), and a store.StackStore and store.StackNotifier
// (StackStore), over a controller-runtime client and cache, for one namespace. It is the
// store of cluster mode, where the API server (and k3s's datastore behind it) is the agent's
// durable memory and `kubectl get tasks,stacks` shows what the agent does. (A Stack's spec is
// also reconciled at start-up with the Compose executors' revision records, the durable truth
// of the last known good revision in both modes.)
//
// It is a thin adapter and emulates nothing the API server does not do: Tasks are named by
// agentv1.TaskName of their id at intake (the id itself is spec.taskID), so names go through
// unchanged; Create stores metadata and spec only (status is a subresource: the reconciler
// initializes it); status writes go to the status subresource.
//
// Reads (Get, List) go to the API server, not to a cache: the reconcilers and the sync side
// read their own writes and must not see an older status. Notifications come from an informer
// on the cache, so, unlike the in-memory store's, they arrive asynchronously after the write
// and a new subscriber first hears Added for every Task already in the cache. Handlers only
// enqueue and read fresh state, so neither matters to them. In cluster mode the controllers
// watch Tasks through the manager's cache themselves (For(&Task{})); the sync side and the
// collector subscribe here.
package kube
