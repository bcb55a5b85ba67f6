// Package heapsample turns off the runtime's heap profile sampling for the agent's process,
// before the packages it imports initialize. The agent serves no profile, yet with sampling on
// (as it is in every program that links runtime/pprof, which controller-runtime's manager
// does) the runtime records and keeps a stack bucket for about every 512 KiB allocated, from
// package initialization on. (The change of rate itself is recorded once, so the runtime's
// bucket hash table is still reserved; it stays almost untouched.)
//
// Import it, for its side effect, from the main package only. Its only import is the runtime,
// and Go initializes packages in import path order among those whose imports are
// initialized, so this one runs before any dependency outside the standard library that
// allocates in init. A rate set with GODEBUG=memprofilerate=N (anything but the default)
// is kept, for a developer who wants a heap profile.
package heapsample

import "runtime"

// defaultRate is the runtime's MemProfileRate unless GODEBUG sets another.
const defaultRate = 512 * 1024

func init() {
	if runtime.MemProfileRate == defaultRate {
		runtime.MemProfileRate = 0
	}
}
