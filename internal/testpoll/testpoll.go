package testpoll

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// Interval is the time between two checks of a condition.
const Interval = 20 * time.Millisecond

// Until checks cond every Interval until it holds; when timeout passes first (or the test's
// context ends), it fails the test with "timed out after <timeout> waiting for <what>".
func Until(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	UntilNil(t, timeout, what, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	})
}

// UntilNil checks cond every Interval until it returns nil; when timeout passes first, it
// fails the test naming what and the last error cond returned.
func UntilNil(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	err := Wait(t.Context(), timeout, cond)
	switch {
	case err == nil:
	case errors.Is(err, errNotYet):
		t.Fatalf("timed out after %s waiting for %s", timeout, what)
	default:
		t.Fatalf("timed out after %s waiting for %s: %v", timeout, what, err)
	}
}

// Wait checks cond every Interval until it returns nil, for callers without a testing.TB
// (hack/bench). When timeout passes first (or ctx ends) it returns the last error of cond,
// or the context's error if cond never ran.
func Wait(ctx context.Context, timeout time.Duration, cond func() error) error {
	var last error
	err := wait.PollUntilContextTimeout(ctx, Interval, timeout, true, func(context.Context) (bool, error) {
		last = cond()
		return last == nil, nil
	})
	switch {
	case err == nil:
		return nil
	case last == nil:
		return err
	case errors.Is(last, errNotYet):
		return last
	default:
		return fmt.Errorf("%w (%w)", last, err)
	}
}

// errNotYet is the last error of a boolean condition that never held.
var errNotYet = errors.New("condition not met")

// Page polls GET url until it answers 200 OK, up to timeout, and returns the body (at most
// 64 KiB) without surrounding white space: a service that takes its time to come up.
func Page(t testing.TB, timeout time.Duration, url string) string {
	t.Helper()
	var page string
	UntilNil(t, timeout, "the page "+url, func() error {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %s", resp.Status)
		}
		page = strings.TrimSpace(string(body))
		return nil
	})
	return page
}
