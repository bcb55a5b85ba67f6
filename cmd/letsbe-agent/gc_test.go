package main

import (
	"runtime/debug"
	"testing"
)

// TestTuneGC: without GOGC the agent collects at defaultGCPercent; an operator's GOGC stays
// as the runtime read it.
func TestTuneGC(t *testing.T) {
	old := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(old) })
	none := func(string) (string, bool) { return "", false }
	tuneGC(none)
	if got := debug.SetGCPercent(100); got != defaultGCPercent {
		t.Errorf("GC percent in effect %d, want %d", got, defaultGCPercent)
	}
	debug.SetGCPercent(50) // as GOGC=50 would have set it at start
	set := func(k string) (string, bool) { return "50", k == "GOGC" }
	tuneGC(set)
	if got := debug.SetGCPercent(100); got != 50 {
		t.Errorf("GC percent in effect %d, want the operator's 50", got)
	}
}
