package memtrim

import (
	"runtime"
	"runtime/metrics"
	"testing"
)

var sink [][]byte

// heapReleased is the heap memory returned to the system.
func heapReleased() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// TestTrimAfterBurst allocates a burst of garbage as a wave of big tasks does, then checks as
// the trimmer does: nothing while the burst allocates, the garbage goes back to the system once
// nothing is allocated any more, and a second quiet check finds nothing to do.
func TestTrimAfterBurst(t *testing.T) {
	// Not parallel: it measures this process's heap.
	runtime.GC()
	var trimmed uint64
	tr := &Trimmer{MinGarbage: 8 << 20, OnTrim: func(g uint64) { trimmed = g }}
	tr.Check() // the first check only learns how much was allocated
	for range 64 {
		sink = append(sink, make([]byte, 1<<20))
	}
	if tr.Check() {
		t.Fatal("trimmed right after 64 MiB were allocated (busy)")
	}
	sink = nil // the burst is over: 64 MiB of garbage
	before := heapReleased()
	if !tr.Check() {
		t.Fatal("did not trim 64 MiB of garbage once nothing was allocated any more")
	}
	if trimmed < 8<<20 { // live at the last collection may still count part of the burst
		t.Errorf("trimmed %d bytes of garbage, want at least 8 MiB", trimmed)
	}
	if got := heapReleased() - before; got < 32<<20 {
		t.Errorf("released %d bytes to the system, want at least 32 MiB", got)
	}
	if tr.Check() {
		t.Error("trimmed again with nothing new to trim")
	}
}
