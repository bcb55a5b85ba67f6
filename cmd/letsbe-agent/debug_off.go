//go:build !letsbe_debug

package main

import (
	"net/http"
	"time"
)

// The release binary has no fault switches; see debug_on.go (build tag letsbe_debug).

func debugTransport() http.RoundTripper               { return nil }
func debugReadyTimeout(d time.Duration) time.Duration { return d }
