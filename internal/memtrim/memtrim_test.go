package memtrim

import (
	"errors"
	"runtime"
	"runtime/metrics"
	"syscall"
	"testing"

	"github.com/prometheus/procfs"
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

// rssFile is this process's file-backed resident memory (RssFile of /proc/self/status).
func rssFile(t *testing.T) uint64 {
	t.Helper()
	p, err := procfs.Self()
	if err != nil {
		t.Fatal(err)
	}
	st, err := p.NewStatus()
	if err != nil {
		t.Fatal(err)
	}
	return st.RssFile
}

// TestPageOutOnceQuiet runs the trimmer as the agent does: the first quiet check after a busy
// spell takes the test binary's pages out of the resident set (it is far larger than what the
// test runs while it checks), and later quiet checks leave them alone.
func TestPageOutOnceQuiet(t *testing.T) {
	// Not parallel: it measures this process's resident set.
	var pageOuts int
	var advised uint64
	tr := &Trimmer{PageOut: true, OnPageOut: func(n uint64, err error) {
		pageOuts++
		advised = n
		if errors.Is(err, syscall.EINVAL) {
			t.Skipf("this kernel has no MADV_PAGEOUT: %v", err)
		}
		if err != nil {
			t.Fatal(err)
		}
	}}
	tr.Check() // the first check counts as busy: it only learns how much was allocated
	if pageOuts != 0 {
		t.Fatal("paged out while busy")
	}
	before := rssFile(t)
	tr.Check()
	after := rssFile(t)
	if pageOuts != 1 || advised == 0 {
		t.Fatalf("page-outs %d (%d bytes advised), want 1 on the first quiet check", pageOuts, advised)
	}
	t.Logf("RssFile %d bytes before the page-out, %d after", before, after)
	if before < 3<<20 {
		t.Skipf("only %d bytes resident before: nothing to show", before)
	}
	if after+1<<20 > before {
		t.Errorf("RssFile %d bytes before the page-out, %d after: want at least 1 MiB less", before, after)
	}
	tr.Check()
	if pageOuts != 1 {
		t.Errorf("paged out again on a second quiet check (%d page-outs)", pageOuts)
	}
}
