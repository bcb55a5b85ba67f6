//go:build letsbe_debug

package main

// Fault switches for tests, compiled only with -tags letsbe_debug: never in a release binary
// (TestReleaseBinaryHasNoFaultSwitch checks).
//
//	LETSBE_DEBUG_WEDGE_FILE=path     once path exists, every request to the orchestrator hangs
//	                                 forever, deaf to its context: a wedged sync side
//	LETSBE_DEBUG_READY_TIMEOUT=dur   the wait for registration before READY=1

import (
	"net/http"
	"os"
	"time"
)

func debugTransport() http.RoundTripper {
	file := os.Getenv("LETSBE_DEBUG_WEDGE_FILE")
	if file == "" {
		return nil
	}
	next := http.DefaultTransport.(*http.Transport).Clone()
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if _, err := os.Stat(file); err == nil {
			select {} // wedged
		}
		return next.RoundTrip(r)
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func debugReadyTimeout(d time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv("LETSBE_DEBUG_READY_TIMEOUT")); err == nil {
		return v
	}
	return d
}
