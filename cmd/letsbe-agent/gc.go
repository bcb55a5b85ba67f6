package main

import (
	"runtime/debug"
)

// defaultGCPercent is the agent's GOGC when the environment sets none: the live heap of a
// busy agent is a few MiB, so Go's 100 collects every few hundred tasks; with 200 the agent
// took 4-14 % less CPU per ECHO task at 16 concurrent (three sets of hack/bench runs, GOGC=100
// and 200 in alternation) for about 2 MiB more after 10k tasks and 7 MiB more at the peak,
// and memtrim gives the memory back once the agent is quiet.
const defaultGCPercent = 200

// tuneGC sets defaultGCPercent unless GOGC is set (an operator's GOGC, off included, wins).
func tuneGC(lookup func(string) (string, bool)) {
	if _, set := lookup("GOGC"); !set {
		debug.SetGCPercent(defaultGCPercent)
	}
}
