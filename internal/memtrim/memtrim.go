// Package memtrim gives memory back to the system once the agent has gone quiet after a burst.
//
// The Go runtime collects garbage only when the heap grows to its goal and, when nothing
// allocates, once every two minutes; until then what a burst of big tasks left behind (their
// bodies, payloads and journal records) stays counted in the agent's RSS. After a few hundred
// FILE_WRITE tasks of 800 KB that is 120 MiB of anonymous memory that no live object uses.
// Trimmer watches the runtime's own accounting and, when the heap holds at least MinGarbage
// bytes more than its live objects and the agent is quiet (less than 1 MiB allocated since the
// last check), runs one collection and returns the freed pages (debug.FreeOSMemory). A busy
// agent allocates far more than that between checks, so nothing is forced while it works; on
// an idle one nothing is found and a check costs a few runtime/metrics reads.
//
// With PageOut, the first quiet check after a busy spell (and after start-up, which is one)
// also collects, returns the freed pages, and takes the pages of the agent's executable out of
// its resident set (PageOutExecutable):
// once per quiet spell, so an idle agent is not made to fault its heartbeat code back in
// again and again.
package memtrim

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Defaults of Trimmer.
const (
	DefaultInterval   = 2 * time.Second
	DefaultMinGarbage = 16 << 20
	// quietAllocs is how much may be allocated between two checks while the agent still
	// counts as quiet: heartbeats and polls allocate a little all the time.
	quietAllocs = 1 << 20
)

const (
	metricObjects = "/memory/classes/heap/objects:bytes" // live and not yet swept dead objects
	metricFree    = "/memory/classes/heap/free:bytes"    // free, not yet returned to the system
	metricLive    = "/gc/heap/live:bytes"                // live heap after the last collection
	metricAllocs  = "/gc/heap/allocs:bytes"              // allocated since the process started
)

// Trimmer returns memory to the system after bursts; the zero value uses the defaults.
type Trimmer struct {
	// Interval between checks (DefaultInterval when zero).
	Interval time.Duration
	// MinGarbage is how many bytes of dead objects and free pages make a trim worth it
	// (DefaultMinGarbage when zero).
	MinGarbage uint64
	// OnTrim, when set, is called after each trim with the bytes the heap held above its live
	// objects before it.
	OnTrim func(garbage uint64)
	// PageOut makes the first quiet check after a busy spell page out the executable.
	PageOut bool
	// OnPageOut, when set, is called after each page-out with what PageOutExecutable returned.
	OnPageOut func(advised uint64, err error)

	samples    []metrics.Sample
	lastAllocs uint64
	wasBusy    bool // a check since the last page-out found the agent busy
}

// Run checks every Interval until ctx ends.
func (t *Trimmer) Run(ctx context.Context) {
	interval := t.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			t.Check()
		}
	}
}

// Check trims once when the agent is quiet and the heap holds at least MinGarbage bytes more
// than its live objects; it reports whether it trimmed the heap. With PageOut it pages out
// the executable when the agent has gone quiet since the last check.
func (t *Trimmer) Check() bool {
	if t.samples == nil {
		t.samples = []metrics.Sample{{Name: metricObjects}, {Name: metricFree}, {Name: metricLive}, {Name: metricAllocs}}
	}
	metrics.Read(t.samples)
	objects, free, live, allocs := value(t.samples[0]), value(t.samples[1]), value(t.samples[2]), value(t.samples[3])
	heap := objects + free
	busy := t.lastAllocs == 0 || allocs > t.lastAllocs+quietAllocs
	t.lastAllocs = allocs
	if busy {
		t.wasBusy = true
		return false
	}
	if t.wasBusy && t.PageOut {
		t.wasBusy = false
		// Collect first: the collector's own pages are then not faulted straight back in.
		debug.FreeOSMemory()
		advised, err := PageOutExecutable()
		if t.OnPageOut != nil {
			t.OnPageOut(advised, err)
		}
	}
	if heap < live {
		return false
	}
	garbage := heap - live
	minGarbage := t.MinGarbage
	if minGarbage == 0 {
		minGarbage = DefaultMinGarbage
	}
	if garbage < minGarbage {
		return false
	}
	debug.FreeOSMemory()
	metrics.Read(t.samples)
	t.lastAllocs = value(t.samples[3])
	if t.OnTrim != nil {
		t.OnTrim(garbage)
	}
	return true
}

func value(s metrics.Sample) uint64 {
	if s.Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s.Value.Uint64()
}
