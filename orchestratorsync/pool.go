package orchestratorsync

import (
	"sync"
	"time"
)

// workerLinger is how long a worker of a lingerPool waits for its next job before it returns.
const workerLinger = 250 * time.Millisecond

// lingerPool runs jobs on up to max goroutines of wg. A job goes to a worker waiting for one,
// else to a new worker while fewer than max run, else to the first worker that is free again
// (run waits for it). A worker waits linger for its next job and returns without one: none
// waits at idle, and a busy agent does not start a goroutine (and grow its stack again) for
// every job. Once closed, the waiting workers return at once; run must not be called then.
type lingerPool[T any] struct {
	do      func(T)
	linger  time.Duration
	wg      *sync.WaitGroup
	busy    chan struct{} // one per worker
	handoff chan T        // to a waiting worker
	closed  chan struct{}
}

func newLingerPool[T any](max int, linger time.Duration, wg *sync.WaitGroup, do func(T)) *lingerPool[T] {
	return &lingerPool[T]{
		do: do, linger: linger, wg: wg,
		busy: make(chan struct{}, max), handoff: make(chan T), closed: make(chan struct{}),
	}
}

// run hands job to a worker, waiting while max workers are busy.
func (p *lingerPool[T]) run(job T) {
	select {
	case p.handoff <- job:
		return
	default:
	}
	select {
	case p.busy <- struct{}{}:
		p.wg.Go(func() {
			defer func() { <-p.busy }()
			p.work(job)
		})
	case p.handoff <- job:
	}
}

// work does job, then the jobs handed off to it, until none came for linger or the pool closed.
func (p *lingerPool[T]) work(job T) {
	linger := time.NewTimer(p.linger)
	defer linger.Stop()
	for {
		p.do(job)
		linger.Reset(p.linger)
		select {
		case job = <-p.handoff:
		case <-linger.C:
			return
		case <-p.closed:
			return
		}
	}
}

// close makes the waiting workers return; call it once no job is run any more.
func (p *lingerPool[T]) close() { close(p.closed) }
