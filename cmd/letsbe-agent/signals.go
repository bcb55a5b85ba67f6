package main

import (
	"context"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// reloaders are called on SIGHUP, in registration order.
var reloaders struct {
	mu  sync.Mutex
	seq int
	fns map[int]func()
}

// onReload registers fn to run on every SIGHUP until the returned function is called.
func onReload(fn func()) (remove func()) {
	reloaders.mu.Lock()
	defer reloaders.mu.Unlock()
	if reloaders.fns == nil {
		reloaders.fns = map[int]func(){}
	}
	reloaders.seq++
	id := reloaders.seq
	reloaders.fns[id] = fn
	return func() {
		reloaders.mu.Lock()
		delete(reloaders.fns, id)
		reloaders.mu.Unlock()
	}
}

func runReloaders() {
	reloaders.mu.Lock()
	fns := make([]func(), 0, len(reloaders.fns))
	for id := 1; id <= reloaders.seq; id++ {
		if fn, ok := reloaders.fns[id]; ok {
			fns = append(fns, fn)
		}
	}
	reloaders.mu.Unlock()
	for _, fn := range fns {
		fn()
	}
}

// signalContext returns a context that ends at the first SIGTERM, SIGINT or SIGQUIT (all three
// drain). A second one exits at once: whatever is durable stays so. SIGHUP reloads what can be
// reloaded (the trusted task keys, the policy) and never stops the agent. SIGPIPE is caught so
// that a closed log pipe (stderr of a crashed supervisor, a `| head`) never kills the agent:
// writes to it fail instead, and the agent carries on. Caught signals go back to their default
// in the programs the agent starts. controller-runtime's SetupSignalHandler does the same for
// SIGTERM and SIGINT only (a second one exits too), so it cannot serve here: SIGQUIT must drain
// rather than dump goroutines, and SIGHUP and SIGPIPE need handling in the same place.
func signalContext(log interface{ Info(string, ...any) }) (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	stopCh := make(chan os.Signal, 2)
	signal.Notify(stopCh, syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	pipe := make(chan os.Signal, 1)
	signal.Notify(pipe, syscall.SIGPIPE)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-hup:
				log.Info("SIGHUP received; reloading")
				runReloaders()
			case <-pipe:
				// A write to a closed pipe; the write itself reports EPIPE.
			case <-done:
				return
			}
		}
	}()
	go func() {
		sig := <-stopCh
		log.Info("Signal received; shutting down (send it again to exit at once)", "signal", sig.String())
		cancel()
		sig = <-stopCh
		log.Info("Second signal received; exiting now", "signal", sig.String())
		os.Exit(1)
	}()
	return ctx, func() {
		signal.Stop(stopCh)
		signal.Stop(hup)
		close(done)
		cancel()
	}
}
